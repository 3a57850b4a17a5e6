//! The DaemonSet controller (upstream `pkg/controller/daemon`): one pod per
//! eligible node, pinned there through node affinity, rolled by
//! RollingUpdate (maxUnavailable / maxSurge) or OnDelete, with a
//! ControllerRevision per template.

pub mod backoff;
pub mod controller;
pub mod history;
pub mod reconcile;
#[cfg(test)]
mod tests;
pub mod util;

use std::sync::{Arc, Mutex};

use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::control::{KubeObjectControl, KubePodControl};
use crate::controller::{ControllerContext, ControllerDescriptor, KeyedController, object_key};
use crate::controller_utils::Expectations;
use crate::error::Error;
use crate::events::EventSink;
use controller::Controller;

/// Upstream `names.DaemonSetController`.
pub const DAEMONSET_CONTROLLER: &str = "daemonset-controller";

pub const SUCCESSFUL_CREATE_REASON: &str = "SuccessfulCreate";
pub const FAILED_CREATE_REASON: &str = "FailedCreate";
pub const SUCCESSFUL_DELETE_REASON: &str = "SuccessfulDelete";
pub const FAILED_DELETE_REASON: &str = "FailedDelete";
/// Upstream `SelectingAllReason`.
pub const SELECTING_ALL_REASON: &str = "SelectingAll";
/// Upstream `FailedDaemonPodReason`.
pub const FAILED_DAEMON_POD_REASON: &str = "FailedDaemonPod";
/// Upstream `SucceededDaemonPodReason`.
pub const SUCCEEDED_DAEMON_POD_REASON: &str = "SucceededDaemonPod";

/// Upstream `BurstReplicas`: creations/deletions per sync.
pub const BURST_REPLICAS: usize = 250;

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: DAEMONSET_CONTROLLER,
    aliases: &["daemonset"],
    disabled_by_default: false,
    client_name: "daemon-set-controller",
    watches: &["DaemonSet", "ControllerRevision", "Pod", "Node"],
    concurrent_syncs: |c| c.concurrent.daemonset,
    start: |ctx| Box::pin(start(ctx)),
};

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let ds_informer = ctx.informers.informer::<DaemonSet>();
    let revision_informer = ctx.informers.informer::<ControllerRevision>();
    let pod_informer = ctx.informers.informer::<Pod>();
    let node_informer = ctx.informers.informer::<Node>();
    let controller = Arc::new(Controller {
        daemonsets: ds_informer.store().clone(),
        nodes: node_informer.store().clone(),
        pods: pod_informer.store().clone(),
        revisions: revision_informer.store().clone(),
        pod_control: Arc::new(KubePodControl::new(ctx.client.clone())),
        ds_control: Arc::new(KubeObjectControl::new(ctx.client.clone())),
        cr_control: Arc::new(KubeObjectControl::new(ctx.client.clone())),
        expectations: Expectations::default(),
        backoff: Mutex::new(backoff::Backoff::default()),
        events: EventSink::new(&ctx.events, DAEMONSET_CONTROLLER),
    });
    let gc = Arc::clone(&controller);
    let shutdown = ctx.shutdown.clone();
    // Upstream runs `failedPodsBackoff.GC` every BackoffGCInterval (1m).
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    gc.backoff.lock().unwrap_or_else(|p| p.into_inner()).gc(std::time::Instant::now());
                }
            }
        }
    });
    KeyedController::new(
        DAEMONSET_CONTROLLER,
        controller,
        RateLimitingQueue::new("daemonset"),
    )
    .watches(&ds_informer, |_, change| object_key(change))
    .watches(&revision_informer, Controller::revision_changed)
    .watches(&pod_informer, Controller::pod_changed)
    .watches(&node_informer, Controller::node_changed)
    .run(&ctx)
    .await
}
