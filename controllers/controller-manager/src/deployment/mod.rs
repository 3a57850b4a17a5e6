//! The Deployment controller (upstream `pkg/controller/deployment`): rolls
//! Deployments out through ReplicaSets. The decision for one sync is the
//! pure [`reconcile::sync_deployment`] over a [`model::Model`]; this module feeds
//! it from the shared informers and replays its [`model::Action`]s.

mod apply;
#[cfg(test)]
mod apply_tests;
pub mod model;
pub mod reconcile;
pub mod util;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use component_base::ownerref::{self, ClaimingController};
use component_base::selectors::Selector;
use component_base::workqueue::RateLimitingQueue;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::control::{KubeObjectControl, ObjectControl};
use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, KeyedController, Reconciler, SyncResult,
    object_key,
};
use crate::controller_utils::{self, Key};
use crate::error::Error;
use crate::events::EventSink;
use component_base::informers::Change;
use model::Model;

/// Upstream `names.DeploymentController`.
pub const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: DEPLOYMENT_CONTROLLER,
    aliases: &["deployment"],
    disabled_by_default: false,
    client_name: "deployment-controller",
    watches: &["Deployment", "ReplicaSet", "Pod"],
    concurrent_syncs: |c| c.concurrent.deployment,
    start: |ctx| Box::pin(start(ctx)),
};

struct Controller {
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    rs_control: Arc<dyn ObjectControl<ReplicaSet>>,
    d_control: Arc<dyn ObjectControl<Deployment>>,
    events: EventSink,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let d_inf = ctx.informers.informer::<Deployment>();
    let rs_inf = ctx.informers.informer::<ReplicaSet>();
    let pod_inf = ctx.informers.informer::<Pod>();
    let controller = Arc::new(Controller {
        deployments: d_inf.store().clone(),
        replicasets: rs_inf.store().clone(),
        pods: pod_inf.store().clone(),
        rs_control: Arc::new(KubeObjectControl::new(ctx.client.clone())),
        d_control: Arc::new(KubeObjectControl::new(ctx.client.clone())),
        events: EventSink::new(&ctx.events, DEPLOYMENT_CONTROLLER),
    });
    KeyedController::new(
        DEPLOYMENT_CONTROLLER,
        controller,
        RateLimitingQueue::new("deployment"),
    )
    .watches(&d_inf, |_, change| object_key(change))
    .watches(&rs_inf, Controller::replicaset_changed)
    .watches(&pod_inf, Controller::pod_changed)
    .run(&ctx)
    .await
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_deployment(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.deployments
            .state()
            .iter()
            .map(|d| Key::of(d.as_ref()).into())
            .collect()
    }
}

impl Controller {
    fn replicaset_changed(&self, change: Change<ReplicaSet>) -> Vec<Enqueue> {
        match change {
            Change::Added(rs) | Change::Deleted(rs) => self.keys_for_rs(&rs),
            Change::Updated { old, new } => {
                let mut keys = self.keys_for_rs(&old);
                keys.extend(self.keys_for_rs(&new));
                keys
            }
            Change::Resync => Vec::new(),
        }
    }

    /// Recreate waits for old pods to disappear: a pod deletion may unblock it.
    fn pod_changed(&self, change: Change<Pod>) -> Vec<Enqueue> {
        if let Change::Deleted(pod) = change
            && let Some(d) = self.deployment_of_pod(&pod)
            && util::is_recreate(&d)
        {
            return vec![Key::of(d.as_ref()).into()];
        }
        Vec::new()
    }

