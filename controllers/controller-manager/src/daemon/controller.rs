//! The DaemonSet controller's I/O half (upstream `DaemonSetsController`):
//! event handlers mapping pod, node and revision changes to DaemonSet keys,
//! and `syncDaemonSet`, which claims pods, builds the revision history,
//! applies [`super::reconcile`]'s plans and writes status.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use component_base::informers::Change;
use component_base::ownerref::{self, ClaimingController};
use component_base::selectors::Selector;
use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource as _, ResourceExt};

use super::backoff::Backoff;
use super::reconcile::{self, NodeToPods, StatusCounts};
use super::util::{create_pod_template, replace_node_name_affinity, target_node_name};
use super::{
    BURST_REPLICAS, FAILED_CREATE_REASON, FAILED_DELETE_REASON, SELECTING_ALL_REASON,
    SUCCESSFUL_CREATE_REASON, SUCCESSFUL_DELETE_REASON,
};
use crate::control::{ObjectControl, PodControl};
use crate::controller::{Enqueue, Reconciler, SyncResult};
use crate::controller_utils::{
    self, Expectations, Key, SLOW_START_INITIAL_BATCH_SIZE, is_pod_ready, slow_start_batches,
};
use crate::error::Error;
use crate::events::{EventSink, EventSpec};
use crate::history::CONTROLLER_REVISION_HASH_LABEL;

/// The controller's caches and writers (fields are set by tests too).
pub struct Controller {
    pub(crate) daemonsets: Store<DaemonSet>,
    pub(crate) nodes: Store<Node>,
    pub(crate) pods: Store<Pod>,
    pub(crate) revisions: Store<ControllerRevision>,
    pub(crate) pod_control: Arc<dyn PodControl>,
    pub(crate) ds_control: Arc<dyn ObjectControl<DaemonSet>>,
    pub(crate) cr_control: Arc<dyn ObjectControl<ControllerRevision>>,
    pub(crate) expectations: Expectations,
    pub(crate) backoff: Mutex<Backoff>,
    pub(crate) events: EventSink,
}

fn selector_of(ds: &DaemonSet) -> Result<Selector, component_base::selectors::SelectorError> {
    Selector::from_label_selector(ds.spec.as_ref().map(|s| &s.selector))
}

fn pod_key(pod: &Pod) -> String {
    Key::of(pod).to_string()
}

fn key_of(ds: &DaemonSet) -> Enqueue {
    Key::of(ds).into()
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_daemonset(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.daemonsets
            .state()
            .iter()
            .map(|ds| key_of(ds))
            .collect()
    }
}

/// Upstream `nodeInSameCondition`: the same set of True conditions.
fn same_true_conditions(old: &Node, new: &Node) -> bool {
    let trues = |n: &Node| {
        let mut t: Vec<String> = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.status == "True")
            .map(|c| c.type_.clone())
            .collect();
        t.sort();
        t.dedup();
        t
    };
    trues(old) == trues(new)
}

/// Upstream `shouldIgnoreNodeUpdate`: only heartbeat-like changes.
pub(crate) fn should_ignore_node_update(old: &Node, new: &Node) -> bool {
    if !same_true_conditions(old, new) {
        return false;
    }
    let mut old = old.clone();
    old.metadata.resource_version = new.metadata.resource_version.clone();
    let conditions = new.status.as_ref().and_then(|s| s.conditions.clone());
    old.status.get_or_insert_with(Default::default).conditions = conditions;
    let mut new = new.clone();
    new.status.get_or_insert_with(Default::default);
    old == new
}

