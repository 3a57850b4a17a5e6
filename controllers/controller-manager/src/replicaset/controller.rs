//! The ReplicaSet engine (upstream `replica_set.go` `ReplicaSetController`,
//! the base both the ReplicaSet and the ReplicationController controllers
//! run): reads the owner kind and pods from the shared informers, decides
//! with [`super::reconcile`], then creates/deletes pods and writes status.

use std::sync::Arc;
use std::time::Duration;

use component_base::informers::{Change, Informer};
use component_base::ownerref::{self, ClaimingController};
use component_base::selectors::Selector;
use component_base::workqueue::RateLimitingQueue;
use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::kind::{ReplicaSetLike, is_kind};
use super::reconcile::{self, Scale, calculate_status, manage_replicas, status_update};
use super::{
    FAILED_CREATE_REASON, FAILED_DELETE_REASON, SUCCESSFUL_CREATE_REASON, SUCCESSFUL_DELETE_REASON,
};
use crate::control::{KubeObjectControl, KubePodControl, ObjectControl, PodControl};
use crate::controller::{
    ControllerContext, Enqueue, KeyedController, Reconciler, SyncResult, object_key,
};
use crate::controller_utils::{
    self, Expectations, Key, SLOW_START_INITIAL_BATCH_SIZE, is_pod_active, is_pod_terminating,
    min_next_availability_check, slow_start_batches,
};
use crate::error::Error;
use crate::events::{EventSink, EventSpec};

/// Upstream-visible names of one controller running the engine.
pub struct EngineNames {
    /// The controller's name (logs, cache-sync wait).
    pub controller: &'static str,
    /// The work queue's name (upstream `NewBaseController` queueName).
    pub queue: &'static str,
    /// The events' `source.component`.
    pub event_source: &'static str,
}

/// Runs the engine for kind `K` until shutdown.
pub async fn run<K: ReplicaSetLike>(ctx: ControllerContext, names: EngineNames) -> Result<(), Error>
where
    KubeObjectControl: ObjectControl<K>,
{
    let owner_informer: Arc<Informer<K>> = ctx.informers.informer::<K>();
    let pod_informer = ctx.informers.informer::<Pod>();
    let controller = Arc::new(Controller {
        replicasets: owner_informer.store().clone(),
        pods: pod_informer.store().clone(),
        pod_control: Arc::new(KubePodControl::new(ctx.client.clone())),
        rs_control: Arc::new(KubeObjectControl::new(ctx.client.clone())),
        expectations: Expectations::default(),
        events: EventSink::new(&ctx.events, names.event_source),
    });
    KeyedController::new(
        names.controller,
        controller,
        RateLimitingQueue::new(names.queue),
    )
    .watches(&owner_informer, |_, change| object_key(change))
    .watches(&pod_informer, Controller::pod_changed)
    .run(&ctx)
    .await
}

/// The engine over owners of kind `K` (fields are set by tests too).
pub struct Controller<K: ReplicaSetLike = ReplicaSet> {
    pub(crate) replicasets: Store<K>,
    pub(crate) pods: Store<Pod>,
    pub(crate) pod_control: Arc<dyn PodControl>,
    pub(crate) rs_control: Arc<dyn ObjectControl<K>>,
    pub(crate) expectations: Expectations,
    pub(crate) events: EventSink,
}

fn selector_of(rs: &ReplicaSet) -> Result<Selector, component_base::selectors::SelectorError> {
    Selector::from_label_selector(rs.spec.as_ref().map(|s| &s.selector))
}

impl<K: ReplicaSetLike> Reconciler for Controller<K> {
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

impl<K: ReplicaSetLike> Controller<K> {
    pub(crate) fn pod_changed(&self, change: Change<Pod>) -> Vec<Enqueue> {
        match change {
            Change::Added(pod) => self.pod_added(&pod),
            Change::Updated { old, new } => self.pod_updated(&old, &new),
            Change::Deleted(pod) => self.pod_deleted(&pod),
            Change::Resync => Vec::new(),
        }
    }

