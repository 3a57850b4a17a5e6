//! The disruption controller (upstream `pkg/controller/disruption`):
//! keeps each PodDisruptionBudget's status (`expectedPods`,
//! `desiredHealthy`, `currentHealthy`, `disruptionsAllowed`,
//! `disruptedPods`, the `DisruptionAllowed` condition) current, so the
//! Eviction API can honour the budget. Pure decisions in [`reconcile`].

pub mod reconcile;
pub mod stale;
mod sync;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use component_base::informers::Change;
use component_base::selectors::Selector;
use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::control::{KubeObjectControl, ObjectControl};
use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, Key, KeyedController, Reconciler, SyncResult,
    object_key, store_keys,
};
use crate::error::Error;
use crate::events::{EventSink, EventSpec};
use reconcile::Workloads;
use stale::StalePodCleaner;

/// Upstream `names.DisruptionController`.
pub const DISRUPTION_CONTROLLER: &str = "disruption-controller";

/// The event source upstream's disruption controller records as
/// (`v1.EventSource{Component: "controllermanager"}`).
pub const EVENT_SOURCE_COMPONENT: &str = "controllermanager";

/// Upstream runs one PDB worker (`go wait.UntilWithContext(ctx, dc.worker, ..)`).
pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: DISRUPTION_CONTROLLER,
    aliases: &["disruption"],
    disabled_by_default: false,
    client_name: "disruption-controller",
    watches: &[
        "PodDisruptionBudget",
        "Pod",
        "ReplicationController",
        "ReplicaSet",
        "Deployment",
        "StatefulSet",
    ],
    concurrent_syncs: |_| 1,
    start: |ctx| Box::pin(start(ctx)),
};

/// The listers upstream's finders read.
struct Stores {
    rcs: Store<ReplicationController>,
    rss: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
}

fn get<K>(store: &Store<K>, ns: &str, name: &str) -> Option<Arc<K>>
where
    K: component_base::informers::Informable,
{
    store.get(&ObjectRef::new(name).within(ns))
}

impl Workloads for Stores {
    fn replication_controller(&self, ns: &str, name: &str) -> Option<Arc<ReplicationController>> {
        get(&self.rcs, ns, name)
    }
    fn replica_set(&self, ns: &str, name: &str) -> Option<Arc<ReplicaSet>> {
        get(&self.rss, ns, name)
    }
    fn deployment(&self, ns: &str, name: &str) -> Option<Arc<Deployment>> {
        get(&self.deployments, ns, name)
    }
    fn stateful_set(&self, ns: &str, name: &str) -> Option<Arc<StatefulSet>> {
        get(&self.statefulsets, ns, name)
    }
}

pub(crate) struct Controller {
    pdbs: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    workloads: Box<dyn Workloads + Send + Sync>,
    pdb_control: Arc<dyn ObjectControl<PodDisruptionBudget>>,
    events: EventSink,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let pdb_informer = ctx.informers.informer::<PodDisruptionBudget>();
    let pod_informer = ctx.informers.informer::<Pod>();
    let rc_informer = ctx.informers.informer::<ReplicationController>();
    let rs_informer = ctx.informers.informer::<ReplicaSet>();
    let d_informer = ctx.informers.informer::<Deployment>();
    let ss_informer = ctx.informers.informer::<StatefulSet>();
    let controller = Arc::new(Controller {
        pdbs: pdb_informer.store().clone(),
        pods: pod_informer.store().clone(),
        workloads: Box::new(Stores {
            rcs: rc_informer.store().clone(),
            rss: rs_informer.store().clone(),
            deployments: d_informer.store().clone(),
            statefulsets: ss_informer.store().clone(),
        }),
        pdb_control: Arc::new(KubeObjectControl::new(ctx.client.clone())),
        events: EventSink::new(&ctx.events, EVENT_SOURCE_COMPONENT),
    });
    // Two queues as upstream: PDB keys, and pod keys whose DisruptionTarget
    // condition went stale (upstream's `disruption_recheck` delaying queue
    // is the PDB queue's delayed re-add).
    let pdbs = KeyedController::new(
        DISRUPTION_CONTROLLER,
        controller,
        RateLimitingQueue::new("disruption"),
    )
    .watches(&pdb_informer, |_, change| object_key(change))
    .watches(&pod_informer, Controller::pod_changed)
    .reads(&rc_informer)
    .reads(&rs_informer)
    .reads(&d_informer)
    .reads(&ss_informer)
    .run(&ctx);
    let cleaner = Arc::new(StalePodCleaner {
        pods: pod_informer.store().clone(),
        pod_control: Arc::new(KubeObjectControl::new(ctx.client.clone())),
    });
    let stale = KeyedController::new(
        DISRUPTION_CONTROLLER,
        cleaner,
        RateLimitingQueue::new("stale_pod_disruption"),
    )
    .watches(&pod_informer, StalePodCleaner::pod_changed)
    .run(&ctx);
    futures::future::try_join(pdbs, stale).await?;
    Ok(())
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_pdb(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        store_keys(&self.pdbs)
    }
}

/// Upstream `GetPodPodDisruptionBudgets`: PDBs in the pod's namespace whose
/// selector matches its labels (a pod without labels matches none; a nil
/// selector matches nothing, an empty one everything).
pub fn pdbs_for_pod<'a>(
    pdbs: impl IntoIterator<Item = &'a PodDisruptionBudget>,
    pod: &Pod,
) -> Vec<&'a PodDisruptionBudget> {
    let Some(labels) = pod.metadata.labels.as_ref().filter(|l| !l.is_empty()) else {
        return Vec::new();
    };
    pdbs.into_iter()
        .filter(|pdb| pdb.metadata.namespace == pod.metadata.namespace)
        .filter(|pdb| {
            let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
            selector.is_some()
                && Selector::from_label_selector(selector).is_ok_and(|s| s.matches(labels))
        })
        .collect()
}

impl Controller {
    /// Upstream `addPod`/`updatePod`/`deletePod`: the pod's PDB is synced.
    fn pod_changed(&self, change: Change<Pod>) -> Vec<Enqueue> {
        let pod = match change {
            Change::Added(pod) | Change::Updated { new: pod, .. } | Change::Deleted(pod) => pod,
            Change::Resync => return Vec::new(),
        };
        let state = self.pdbs.state();
        let matching = pdbs_for_pod(state.iter().map(|p| p.as_ref()), &pod);
        if let [first, _, ..] = matching.as_slice() {
            let msg = format!(
                "Pod {:?}/{:?} matches multiple PodDisruptionBudgets.  Chose {:?} arbitrarily.",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default(),
                first.metadata.name.as_deref().unwrap_or_default(),
            );
            self.events.publish(
                &pod_reference(&pod),
                &EventSpec::warning("MultiplePodDisruptionBudgets", msg),
            );
        }
        matching
            .first()
            .map(|pdb| Key::of(*pdb).into())
            .into_iter()
            .collect()
    }
}

fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn pdb_reference(pdb: &PodDisruptionBudget) -> ObjectReference {
    ObjectReference {
        api_version: Some("policy/v1".into()),
        kind: Some("PodDisruptionBudget".into()),
        namespace: pdb.metadata.namespace.clone(),
        name: pdb.metadata.name.clone(),
        uid: pdb.metadata.uid.clone(),
        resource_version: pdb.metadata.resource_version.clone(),
        ..Default::default()
    }
}
