//! Starts the enabled controllers on shared informers and runs their work
//! queues (upstream `StartControllers` + each controller's `Run`/`worker`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use component_base::events::EventBroadcaster;
use component_base::workqueue::RateLimitingQueue;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::clientbuilder::{ControllerClientBuilder, SERVICE_ACCOUNT_NAMESPACE};
use crate::config::ControllerManagerConfig;
use crate::controller_utils::Key;
use crate::error::Error;
use crate::names::ControllerSelection;
use crate::registry;
use component_base::informers::SharedInformerFactory;

/// What every controller gets when it starts.
#[derive(Clone)]
pub struct ControllerContext {
    pub client: Client,
    pub informers: Arc<SharedInformerFactory>,
    pub config: Arc<ControllerManagerConfig>,
    pub shutdown: CancellationToken,
    /// One event writer for the whole process; controllers take recorders.
    pub events: Arc<EventBroadcaster>,
}

/// Runs every enabled, implemented controller until `shutdown` fires.
pub async fn run(
    client: Client,
    config: ControllerManagerConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let selection = ControllerSelection::parse(&config.controllers)?;
    let clients = client_builder(&client, &config, &shutdown)?;
    let ctx = ControllerContext {
        events: Arc::new(EventBroadcaster::start(client.clone(), shutdown.clone())),
        informers: Arc::new(SharedInformerFactory::new(client.clone(), shutdown.clone())),
        client,
        config: Arc::new(config),
        shutdown: shutdown.clone(),
    };
    let implemented = registry::descriptors();
    for name in selection.enabled() {
        if !implemented.iter().any(|d| d.name == name) {
            tracing::info!(
                controller = name,
                "controller is enabled but not implemented; skipping"
            );
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for descriptor in implemented {
        if !selection.is_enabled(descriptor.name) {
            tracing::info!(
                controller = descriptor.name,
                "Warning: controller is disabled"
            );
            continue;
        }
        tracing::info!(controller = descriptor.name, "Starting controller");
        let name = descriptor.name;
        let start = descriptor.start;
        let controller_ctx = for_controller(&ctx, &clients, descriptor.client_name);
        tasks.spawn(async move {
            match controller_ctx.await {
                Ok(ctx) => (name, start(ctx).await),
                Err(err) => (name, Err(err)),
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, Ok(()))) => tracing::info!(controller = name, "controller stopped"),
            Ok((name, Err(err))) => {
                tracing::error!(controller = name, error = %err, "controller failed");
                shutdown.cancel();
                return Err(err);
            }
            Err(err) => {
                shutdown.cancel();
                return Err(Error::Controller {
                    name: "runner",
                    reason: err.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Upstream `createClientBuilders`: the process's own client for everyone,
/// or per-controller ServiceAccount clients with the flag set. Informers
/// keep the process's client either way.
fn client_builder(
    client: &Client,
    config: &ControllerManagerConfig,
    shutdown: &CancellationToken,
) -> Result<ControllerClientBuilder, Error> {
    if !config.use_service_account_credentials {
        return Ok(ControllerClientBuilder::Simple(client.clone()));
    }
    let base = config
        .base_client_config
        .clone()
        .ok_or_else(|| Error::Controller {
            name: "clientbuilder",
            reason: "use_service_account_credentials needs base_client_config".to_string(),
        })?;
    Ok(ControllerClientBuilder::ServiceAccount {
        root: client.clone(),
        base: Box::new(base),
        namespace: SERVICE_ACCOUNT_NAMESPACE.to_string(),
        shutdown: shutdown.clone(),
    })
}

/// The context one controller starts with: its own client, and (as
/// upstream, whose controllers record events through their own client) its
/// own event writer when that client differs from the process's.
fn for_controller(
    shared: &ControllerContext,
    clients: &ControllerClientBuilder,
    client_name: &'static str,
) -> impl Future<Output = Result<ControllerContext, Error>> + Send + 'static {
    let mut ctx = shared.clone();
    let clients = clients.clone();
    async move {
        if let ControllerClientBuilder::ServiceAccount { .. } = clients {
            let client = clients.client(client_name).await?;
            ctx.events = Arc::new(EventBroadcaster::start(
                client.clone(),
                ctx.shutdown.clone(),
            ));
            ctx.client = client;
        }
        Ok(ctx)
    }
}

/// What a sync asks of the queue besides success/failure.
pub type SyncResult = Result<Option<Duration>, Error>;

/// Runs `workers` loops pulling keys from `queue` until shutdown, like
/// upstream's `processNextWorkItem`: success forgets the key's backoff (and
/// optionally re-adds it after a delay), failure re-adds it rate-limited.
pub async fn run_workers<F, Fut>(
    controller: &'static str,
    queue: RateLimitingQueue<Key>,
    workers: usize,
    shutdown: CancellationToken,
    sync: F,
) where
    F: Fn(Key) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SyncResult> + Send + 'static,
{
    let sync = Arc::new(sync);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = Arc::clone(&sync);
        set.spawn(async move {
            while let Some(key) = queue.get().await {
                let result = sync(key.clone()).await;
                handle_result(controller, &queue, &key, result);
                queue.done(&key);
            }
        });
    }
    shutdown.cancelled().await;
    queue.shut_down();
    while set.join_next().await.is_some() {}
}

fn handle_result(
    controller: &'static str,
    queue: &RateLimitingQueue<Key>,
    key: &Key,
    result: SyncResult,
) {
    match result {
        Ok(requeue) => {
            queue.forget(key);
            if let Some(after) = requeue {
                queue.add_after(key.clone(), after);
            }
        }
        Err(err) if err.is_conflict() => {
            tracing::debug!(controller, %key, "conflict; requeueing");
            queue.add_rate_limited(key.clone());
        }
        Err(err) => {
            tracing::warn!(controller, %key, error = %err, "error syncing; requeueing");
            queue.add_rate_limited(key.clone());
        }
    }
}
