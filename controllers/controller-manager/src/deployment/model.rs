//! The in-memory model one Deployment sync works on. Upstream's sync code
//! mutates objects and writes them one call at a time; here every write is
//! recorded as an [`Action`] against the model, so the whole decision is a
//! pure function that the runner then replays against the apiserver
//! (stopping at the first failure, as upstream returns on it).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};

use super::util::*;
use crate::events::EventSpec;

pub const SCALING_REPLICA_SET_REASON: &str = "ScalingReplicaSet";

/// One write the sync wants, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    CreateReplicaSet(ReplicaSet),
    /// Full update (PUT) of a ReplicaSet.
    UpdateReplicaSet(ReplicaSet),
    DeleteReplicaSet(String),
    /// PUT to the status subresource; also carries metadata.annotations
    /// (upstream stores the revision annotation this way).
    UpdateDeploymentStatus(Deployment),
    Event(EventSpec),
}

/// The result of one sync.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub requeue_after: Option<Duration>,
}

/// A Deployment, the ReplicaSets it owns and their pods, mutated as the
/// sync proceeds.
pub struct Model<'a> {
    pub d: Deployment,
    pub rss: Vec<ReplicaSet>,
    /// Pods by owning ReplicaSet uid (Recreate waits for old pods).
    pub pods_by_rs: BTreeMap<String, Vec<&'a Pod>>,
    pub now: Timestamp,
    pub plan: Plan,
}

impl<'a> Model<'a> {
    pub fn new(
        d: Deployment,
        mut rss: Vec<ReplicaSet>,
        pods_by_rs: BTreeMap<String, Vec<&'a Pod>>,
        now: Timestamp,
    ) -> Self {
        rss.sort_by(by_creation);
        Self {
            d,
            rss,
            pods_by_rs,
            now,
            plan: Plan::default(),
        }
    }

    pub fn status(&self) -> DeploymentStatus {
        self.d.status.clone().unwrap_or_default()
    }

    pub fn set_status(&mut self, status: DeploymentStatus) {
        self.d.status = Some(status);
    }

    pub fn event(&mut self, e: EventSpec) {
        self.plan.actions.push(Action::Event(e));
    }

    pub fn write_status(&mut self) {
        self.plan
            .actions
            .push(Action::UpdateDeploymentStatus(self.d.clone()));
    }

    /// Upstream `FindNewReplicaSet`: the oldest RS whose template equals the
    /// Deployment's (ignoring the hash label).
    pub fn find_new(&self) -> Option<usize> {
        let t = template(&self.d);
        self.rss
            .iter()
            .position(|rs| equal_ignore_hash(&rs_template(rs), &t))
    }

