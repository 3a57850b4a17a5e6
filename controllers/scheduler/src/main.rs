//! `kube-scheduler-rs`: flags → logging → client → HTTPS health/metrics on
//! :10259 → leader election on `kube-system/kube-scheduler` → scheduler.

mod options;

use std::process::ExitCode;

use axum::Router;
use component_base::app::{self, App, AppError, WorkContext};
use component_base::auth::delegating;
use component_base::serving::SecureServingOptions;

use crate::options::{COMPONENT, DEFAULT_SECURE_PORT, Resolved};

fn main() -> ExitCode {
    let (opts, matches, argv) = options::parse(std::env::args());
    let logs = opts.logs.clone();
    app::main(&logs, &argv, async move {
        let resolved = options::resolve(opts, &matches)?;
        run(resolved).await
    })
}

async fn run(resolved: Resolved) -> Result<(), AppError> {
    let opts = &resolved.options;
    let mut app = App::init(COMPONENT, &resolved.client, options::CLIENT_DEFAULTS).await?;
    let auth = delegating::build_filter(&opts.authn, &opts.authz, app.shutdown.clone()).await?;
    let serving = SecureServingOptions::from_flags(&opts.serving, DEFAULT_SECURE_PORT, COMPONENT);
    app.serve_secure(&serving, Some(auth), Router::new())
        .await?;
    let leader = app::leader_election_config(&resolved.leader_election, COMPONENT)?;
    app.run(leader, move |ctx| run_component(resolved, ctx))
        .await
}

/// Runs the scheduler while this process leads; a fatal error (e.g. an
/// invalid `--config`) ends the process non-zero like upstream.
async fn run_component(resolved: Resolved, ctx: WorkContext) {
    let config = match resolved.component_config {
        Some(value) => match kube_scheduler::SchedulerConfig::from_component_config(value) {
            Ok(config) => config,
            Err(err) => return ctx.fail(format_args!("invalid scheduler configuration: {err}")),
        },
        None => kube_scheduler::SchedulerConfig::default(),
    };
    if let Err(err) = kube_scheduler::run(ctx.client.clone(), config, ctx.shutdown.clone()).await {
        ctx.fail(format_args!("scheduler failed: {err}"));
    }
}
