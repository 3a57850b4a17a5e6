//! `kubelet-rs`: flags (+ `--config`) → logging → client → the kubelet API
//! over HTTPS on :10250 and `/healthz` over HTTP on 127.0.0.1:10248 → the
//! kubelet.

mod options;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use component_base::app::{self, App, AppError, WorkContext};
use component_base::auth::authn::{CaVerifier, CachedTokenReviewer, KubeTokenReviewer};
use component_base::auth::authz::{CachedAccessReviewer, KubeAccessReviewer};
use component_base::auth::{
    Attributes, AuthFilter, Authenticator, Authorizer, ResourceAttributes, UserInfo,
};
use component_base::flags::ClientFlags;
use component_base::serving::{CertSource, SecureServingOptions};

use crate::options::{COMPONENT, KubeletServing, Resolved};

fn main() -> ExitCode {
    let (opts, matches, argv) = options::parse(std::env::args());
    let logs = opts.logs.clone();
    app::main(&logs, &argv, async move {
        let resolved = options::resolve(opts, &matches)?;
        run(resolved).await
    })
}

async fn run(resolved: Resolved) -> Result<(), AppError> {
    let o = &resolved.options;
    if o.kubeconfig.is_none() {
        return Err(AppError::Invalid(
            "standalone mode (no --kubeconfig) is not supported".to_string(),
        ));
    }
    let client_flags = ClientFlags {
        kubeconfig: o.kubeconfig.clone(),
        master: None,
        kube_api_qps: o.kube_api_qps,
        kube_api_burst: o.kube_api_burst,
        kube_api_content_type: o.kube_api_content_type.clone(),
    };
    let mut app = App::init(COMPONENT, &client_flags, options::CLIENT_DEFAULTS).await?;
    let node_name = node_name(o.hostname_override.as_deref());
    let s = &resolved.serving;
    let auth = kubelet_auth(s, &app.client, &node_name)?;
    let serving = SecureServingOptions {
        bind_address: s.address,
        port: s.port,
        cert: CertSource {
            cert_file: s.tls_cert_file.clone(),
            key_file: s.tls_private_key_file.clone(),
            cert_dir: o.cert_dir.clone(),
            pair_name: "kubelet".to_string(),
            host: node_name.clone(),
            alternate_ips: Vec::new(),
            alternate_dns: Vec::new(),
        },
        cipher_suites: s.tls_cipher_suites.clone(),
        min_version: s.tls_min_version.clone(),
    };
    app.serve_secure(&serving, Some(auth), Router::new())
        .await?;
    if s.healthz_port != 0 {
        let healthz = Router::new().merge(app.health.router());
        app.serve_plain(
            SocketAddr::new(s.healthz_bind_address, s.healthz_port),
            healthz,
        )
        .await?;
    }
    app.run(None, move |ctx| run_component(resolved, node_name, ctx))
        .await
}

/// WIRE-UP POINT: the kubelet library's `run` goes here (it receives the
/// flags, the type-checked `--config` JSON for `kubelet::config`, the node
/// name, and the context with the client, shutdown token and health
/// registry). Its API routes (`/pods`, `/containerLogs`, exec) belong in the
/// `Router` passed to `serve_secure` above.
async fn run_component(resolved: Resolved, node_name: String, ctx: WorkContext) {
    tracing::info!(
        node = %node_name,
        config = ?resolved.options.config,
        has_config_file = resolved.config_file.is_some(),
        "kubelet is running (node agent not wired yet)"
    );
    ctx.shutdown.cancelled().await;
}

/// upstream `nodeutil.GetHostname`: the override or the hostname, lower-cased.
fn node_name(hostname_override: Option<&str>) -> String {
    let raw = hostname_override
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
        })
        .unwrap_or_default();
    raw.trim().to_lowercase()
}

/// The kubelet's authenticator/authorizer (upstream `BuildAuth`).
/// Kept here until the kubelet library has its server module, so :10250
/// already enforces upstream authentication and authorization.
fn kubelet_auth(
    s: &KubeletServing,
    client: &kube::Client,
    node_name: &str,
) -> Result<AuthFilter, AppError> {
    let client_ca = match &s.client_ca_file {
        Some(path) => {
            let certs = component_base::serving::tls::load_ca_bundle(path)
                .map_err(|e| AppError::Invalid(e.to_string()))?;
            CaVerifier::from_certs(&certs).map_err(|e| AppError::Invalid(e.to_string()))?
        }
        None => CaVerifier::default(),
    };
    let authenticator = Authenticator {
        request_header: None,
        client_ca,
        token: s.token_webhook.then(|| {
            Arc::new(CachedTokenReviewer::new(
                Arc::new(KubeTokenReviewer {
                    client: client.clone(),
                }),
                s.token_webhook_cache_ttl,
            )) as _
        }),
        anonymous: s.anonymous,
    };
    let authorizer = match s.authorization_mode.as_str() {
        "AlwaysAllow" => Authorizer {
            always_allow: true,
            ..Authorizer::default()
        },
        "Webhook" => Authorizer {
            webhook: Some(Arc::new(CachedAccessReviewer::new(
                Arc::new(KubeAccessReviewer {
                    client: client.clone(),
                }),
                s.authorized_ttl,
                s.unauthorized_ttl,
            ))),
            ..Authorizer::default()
        },
        other => {
            return Err(AppError::Invalid(format!(
                "unsupported authorization mode {other:?} (AlwaysAllow or Webhook)"
            )));
        }
    };
    let node = node_name.to_string();
    Ok(AuthFilter::new(authenticator, authorizer)
        .with_attributes(move |user, method, uri| kubelet_attributes(&node, user, method, uri))
        .with_forbidden(kubelet_forbidden))
}

/// upstream kubelet `GetRequestAttributes`: `nodes/<subresource>` with the
/// verb from the method (coarse mapping; fine-grained authz comes with the
/// kubelet server module).
fn kubelet_attributes(
    node: &str,
    user: &UserInfo,
    method: &http::Method,
    uri: &http::Uri,
) -> Attributes {
    let verb = match *method {
        http::Method::POST => "create",
        http::Method::GET => "get",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "",
    };
    let path = uri.path();
    let is_sub = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    let subresource = if is_sub("/stats") {
        "stats"
    } else if is_sub("/metrics") {
        "metrics"
    } else if is_sub("/logs") {
        "log"
    } else if is_sub("/checkpoint") {
        "checkpoint"
    } else {
        "proxy"
    };
    Attributes {
        user: user.clone(),
        verb: verb.to_string(),
        path: path.to_string(),
        resource: Some(ResourceAttributes {
            version: "v1".to_string(),
            resource: "nodes".to_string(),
            subresource: subresource.to_string(),
            name: node.to_string(),
            ..ResourceAttributes::default()
        }),
    }
}

/// upstream kubelet's denial body.
fn kubelet_forbidden(attrs: &Attributes, _reason: &str) -> Response {
    let (resource, subresource) = attrs
        .resource
        .as_ref()
        .map(|r| (r.resource.as_str(), r.subresource.as_str()))
        .unwrap_or_default();
    (
        StatusCode::FORBIDDEN,
        format!(
            "Forbidden (user={}, verb={}, resource={}, subresource={})\n",
            attrs.user.name, attrs.verb, resource, subresource
        ),
    )
        .into_response()
}
