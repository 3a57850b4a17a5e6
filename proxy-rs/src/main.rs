//! `kube-proxy-rs`: flags (or `--config`) → logging → client → `/healthz`
//! over HTTP on :10256 and `/metrics` on 127.0.0.1:10249 → the proxier.

mod options;

use std::process::ExitCode;

use component_base::app::{self, App, AppError, WorkContext};
use component_base::serving::metrics_router;

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
    let mut app = App::init(COMPONENT, &resolved.client, options::CLIENT_DEFAULTS).await?;
    // upstream serves /healthz (and /livez) on the health port and /metrics
    // (plus /healthz) on the metrics port, both without authentication.
    app.serve_plain(resolved.healthz_addr, app.health.router())
        .await?;
    let metrics = metrics_router().merge(app.health.router());
    app.serve_plain(resolved.metrics_addr, metrics).await?;
    app.run(None, move |ctx| run_component(resolved, ctx)).await
}

/// WIRE-UP POINT: `kube_proxy::run_with(ctx.client, ProxyConfig::
/// from_component_config(&resolved.configuration)?, ctx.shutdown, handles)`
/// goes here; its `ProxierHealth` should then back the :10256 server above.
async fn run_component(resolved: Resolved, ctx: WorkContext) {
    tracing::info!(
        mode = %resolved.configuration.mode,
        config = ?resolved.options.config,
        "kube-proxy is running (proxier not wired yet)"
    );
    ctx.shutdown.cancelled().await;
}
