//! The shared skeleton of every binary: logging → client → serving with
//! health and metrics → optional leader election → the component's work →
//! clean exit on SIGTERM/SIGINT (code 0) or on a lost lease (code 1).
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     let (opts, argv) = options::parse(std::env::args());
//!     let logs = opts.logs.clone();
//!     component_base::app::main(&logs, &argv, async move {
//!         let mut app = App::init("kube-scheduler", &opts.client, CLIENT_DEFAULTS).await?;
//!         let auth = delegating::build_filter(&opts.authn, &opts.authz, app.shutdown.clone()).await?;
//!         let serving = SecureServingOptions::from_flags(&opts.serving, 10259, "kube-scheduler");
//!         app.serve_secure(&serving, Some(auth), Router::new()).await?;
//!         let leader = app::leader_election_config(&opts.leader_election, "kube-scheduler")?;
//!         app.run(leader, |ctx| run_component(opts, ctx)).await
//!     })
//! }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::args::Normalized;
use crate::auth::AuthFilter;
use crate::flags::{ClientDefaults, ClientFlags, LeaderElectionFlags, LoggingFlags};
use crate::leaderelection::{self, LeaderElectionConfig};
use crate::serving::{
    CheckFailure, HealthCheck, HealthRegistry, RunningServer, SecureServingOptions, ServingError,
    component_router, serve_http, start_secure,
};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("failed to set up signal handling: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error(transparent)]
    Serving(#[from] ServingError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Auth(#[from] crate::auth::delegating::DelegatingError),
    #[error("{0}")]
    Invalid(String),
    #[error("leaderelection lost")]
    LeaseLost,
    #[error("leader election failed: {0}")]
    LeaderElection(String),
    #[error("unsupported --leader-elect-resource-lock {0:?}: only \"leases\" is supported")]
    ResourceLock(String),
    #[error("{0}")]
    Component(String),
}

/// What the component's work future receives.
#[derive(Clone)]
pub struct WorkContext {
    pub client: kube::Client,
    /// Cancelled on SIGTERM/SIGINT or when leadership ends.
    pub shutdown: CancellationToken,
    /// Add component health checks here (e.g. informer sync).
    pub health: HealthRegistry,
    failure: Arc<Mutex<Option<String>>>,
}

impl WorkContext {
    /// Records a fatal error of the component's work: once the work future
    /// returns, the process exits non-zero with this message (upstream
    /// components exit on such errors and let their supervisor restart them).
    pub fn fail(&self, err: impl std::fmt::Display) {
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert_with(|| err.to_string());
        }
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|slot| slot.clone())
    }
}

/// A started component: client, shutdown token, health checks.
pub struct App {
    pub component: &'static str,
    pub client: kube::Client,
    pub shutdown: CancellationToken,
    pub health: HealthRegistry,
    servers: Vec<RunningServer>,
}

/// `<hostname>_<uuid>`, client-go's leader-election identity.
pub fn leader_identity() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string());
    format!("{host}_{}", uuid_v4())
}

/// A random RFC 4122 version-4 UUID.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The election config for `flags`, or `None` with `--leader-elect=false`.
pub fn leader_election_config(
    flags: &LeaderElectionFlags,
    default_lease_name: &str,
) -> Result<Option<LeaderElectionConfig>, AppError> {
    if !flags.leader_elect {
        return Ok(None);
    }
    if flags.leader_elect_resource_lock != "leases" {
        return Err(AppError::ResourceLock(
            flags.leader_elect_resource_lock.clone(),
        ));
    }
    Ok(Some(LeaderElectionConfig {
        lease_namespace: flags.leader_elect_resource_namespace.clone(),
        lease_name: flags
            .leader_elect_resource_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_lease_name.to_string()),
        identity: leader_identity(),
        lease_duration: flags.leader_elect_lease_duration,
        renew_deadline: flags.leader_elect_renew_deadline,
        retry_period: flags.leader_elect_retry_period,
    }))
}

/// Initialises logging, runs `body` on a multi-threaded runtime and maps
/// its result to the exit code (errors are logged, exit 1).
pub fn main<Fut>(logs: &LoggingFlags, argv: &Normalized, body: Fut) -> ExitCode
where
    Fut: Future<Output = Result<(), AppError>>,
{
    if let Err(err) = crate::logging::init(logs) {
        eprintln!("failed to initialise logging: {err}");
        return ExitCode::FAILURE;
    }
    argv.warn_dropped();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(%err, "failed to start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "command failed");
            ExitCode::FAILURE
        }
    }
}

impl App {
    /// Installs signal handling and builds the API client (no request is
    /// made, so an unreachable apiserver does not stop startup).
    pub async fn init(
        component: &'static str,
        client: &ClientFlags,
        defaults: ClientDefaults,
    ) -> Result<App, AppError> {
        let shutdown = crate::signals::shutdown_token().map_err(AppError::Signals)?;
        let client = crate::client::build_client(client, defaults).await?;
        tracing::info!(component, "Starting");
        Ok(App {
            component,
            client,
            shutdown,
            health: HealthRegistry::new(),
            servers: Vec::new(),
        })
    }

