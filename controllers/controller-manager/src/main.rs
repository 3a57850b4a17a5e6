//! `kube-controller-manager-rs`: flags → logging → client → HTTPS
//! health/metrics on :10257 → leader election on
//! `kube-system/kube-controller-manager` → controllers.

mod options;
mod wiring;

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

/// Runs the controllers while this process leads; a fatal error ends the
/// process non-zero like upstream.
async fn run_component(opts: Options, ctx: WorkContext) {
    let config = match wiring::controller_manager_config(&opts).await {
        Ok(config) => config,
        Err(err) => return ctx.fail(err),
    };
    if let Err(err) =
        kube_controller_manager::run(ctx.client.clone(), config, ctx.shutdown.clone()).await
    {
        ctx.fail(format_args!("controller-manager failed: {err}"));
    }
}
