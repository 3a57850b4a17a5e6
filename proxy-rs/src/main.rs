//! `kube-proxy-rs`: flags (or `--config`) → logging → client → `/healthz`
//! over HTTP on :10256 and `/metrics` on 127.0.0.1:10249 → the proxier.

mod options;

use std::process::ExitCode;

use axum::routing::get;
use component_base::app::{self, App, AppError, WorkContext};
use component_base::serving::metrics_router;
use kube_proxy::{Handles, ProxyConfig};

use crate::options::{COMPONENT, Resolved};

fn main() -> ExitCode {
    let (opts, argv) = options::parse(std::env::args());
    let logs = opts.logs.clone();
    app::main(
        &logs,
        &argv,
        async move { run(options::resolve(opts)?).await },
    )
}

async fn run(resolved: Resolved) -> Result<(), AppError> {
    let config = ProxyConfig::from_component_config(&resolved.configuration)
        .map_err(|err| AppError::Invalid(format!("invalid kube-proxy configuration: {err}")))?;
    let handles = Handles::new(&config);
    let mut app = App::init(COMPONENT, &resolved.client, options::CLIENT_DEFAULTS).await?;
    // Upstream serves the proxier's health (/healthz, /livez) on the health
    // port and /metrics (plus a plain /healthz) on the metrics port, both
    // without authentication.
    app.serve_plain(
        resolved.healthz_addr,
        kube_proxy::healthcheck::http::router(handles.health.clone()),
    )
    .await?;
    let mode = config.mode.to_string();
    let metrics = metrics_router()
        .merge(app.health.router())
        .route("/proxyMode", get(move || std::future::ready(mode)));
    app.serve_plain(resolved.metrics_addr, metrics).await?;
    app.run(None, move |ctx| run_component(config, handles, ctx))
        .await
}

/// Runs the proxier; a fatal error ends the process non-zero like upstream.
async fn run_component(config: ProxyConfig, handles: Handles, ctx: WorkContext) {
    if let Err(err) =
        kube_proxy::run_with(ctx.client.clone(), config, ctx.shutdown.clone(), handles).await
    {
        ctx.fail(format_args!("kube-proxy failed: {err}"));
    }
}
