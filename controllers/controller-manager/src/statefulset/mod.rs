//! The StatefulSet controller (upstream `pkg/controller/statefulset`):
//! pods with stable names `<set>-<ordinal>`, stable storage from
//! volumeClaimTemplates, ordered (OrderedReady) or parallel management,
//! RollingUpdate with partition and maxUnavailable, OnDelete, and a
//! ControllerRevision per template.

pub mod control;
pub mod pod_control;
pub mod revisions;
#[cfg(test)]
mod tests;
pub mod utils;

use std::sync::Arc;
use std::time::Duration;

use component_base::informers::Change;
use component_base::ownerref::{self, ClaimingController};
use component_base::selectors::Selector;
use component_base::workqueue::RateLimitingQueue;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::control::{KubeObjectControl, KubePodControl, ObjectControl, PodControl};
use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, KeyedController, Reconciler, SyncResult,
    object_key,
};
use crate::controller_utils::{self, Key, is_pod_ready};
use crate::error::Error;
use crate::events::EventSink;
use control::{Revisions, StatefulPodOps};
use pod_control::KubeStatefulPodControl;

/// Upstream `names.StatefulSetController`.
pub const STATEFULSET_CONTROLLER: &str = "statefulset-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: STATEFULSET_CONTROLLER,
    aliases: &["statefulset"],
    disabled_by_default: false,
    client_name: "statefulset-controller",
    watches: &[
        "StatefulSet",
        "Pod",
        "ControllerRevision",
        "PersistentVolumeClaim",
    ],
    concurrent_syncs: |c| c.concurrent.statefulset,
    start: |ctx| Box::pin(start(ctx)),
};

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let set_informer = ctx.informers.informer::<StatefulSet>();
    let pod_informer = ctx.informers.informer::<Pod>();
    let revision_informer = ctx.informers.informer::<ControllerRevision>();
    let claim_informer = ctx.informers.informer::<PersistentVolumeClaim>();
    let events = EventSink::new(&ctx.events, STATEFULSET_CONTROLLER);
    let client = ctx.client.clone();
    let controller = Arc::new(Controller {
        sets: set_informer.store().clone(),
        pods: pod_informer.store().clone(),
        revisions: revision_informer.store().clone(),
        pod_control: Arc::new(KubePodControl::new(client.clone())),
        set_control: Arc::new(KubeObjectControl::new(client.clone())),
        cr_control: Arc::new(KubeObjectControl::new(client.clone())),
        ops: Arc::new(KubeStatefulPodControl {
            pods: Arc::new(KubeObjectControl::new(client.clone())),
            claims: Arc::new(KubeObjectControl::new(client)),
            claim_store: claim_informer.store().clone(),
            events,
        }),
    });
    KeyedController::new(
        STATEFULSET_CONTROLLER,
        controller,
        RateLimitingQueue::new("statefulset"),
    )
    .watches(&set_informer, |_, change| object_key(change))
    .watches(&pod_informer, Controller::pod_changed)
    .reads(&revision_informer)
    .reads(&claim_informer)
    .run(&ctx)
    .await
}

/// The controller's caches and writers (fields are set by tests too).
pub struct Controller {
    pub(crate) sets: Store<StatefulSet>,
    pub(crate) pods: Store<Pod>,
    pub(crate) revisions: Store<ControllerRevision>,
    pub(crate) pod_control: Arc<dyn PodControl>,
    pub(crate) set_control: Arc<dyn ObjectControl<StatefulSet>>,
    pub(crate) cr_control: Arc<dyn ObjectControl<ControllerRevision>>,
    pub(crate) ops: Arc<dyn StatefulPodOps>,
}

fn selector_of(set: &StatefulSet) -> Result<Selector, component_base::selectors::SelectorError> {
    Selector::from_label_selector(set.spec.as_ref().map(|s| &s.selector))
}

fn key_of(set: &StatefulSet) -> Enqueue {
    Key::of(set).into()
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_set(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.sets.state().iter().map(|s| key_of(s)).collect()
    }
}

impl Controller {
    /// Upstream `resolveControllerRef`.
    fn owner_of(&self, meta: &ObjectMeta) -> Option<Arc<StatefulSet>> {
        let owner = ownerref::get_controller_of(meta)?;
        if owner.kind != "StatefulSet" {
            return None;
        }
        let ns = meta.namespace.as_deref()?;
        let set = self.sets.get(&ObjectRef::new(&owner.name).within(ns))?;
        (set.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(set)
    }

    /// Upstream `getStatefulSetsForPod`.
    fn matching(&self, pod: &Pod) -> Vec<Enqueue> {
        let ns = pod.metadata.namespace.as_deref();
        self.sets
            .state()
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == ns)
            .filter(|s| {
                selector_of(s)
                    .map(|sel| !sel.is_empty() && sel.matches_labels(pod.metadata.labels.as_ref()))
                    .unwrap_or(false)
            })
            .map(|s| key_of(s))
            .collect()
    }

