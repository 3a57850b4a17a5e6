//! Builds the authenticator and authorizer from the delegating flags, like
//! upstream's `DelegatingAuthenticationOptions.ApplyTo` and
//! `DelegatingAuthorizationOptions.ApplyTo`, including the lookup of missing
//! CA configuration in `kube-system/extension-apiserver-authentication`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use tokio_util::sync::CancellationToken;

use super::authn::{CaVerifier, CachedTokenReviewer, KubeTokenReviewer, RequestHeaderConfig};
use super::authz::{
    AlwaysAllowPaths, CachedAccessReviewer, KubeAccessReviewer, default_always_allow_groups,
};
use super::{AuthFilter, Authenticator, Authorizer};
use crate::flags::{AuthenticationFlags, AuthorizationFlags};
use crate::serving::tls::{load_ca_bundle, parse_ca_bundle};

pub const AUTHENTICATION_CONFIGMAP_NAMESPACE: &str = "kube-system";
pub const AUTHENTICATION_CONFIGMAP_NAME: &str = "extension-apiserver-authentication";
/// How often the configmap-backed client CA is re-read.
const CA_REFRESH_PERIOD: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DelegatingError {
    #[error("failed to get delegated {purpose} kubeconfig: {message}")]
    Kubeconfig {
        purpose: &'static str,
        message: String,
    },
    #[error("unable to load client CA file: {0}")]
    ClientCa(String),
    #[error("unable to load configmap based request-header-client-ca-file: {0}")]
    RequestHeaderLookup(#[source] RequestHeaderError),
    #[error("invalid --authorization-always-allow-paths: {0}")]
    AlwaysAllowPaths(String),
}

/// The delegated client: the explicit kubeconfig, else in-cluster; with
/// `optional`, the absence of both is not an error (scheduler,
/// controller-manager). upstream raises these clients' limits to 200/400.
pub async fn delegated_client(
    kubeconfig: Option<&std::path::Path>,
    optional: bool,
    purpose: &'static str,
) -> Result<Option<kube::Client>, DelegatingError> {
    let err = |message: String| DelegatingError::Kubeconfig { purpose, message };
    let config = match kubeconfig.filter(|p| !p.as_os_str().is_empty()) {
        Some(path) => crate::client::load_config(Some(path), None)
            .await
            .map_err(|e| err(e.to_string()))?,
        None => match kube::Config::incluster() {
            Ok(config) => config,
            Err(e) if optional => {
                let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
                if in_cluster {
                    tracing::warn!(
                        "failed to read in-cluster kubeconfig for delegated {purpose}: {e}"
                    );
                }
                return Ok(None);
            }
            Err(e) => return Err(err(e.to_string())),
        },
    };
    crate::client::client_from_config(config, 200.0, 400)
        .map(Some)
        .map_err(|e| err(e.to_string()))
}

/// Why the request-header settings in the apiserver's configmap are unusable.
#[derive(Debug, thiserror::Error)]
pub enum RequestHeaderError {
    #[error("{0}")]
    Lookup(#[from] kube::Error),
    #[error("{key}: {source}")]
    List {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Ca(#[from] super::authn::AuthnError),
}

/// Request-header settings published by the apiserver in its configmap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaderData {
    pub ca_pem: String,
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub uid_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_headers_prefix: Vec<String>,
}

/// Parses the request-header keys of `extension-apiserver-authentication`
/// (list values are JSON arrays); `None` without a request-header CA.
pub fn requestheader_from_configmap(
    data: &BTreeMap<String, String>,
) -> Result<Option<RequestHeaderData>, RequestHeaderError> {
    let ca_pem = data
        .get("requestheader-client-ca-file")
        .cloned()
        .unwrap_or_default();
    if ca_pem.trim().is_empty() {
        return Ok(None);
    }
    let list = |key: &str| -> Result<Vec<String>, RequestHeaderError> {
        match data.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(Vec::new()),
            Some(json) => serde_json::from_str(json).map_err(|source| RequestHeaderError::List {
                key: key.to_string(),
                source,
            }),
        }
    };
    Ok(Some(RequestHeaderData {
        ca_pem,
        allowed_names: list("requestheader-allowed-names")?,
        username_headers: list("requestheader-username-headers")?,
        uid_headers: list("requestheader-uid-headers")?,
        group_headers: list("requestheader-group-headers")?,
        extra_headers_prefix: list("requestheader-extra-headers-prefix")?,
    }))
}

fn requestheader_config(
    data: RequestHeaderData,
) -> Result<RequestHeaderConfig, RequestHeaderError> {
    let ca = CaVerifier::from_certs(&parse_ca_bundle(data.ca_pem.as_bytes()))?;
    Ok(RequestHeaderConfig {
        ca,
        allowed_names: data.allowed_names,
        username_headers: data.username_headers,
        uid_headers: data.uid_headers,
        group_headers: data.group_headers,
        extra_headers_prefix: data.extra_headers_prefix,
    })
}

async fn auth_configmap(client: &kube::Client) -> Result<Option<ConfigMap>, kube::Error> {
    let api: kube::Api<ConfigMap> =
        kube::Api::namespaced(client.clone(), AUTHENTICATION_CONFIGMAP_NAMESPACE);
    api.get_opt(AUTHENTICATION_CONFIGMAP_NAME).await
}

/// Keeps `ca` in sync with the configmap's `client-ca-file` until `stop`.
fn spawn_client_ca_refresh(client: kube::Client, ca: CaVerifier, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            match auth_configmap(&client).await {
                Ok(Some(cm)) => {
                    let pem = cm
                        .data
                        .as_ref()
                        .and_then(|d| d.get("client-ca-file"))
                        .cloned()
                        .unwrap_or_default();
                    if let Err(err) = ca.set(&parse_ca_bundle(pem.as_bytes())) {
                        tracing::error!(%err, "invalid client-ca-file in configmap");
                    }
                }
                Ok(None) => {
                    tracing::debug!("configmap extension-apiserver-authentication not found")
                }
                Err(err) => tracing::debug!(%err, "failed to read client CA configmap; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(CA_REFRESH_PERIOD) => {}
            }
        }
    });
}

