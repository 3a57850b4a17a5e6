//! `kube-controller-manager-rs`: flags → logging → client → HTTPS
//! health/metrics on :10257 → leader election on
//! `kube-system/kube-controller-manager` → controllers.

mod options;

use std::process::ExitCode;

use axum::Router;
use component_base::app::{self, App, AppError, WorkContext};
use component_base::auth::delegating;
use component_base::serving::SecureServingOptions;

use crate::options::{COMPONENT, DEFAULT_SECURE_PORT, Options};

fn main() -> ExitCode {
    let (opts, argv) = options::parse(std::env::args());
    let logs = opts.logs.clone();
    app::main(&logs, &argv, run(opts))
}

async fn run(opts: Options) -> Result<(), AppError> {
    let mut app = App::init(COMPONENT, &opts.client, options::CLIENT_DEFAULTS).await?;
    let auth = delegating::build_filter(&opts.authn, &opts.authz, app.shutdown.clone()).await?;
    let serving = SecureServingOptions::from_flags(&opts.serving, DEFAULT_SECURE_PORT, COMPONENT);
    app.serve_secure(&serving, Some(auth), Router::new())
        .await?;
    let leader = app::leader_election_config(&opts.leader_election, COMPONENT)?;
    app.run(leader, move |ctx| run_component(opts, ctx)).await
}

/// WIRE-UP POINT: the controller-manager library's `run` goes here (it
/// receives the parsed options and the context with the client, shutdown
/// token and health registry).
async fn run_component(opts: Options, ctx: WorkContext) {
    tracing::info!(
        controllers = ?opts.generic.controllers,
        "kube-controller-manager is running (controllers not wired yet)"
    );
    ctx.shutdown.cancelled().await;
}