    /// Upstream `addPod` / `updatePod` / `deletePod`.
    pub(crate) fn pod_changed(&self, change: Change<Pod>) -> Vec<Enqueue> {
        match change {
            Change::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    return self
                        .owner_of(&pod.metadata)
                        .map(|s| key_of(&s))
                        .into_iter()
                        .collect();
                }
                if ownerref::get_controller_of(&pod.metadata).is_some() {
                    return self
                        .owner_of(&pod.metadata)
                        .map(|s| key_of(&s))
                        .into_iter()
                        .collect();
                }
                self.matching(&pod)
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return Vec::new();
                }
                let mut keys = Vec::new();
                let old_ref = ownerref::get_controller_of(&old.metadata);
                let new_ref = ownerref::get_controller_of(&new.metadata);
                if old_ref != new_ref
                    && let Some(set) = self.owner_of(&old.metadata)
                {
                    keys.push(key_of(&set));
                }
                if new_ref.is_some() {
                    if let Some(set) = self.owner_of(&new.metadata) {
                        keys.push(key_of(&set));
                        let min_ready = set
                            .spec
                            .as_ref()
                            .and_then(|s| s.min_ready_seconds)
                            .unwrap_or(0);
                        if min_ready > 0 && !is_pod_ready(&old) && is_pod_ready(&new) {
                            let after = Duration::from_secs(min_ready as u64 + 1);
                            keys.push(Enqueue::After(Key::of(set.as_ref()), after));
                        }
                    }
                    return keys;
                }
                if old.metadata.labels != new.metadata.labels || old_ref != new_ref {
                    keys.extend(self.matching(&new));
                }
                keys
            }
            Change::Deleted(pod) => self
                .owner_of(&pod.metadata)
                .map(|s| key_of(&s))
                .into_iter()
                .collect(),
            Change::Resync => Vec::new(),
        }
    }

    /// Upstream `sync` + `syncStatefulSet`.
    async fn sync_set(&self, key: &Key) -> SyncResult {
        let Some(ns) = key.namespace.as_deref() else {
            return Ok(None);
        };
        let Some(set) = self.sets.get(&ObjectRef::new(&key.name).within(ns)) else {
            return Ok(None);
        };
        let set = set.as_ref();
        let selector = match selector_of(set) {
            Ok(s) => s,
            Err(err) => {
                // Not transient: no retry, as upstream.
                tracing::warn!(statefulset = %key, error = %err, "invalid selector; not syncing");
                return Ok(None);
            }
        };
        self.adopt_orphan_revisions(set, &selector).await?;
        let pods_arc = self.pods.state();
        let pods = self.claim_pods(set, &selector, &pods_arc).await?;
        let status = self.update_stateful_set(set, &selector, &pods).await?;
        let min_ready = set
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if min_ready > 0 && status.available_replicas.unwrap_or(0) != utils::replicas(set) {
            return Ok(Some(Duration::from_secs(min_ready as u64)));
        }
        Ok(None)
    }

    /// Upstream `canAdoptFunc`: a fresh read shows the same, live set.
    async fn can_adopt(&self, set: &StatefulSet, me: &ClaimingController) -> Result<(), Error> {
        let fresh = self.set_control.get(&me.namespace, &set.name_any()).await?;
        ownerref::recheck_deletion_timestamp(me, &fresh.metadata).map_err(|e| Error::Controller {
            name: STATEFULSET_CONTROLLER,
            reason: e.to_string(),
        })
    }

    /// Upstream `getPodsForStatefulSet`: claims pods that match the
    /// selector and are named as members of the set.
    async fn claim_pods<'a>(
        &self,
        set: &StatefulSet,
        selector: &Selector,
        pods: &'a [Arc<Pod>],
    ) -> Result<Vec<&'a Pod>, Error> {
        let ns = set.namespace().unwrap_or_default();
        let candidates = pods
            .iter()
            .map(Arc::as_ref)
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()));
        let me = ClaimingController::from_resource(set);
        let plan = ownerref::plan_claims(&me, candidates, |p: &Pod| {
            selector.matches_labels(p.metadata.labels.as_ref()) && utils::is_member_of(set, p)
        });
        let mut claimed = plan.owned;
        if !plan.adopt.is_empty() && self.can_adopt(set, &me).await.is_ok() {
            for pod in plan.adopt {
                let patch = controller_utils::adopt_patch(&me, controller_utils::uid_of(pod))?;
                let result = self
                    .pod_control
                    .patch_pod(&ns, &pod.name_any(), patch)
                    .await;
                if controller_utils::adopted(result)?.is_some() {
                    claimed.push(pod);
                }
            }
        }
        for pod in plan.release {
            let patch = controller_utils::release_patch(&me, controller_utils::uid_of(pod))?;
            controller_utils::released(
                self.pod_control
                    .patch_pod(&ns, &pod.name_any(), patch)
                    .await,
            )?;
        }
        Ok(claimed)
    }

    /// Upstream `ListRevisions`: revisions matching the selector that are
    /// ours or orphans.
    fn list_revisions(&self, set: &StatefulSet, selector: &Selector) -> Vec<ControllerRevision> {
        let uid = set.metadata.uid.clone().unwrap_or_default();
        self.revisions
            .state()
            .iter()
            .filter(|r| r.metadata.namespace == set.metadata.namespace)
            .filter(|r| selector.matches_labels(r.metadata.labels.as_ref()))
            .filter(|r| ownerref::get_controller_of(&r.metadata).is_none_or(|o| o.uid == uid))
            .map(|r| r.as_ref().clone())
            .collect()
    }

    /// Upstream `adoptOrphanRevisions`.
    async fn adopt_orphan_revisions(
        &self,
        set: &StatefulSet,
        selector: &Selector,
    ) -> Result<(), Error> {
        let orphans: Vec<ControllerRevision> = self
            .list_revisions(set, selector)
            .into_iter()
            .filter(|r| ownerref::get_controller_of(&r.metadata).is_none())
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        let me = ClaimingController::from_resource(set);
        self.can_adopt(set, &me)
            .await
            .map_err(|e| Error::Controller {
                name: STATEFULSET_CONTROLLER,
                reason: format!("can't adopt ControllerRevisions: {e}"),
            })?;
        let ns = set.namespace().unwrap_or_default();
        for rev in orphans {
            let patch = controller_utils::adopt_patch(&me, controller_utils::uid_of(&rev))?;
            self.cr_control.patch(&ns, &rev.name_any(), patch).await?;
        }
        Ok(())
    }

    /// Upstream `UpdateStatefulSet` + `performUpdate`: revisions, the
    /// update algorithm, status, history truncation.
    async fn update_stateful_set(
        &self,
        set: &StatefulSet,
        selector: &Selector,
        pods: &[&Pod],
    ) -> Result<StatefulSetStatus, Error> {
        let mut revisions = self.list_revisions(set, selector);
        crate::history::sort_controller_revisions(&mut revisions);
        let owner = ownerref::new_controller_ref_for(set);
        let (current, update, collision_count) =
            match self.set_revisions(set, &revisions, owner.clone()).await {
                Ok(r) => r,
                Err(err) => {
                    let _ = self
                        .truncate_history(set, pods, &revisions, None, None)
                        .await;
                    return Err(err);
                }
            };
        let revs = Revisions {
            current: &current,
            update: &update,
            collision_count,
        };
        let (mut status, result) = control::update_stateful_set(
            self.ops.as_ref(),
            set,
            &revs,
            pods,
            owner,
            Timestamp::now(),
        )
        .await;
        let status_result = self.update_status(set, &mut status).await;
        let truncated = self
            .truncate_history(set, pods, &revisions, Some(&current), Some(&update))
            .await;
        result?;
        status_result?;
        truncated?;
        Ok(status)
    }

    /// Upstream `updateStatefulSetStatus`: completes a finished rolling
    /// update and writes status when it differs (retrying conflicts on the
    /// cached object).
    async fn update_status(
        &self,
        set: &StatefulSet,
        status: &mut StatefulSetStatus,
    ) -> Result<(), Error> {
        control::complete_rolling_update(set, status);
        if !control::inconsistent_status(set, status) {
            return Ok(());
        }
        let ns = set.namespace().unwrap_or_default();
        let mut target = set.clone();
        for attempt in 0..5 {
            target.status = Some(status.clone());
            match self.set_control.update_status(&ns, &target).await {
                Ok(_) => return Ok(()),
                Err(err) if err.is_conflict() && attempt < 4 => {
                    target = self.set_control.get(&ns, &set.name_any()).await?;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Upstream `truncateHistory`: deletes the oldest revisions that are
    /// neither current, update, nor on a pod, beyond revisionHistoryLimit.
    async fn truncate_history(
        &self,
        set: &StatefulSet,
        pods: &[&Pod],
        revisions: &[ControllerRevision],
        current: Option<&ControllerRevision>,
        update: Option<&ControllerRevision>,
    ) -> Result<(), Error> {
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let doomed = revisions::to_truncate(revisions, pods, current, update, limit);
        let ns = set.namespace().unwrap_or_default();
        for name in doomed {
            match self.cr_control.delete(&ns, &name).await {
                Err(err) if !err.is_not_found() => return Err(err),
                _ => {}
            }
        }
        Ok(())
    }
}
