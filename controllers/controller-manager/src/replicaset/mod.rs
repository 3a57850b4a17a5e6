//! The ReplicaSet controller (upstream `pkg/controller/replicaset`): keeps
//! `spec.replicas` pods running for each ReplicaSet. Reads pods and
//! ReplicaSets from the shared informers, decides with [`reconcile`], then
//! creates/deletes pods and writes status.

pub mod reconcile;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use component_base::ownerref::{self, ClaimingController};
use component_base::selectors::Selector;
use component_base::workqueue::RateLimitingQueue;
use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use crate::control::{KubeObjectControl, KubePodControl, ObjectControl, PodControl};
use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, KeyedController, Reconciler, SyncResult,
    object_key,
};
use crate::controller_utils::{
    self, Expectations, Key, SLOW_START_INITIAL_BATCH_SIZE, is_pod_active, is_pod_terminating,
    min_next_availability_check, slow_start_batches,
};
use crate::error::Error;
use crate::events::{EventSink, EventSpec};
use component_base::informers::Change;
use reconcile::{Scale, calculate_status, manage_replicas, status_update};

pub const SUCCESSFUL_CREATE_REASON: &str = "SuccessfulCreate";
pub const FAILED_CREATE_REASON: &str = "FailedCreate";
pub const SUCCESSFUL_DELETE_REASON: &str = "SuccessfulDelete";
pub const FAILED_DELETE_REASON: &str = "FailedDelete";

/// Upstream `names.ReplicaSetController`.
pub const REPLICASET_CONTROLLER: &str = "replicaset-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: REPLICASET_CONTROLLER,
    aliases: &["replicaset"],
    disabled_by_default: false,
    client_name: "replicaset-controller",
    watches: &["ReplicaSet", "Pod"],
    concurrent_syncs: |c| c.concurrent.replicaset,
    start: |ctx| Box::pin(start(ctx)),
};

struct Controller {
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    pod_control: Arc<dyn PodControl>,
    rs_control: Arc<dyn ObjectControl<ReplicaSet>>,
    expectations: Expectations,
    events: EventSink,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let rs_informer = ctx.informers.informer::<ReplicaSet>();
    let pod_informer = ctx.informers.informer::<Pod>();
    let controller = Arc::new(Controller {
        replicasets: rs_informer.store().clone(),
        pods: pod_informer.store().clone(),
        pod_control: Arc::new(KubePodControl::new(ctx.client.clone())),
        rs_control: Arc::new(KubeObjectControl::new(ctx.client.clone())),
        expectations: Expectations::default(),
        events: EventSink::new(&ctx.events, REPLICASET_CONTROLLER),
    });
    KeyedController::new(
        REPLICASET_CONTROLLER,
        controller,
        RateLimitingQueue::new("replicaset"),
    )
    .watches(&rs_informer, |_, change| object_key(change))
    .watches(&pod_informer, Controller::pod_changed)
    .run(&ctx)
    .await
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_replicaset(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.replicasets
            .state()
            .iter()
            .map(|rs| Key::of(rs.as_ref()).into())
            .collect()
    }
}

fn pod_key(pod: &Pod) -> String {
    Key::of(pod).to_string()
}

impl Controller {
    fn pod_changed(&self, change: Change<Pod>) -> Vec<Enqueue> {
        match change {
            Change::Added(pod) => self.pod_added(&pod),
            Change::Updated { old, new } => self.pod_updated(&old, &new),
            Change::Deleted(pod) => self.pod_deleted(&pod),
            Change::Resync => Vec::new(),
        }
    }