impl Controller {
    /// Upstream `resolveControllerRef`.
    fn owner_of(
        &self,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Option<Arc<DaemonSet>> {
        let owner = ownerref::get_controller_of(meta)?;
        if owner.kind != "DaemonSet" {
            return None;
        }
        let ns = meta.namespace.as_deref()?;
        let ds = self
            .daemonsets
            .get(&ObjectRef::new(&owner.name).within(ns))?;
        (ds.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(ds)
    }

    /// Upstream `getDaemonSetsForPod` / `getDaemonSetsForHistory`: the
    /// DaemonSets whose selector matches an orphan's labels.
    fn matching(
        &self,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Vec<Enqueue> {
        let ns = meta.namespace.as_deref();
        self.daemonsets
            .state()
            .iter()
            .filter(|ds| ds.metadata.namespace.as_deref() == ns)
            .filter(|ds| {
                selector_of(ds)
                    .map(|s| !s.is_empty() && s.matches_labels(meta.labels.as_ref()))
                    .unwrap_or(false)
            })
            .map(|ds| key_of(ds))
            .collect()
    }

    pub(crate) fn pod_changed(&self, change: Change<Pod>) -> Vec<Enqueue> {
        match change {
            Change::Added(pod) => self.pod_added(&pod),
            Change::Updated { old, new } => self.pod_updated(&old, &new),
            Change::Deleted(pod) => self.pod_deleted(&pod),
            Change::Resync => Vec::new(),
        }
    }

    fn pod_added(&self, pod: &Pod) -> Vec<Enqueue> {
        if pod.metadata.deletion_timestamp.is_some() {
            return self.pod_deleted(pod);
        }
        if ownerref::get_controller_of(&pod.metadata).is_some() {
            let Some(ds) = self.owner_of(&pod.metadata) else {
                return Vec::new();
            };
            self.expectations
                .creation_observed(&Key::of(ds.as_ref()).to_string());
            return vec![key_of(&ds)];
        }
        self.matching(&pod.metadata)
    }

    fn pod_updated(&self, old: &Pod, new: &Pod) -> Vec<Enqueue> {
        if old.metadata.resource_version == new.metadata.resource_version {
            return Vec::new();
        }
        if new.metadata.deletion_timestamp.is_some() {
            return self.pod_deleted(new);
        }
        let mut keys = Vec::new();
        let old_ref = ownerref::get_controller_of(&old.metadata);
        let new_ref = ownerref::get_controller_of(&new.metadata);
        let ref_changed = old_ref != new_ref;
        if ref_changed
            && old_ref.is_some()
            && let Some(ds) = self.owner_of(&old.metadata)
        {
            keys.push(key_of(&ds));
        }
        if new_ref.is_some() {
            let Some(ds) = self.owner_of(&new.metadata) else {
                return keys;
            };
            keys.push(key_of(&ds));
            let min_ready = ds
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0);
            if min_ready > 0 && !is_pod_ready(old) && is_pod_ready(new) {
                let after = Duration::from_secs(min_ready as u64 + 1);
                keys.push(Enqueue::After(Key::of(ds.as_ref()), after));
            }
            return keys;
        }
        if old.metadata.labels != new.metadata.labels || ref_changed {
            keys.extend(self.matching(&new.metadata));
        }
        keys
    }

    fn pod_deleted(&self, pod: &Pod) -> Vec<Enqueue> {
        let Some(ds) = self.owner_of(&pod.metadata) else {
            return Vec::new();
        };
        self.expectations
            .deletion_observed(&Key::of(ds.as_ref()).to_string(), &pod_key(pod));
        vec![key_of(&ds)]
    }

    /// Upstream `addNode` / `updateNode`.
    pub(crate) fn node_changed(&self, change: Change<Node>) -> Vec<Enqueue> {
        let daemonsets = self.daemonsets.state();
        match change {
            Change::Added(node) => daemonsets
                .iter()
                .filter(|ds| reconcile::node_should_run(&node, ds).0)
                .map(|ds| key_of(ds))
                .collect(),
            Change::Updated { old, new } => {
                if should_ignore_node_update(&old, &new) {
                    return Vec::new();
                }
                daemonsets
                    .iter()
                    .filter(|ds| {
                        reconcile::node_should_run(&old, ds) != reconcile::node_should_run(&new, ds)
                    })
                    .map(|ds| key_of(ds))
                    .collect()
            }
            // Pods on a deleted node are the pod GC's; nothing to do.
            Change::Deleted(_) | Change::Resync => Vec::new(),
        }
    }

    /// Upstream `addHistory` / `updateHistory` / `deleteHistory`.
    pub(crate) fn revision_changed(&self, change: Change<ControllerRevision>) -> Vec<Enqueue> {
        match change {
            Change::Added(rev) | Change::Deleted(rev) => {
                if ownerref::get_controller_of(&rev.metadata).is_some() {
                    return self
                        .owner_of(&rev.metadata)
                        .map(|ds| key_of(&ds))
                        .into_iter()
                        .collect();
                }
                self.matching(&rev.metadata)
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return Vec::new();
                }
                let mut keys = Vec::new();
                let old_ref = ownerref::get_controller_of(&old.metadata);
                let new_ref = ownerref::get_controller_of(&new.metadata);
                if old_ref != new_ref
                    && let Some(ds) = self.owner_of(&old.metadata)
                {
                    keys.push(key_of(&ds));
                }
                if new_ref.is_some() {
                    keys.extend(self.owner_of(&new.metadata).map(|ds| key_of(&ds)));
                    return keys;
                }
                if old.metadata.labels != new.metadata.labels || old_ref != new_ref {
                    keys.extend(self.matching(&new.metadata));
                }
                keys
            }
            Change::Resync => Vec::new(),
        }
    }

    /// Upstream `syncDaemonSet`.
    async fn sync_daemonset(&self, key: &Key) -> SyncResult {
        let Some(ns) = key.namespace.as_deref() else {
            return Ok(None);
        };
        let exp_key = key.to_string();
        tracing::trace!(daemonset = %key, "syncing daemon set");
        let Some(ds) = self.daemonsets.get(&ObjectRef::new(&key.name).within(ns)) else {
            tracing::debug!(daemonset = %key, "daemon set has been deleted");
            self.expectations.delete(&exp_key);
            return Ok(None);
        };
        let ds = ds.as_ref();
        let nodes_arc = self.nodes.state();
        let nodes: Vec<&Node> = nodes_arc.iter().map(Arc::as_ref).collect();
        let empty = ds.spec.as_ref().is_none_or(|s| {
            s.selector
                .match_labels
                .as_ref()
                .is_none_or(|m| m.is_empty())
                && s.selector
                    .match_expressions
                    .as_ref()
                    .is_none_or(|e| e.is_empty())
        });
        if empty {
            self.events.publish(
                &ds.object_ref(&()),
                &EventSpec::warning(
                    SELECTING_ALL_REASON,
                    "This daemon set is selecting all pods. A non-empty selector is required.",
                ),
            );
            return Ok(None);
        }
        // A DaemonSet being deleted may have lost its revisions already;
        // its status cannot be computed reliably.
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let selector = selector_of(ds).map_err(|e| Error::InvalidObject {
            object: key.to_string(),
            reason: e.to_string(),
        })?;
        let pods_arc = self.pods.state();
        let claimed = self.claim_pods(ds, &selector, &pods_arc).await?;
        let (cur, old) = self.construct_history(ds, &selector, &claimed).await?;
        let hash = cur
            .labels()
            .get(CONTROLLER_REVISION_HASH_LABEL)
            .cloned()
            .unwrap_or_default();
        let node_to_pods = group_by_node(&claimed);
        tracing::trace!(daemonset = %key, %hash, pods = claimed.len(), nodes = nodes.len(), "daemon set history and pods");

        if !self.expectations.satisfied(&exp_key) {
            return self
                .update_status(ds, &nodes, &node_to_pods, &hash, false)
                .await;
        }
        let result = self
            .update_daemonset(ds, &exp_key, &nodes, &node_to_pods, &hash, &old, &claimed)
            .await;
        let status = self
            .update_status(ds, &nodes, &node_to_pods, &hash, true)
            .await;
        match (result, status) {
            (Err(err), Err(status_err)) => {
                tracing::warn!(daemonset = %key, error = %status_err, "failed to update status");
                Err(err)
            }
            (Err(err), _) | (_, Err(err)) => Err(err),
            (Ok(a), Ok(b)) => Ok(earliest(a, b)),
        }
    }

    /// Upstream `updateDaemonSet`: manage, roll, clean up history.
    #[allow(clippy::too_many_arguments)]
    async fn update_daemonset(
        &self,
        ds: &DaemonSet,
        exp_key: &str,
        nodes: &[&Node],
        node_to_pods: &NodeToPods<'_>,
        hash: &str,
        old: &[ControllerRevision],
        claimed: &[&Pod],
    ) -> Result<Option<Duration>, Error> {
        let plan = {
            let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
            reconcile::manage(
                ds,
                nodes,
                node_to_pods,
                hash,
                &mut backoff,
                Instant::now(),
                Timestamp::now(),
            )
        };
        tracing::trace!(daemonset = %exp_key, create_on = ?plan.nodes_needing_pods, delete = ?plan.pods_to_delete, "manage");
        let regarding = ds.object_ref(&());
        for event in &plan.events {
            self.events.publish(&regarding, event);
        }
        self.sync_nodes(
            ds,
            exp_key,
            &plan.pods_to_delete,
            &plan.nodes_needing_pods,
            hash,
        )
        .await?;
        let strategy = ds
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|s| s.type_.as_deref());
        if self.expectations.satisfied(exp_key) && strategy == Some("RollingUpdate") {
            let rolling =
                reconcile::rolling_update(ds, nodes, node_to_pods, hash, Timestamp::now())
                    .map_err(|e| Error::InvalidObject {
                        object: exp_key.to_string(),
                        reason: e.to_string(),
                    })?;
            self.sync_nodes(
                ds,
                exp_key,
                &rolling.pods_to_delete,
                &rolling.nodes_needing_pods,
                hash,
            )
            .await?;
        }
        self.cleanup_history(ds, old, claimed)
            .await
            .map_err(|e| Error::Controller {
                name: super::DAEMONSET_CONTROLLER,
                reason: format!("failed to clean up revisions of DaemonSet: {e}"),
            })?;
        Ok(plan.requeue_after)
    }

