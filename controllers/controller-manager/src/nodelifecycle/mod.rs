//! The node-lifecycle controller (upstream `pkg/controller/nodelifecycle`
//! `node_lifecycle_controller.go`), NoSchedule tainting pass only: every
//! Node's `node.kubernetes.io/*` NoSchedule taints follow its conditions and
//! `spec.unschedulable` (upstream `doNoScheduleTaintingPass`). Without it the
//! `not-ready` taint admission adds at registration never goes away.
//!
//! Not implemented yet: the health monitor (Lease grace period → Ready=Unknown)
//! and the NoExecute `not-ready`/`unreachable` taints.

pub mod reconcile;

use std::sync::Arc;
use std::time::Duration;

use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, Key, KeyedController, Reconciler, SyncResult,
};
use crate::error::Error;
use component_base::informers::Change;
use reconcile::{apply_taint_diff, no_schedule_taint_diff};

/// Upstream `names.NodeLifecycleController`.
pub const NODE_LIFECYCLE_CONTROLLER: &str = "node-lifecycle-controller";

/// Upstream `nodeUpdateWorkerSize`.
const NODE_UPDATE_WORKERS: usize = 8;

/// Upstream `UpdateTaintBackoff`: 5 tries, 100ms apart, on conflict.
const TAINT_UPDATE_ATTEMPTS: usize = 5;
const TAINT_UPDATE_RETRY: Duration = Duration::from_millis(100);

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: NODE_LIFECYCLE_CONTROLLER,
    aliases: &["nodelifecycle"],
    disabled_by_default: false,
    client_name: "node-controller",
    watches: &["Node"],
    concurrent_syncs: |_| NODE_UPDATE_WORKERS,
    start: |ctx| Box::pin(start(ctx)),
};

struct Controller {
    client: Client,
    nodes: Store<Node>,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let node_informer = ctx.informers.informer::<Node>();
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        nodes: node_informer.store().clone(),
    });
    KeyedController::new(
        NODE_LIFECYCLE_CONTROLLER,
        controller,
        RateLimitingQueue::new("node_lifecycle_controller"),
    )
    // Upstream queues the node on every add and update; deletions need nothing.
    .watches(&node_informer, |_, change| match change {
        Change::Added(node) | Change::Updated { new: node, .. } => node_key(&node),
        Change::Deleted(_) | Change::Resync => Vec::new(),
    })
    .run(&ctx)
    .await
}

fn node_key(node: &Node) -> Vec<Enqueue> {
    node.metadata
        .name
        .as_deref()
        .map(|name| Key::new(None, name).into())
        .into_iter()
        .collect()
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_node(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.nodes
            .state()
            .iter()
            .flat_map(|n| node_key(n))
            .collect()
    }
}

impl Controller {
    /// Upstream `doNoScheduleTaintingPass` for one node.
    async fn sync_node(&self, key: &Key) -> SyncResult {
        let Some(cached) = self.nodes.get(&ObjectRef::new(&key.name)) else {
            return Ok(None);
        };
        if no_schedule_taint_diff(&cached).is_empty() {
            return Ok(None);
        }
        self.swap_taints(&key.name, (*cached).clone()).await
    }

    /// Writes the taint diff with the node's resourceVersion as precondition;
    /// on conflict re-reads the node and recomputes, as upstream's
    /// `SwapNodeControllerTaint` retries on conflict.
    async fn swap_taints(&self, name: &str, mut node: Node) -> SyncResult {
        let api: Api<Node> = Api::all(self.client.clone());
        for attempt in 1..=TAINT_UPDATE_ATTEMPTS {
            let diff = no_schedule_taint_diff(&node);
            if diff.is_empty() {
                return Ok(None);
            }
            let current = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            let now = Time(jiff::Timestamp::now());
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": apply_taint_diff(&current, &diff, &now)},
            });
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(Error::from)
            {
                Ok(_) => {
                    let added: Vec<&str> = diff.add.iter().map(|t| t.key.as_str()).collect();
                    let removed: Vec<&str> = diff.remove.iter().map(|t| t.key.as_str()).collect();
                    tracing::debug!(node = name, ?added, ?removed, "updated NoSchedule taints");
                    return Ok(None);
                }
                Err(err) if err.is_not_found() => return Ok(None),
                Err(err) if err.is_conflict() && attempt < TAINT_UPDATE_ATTEMPTS => {
                    tokio::time::sleep(TAINT_UPDATE_RETRY).await;
                    match api.get_opt(name).await.map_err(Error::from)? {
                        Some(fresh) => node = fresh,
                        None => return Ok(None),
                    }
                }
                Err(err) => {
                    tracing::warn!(node = name, error = %err, "failed to swap taints of node");
                    return Err(err);
                }
            }
        }
        Ok(None)
    }
}
