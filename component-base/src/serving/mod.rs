//! HTTPS and plain-HTTP serving for component endpoints: health checks,
//! `/metrics`, and whatever routes a component adds (`/configz`, the
//! kubelet API), behind delegated authentication/authorization.

pub mod healthz;
pub mod server;
pub mod tls;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

pub use healthz::{CheckFailure, Checks, HealthCheck, HealthRegistry};
pub use server::{PeerInfo, RunningServer, ServeError, serve_http, serve_https};
pub use tls::{CertSource, TlsError};

use crate::auth::AuthFilter;
use crate::flags::SecureServingFlags;

#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// `GET /metrics` from the process-wide registry.
pub fn metrics_router() -> Router {
    Router::new().route("/metrics", get(metrics_handler))
}

async fn metrics_handler() -> Response {
    let mut resp = crate::metrics::encode_text().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::TEXT_CONTENT_TYPE),
    );
    resp
}

/// Health endpoints + `/metrics` + `extra`, all behind `auth` when given.
pub fn component_router(
    health: &HealthRegistry,
    extra: Router,
    auth: Option<AuthFilter>,
) -> Router {
    let router = health.router().merge(metrics_router()).merge(extra);
    match auth {
        Some(auth) => auth.apply(router),
        None => router,
    }
}

/// Resolved secure-serving settings.
#[derive(Debug, Clone)]
pub struct SecureServingOptions {
    pub bind_address: IpAddr,
    /// 0 disables HTTPS serving, as upstream.
    pub port: u16,
    pub cert: CertSource,
    pub cipher_suites: Vec<String>,
    pub min_version: Option<String>,
}

impl SecureServingOptions {
    /// Like the scheduler/controller-manager: self-signed for `localhost`
    /// and 127.0.0.1 unless a cert is given; in memory unless `--cert-dir`.
    pub fn from_flags(flags: &SecureServingFlags, default_port: u16, pair_name: &str) -> Self {
        SecureServingOptions {
            bind_address: flags.bind_address,
            port: flags.secure_port.unwrap_or(default_port),
            cert: CertSource {
                cert_file: flags.tls_cert_file.clone(),
                key_file: flags.tls_private_key_file.clone(),
                cert_dir: flags.cert_dir.clone().unwrap_or_default(),
                pair_name: pair_name.to_string(),
                host: "localhost".to_string(),
                alternate_ips: vec![IpAddr::from([127, 0, 0, 1])],
                alternate_dns: Vec::new(),
            },
            cipher_suites: flags.tls_cipher_suites.clone(),
            min_version: flags.tls_min_version.clone(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.port)
    }
}

/// Starts HTTPS serving of `router`; `Ok(None)` when the port is 0.
pub async fn start_secure(
    opts: &SecureServingOptions,
    router: Router,
    shutdown: CancellationToken,
) -> Result<Option<RunningServer>, ServingError> {
    if opts.port == 0 {
        tracing::info!("secure serving disabled (port 0)");
        return Ok(None);
    }
    let cert = tls::load_or_generate(&opts.cert)?;
    let config = tls::server_config(cert, &opts.cipher_suites, opts.min_version.as_deref())?;
    Ok(Some(
        serve_https(opts.addr(), config, router, shutdown).await?,
    ))
}
