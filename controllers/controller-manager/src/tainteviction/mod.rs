//! The taint-eviction controller (upstream `pkg/controller/tainteviction`):
//! pods on a node with NoExecute taints they do not tolerate are deleted at
//! once; pods tolerating them for `tolerationSeconds` are deleted when the
//! shortest toleration runs out. Before the delete the pod gets the
//! `DisruptionTarget` condition (`DeletionByTaintManager`); events
//! `TaintManagerEviction` mark the deletion and its cancellation.
//!
//! Upstream's `TimedWorkerQueue` is the `scheduled` map here plus a delayed
//! requeue of the pod's key: the sync at the fire time deletes the pod if the
//! eviction is still scheduled by then.

pub mod reconcile;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use component_base::informers::Change;
use component_base::workqueue::RateLimitingQueue;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, KeyedController, Reconciler, SyncResult,
};
use crate::controller_utils::Key;
use crate::error::Error;
use crate::events::{EventSink, EventSpec};
use reconcile::{
    DISRUPTION_TARGET, MESSAGE_DELETION_BY_TAINT_MANAGER, Plan, REASON_DELETION_BY_TAINT_MANAGER,
    REASON_TAINT_MANAGER_EVICTION, Scheduled, cancelling_deletion_message,
    marking_for_deletion_message, no_execute_taints, plan, until,
};

/// Upstream `names.TaintEvictionController`.
pub const TAINT_EVICTION_CONTROLLER: &str = "taint-eviction-controller";

/// Upstream `UpdateWorkerSize`.
const UPDATE_WORKERS: usize = 8;

/// Upstream `retries` of the delete handler, 10ms apart.
const DELETE_ATTEMPTS: usize = 5;
const DELETE_RETRY: Duration = Duration::from_millis(10);

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: TAINT_EVICTION_CONTROLLER,
    aliases: &[],
    disabled_by_default: false,
    // Upstream: "taint-manager uses existing cluster role from
    // node-controller"; bootstrap RBAC has no taint-eviction-controller role.
    client_name: "node-controller",
    watches: &["Pod", "Node"],
    concurrent_syncs: |_| UPDATE_WORKERS,
    start: |ctx| Box::pin(start(ctx)),
};

struct Controller {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    /// Pending evictions by pod key (upstream `taintEvictionQueue`).
    scheduled: Mutex<HashMap<Key, Scheduled>>,
    events: EventSink,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let pod_informer = ctx.informers.informer::<Pod>();
    let node_informer = ctx.informers.informer::<Node>();
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        pods: pod_informer.store().clone(),
        nodes: node_informer.store().clone(),
        scheduled: Mutex::new(HashMap::new()),
        events: EventSink::new(&ctx.events, TAINT_EVICTION_CONTROLLER),
    });
    KeyedController::new(
        TAINT_EVICTION_CONTROLLER,
        controller,
        RateLimitingQueue::new("noexec_taint_pod"),
    )
    .watches(&pod_informer, |_, change| pod_changed(change))
    .watches(&node_informer, |ctl, change| match node_changed(change) {
        Some(node) => ctl.pods_on_node(&node),
        None => Vec::new(),
    })
    .run(&ctx)
    .await
}

/// Upstream `PodUpdated`: adds, deletes, and updates that change the node
/// or the tolerations.
fn pod_changed(change: Change<Pod>) -> Vec<Enqueue> {
    let pod = match change {
        Change::Added(pod) | Change::Deleted(pod) => pod,
        Change::Updated { old, new } => {
            let (o, n) = (old.spec.as_ref(), new.spec.as_ref());
            let same_node =
                o.and_then(|s| s.node_name.as_ref()) == n.and_then(|s| s.node_name.as_ref());
            let same_tolerations =
                o.and_then(|s| s.tolerations.as_ref()) == n.and_then(|s| s.tolerations.as_ref());
            if same_node && same_tolerations {
                return Vec::new();
            }
            new
        }
        Change::Resync => return Vec::new(),
    };
    vec![Key::of(pod.as_ref()).into()]
}

/// Upstream `NodeUpdated`: the node whose NoExecute taints changed (or that
/// appeared or went away).
fn node_changed(change: Change<Node>) -> Option<String> {
    match change {
        Change::Added(node) | Change::Deleted(node) => node.metadata.name.clone(),
        Change::Updated { old, new } => (node_no_execute_taints(&old)
            != node_no_execute_taints(&new))
        .then(|| new.metadata.name.clone())
        .flatten(),
        Change::Resync => None,
    }
}

fn node_no_execute_taints(node: &Node) -> Vec<Taint> {
    no_execute_taints(
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default(),
    )
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn pod_ref(key: &Key) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(key.name.clone()),
        namespace: key.namespace.clone(),
        ..Default::default()
    }
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.process_pod(key, Timestamp::now()).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.pods
            .state()
            .iter()
            .filter(|p| node_name(p).is_some())
            .map(|p| Key::of(p.as_ref()).into())
            .collect()
    }
}

impl Controller {
    fn scheduled(&self) -> MutexGuard<'_, HashMap<Key, Scheduled>> {
        // The map holds plain data; a panicked holder cannot leave it torn.
        self.scheduled.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pods_on_node(&self, node: &str) -> Vec<Enqueue> {
        self.pods
            .state()
            .iter()
            .filter(|p| node_name(p) == Some(node))
            .map(|p| Key::of(p.as_ref()).into())
            .collect()
    }

    fn publish(&self, key: &Key, message: String) {
        self.events.publish(
            &pod_ref(key),
            &EventSpec::normal(REASON_TAINT_MANAGER_EVICTION, message),
        );
    }