    /// Upstream `resolveControllerRef`: the cached ReplicaSet a pod's
    /// controller reference points at, if it is still the same object.
    fn owner_of(&self, pod: &Pod) -> Option<Arc<ReplicaSet>> {
        let owner = ownerref::get_controller_of(&pod.metadata)?;
        if owner.kind != "ReplicaSet" || !owner.api_version.starts_with("apps/") {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref()?;
        let rs = self
            .replicasets
            .get(&ObjectRef::new(&owner.name).within(ns))?;
        (rs.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(rs)
    }

    /// Upstream `getPodReplicaSets`: ReplicaSets whose selector matches an
    /// orphan pod.
    fn matching_replicasets(&self, pod: &Pod) -> Vec<Arc<ReplicaSet>> {
        let ns = pod.metadata.namespace.as_deref();
        self.replicasets
            .state()
            .into_iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == ns)
            .filter(|rs| {
                let selector = rs.spec.as_ref().map(|s| &s.selector);
                Selector::from_label_selector(selector)
                    .map(|s| !s.is_empty() && s.matches_labels(pod.metadata.labels.as_ref()))
                    .unwrap_or(false)
            })
            .collect()
    }

    fn pod_added(&self, pod: &Pod) -> Vec<Enqueue> {
        if pod.metadata.deletion_timestamp.is_some() {
            // Seen for the first time already terminating (e.g. after a
            // relist): counts as the deletion we may be waiting for.
            return self.pod_deleted(pod);
        }
        if let Some(rs) = self.owner_of(pod) {
            let key = Key::of(rs.as_ref());
            self.expectations.creation_observed(&key.to_string());
            return vec![key.into()];
        }
        if ownerref::get_controller_of(&pod.metadata).is_none() {
            return self.keys_of(self.matching_replicasets(pod));
        }
        Vec::new()
    }

    fn keys_of(&self, replicasets: Vec<Arc<ReplicaSet>>) -> Vec<Enqueue> {
        replicasets
            .iter()
            .map(|rs| Key::of(rs.as_ref()).into())
            .collect()
    }

    fn pod_updated(&self, old: &Pod, new: &Pod) -> Vec<Enqueue> {
        if old.metadata.resource_version == new.metadata.resource_version {
            return Vec::new();
        }
        let mut keys = Vec::new();
        if new.metadata.deletion_timestamp.is_some() && old.metadata.deletion_timestamp.is_none() {
            keys.extend(self.pod_deleted(new));
        }
        let old_owner = self.owner_of(old);
        let new_owner = self.owner_of(new);
        if let Some(rs) = &old_owner
            && old_owner.as_ref().map(|r| r.metadata.uid.clone())
                != new_owner.as_ref().map(|r| r.metadata.uid.clone())
        {
            keys.push(Key::of(rs.as_ref()).into());
        }
        if let Some(rs) = &new_owner {
            let key = Key::of(rs.as_ref());
            // A pod turning ready may become available after minReadySeconds.
            let min_ready = reconcile::min_ready_seconds(rs);
            if min_ready > 0
                && !crate::controller_utils::is_pod_ready(old)
                && crate::controller_utils::is_pod_ready(new)
            {
                let after = Duration::from_secs(min_ready as u64 + 1);
                keys.push(Enqueue::After(key.clone(), after));
            }
            keys.push(key.into());
            return keys;
        }
        if ownerref::get_controller_of(&new.metadata).is_none()
            && (old.metadata.labels != new.metadata.labels
                || ownerref::get_controller_of(&old.metadata).is_some())
        {
            keys.extend(self.keys_of(self.matching_replicasets(new)));
        }
        keys
    }

    fn pod_deleted(&self, pod: &Pod) -> Vec<Enqueue> {
        let Some(rs) = self.owner_of(pod) else {
            return Vec::new();
        };
        let key = Key::of(rs.as_ref());
        self.expectations
            .deletion_observed(&key.to_string(), &pod_key(pod));
        vec![key.into()]
    }

    /// Upstream `syncReplicaSet`.
    async fn sync_replicaset(&self, key: &Key) -> SyncResult {
        let Some(ns) = key.namespace.as_deref() else {
            return Ok(None);
        };
        let Some(rs) = self.replicasets.get(&ObjectRef::new(&key.name).within(ns)) else {
            self.expectations.delete(&key.to_string());
            return Ok(None);
        };
        let needs_sync = self.expectations.satisfied(&key.to_string());
        tracing::trace!(replicaset = %key, needs_sync, "syncing replicaset");
        let selector_spec = rs.spec.as_ref().map(|s| &s.selector);
        let selector = match Selector::from_label_selector(selector_spec) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(replicaset = %key, error = %err, "invalid selector; not syncing");
                return Ok(None);
            }
        };
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        // Upstream FilterPodsByOwner(includeOrphaned): ours plus orphans.
        let candidates: Vec<Arc<Pod>> = self.pods.state_filter(|p| {
            p.metadata.namespace.as_deref() == Some(ns)
                && ownerref::get_controller_of(&p.metadata).is_none_or(|r| r.uid == uid)
        });
        let active: Vec<&Pod> = candidates
            .iter()
            .map(Arc::as_ref)
            .filter(|p| is_pod_active(p))
            .collect();
        let mut claimed = self.claim_pods(&rs, &selector, &active).await?;
        claimed.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let terminating = candidates
            .iter()
            .filter(|p| is_pod_terminating(p))
            .filter(|p| ownerref::is_controlled_by(&p.metadata, &uid))
            .filter(|p| selector.matches_labels(p.metadata.labels.as_ref()))
            .count();