    /// Serves health, `/metrics` and `extra` over HTTPS behind `auth`.
    pub async fn serve_secure(
        &mut self,
        opts: &SecureServingOptions,
        auth: Option<AuthFilter>,
        extra: Router,
    ) -> Result<Option<SocketAddr>, AppError> {
        let router = component_router(&self.health, extra, auth);
        let server = start_secure(opts, router, self.shutdown.clone()).await?;
        let addr = server.as_ref().map(|s| s.local_addr);
        self.servers.extend(server);
        Ok(addr)
    }

    /// Serves `router` over plain HTTP (kubelet healthz, kube-proxy).
    pub async fn serve_plain(
        &mut self,
        addr: SocketAddr,
        router: Router,
    ) -> Result<SocketAddr, AppError> {
        let server = serve_http(addr, router, self.shutdown.clone())
            .await
            .map_err(ServingError::from)?;
        let local = server.local_addr;
        self.servers.push(server);
        Ok(local)
    }

    /// Runs `work` (under leader election when `leader` is set) until it
    /// returns or shutdown is requested, then stops the servers.
    pub async fn run<F, Fut>(
        self,
        leader: Option<LeaderElectionConfig>,
        work: F,
    ) -> Result<(), AppError>
    where
        F: FnOnce(WorkContext) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let ctx = WorkContext {
            client: self.client.clone(),
            shutdown: self.shutdown.clone(),
            health: self.health.clone(),
            failure: Arc::default(),
        };
        let failure = ctx.clone();
        let result = match leader {
            None => {
                let shutdown = self.shutdown.clone();
                let fut = work(ctx);
                tokio::select! {
                    _ = fut => {},
                    _ = shutdown.cancelled() => {},
                }
                Ok(())
            }
            Some(cfg) => self.run_elected(cfg, ctx, work).await,
        };
        let result = match (result, failure.failure()) {
            (Ok(()), Some(msg)) => Err(AppError::Component(msg)),
            (result, _) => result,
        };
        self.shutdown.cancel();
        for server in self.servers {
            if let Err(err) = server.task.await {
                tracing::debug!(%err, "server task ended abnormally");
            }
        }
        match &result {
            Ok(()) => tracing::info!(
                component = self.component,
                "Requested to terminate, exiting"
            ),
            Err(AppError::LeaseLost) => tracing::error!("Leaderelection lost"),
            Err(_) => {}
        }
        result
    }

    async fn run_elected<F, Fut>(
        &self,
        cfg: LeaderElectionConfig,
        ctx: WorkContext,
        work: F,
    ) -> Result<(), AppError>
    where
        F: FnOnce(WorkContext) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // client-go's HealthzAdaptor with the 20s tolerance the scheduler and
        // controller-manager use: fails only while we lead without renewing.
        let health = leaderelection::LeaderElectionHealth::new(Duration::from_secs(20));
        let check = health.clone();
        self.health
            .add_to_all(HealthCheck::new(health.name(), move || {
                check.check().map_err(CheckFailure::of)
            }));
        tracing::info!(
            lease = %format!("{}/{}", cfg.lease_namespace, cfg.lease_name),
            identity = %cfg.identity,
            "attempting to acquire leader lease"
        );
        let outcome = leaderelection::run_with_health(
            self.client.clone(),
            cfg,
            health,
            self.shutdown.clone(),
            move |leading: CancellationToken| {
                work(WorkContext {
                    shutdown: leading,
                    ..ctx
                })
            },
        )
        .await;
        match outcome {
            Ok(()) => Ok(()),
            Err(leaderelection::Error::LeaseLost(_)) => Err(AppError::LeaseLost),
            Err(other) => Err(AppError::LeaderElection(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(
            parts[3].chars().next(),
            Some('8' | '9' | 'a' | 'b')
        ));
        assert_ne!(uuid_v4(), id);
        let identity = leader_identity();
        assert!(identity.contains('_') && identity.len() > 37, "{identity}");
    }

    #[test]
    fn election_config_from_flags() {
        let mut flags = LeaderElectionFlags::default();
        let cfg = leader_election_config(&flags, "kube-scheduler")
            .expect("valid")
            .expect("electing by default");
        assert_eq!(cfg.lease_namespace, "kube-system");
        assert_eq!(cfg.lease_name, "kube-scheduler");
        assert_eq!(cfg.lease_duration, std::time::Duration::from_secs(15));
        flags.leader_elect_resource_name = Some("custom".into());
        let cfg = leader_election_config(&flags, "kube-scheduler")
            .expect("valid")
            .expect("electing");
        assert_eq!(cfg.lease_name, "custom");
        flags.leader_elect_resource_lock = "endpoints".into();
        assert!(leader_election_config(&flags, "x").is_err());
        flags.leader_elect = false;
        assert!(
            leader_election_config(&flags, "x")
                .expect("valid")
                .is_none()
        );
    }
}