    /// Upstream `resolveControllerRef`: the cached ReplicaSet a pod's
    /// controller reference points at, if it is still the same object.
    fn owner_of(&self, pod: &Pod) -> Option<Arc<K>> {
        let owner = ownerref::get_controller_of(&pod.metadata)?;
        if !is_kind::<K>(&owner.api_version, &owner.kind) {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref()?;
        let rs = self
            .replicasets
            .get(&ObjectRef::new(&owner.name).within(ns))?;
        (rs.meta().uid.as_deref() == Some(owner.uid.as_str())).then_some(rs)
    }

    /// Upstream `getPodReplicaSets`: ReplicaSets whose selector matches an
    /// orphan pod.
    fn matching_replicasets(&self, pod: &Pod) -> Vec<Arc<K>> {
        let ns = pod.metadata.namespace.as_deref();
        self.replicasets
            .state()
            .into_iter()
            .filter(|rs| rs.meta().namespace.as_deref() == ns)
            .filter(|rs| {
                selector_of(&rs.as_replica_set())
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

    fn keys_of(&self, replicasets: Vec<Arc<K>>) -> Vec<Enqueue> {
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
            && old_owner.as_ref().map(|r| r.meta().uid.clone())
                != new_owner.as_ref().map(|r| r.meta().uid.clone())
        {
            keys.push(Key::of(rs.as_ref()).into());
        }
        if let Some(rs) = &new_owner {
            let key = Key::of(rs.as_ref());
            // A pod turning ready may become available after minReadySeconds.
            let min_ready = reconcile::min_ready_seconds(&rs.as_replica_set());
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
        let Some(obj) = self.replicasets.get(&ObjectRef::new(&key.name).within(ns)) else {
            self.expectations.delete(&key.to_string());
            return Ok(None);
        };
        let view = obj.as_replica_set();
        let rs: &ReplicaSet = &view;
        let needs_sync = self.expectations.satisfied(&key.to_string());
        tracing::trace!(replicaset = %key, needs_sync, "syncing replicaset");
        let selector = match selector_of(rs) {
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
        let mut claimed = self.claim_pods(obj.as_ref(), &selector, &active).await?;
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
            && let Err(err) = self.manage(obj.as_ref(), rs, key, &claimed, now).await
        {
            manage_error = Some(err);
        }
        let message = manage_error.as_ref().map(ToString::to_string);
        let status = calculate_status(rs, &claimed, terminating, message.as_deref(), now);
        let written = self.update_status(obj.as_ref(), rs, status).await?;
        if let Some(err) = manage_error {
            return Err(err);
        }
        let min_ready = reconcile::min_ready_seconds(rs);
        if min_ready > 0 && written.ready_replicas != written.available_replicas {
            let next = min_next_availability_check(claimed.iter().copied(), min_ready, now)
                .unwrap_or(Duration::from_secs(min_ready as u64));
            return Ok(Some(next));
        }
        Ok(None)
    }

    /// Upstream `updateReplicaSetStatus`: writes `computed` unless it is
    /// what the object already says; returns the status now in effect.
    async fn update_status(
        &self,
        obj: &K,
        rs: &ReplicaSet,
        mut computed: ReplicaSetStatus,
    ) -> Result<ReplicaSetStatus, Error> {
        if !K::HAS_TERMINATING_REPLICAS {
            computed.terminating_replicas = None;
        }
        match status_update(rs, computed) {
            Some(new_status) => {
                self.write_status(obj, &new_status).await?;
                Ok(new_status)
            }
            None => Ok(rs.status.clone().unwrap_or_default()),
        }
    }

    /// Upstream `claimPods`: adopt matching orphans, release non-matching
    /// pods, return the pods this ReplicaSet now controls.
    async fn claim_pods<'a>(
        &self,
        rs: &K,
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
    async fn can_adopt(&self, rs: &K, me: &ClaimingController) -> bool {
        match self.rs_control.get(&me.namespace, &rs.name_any()).await {
            Ok(fresh) => match ownerref::recheck_deletion_timestamp(me, fresh.meta()) {
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
        obj: &K,
        rs: &ReplicaSet,
        key: &Key,
        active: &[&Pod],
        now: Timestamp,
    ) -> Result<(), Error> {
        let related = self.related_pods(rs);
        let related_refs: Vec<&Pod> = related.iter().map(Arc::as_ref).collect();
        match manage_replicas(rs, active, &related_refs, now) {
            Scale::InSync => Ok(()),
            Scale::Create(count) => self.create_pods(obj, rs, key, count).await,
            Scale::Delete(pods) => self.delete_pods(obj, key, &pods).await,
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
            .filter(|other| other.meta().namespace == ns)
            .filter(|other| match &owner_uid {
                Some(uid) => ownerref::is_controlled_by(other.meta(), uid),
                None => other.meta().uid == rs.metadata.uid,
            })
            .filter_map(|other| selector_of(&other.as_replica_set()).ok())
            .collect();
        self.pods.state_filter(|p| {
            p.metadata.namespace == ns
                && siblings
                    .iter()
                    .any(|s| s.matches_labels(p.metadata.labels.as_ref()))
        })
    }

    async fn create_pods(
        &self,
        obj: &K,
        rs: &ReplicaSet,
        key: &Key,
        count: usize,
    ) -> Result<(), Error> {
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
        let owner = ownerref::new_controller_ref_for(obj);
        let (ns, name) = (key.namespace.as_deref().unwrap_or_default(), obj.name_any());
        let regarding = obj.object_ref(&());
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

    async fn delete_pods(&self, rs: &K, key: &Key, pods: &[&Pod]) -> Result<(), Error> {
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

    async fn write_status(&self, rs: &K, status: &ReplicaSetStatus) -> Result<(), Error> {
        let ns = rs.meta().namespace.as_deref().unwrap_or_default();
        // An update (PUT with the cached resourceVersion), as upstream: the
        // `system:controller:replicaset-controller` role grants `update` on
        // replicasets/status but not `patch`; a 409 requeues the sync.
        let next = rs.with_status(status);
        self.rs_control.update_status(ns, &next).await?;
        Ok(())
    }
}