fn flags_requestheader(
    flags: &AuthenticationFlags,
) -> Result<Option<RequestHeaderConfig>, DelegatingError> {
    let Some(path) = &flags.requestheader_client_ca_file else {
        return Ok(None);
    };
    let certs = load_ca_bundle(path).map_err(|e| DelegatingError::ClientCa(e.to_string()))?;
    Ok(Some(RequestHeaderConfig {
        ca: CaVerifier::from_certs(&certs).map_err(|e| DelegatingError::ClientCa(e.to_string()))?,
        allowed_names: flags.requestheader_allowed_names.clone(),
        username_headers: flags.requestheader_username_headers.clone(),
        uid_headers: flags.requestheader_uid_headers.clone(),
        group_headers: flags.requestheader_group_headers.clone(),
        extra_headers_prefix: flags.requestheader_extra_headers_prefix.clone(),
    }))
}

/// upstream's `DelegatingAuthenticationOptions.ApplyTo` (anonymous enabled).
pub async fn build_authenticator(
    flags: &AuthenticationFlags,
    kubeconfig_optional: bool,
    stop: CancellationToken,
) -> Result<Authenticator, DelegatingError> {
    let client = delegated_client(
        flags.authentication_kubeconfig.as_deref(),
        kubeconfig_optional,
        "authentication",
    )
    .await?;
    let mut authn = Authenticator {
        anonymous: true,
        ..Authenticator::default()
    };
    if let Some(client) = &client {
        authn.token = Some(Arc::new(CachedTokenReviewer::new(
            Arc::new(KubeTokenReviewer {
                client: client.clone(),
            }),
            flags.authentication_token_webhook_cache_ttl,
        )));
    }
    let lookup = !flags.authentication_skip_lookup;
    let cm_ref = format!(
        "configmap/{AUTHENTICATION_CONFIGMAP_NAME} in {AUTHENTICATION_CONFIGMAP_NAMESPACE}"
    );
    match (&flags.client_ca_file, &client) {
        (Some(path), _) => {
            let certs =
                load_ca_bundle(path).map_err(|e| DelegatingError::ClientCa(e.to_string()))?;
            authn.client_ca = CaVerifier::from_certs(&certs)
                .map_err(|e| DelegatingError::ClientCa(e.to_string()))?;
        }
        (None, None) if lookup => tracing::warn!(
            "No authentication-kubeconfig provided in order to lookup client-ca-file in {cm_ref}, so client certificate authentication won't work."
        ),
        (None, Some(client)) if lookup => {
            spawn_client_ca_refresh(client.clone(), authn.client_ca.clone(), stop);
        }
        _ => {}
    }
    authn.request_header = flags_requestheader(flags)?;
    if authn.request_header.is_none() && lookup {
        match &client {
            None => tracing::warn!(
                "No authentication-kubeconfig provided in order to lookup requestheader-client-ca-file in {cm_ref}, so request-header client certificate authentication won't work."
            ),
            Some(client) => {
                let looked_up = auth_configmap(client)
                    .await
                    .map_err(RequestHeaderError::from)
                    .and_then(|cm| {
                        let data = cm.and_then(|cm| cm.data).unwrap_or_default();
                        requestheader_from_configmap(&data)?
                            .map(requestheader_config)
                            .transpose()
                    });
                match looked_up {
                    Ok(config) => authn.request_header = config,
                    Err(err) if flags.authentication_tolerate_lookup_failure => {
                        tracing::error!(%err, "Error looking up in-cluster authentication configuration");
                        tracing::error!(
                            "Continuing without authentication configuration. This may treat all requests as anonymous."
                        );
                        tracing::error!(
                            "To require authentication configuration lookup to succeed, set --authentication-tolerate-lookup-failure=false"
                        );
                    }
                    Err(err) => return Err(DelegatingError::RequestHeaderLookup(err)),
                }
            }
        }
    }
    Ok(authn)
}