    fn owner_deployment(&self, rs: &ReplicaSet) -> Option<Arc<Deployment>> {
        let owner = ownerref::get_controller_of(&rs.metadata)?;
        if owner.kind != "Deployment" {
            return None;
        }
        let ns = rs.metadata.namespace.as_deref()?;
        let d = self
            .deployments
            .get(&ObjectRef::new(&owner.name).within(ns))?;
        (d.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(d)
    }

    /// Upstream add/update/deleteReplicaSet: the owner, or for an orphan
    /// every Deployment whose selector matches it (they may adopt it).
    fn keys_for_rs(&self, rs: &ReplicaSet) -> Vec<Enqueue> {
        if let Some(d) = self.owner_deployment(rs) {
            return vec![Key::of(d.as_ref()).into()];
        }
        if ownerref::get_controller_of(&rs.metadata).is_some() {
            return Vec::new();
        }
        let ns = rs.metadata.namespace.as_deref();
        self.deployments
            .state()
            .iter()
            .filter(|d| d.metadata.namespace.as_deref() == ns)
            .filter(|d| {
                Selector::from_label_selector(d.spec.as_ref().map(|s| &s.selector))
                    .is_ok_and(|s| !s.is_empty() && s.matches_labels(rs.metadata.labels.as_ref()))
            })
            .map(|d| Key::of(d.as_ref()).into())
            .collect()
    }

    fn deployment_of_pod(&self, pod: &Pod) -> Option<Arc<Deployment>> {
        let owner = ownerref::get_controller_of(&pod.metadata)?;
        let ns = pod.metadata.namespace.as_deref()?;
        let rs = self
            .replicasets
            .get(&ObjectRef::new(&owner.name).within(ns))?;
        self.owner_deployment(&rs)
    }

    /// Upstream `syncDeployment`.
    async fn sync_deployment(&self, key: &Key) -> SyncResult {
        let Some(ns) = key.namespace.as_deref() else {
            return Ok(None);
        };
        let Some(d) = self.deployments.get(&ObjectRef::new(&key.name).within(ns)) else {
            tracing::debug!(deployment = %key, "Deployment has been deleted");
            return Ok(None);
        };
        let rss = self.claim_replicasets(&d).await?;
        let uids: HashMap<String, ()> = rss
            .iter()
            .filter_map(|rs| rs.metadata.uid.clone())
            .map(|u| (u, ()))
            .collect();
        let pods = self
            .pods
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns));
        let mut pods_by_rs: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        for pod in &pods {
            if let Some(owner) = ownerref::get_controller_of(&pod.metadata)
                && uids.contains_key(&owner.uid)
            {
                pods_by_rs
                    .entry(owner.uid.clone())
                    .or_default()
                    .push(pod.as_ref());
            }
        }
        // Condition timestamps round-trip with second precision.
        let now =
            Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
        let plan = reconcile::sync_deployment(Model::new((*d).clone(), rss, pods_by_rs, now));
        tracing::debug!(deployment = %key, actions = plan.actions.len(), "synced deployment");
        self.apply(&d, plan.actions).await?;
        Ok(plan.requeue_after)
    }

    /// Upstream `getReplicaSetsForDeployment`: adopt/release by selector.
    async fn claim_replicasets(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, Error> {
        let me = ClaimingController::from_resource(d);
        let selector = match Selector::from_label_selector(d.spec.as_ref().map(|s| &s.selector)) {
            Ok(s) => s,
            Err(err) => {
                return Err(Error::InvalidObject {
                    object: Key::of(d).to_string(),
                    reason: format!("invalid selector: {err}"),
                });
            }
        };
        let candidates = self.replicasets.state_filter(|rs| {
            rs.metadata.namespace.as_deref() == Some(me.namespace.as_str())
                && ownerref::get_controller_of(&rs.metadata).is_none_or(|r| r.uid == me.uid)
        });
        let plan =
            ownerref::plan_claims_by_selector(&me, &selector, candidates.iter().map(Arc::as_ref));
        let mut claimed: Vec<ReplicaSet> = plan.owned.into_iter().cloned().collect();
        let ns = me.namespace.as_str();
        if !plan.adopt.is_empty() && self.can_adopt(d, &me).await {
            for rs in plan.adopt {
                let patch = controller_utils::adopt_patch(&me, controller_utils::uid_of(rs))?;
                let result = self.rs_control.patch(ns, &rs.name_any(), patch).await;
                if let Some(adopted) = controller_utils::adopted(result)? {
                    claimed.push(adopted);
                }
            }
        }
        for rs in plan.release {
            let patch = controller_utils::release_patch(&me, controller_utils::uid_of(rs))?;
            controller_utils::released(self.rs_control.patch(ns, &rs.name_any(), patch).await)?;
        }
        Ok(claimed)
    }

    async fn can_adopt(&self, d: &Deployment, me: &ClaimingController) -> bool {
        match self.d_control.get(&me.namespace, &d.name_any()).await {
            Ok(fresh) => ownerref::recheck_deletion_timestamp(me, &fresh.metadata).is_ok(),
            Err(_) => false,
        }
    }
}