        let now = Timestamp::now();
        let mut manage_error = None;
        if needs_sync
            && rs.metadata.deletion_timestamp.is_none()
            && let Err(err) = self.manage(&rs, key, &claimed, now).await
        {
            manage_error = Some(err);
        }
        let message = manage_error.as_ref().map(ToString::to_string);
        let status = calculate_status(&rs, &claimed, terminating, message.as_deref(), now);
        let written = match status_update(&rs, status) {
            Some(new_status) => {
                self.write_status(&rs, &new_status).await?;
                new_status
            }
            None => rs.status.clone().unwrap_or_default(),
        };
        if let Some(err) = manage_error {
            return Err(err);
        }
        let min_ready = reconcile::min_ready_seconds(&rs);
        if min_ready > 0 && written.ready_replicas != written.available_replicas {
            let next = min_next_availability_check(claimed.iter().copied(), min_ready, now)
                .unwrap_or(Duration::from_secs(min_ready as u64));
            return Ok(Some(next));
        }
        Ok(None)
    }

    /// Upstream `claimPods`: adopt matching orphans, release non-matching
    /// pods, return the pods this ReplicaSet now controls.
    async fn claim_pods<'a>(
        &self,
        rs: &ReplicaSet,
        selector: &Selector,
        active: &[&'a Pod],
    ) -> Result<Vec<&'a Pod>, Error> {
        let me = ClaimingController::from_resource(rs);
        let plan = ownerref::plan_claims_by_selector(&me, selector, active.iter().copied());
        let mut claimed = plan.owned;
        let ns = me.namespace.as_str();
        if !plan.adopt.is_empty() && self.can_adopt(rs, &me).await {
            for pod in plan.adopt {
                let patch = controller_utils::adopt_patch(&me, controller_utils::uid_of(pod))?;
                let result = self.pod_control.patch_pod(ns, &pod.name_any(), patch).await;
                if controller_utils::adopted(result)?.is_some() {
                    claimed.push(pod);
                }
            }
        }
        for pod in plan.release {
            let patch = controller_utils::release_patch(&me, controller_utils::uid_of(pod))?;
            controller_utils::released(
                self.pod_control.patch_pod(ns, &pod.name_any(), patch).await,
            )?;
        }
        Ok(claimed)
    }

    /// Upstream `RecheckDeletionTimestamp` against a fresh read.
    async fn can_adopt(&self, rs: &ReplicaSet, me: &ClaimingController) -> bool {
        match self.rs_control.get(&me.namespace, &rs.name_any()).await {
            Ok(fresh) => match ownerref::recheck_deletion_timestamp(me, &fresh.metadata) {
                Ok(()) => true,
                Err(err) => {
                    tracing::debug!(error = %err, "not adopting");
                    false
                }
            },
            Err(err) => {
                tracing::debug!(error = %err, "not adopting: cannot re-read replicaset");
                false
            }
        }
    }

    /// Upstream `manageReplicas` side effects.
    async fn manage(
        &self,
        rs: &ReplicaSet,
        key: &Key,
        active: &[&Pod],
        now: Timestamp,
    ) -> Result<(), Error> {
        let related = self.related_pods(rs);
        let related_refs: Vec<&Pod> = related.iter().map(Arc::as_ref).collect();
        match manage_replicas(rs, active, &related_refs, now) {
            Scale::InSync => Ok(()),
            Scale::Create(count) => self.create_pods(rs, key, count).await,
            Scale::Delete(pods) => self.delete_pods(rs, key, &pods).await,
        }
    }

    /// Upstream `getIndirectlyRelatedPods`: pods of every ReplicaSet with the
    /// same controller (for co-location ranking).
    fn related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let ns = rs.metadata.namespace.clone();
        let owner_uid = ownerref::get_controller_of(&rs.metadata).map(|r| r.uid.clone());
        let siblings: Vec<Selector> = self
            .replicasets
            .state()
            .into_iter()
            .filter(|other| other.metadata.namespace == ns)
            .filter(|other| match &owner_uid {
                Some(uid) => ownerref::is_controlled_by(&other.metadata, uid),
                None => other.metadata.uid == rs.metadata.uid,
            })
            .filter_map(|other| {
                Selector::from_label_selector(other.spec.as_ref().map(|s| &s.selector)).ok()
            })
            .collect();
        self.pods.state_filter(|p| {
            p.metadata.namespace == ns
                && siblings
                    .iter()
                    .any(|s| s.matches_labels(p.metadata.labels.as_ref()))
        })
    }

    async fn create_pods(&self, rs: &ReplicaSet, key: &Key, count: usize) -> Result<(), Error> {
        let exp_key = key.to_string();
        self.expectations.expect_creations(&exp_key, count);
        tracing::debug!(replicaset = %key, creating = count, "Too few replicas");
        let Some(template) = rs.spec.as_ref().and_then(|s| s.template.as_ref()) else {
            self.expectations.delete(&exp_key);
            return Err(Error::InvalidObject {
                object: key.to_string(),
                reason: "spec.template is missing".into(),
            });
        };
        let owner = ownerref::new_controller_ref_for(rs);
        let (ns, name) = (key.namespace.as_deref().unwrap_or_default(), rs.name_any());
        let regarding = rs.object_ref(&());
        let mut created = 0;
        let mut first_error = None;
        for batch in slow_start_batches(count, SLOW_START_INITIAL_BATCH_SIZE) {
            let results = join_all((0..batch).map(|_| {
                self.pod_control
                    .create_pods(ns, template, &name, owner.clone())
            }))
            .await;
            for result in results {
                match result {
                    Ok(new_pod) => {
                        created += 1;
                        let msg = format!("Created pod: {}", new_pod.name_any());
                        self.events.publish(
                            &regarding,
                            &EventSpec::normal(SUCCESSFUL_CREATE_REASON, msg),
                        );
                    }
                    Err(err) => {
                        if err.is_namespace_terminating() {
                            // Upstream treats this as success and lets
                            // the expectation time out.
                            created += 1;
                            continue;
                        }
                        let msg = format!("Error creating: {}", err.api_message());
                        self.events
                            .publish(&regarding, &EventSpec::warning(FAILED_CREATE_REASON, msg));
                        first_error.get_or_insert(err);
                    }
                }
            }
            if first_error.is_some() {
                break;
            }
        }
        for _ in created..count {
            self.expectations.creation_observed(&exp_key);
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn delete_pods(&self, rs: &ReplicaSet, key: &Key, pods: &[&Pod]) -> Result<(), Error> {
        let exp_key = key.to_string();
        self.expectations
            .expect_deletions(&exp_key, pods.iter().map(|p| pod_key(p)));
        tracing::debug!(replicaset = %key, deleting = pods.len(), "Too many replicas");
        let ns = key.namespace.as_deref().unwrap_or_default();
        let regarding = rs.object_ref(&());
        let results = join_all(pods.iter().map(|p| {
            let name = p.name_any();
            async move {
                let result = self.pod_control.delete_pod(ns, &name).await;
                (name, result)
            }
        }))
        .await;
        let mut first_error = None;
        for ((name, result), pod) in results.into_iter().zip(pods) {
            match result {
                Ok(_) => {
                    let msg = format!("Deleted pod: {name}");
                    self.events.publish(
                        &regarding,
                        &EventSpec::normal(SUCCESSFUL_DELETE_REASON, msg),
                    );
                }
                Err(err) => {
                    self.expectations.deletion_observed(&exp_key, &pod_key(pod));
                    if err.is_not_found() {
                        continue;
                    }
                    let msg = format!("Error deleting: {}", err.api_message());
                    self.events
                        .publish(&regarding, &EventSpec::warning(FAILED_DELETE_REASON, msg));
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn write_status(
        &self,
        rs: &ReplicaSet,
        status: &k8s_openapi::api::apps::v1::ReplicaSetStatus,
    ) -> Result<(), Error> {
        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
        // An update (PUT with the cached resourceVersion), as upstream: the
        // `system:controller:replicaset-controller` role grants `update` on
        // replicasets/status but not `patch`; a 409 requeues the sync.
        let mut next = rs.clone();
        next.status = Some(status.clone());
        self.rs_control.update_status(ns, &next).await?;
        Ok(())
    }
}