    pub fn old_indices(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rss.len()).filter(|i| Some(*i) != new).collect()
    }

    pub fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|i| rs_replicas(&self.rss[*i]) > 0)
            .collect()
    }

    pub fn replica_count(&self, idx: &[usize]) -> i32 {
        idx.iter().map(|i| rs_replicas(&self.rss[*i])).sum()
    }

    pub fn actual_count(&self, idx: &[usize]) -> i32 {
        idx.iter().map(|i| rs_status_replicas(&self.rss[*i])).sum()
    }

    pub fn available_count(&self, idx: &[usize]) -> i32 {
        idx.iter().map(|i| rs_available(&self.rss[*i])).sum()
    }

    pub fn all_indices(&self) -> Vec<usize> {
        (0..self.rss.len()).collect()
    }

    /// Upstream `getAllReplicaSetsAndSyncRevision` (+ `getNewReplicaSet`).
    pub fn sync_revision(&mut self, create: bool) -> (Option<usize>, Vec<usize>) {
        let existing = self.find_new();
        let old = self.old_indices(existing);
        let new_revision = max_revision(old.iter().map(|i| &self.rss[*i])) + 1;
        if let Some(i) = existing {
            self.sync_existing_new_rs(i, new_revision);
            return (Some(i), old);
        }
        if !create {
            return (None, old);
        }
        let idx = self.create_new_rs(&old, new_revision);
        (Some(idx), old)
    }

    fn sync_existing_new_rs(&mut self, i: usize, new_revision: i64) {
        let mut rs = self.rss[i].clone();
        let annotations_updated =
            set_new_replica_set_annotations(&self.d, &mut rs, new_revision, true);
        let min_ready = min_ready_seconds(&self.d);
        let spec = rs.spec.get_or_insert_with(Default::default);
        let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready;
        if annotations_updated || min_ready_changed {
            spec.min_ready_seconds = Some(min_ready);
            self.rss[i] = rs.clone();
            self.plan.actions.push(Action::UpdateReplicaSet(rs));
            return;
        }
        let rev = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        let mut needs_update = set_deployment_revision(&mut self.d, &rev);
        let mut status = self.status();
        if progress_deadline_seconds(&self.d).is_some()
            && get_condition(&status, CONDITION_PROGRESSING).is_none()
        {
            let msg = format!(
                "Found new replica set {:?}",
                rs.metadata.name.clone().unwrap_or_default()
            );
            set_condition(
                &mut status,
                new_condition(
                    CONDITION_PROGRESSING,
                    "True",
                    FOUND_NEW_RS_REASON,
                    msg,
                    self.now,
                ),
            );
            self.set_status(status);
            needs_update = true;
        }
        if needs_update {
            self.write_status();
        }
    }

    fn create_new_rs(&mut self, old: &[usize], new_revision: i64) -> usize {
        let d = &self.d;
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let mut tmpl = template(d);
        let hash = compute_hash(&tmpl, collision);
        let meta = tmpl.metadata.get_or_insert_with(Default::default);
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
        let labels = meta.labels.clone();
        let mut selector: LabelSelector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
        let name = replica_set_name(d.metadata.name.as_deref().unwrap_or_default(), &hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                owner_references: Some(vec![component_base::ownerref::new_controller_ref_for(d)]),
                labels,
                creation_timestamp: Some(Time(self.now)),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(min_ready_seconds(d)),
                selector,
                template: Some(tmpl),
            }),
            status: None,
        };
        let mut all: Vec<ReplicaSet> = old.iter().map(|i| self.rss[*i].clone()).collect();
        all.push(rs.clone());
        let count = new_rs_new_replicas(d, &all, &rs);
        set_rs_replicas(&mut rs, count);
        set_new_replica_set_annotations(d, &mut rs, new_revision, false);
        // What we send must not carry the model-only creation timestamp.
        let mut to_create = rs.clone();
        to_create.metadata.creation_timestamp = None;
        self.plan.actions.push(Action::CreateReplicaSet(to_create));
        if count > 0 {
            self.event(EventSpec::normal(
                SCALING_REPLICA_SET_REASON,
                format!("Scaled up replica set {name} from 0 to {count}"),
            ));
        }
        let mut needs_update = set_deployment_revision(&mut self.d, &new_revision.to_string());
        if progress_deadline_seconds(&self.d).is_some() {
            let mut status = self.status();
            let msg = format!("Created new replica set {name:?}");
            set_condition(
                &mut status,
                new_condition(
                    CONDITION_PROGRESSING,
                    "True",
                    NEW_REPLICA_SET_REASON,
                    msg,
                    self.now,
                ),
            );
            self.set_status(status);
            needs_update = true;
        }
        if needs_update {
            self.write_status();
        }
        self.rss.push(rs);
        self.rss.len() - 1
    }

    /// Upstream `scaleReplicaSet`; returns whether the size changed.
    pub fn scale_replica_set(&mut self, i: usize, new_scale: i32, force: bool) -> bool {
        let current = rs_replicas(&self.rss[i]);
        if !force && current == new_scale {
            return false;
        }
        let desired = replicas(&self.d);
        let max = desired + max_surge(&self.d);
        let size_changed = current != new_scale;
        if !size_changed && !replicas_annotations_need_update(&self.rss[i], desired, max) {
            return false;
        }
        let rs = &mut self.rss[i];
        set_rs_replicas(rs, new_scale);
        set_replicas_annotations(rs, desired, max);
        let name = rs.metadata.name.clone().unwrap_or_default();
        let update = rs.clone();
        self.plan.actions.push(Action::UpdateReplicaSet(update));
        if size_changed {
            let op = if current < new_scale { "up" } else { "down" };
            self.event(EventSpec::normal(
                SCALING_REPLICA_SET_REASON,
                format!("Scaled {op} replica set {name} from {current} to {new_scale}"),
            ));
        }
        size_changed
    }

    /// Upstream `cleanupDeployment`: delete the oldest fully scaled-down
    /// old ReplicaSets beyond `revisionHistoryLimit`.
    pub fn cleanup(&mut self, old: &[usize]) {
        let Some(limit) = revision_history_limit(&self.d) else {
            return;
        };
        let mut cleanable: Vec<usize> = old
            .iter()
            .copied()
            .filter(|i| self.rss[*i].metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| by_revision(&self.rss[*a], &self.rss[*b]));
        for i in cleanable.into_iter().take(diff as usize) {
            let rs = &self.rss[i];
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            let name = rs.metadata.name.clone().unwrap_or_default();
            self.plan.actions.push(Action::DeleteReplicaSet(name));
        }
    }

    /// Upstream `calculateStatus`.
    pub fn calculate_status(&self, new: Option<usize>) -> DeploymentStatus {
        let all = self.all_indices();
        let available = self.available_count(&all);
        let total = self.replica_count(&all);
        let unavailable = (total - available).max(0);
        let current = self.status();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation.filter(|g| *g != 0),
            replicas: nz(self.actual_count(&all)),
            updated_replicas: nz(new.map_or(0, |i| rs_status_replicas(&self.rss[i]))),
            ready_replicas: nz(all.iter().map(|i| rs_ready(&self.rss[*i])).sum()),
            available_replicas: nz(available),
            unavailable_replicas: nz(unavailable),
            collision_count: current.collision_count,
            terminating_replicas: self.terminating_count(),
            conditions: current.conditions.clone(),
        };
        if available >= replicas(&self.d) - max_unavailable(&self.d) {
            set_condition(
                &mut status,
                new_condition(
                    CONDITION_AVAILABLE,
                    "True",
                    MINIMUM_REPLICAS_AVAILABLE,
                    "Deployment has minimum availability.".into(),
                    self.now,
                ),
            );
        } else {
            set_condition(
                &mut status,
                new_condition(
                    CONDITION_AVAILABLE,
                    "False",
                    MINIMUM_REPLICAS_UNAVAILABLE,
                    "Deployment does not have minimum availability.".into(),
                    self.now,
                ),
            );
        }
        status
    }

    /// Upstream `GetTerminatingReplicaCountForReplicaSets`.
    fn terminating_count(&self) -> Option<i32> {
        let mut sum = 0;
        for rs in &self.rss {
            let st = rs.status.as_ref();
            let observed = st.and_then(|s| s.observed_generation).unwrap_or(0);
            match st.and_then(|s| s.terminating_replicas) {
                None if observed == 0 => {}
                None => return None,
                Some(n) => sum += n,
            }
        }
        Some(sum)
    }

    /// Upstream `syncDeploymentStatus`.
    pub fn sync_deployment_status(&mut self, new: Option<usize>) {
        let status = self.calculate_status(new);
        if self.d.status.as_ref() != Some(&status) {
            self.set_status(status);
            self.write_status();
        }
    }
}

/// Go's omitempty ints come back from the apiserver as absent.
pub fn nz(v: i32) -> Option<i32> {
    (v != 0).then_some(v)
}

/// Upstream `NewRSNewReplicas`.
pub fn new_rs_new_replicas(d: &Deployment, all: &[ReplicaSet], new: &ReplicaSet) -> i32 {
    if !is_rolling_update(d) {
        return replicas(d);
    }
    let desired = replicas(d);
    let current: i32 = all.iter().map(rs_replicas).sum();
    let max_total = desired + max_surge(d);
    if current >= max_total {
        return rs_replicas(new);
    }
    let up = (max_total - current).min(desired - rs_replicas(new));
    rs_replicas(new) + up
}

/// Upstream `DeploymentComplete`.
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = replicas(d);
    s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}