    /// Upstream `cancelWorkWithEvent`.
    fn cancel(&self, key: &Key) {
        if self.scheduled().remove(key).is_some() {
            let ns = key.namespace.as_deref().unwrap_or_default();
            self.publish(key, cancelling_deletion_message(ns, &key.name));
        }
    }

    /// Upstream `handlePodUpdate` + `processPodOnNode`, and the timed
    /// worker firing when the scheduled time has come.
    async fn process_pod(&self, key: &Key, now: Timestamp) -> SyncResult {
        let Some(ns) = key.namespace.clone() else {
            return Ok(None);
        };
        let Some(pod) = self.pods.get(&ObjectRef::new(&key.name).within(&ns)) else {
            self.cancel(key);
            return Ok(None);
        };
        let Some(node) = node_name(&pod) else {
            return Ok(None);
        };
        let taints = self
            .nodes
            .get(&ObjectRef::new(node))
            .map(|n| node_no_execute_taints(&n))
            .unwrap_or_default();
        let scheduled = self.scheduled().get(key).copied();
        // A pod already on its way out is not deleted again.
        if scheduled.is_none() && pod.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let due = match plan(&taints, tolerations, scheduled, now) {
            Plan::Keep => match scheduled {
                Some(s) => s.fire_at,
                None => return Ok(None),
            },
            Plan::Cancel => {
                self.cancel(key);
                return Ok(None);
            }
            Plan::Schedule { at, cancelled } => {
                if cancelled {
                    self.cancel(key);
                }
                tracing::debug!(pod = %key, node, fire_at = %at.fire_at, "scheduled taint eviction");
                self.scheduled().insert(key.clone(), at);
                at.fire_at
            }
        };
        if due > now {
            return Ok(Some(until(due, now)));
        }
        self.scheduled().remove(key);
        self.evict(key, &ns).await.map(|()| None)
    }

    /// Upstream `deletePodHandler`: event, then condition and delete, five
    /// tries.
    async fn evict(&self, key: &Key, ns: &str) -> Result<(), Error> {
        tracing::info!(controller = TAINT_EVICTION_CONTROLLER, pod = %key, "Deleting pod");
        self.publish(key, marking_for_deletion_message(ns, &key.name));
        let mut last = Ok(());
        for attempt in 1..=DELETE_ATTEMPTS {
            last = self.add_condition_and_delete(ns, &key.name).await;
            match &last {
                Ok(()) => return Ok(()),
                Err(err) if err.is_not_found() => return Ok(()),
                Err(err) => {
                    tracing::warn!(pod = %key, attempt, error = %err, "taint eviction failed");
                }
            }
            tokio::time::sleep(DELETE_RETRY).await;
        }
        last
    }

    /// Upstream `addConditionAndDeletePod`.
    async fn add_condition_and_delete(&self, ns: &str, name: &str) -> Result<(), Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod = api.get(name).await?;
        let has_condition = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == DISRUPTION_TARGET
                        && c.status == "True"
                        && c.reason.as_deref() == Some(REASON_DELETION_BY_TAINT_MANAGER)
                        && c.message.as_deref() == Some(MESSAGE_DELETION_BY_TAINT_MANAGER)
                })
            });
        if !has_condition {
            let patch = json!({
                "metadata": {"uid": pod.metadata.uid},
                "status": {"conditions": [{
                    "type": DISRUPTION_TARGET,
                    "status": "True",
                    "reason": REASON_DELETION_BY_TAINT_MANAGER,
                    "message": MESSAGE_DELETION_BY_TAINT_MANAGER,
                    "lastTransitionTime": Timestamp::now().to_string(),
                }]},
            });
            api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
                .await?;
        }
        api.delete(name, &DeleteParams::default()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, PodSpec, Toleration};

    fn pod(node: &str, tolerations: Option<Vec<Toleration>>) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.metadata.namespace = Some("ns".into());
        p.spec = Some(PodSpec {
            node_name: Some(node.into()),
            tolerations,
            ..Default::default()
        });
        Arc::new(p)
    }

    fn node(taints: &[(&str, &str)]) -> Arc<Node> {
        let mut n = Node::default();
        n.metadata.name = Some("n1".into());
        n.spec = Some(NodeSpec {
            taints: Some(
                taints
                    .iter()
                    .map(|(k, e)| Taint {
                        key: k.to_string(),
                        effect: e.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        Arc::new(n)
    }

    #[test]
    fn only_node_or_toleration_changes_queue_a_pod() {
        let old = pod("n1", None);
        let relabelled = {
            let mut p = (*old).clone();
            p.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
            Arc::new(p)
        };
        let unchanged = Change::Updated {
            old: old.clone(),
            new: relabelled,
        };
        assert!(pod_changed(unchanged).is_empty());
        let tolerating = pod("n1", Some(vec![Toleration::default()]));
        let changed = Change::Updated {
            old: old.clone(),
            new: tolerating,
        };
        assert_eq!(
            pod_changed(changed),
            vec![Enqueue::Now(Key::new(Some("ns"), "p"))]
        );
        assert_eq!(pod_changed(Change::Deleted(old)).len(), 1);
    }

    #[test]
    fn only_no_execute_taint_changes_queue_a_node() {
        let plain = node(&[]);
        let no_schedule = node(&[("k", "NoSchedule")]);
        let no_execute = node(&[("k", "NoExecute")]);
        let ignored = Change::Updated {
            old: plain.clone(),
            new: no_schedule.clone(),
        };
        assert_eq!(node_changed(ignored), None);
        let tainted = Change::Updated {
            old: no_schedule,
            new: no_execute,
        };
        assert_eq!(node_changed(tainted).as_deref(), Some("n1"));
        assert_eq!(node_changed(Change::Added(plain)).as_deref(), Some("n1"));
    }
}
