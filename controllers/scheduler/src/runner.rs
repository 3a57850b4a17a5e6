//! `run`: wires informers, queue and scheduling loop together until shutdown.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Error;
use component_base::events::EventBroadcaster;

use crate::config::SchedulerConfig;
use crate::eventhandlers::{run_node_informer, run_pod_informer};
use crate::framework::Handle;
use crate::reporter::KubeReporter;
use crate::scheduler::Scheduler;

async fn wait_synced(mut rx: watch::Receiver<bool>, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        r = rx.wait_for(|s| *s) => r.is_ok(),
    }
}

/// Runs the scheduler against the apiserver behind `client` until `shutdown` is cancelled.
/// Call it once leadership is acquired.
pub async fn run(
    client: kube::Client,
    config: SchedulerConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let tasks = CancellationToken::new();
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
    let reporter = Arc::new(KubeReporter::new(client.clone(), recorders));
    let handle = Handle {
        client: Some(client.clone()),
    };
    let scheduler = Scheduler::new(
        &config,
        &crate::plugins::registry::in_tree(),
        &handle,
        reporter,
    )?;
    let shared = scheduler.shared.clone();
    let (pods_tx, pods_rx) = watch::channel(false);
    let (nodes_tx, nodes_rx) = watch::channel(false);
    let pod_informer = tokio::spawn(run_pod_informer(
        client.clone(),
        shared.clone(),
        pods_tx,
        tasks.clone(),
    ));
    let node_informer = tokio::spawn(run_node_informer(
        client,
        shared.clone(),
        nodes_tx,
        tasks.clone(),
    ));
    let queue_flusher = tokio::spawn(shared.queue.clone().run(tasks.clone()));

    let synced = wait_synced(nodes_rx, &shutdown).await && wait_synced(pods_rx, &shutdown).await;
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
    for t in [pod_informer, node_informer, queue_flusher] {
        if let Err(e) = t.await {
            tracing::warn!(%e, "scheduler task ended abnormally");
        }
    }
    Ok(())
}