    /// Upstream `getDaemonPods`: claims pods in the namespace (adopting
    /// matching orphans, releasing strays) and returns ours.
    async fn claim_pods<'a>(
        &self,
        ds: &DaemonSet,
        selector: &Selector,
        pods: &'a [Arc<Pod>],
    ) -> Result<Vec<&'a Pod>, Error> {
        let ns = ds.namespace().unwrap_or_default();
        let candidates = pods
            .iter()
            .map(Arc::as_ref)
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()));
        let me = ClaimingController::from_resource(ds);
        let plan = ownerref::plan_claims_by_selector(&me, selector, candidates);
        let mut claimed = plan.owned;
        if !plan.adopt.is_empty() && self.can_adopt(ds, &me).await {
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

    /// Upstream `RecheckDeletionTimestamp` against a fresh read.
    pub(super) async fn can_adopt(&self, ds: &DaemonSet, me: &ClaimingController) -> bool {
        match self.ds_control.get(&me.namespace, &ds.name_any()).await {
            Ok(fresh) => ownerref::recheck_deletion_timestamp(me, &fresh.metadata)
                .inspect_err(|err| tracing::debug!(error = %err, "not adopting"))
                .is_ok(),
            Err(err) => {
                tracing::debug!(error = %err, "not adopting: cannot re-read daemonset");
                false
            }
        }
    }

    /// Upstream `syncNodes`: deletes `pods_to_delete` and creates one pod
    /// pinned to each of `nodes` (at most [`BURST_REPLICAS`] of each, in
    /// slow-start batches), with expectations set first.
    async fn sync_nodes(
        &self,
        ds: &DaemonSet,
        exp_key: &str,
        pods_to_delete: &[String],
        nodes: &[String],
        hash: &str,
    ) -> Result<(), Error> {
        let ns = ds.namespace().unwrap_or_default();
        let create = nodes.len().min(BURST_REPLICAS);
        let delete = pods_to_delete.len().min(BURST_REPLICAS);
        let delete_keys: Vec<String> = pods_to_delete[..delete]
            .iter()
            .map(|n| format!("{ns}/{n}"))
            .collect();
        self.expectations
            .expect_creations_and_deletions(exp_key, create, delete_keys.clone());
        let generation = super::util::template_generation(ds).ok().flatten();
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let template = create_pod_template(&template, generation, hash);
        let owner = ownerref::new_controller_ref_for(ds);
        let regarding = ds.object_ref(&());
        let name = ds.name_any();
        let mut errors = Vec::new();
        let mut pos = 0;
        for batch in slow_start_batches(create, SLOW_START_INITIAL_BATCH_SIZE) {
            let results = join_all(nodes[pos..pos + batch].iter().map(|node| {
                let mut pod_template = template.clone();
                if let Some(spec) = pod_template.spec.as_mut() {
                    spec.affinity = Some(replace_node_name_affinity(spec.affinity.take(), node));
                }
                let owner = owner.clone();
                let (ns, name) = (&ns, &name);
                async move {
                    self.pod_control
                        .create_pods(ns, &pod_template, name, owner)
                        .await
                }
            }))
            .await;
            pos += batch;
            let before = errors.len();
            for result in results {
                match result {
                    Ok(pod) => self.events.publish(
                        &regarding,
                        &EventSpec::normal(
                            SUCCESSFUL_CREATE_REASON,
                            format!("Created pod: {}", pod.name_any()),
                        ),
                    ),
                    Err(err) if err.is_namespace_terminating() => {}
                    Err(err) => {
                        self.expectations.creation_observed(exp_key);
                        self.events.publish(
                            &regarding,
                            &EventSpec::warning(
                                FAILED_CREATE_REASON,
                                format!("Error creating: {}", err.api_message()),
                            ),
                        );
                        errors.push(err);
                    }
                }
            }
            if errors.len() > before {
                // The rest of the slow start is skipped and not expected.
                for _ in pos..create {
                    self.expectations.creation_observed(exp_key);
                }
                break;
            }
        }
        let results = join_all(pods_to_delete[..delete].iter().map(|pod| {
            let ns = &ns;
            async move { (pod, self.pod_control.delete_pod(ns, pod).await) }
        }))
        .await;
        for ((pod, result), key) in results.into_iter().zip(&delete_keys) {
            match result {
                Ok(()) => self.events.publish(
                    &regarding,
                    &EventSpec::normal(SUCCESSFUL_DELETE_REASON, format!("Deleted pod: {pod}")),
                ),
                Err(err) => {
                    self.expectations.deletion_observed(exp_key, key);
                    if !err.is_not_found() {
                        self.events.publish(
                            &regarding,
                            &EventSpec::warning(
                                FAILED_DELETE_REASON,
                                format!("Error deleting: {}", err.api_message()),
                            ),
                        );
                        errors.push(err);
                    }
                }
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            count => Err(Error::Multiple {
                count,
                first: errors[0].to_string(),
            }),
        }
    }

    /// Upstream `updateDaemonSetStatus` + `storeDaemonSetStatus`: writes the
    /// numbers when they changed (one retry on a fresh read after a
    /// conflict); requeues after minReadySeconds while ready pods are not
    /// yet available.
    async fn update_status(
        &self,
        ds: &DaemonSet,
        nodes: &[&Node],
        node_to_pods: &NodeToPods<'_>,
        hash: &str,
        update_observed_generation: bool,
    ) -> SyncResult {
        let counts = reconcile::calculate_status(ds, nodes, node_to_pods, hash, Timestamp::now());
        if reconcile::status_changed(ds, &counts) {
            let ns = ds.namespace().unwrap_or_default();
            let mut target = ds.clone();
            for attempt in 0..2 {
                apply_counts(&mut target, &counts, update_observed_generation);
                match self.ds_control.update_status(&ns, &target).await {
                    Ok(_) => break,
                    Err(err) if attempt == 0 && err.is_conflict() => {
                        target = self.ds_control.get(&ns, &ds.name_any()).await?;
                    }
                    Err(err) => {
                        return Err(Error::Controller {
                            name: super::DAEMONSET_CONTROLLER,
                            reason: format!(
                                "error storing status for daemon set {}: {err}",
                                Key::of(ds)
                            ),
                        });
                    }
                }
            }
        }
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if min_ready > 0 && counts.number_ready != counts.number_available {
            return Ok(Some(Duration::from_secs(min_ready as u64)));
        }
        Ok(None)
    }
}

fn apply_counts(ds: &mut DaemonSet, c: &StatusCounts, observed_generation: bool) {
    let generation = ds.metadata.generation;
    let status = ds.status.get_or_insert_with(Default::default);
    if observed_generation {
        status.observed_generation = generation;
    }
    status.desired_number_scheduled = c.desired_number_scheduled;
    status.current_number_scheduled = c.current_number_scheduled;
    status.number_misscheduled = c.number_misscheduled;
    status.number_ready = c.number_ready;
    status.updated_number_scheduled = Some(c.updated_number_scheduled);
    status.number_available = Some(c.number_available);
    status.number_unavailable = Some(c.number_unavailable);
}

/// Upstream `getNodesToDaemonPods`' grouping; pods naming no node are
/// skipped.
pub(crate) fn group_by_node<'a>(pods: &[&'a Pod]) -> NodeToPods<'a> {
    let mut out = NodeToPods::new();
    for pod in pods {
        match target_node_name(pod) {
            Some(node) => out.entry(node).or_default().push(*pod),
            None => tracing::debug!(pod = %pod_key(pod), "daemon pod names no target node"),
        }
    }
    out
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
