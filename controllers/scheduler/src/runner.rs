//! `run`: wires informers, event handlers, queue and scheduling loop together until shutdown
//! (upstream `scheduler.New` + `Scheduler.Run`).

use std::sync::Arc;

use component_base::events::EventBroadcaster;
use component_base::informers::{SharedInformerFactory, WatchScope, wait_for_named_cache_sync};
use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::config::SchedulerConfig;
use crate::eventhandlers::{NodeHandler, POD_FIELD_SELECTOR, PodHandler, dispatch};
use crate::framework::Handle;
use crate::reporter::KubeReporter;
use crate::scheduler::Scheduler;

/// Name in the cache-sync log lines.
const COMPONENT: &str = "scheduler";

async fn wait_handled(mut rx: watch::Receiver<bool>, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        r = rx.wait_for(|s| *s) => r.is_ok(),
    }
}

/// Events and status updates, with one event recorder per profile.
fn reporter(
    client: &kube::Client,
    config: &SchedulerConfig,
    tasks: &CancellationToken,
) -> Arc<KubeReporter> {
    let broadcaster = EventBroadcaster::start(client.clone(), tasks.clone());
    let recorders = config
        .profiles
        .iter()
        .map(|p| {
            (
                p.scheduler_name.clone(),
                broadcaster.new_recorder(&p.scheduler_name),
            )
        })
        .collect();
    Arc::new(KubeReporter::new(client.clone(), recorders))
}

/// Runs the scheduler against the apiserver behind `client` until `shutdown` is cancelled.
/// Call it once leadership is acquired.
pub async fn run(
    client: kube::Client,
    config: SchedulerConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let tasks = CancellationToken::new();
    let reporter = reporter(&client, &config, &tasks);
    let informers = Arc::new(SharedInformerFactory::new(client.clone(), tasks.clone()));
    let handle = Handle::new(client, informers.clone());
    let pods = informers.scoped::<Pod>(WatchScope::fields(POD_FIELD_SELECTOR));
    let nodes = informers.informer::<Node>();
    let registry = crate::plugins::registry::in_tree();
    let scheduler = Scheduler::new(&config, &registry, &handle, reporter, pods.store().clone())?;
    let shared = scheduler.shared.clone();
    let (pods_tx, pods_rx) = watch::channel(false);
    let (nodes_tx, nodes_rx) = watch::channel(false);
    let pod_handler = PodHandler::new(shared.clone(), pods.store().clone());
    let node_handler = NodeHandler::new(shared.clone(), nodes.store().clone());
    let mut signals = vec![nodes.synced(), pods.synced()];
    signals.extend(handle.requested_synced());
    let pod_events = tokio::spawn(dispatch::run(pod_handler, pods, pods_tx, tasks.clone()));
    let node_events = tokio::spawn(dispatch::run(node_handler, nodes, nodes_tx, tasks.clone()));
    let queue_flusher = tokio::spawn(shared.queue.clone().run(tasks.clone()));

    // Caches first, then the handlers' pass over them (upstream `WaitForHandlersSync`).
    let synced = wait_for_named_cache_sync(COMPONENT, &shutdown, &signals).await
        && wait_handled(nodes_rx, &shutdown).await
        && wait_handled(pods_rx, &shutdown).await;
    if synced {
        tracing::info!(
            profiles = config.profiles.len(),
            "caches synced; starting to schedule pods"
        );
        let queue = shared.queue.clone();
        let stop = shutdown.clone();
        let closer = tokio::spawn(async move {
            stop.cancelled().await;
            queue.close();
        });
        scheduler.run().await;
        closer.abort();
    }
    tasks.cancel();
    shared.queue.close();
    for t in [pod_events, node_events, queue_flusher] {
        if let Err(e) = t.await {
            tracing::warn!(%e, "scheduler task ended abnormally");
        }
    }
    Ok(())
}
