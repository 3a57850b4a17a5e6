//! `kubelet-rs`: flags (+ `--config`) → logging → client → the kubelet API
//! over HTTPS on :10250 and `/healthz` over HTTP on 127.0.0.1:10248 → the
//! kubelet.

mod node_config;
mod options;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use component_base::app::{self, App, AppError, WorkContext};
use component_base::auth::authn::{CaVerifier, CachedTokenReviewer, KubeTokenReviewer};
use component_base::auth::authz::{CachedAccessReviewer, KubeAccessReviewer};
use component_base::auth::{AuthFilter, Authenticator, Authorizer};
use component_base::flags::ClientFlags;
use component_base::serving::{CertSource, CheckFailure, HealthCheck, SecureServingOptions};
use kubelet::server::{CriStreamingRuntime, KubeletServer};

use crate::options::{COMPONENT, KubeletServing, Resolved};

fn main() -> ExitCode {
    let (opts, matches, argv) = options::parse(std::env::args());
    let logs = opts.logs.clone();
    app::main(&logs, &argv, async move {
        let resolved = node_config::resolve(opts, &matches)?;
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
    let node_name = resolved.kubelet.node_name.clone();
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
    let handle = kubelet::KubeletHandle::new();
    let kubelet_config = &resolved.kubelet;
    let streaming = CriStreamingRuntime::connect(
        &kubelet_config.runtime_socket(),
        kubelet_config.configuration.runtime_request_timeout,
    )
    .map_err(|e| AppError::Component(format!("container runtime endpoint: {e}")))?;
    let configz = serde_json::to_value(&kubelet_config.configuration)
        .map_err(|e| AppError::Component(format!("serialising KubeletConfiguration: {e}")))?;
    let stats =
        kubelet::stats::SummaryProvider::for_kubelet(kubelet_config, Arc::new(handle.clone()))
            .map_err(|e| AppError::Component(format!("container runtime endpoint: {e}")))?;
    let api = KubeletServer::new(Arc::new(handle.clone()), Arc::new(streaming))
        .with_configz(configz)
        .with_stats(Arc::new(stats))
        .router();
    let resync = kubelet_config.configuration.sync_frequency;
    let syncloop = handle.clone();
    // upstream registers `syncloop` on the kubelet's /healthz only.
    app.health
        .healthz
        .add(HealthCheck::new("syncloop", move || {
            syncloop
                .sync_loop_health_check(resync)
                .map_err(CheckFailure::of)
        }));
    app.serve_secure(&serving, Some(auth), api).await?;
    if s.healthz_port != 0 {
        let healthz = Router::new().merge(app.health.router());
        app.serve_plain(
            SocketAddr::new(s.healthz_bind_address, s.healthz_port),
            healthz,
        )
        .await?;
    }
    app.run(None, move |ctx| {
        run_component(resolved, node_name, handle, ctx)
    })
    .await
}

/// Runs the node agent; a fatal error ends the process non-zero like
/// upstream (systemd restarts it).
async fn run_component(
    resolved: Resolved,
    node_name: String,
    handle: kubelet::KubeletHandle,
    ctx: WorkContext,
) {
    tracing::info!(node = %node_name, "Starting kubelet");
    let shutdown = ctx.shutdown.clone();
    if let Err(err) =
        kubelet::run_with(ctx.client.clone(), resolved.kubelet, shutdown, handle).await
    {
        ctx.fail(format_args!("kubelet failed: {err}"));
    }
}

/// The kubelet's authenticator/authorizer (upstream `BuildAuth`).
/// The `nodes/*` attribute mapping and denial body live in `kubelet::server::auth`.
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
    Ok(kubelet::server::kubelet_auth_filter(
        node_name,
        authenticator,
        authorizer,
    ))
}