/// upstream's `DelegatingAuthorizationOptions.ApplyTo`.
pub async fn build_authorizer(
    flags: &AuthorizationFlags,
    kubeconfig_optional: bool,
) -> Result<Authorizer, DelegatingError> {
    let always_allow_paths = AlwaysAllowPaths::new(&flags.authorization_always_allow_paths)
        .map_err(|e| DelegatingError::AlwaysAllowPaths(e.to_string()))?;
    let client = delegated_client(
        flags.authorization_kubeconfig.as_deref(),
        kubeconfig_optional,
        "authorization",
    )
    .await?;
    let webhook = match client {
        Some(client) => Some(Arc::new(CachedAccessReviewer::new(
            Arc::new(KubeAccessReviewer { client }),
            flags.authorization_webhook_cache_authorized_ttl,
            flags.authorization_webhook_cache_unauthorized_ttl,
        )) as Arc<dyn super::authz::AccessReviewer>),
        None => {
            tracing::warn!(
                "No authorization-kubeconfig provided, so SubjectAccessReview of authorization tokens won't work."
            );
            None
        }
    };
    Ok(Authorizer {
        always_allow_groups: default_always_allow_groups(),
        always_allow_paths,
        webhook,
        always_allow: false,
    })
}

/// Both, as the scheduler and controller-manager configure them (remote
/// kubeconfigs optional).
pub async fn build_filter(
    authn: &AuthenticationFlags,
    authz: &AuthorizationFlags,
    stop: CancellationToken,
) -> Result<AuthFilter, DelegatingError> {
    let authenticator = build_authenticator(authn, true, stop).await?;
    let authorizer = build_authorizer(authz, true).await?;
    Ok(AuthFilter::new(authenticator, authorizer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_configmap_requestheader() {
        let mut data = BTreeMap::new();
        assert!(matches!(requestheader_from_configmap(&data), Ok(None)));
        data.insert(
            "requestheader-client-ca-file".into(),
            "-----BEGIN CERTIFICATE-----".into(),
        );
        data.insert(
            "requestheader-allowed-names".into(),
            r#"["front-proxy-client"]"#.into(),
        );
        data.insert(
            "requestheader-username-headers".into(),
            r#"["X-Remote-User"]"#.into(),
        );
        data.insert(
            "requestheader-group-headers".into(),
            r#"["X-Remote-Group"]"#.into(),
        );
        data.insert(
            "requestheader-extra-headers-prefix".into(),
            r#"["X-Remote-Extra-"]"#.into(),
        );
        let parsed = requestheader_from_configmap(&data)
            .expect("valid")
            .expect("present");
        assert_eq!(parsed.allowed_names, ["front-proxy-client"]);
        assert_eq!(parsed.username_headers, ["X-Remote-User"]);
        assert!(parsed.uid_headers.is_empty());
        data.insert("requestheader-group-headers".into(), "not json".into());
        assert!(requestheader_from_configmap(&data).is_err());
    }

    #[tokio::test]
    async fn without_kubeconfigs_only_local_rules_apply() {
        // Not in a cluster and no kubeconfigs: like upstream, warn and go on.
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            eprintln!("skipping: running inside a cluster");
            return;
        }
        let filter = build_filter(
            &AuthenticationFlags::default(),
            &AuthorizationFlags::default(),
            CancellationToken::new(),
        )
        .await
        .expect("builds");
        assert!(filter.authenticator.anonymous);
        assert!(filter.authenticator.token.is_none());
        assert!(filter.authorizer.webhook.is_none());
        assert!(filter.authorizer.always_allow_paths.matches("/healthz"));
        assert_eq!(filter.authorizer.always_allow_groups, ["system:masters"]);
        // Not optional (a generic apiserver): missing in-cluster config is fatal.
        assert!(
            build_authorizer(&AuthorizationFlags::default(), false)
                .await
                .is_err()
        );
    }
}
