//! The pure half of the disruption controller (upstream
//! `pkg/controller/disruption/disruption.go` `getExpectedPodCount`,
//! `countHealthyPods`, `buildDisruptedPodMap`, `updatePdbStatus`,
//! `failSafe`, and `component-helpers/apps/poddisruptionbudget`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controller_utils::is_pod_ready;

/// Upstream `DeletionTimeout`: how long an entry of `status.disruptedPods`
/// waits for its pod to be seen terminating before it is dropped.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// Upstream `policy.DisruptionAllowedCondition`.
pub const DISRUPTION_ALLOWED_CONDITION: &str = "DisruptionAllowed";
/// Upstream `policy.SufficientPodsReason`.
pub const SUFFICIENT_PODS_REASON: &str = "SufficientPods";
/// Upstream `policy.InsufficientPodsReason`.
pub const INSUFFICIENT_PODS_REASON: &str = "InsufficientPods";
/// Upstream `policy.SyncFailedReason`.
pub const SYNC_FAILED_REASON: &str = "SyncFailed";

/// Why the expected pod count cannot be computed (its `Display` is
/// upstream's error text, which lands in the `SyncFailed` condition and
/// the `CalculateExpectedPodCountFailed` event). Not retriable by itself:
/// the PDB is re-synced when its pods or their controllers change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectedCountError {
    #[error("found no controllers for pod {0:?}")]
    NoControllers(String),
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotAPercentage,
    #[error("invalid value {0:?}: strconv.Atoi: parsing {1:?}: invalid syntax")]
    BadPercentage(String, String),
}

/// The workload caches the scale finders read (upstream's listers).
pub trait Workloads {
    fn replication_controller(&self, ns: &str, name: &str) -> Option<Arc<ReplicationController>>;
    fn replica_set(&self, ns: &str, name: &str) -> Option<Arc<ReplicaSet>>;
    fn deployment(&self, ns: &str, name: &str) -> Option<Arc<Deployment>>;
    fn stateful_set(&self, ns: &str, name: &str) -> Option<Arc<StatefulSet>>;
}

/// `expectedPods`, `desiredHealthy` and the names of pods without a
/// controller (upstream `getExpectedPodCount`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expected {
    pub expected_count: i32,
    pub desired_healthy: i32,
    pub unmanaged_pods: Vec<String>,
}

/// Upstream `intstr.GetScaledValueFromIntOrPercent(v, total, true)`.
pub fn scaled_value_round_up(v: &IntOrString, total: i32) -> Result<i32, ExpectedCountError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let digits = s
                .strip_suffix('%')
                .ok_or(ExpectedCountError::NotAPercentage)?;
            let pct: i64 = digits
                .parse()
                .map_err(|_| ExpectedCountError::BadPercentage(s.clone(), digits.to_string()))?;
            let value = (pct * i64::from(total) + 99).div_euclid(100);
            Ok(i32::try_from(value).unwrap_or(i32::MAX))
        }
    }
}

/// Upstream `getExpectedPodCount`: an integer `minAvailable` counts the
/// selected pods; a percentage, or any `maxUnavailable`, counts the scale
/// of the pods' controllers.
pub fn expected_pod_count(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    workloads: &dyn Workloads,
) -> Result<Expected, ExpectedCountError> {
    let spec = pdb.spec.as_ref();
    if let Some(max_unavailable) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let (expected_count, unmanaged_pods) = expected_scale(pods, workloads)?;
        let max = scaled_value_round_up(max_unavailable, expected_count)?;
        return Ok(Expected {
            expected_count,
            desired_healthy: (expected_count - max).max(0),
            unmanaged_pods,
        });
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(min)) => Ok(Expected {
            expected_count: i32::try_from(pods.len()).unwrap_or(i32::MAX),
            desired_healthy: *min,
            unmanaged_pods: Vec::new(),
        }),
        Some(min @ IntOrString::String(_)) => {
            let (expected_count, unmanaged_pods) = expected_scale(pods, workloads)?;
            Ok(Expected {
                expected_count,
                desired_healthy: scaled_value_round_up(min, expected_count)?,
                unmanaged_pods,
            })
        }
        None => Ok(Expected::default()),
    }
}

/// Upstream `getExpectedScale`: the sum of the scales of the distinct
/// controllers of `pods`; pods without a controller are listed apart.
fn expected_scale(
    pods: &[&Pod],
    workloads: &dyn Workloads,
) -> Result<(i32, Vec<String>), ExpectedCountError> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut seen_refs: BTreeSet<String> = BTreeSet::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(owner) = component_base::ownerref::get_controller_of(&pod.metadata) else {
            unmanaged.push(name);
            continue;
        };
        if !seen_refs.insert(owner.uid.clone()) {
            continue;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let (uid, scale) = find_controller_scale(owner, ns, workloads)
            .ok_or(ExpectedCountError::NoControllers(name))?;
        scales.insert(uid, scale);
    }
    Ok((scales.values().sum(), unmanaged))
}

/// Upstream `finders()` in order: ReplicationController, Deployment (via
/// its ReplicaSet), ReplicaSet without a Deployment, StatefulSet. The
/// generic scale-subresource finder is not implemented: such owners count
/// as no controller.
pub fn find_controller_scale(
    owner: &OwnerReference,
    ns: &str,
    w: &dyn Workloads,
) -> Option<(String, i32)> {
    let uid_matches = |uid: &Option<String>| uid.as_deref() == Some(owner.uid.as_str());
    if is_kind(owner, "ReplicationController", &[""]) {
        let rc = w.replication_controller(ns, &owner.name)?;
        let replicas = rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        return uid_matches(&rc.metadata.uid).then(|| (owner.uid.clone(), replicas));
    }
    if is_kind(owner, "ReplicaSet", &["apps", "extensions"]) {
        let rs = w.replica_set(ns, &owner.name)?;
        if !uid_matches(&rs.metadata.uid) {
            return None;
        }
        return match component_base::ownerref::get_controller_of(&rs.metadata) {
            Some(rs_owner) if is_kind(rs_owner, "Deployment", &["apps", "extensions"]) => {
                let d = w.deployment(ns, &rs_owner.name)?;
                let uid = d.metadata.uid.clone()?;
                let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                (uid == rs_owner.uid).then_some((uid, replicas))
            }
            // Upstream skips a ReplicaSet controlled by any Deployment kind.
            Some(rs_owner) if rs_owner.kind == "Deployment" => None,
            _ => Some((owner.uid.clone(), rs_replicas(&rs))),
        };
    }
    if is_kind(owner, "StatefulSet", &["apps"]) {
        let ss = w.stateful_set(ns, &owner.name)?;
        let replicas = ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        return uid_matches(&ss.metadata.uid).then(|| (owner.uid.clone(), replicas));
    }
    None
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Upstream `verifyGroupKind`.
fn is_kind(owner: &OwnerReference, kind: &str, groups: &[&str]) -> bool {
    let group = match owner.api_version.split_once('/') {
        Some((group, _)) => group,
        None => "",
    };
    owner.kind == kind && groups.contains(&group)
}

/// The pruned `status.disruptedPods`, when to look again, and the pods
/// that overstayed [`DELETION_TIMEOUT`] (upstream `buildDisruptedPodMap`;
/// those get a `NotDeleted` event).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisruptedPods {
    pub pods: BTreeMap<String, Time>,
    pub recheck_at: Option<Timestamp>,
    pub not_deleted: Vec<String>,
}

pub fn build_disrupted_pods(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    now: Timestamp,
) -> DisruptedPods {
    let mut out = DisruptedPods::default();
    let Some(listed) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return out;
    };
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = listed.get(&name) else {
            continue;
        };
        let expected_deletion = deadline(at);
        if expected_deletion < now {
            out.not_deleted.push(name);
        } else {
            if out.recheck_at.is_none_or(|r| expected_deletion < r) {
                out.recheck_at = Some(expected_deletion);
            }
            out.pods.insert(name, at.clone());
        }
    }
    out
}

fn deadline(disrupted_at: &Time) -> Timestamp {
    disrupted_at
        .0
        .saturating_add(SignedDuration::from_secs(DELETION_TIMEOUT.as_secs() as i64))
        .unwrap_or(disrupted_at.0)
}

/// Upstream `countHealthyPods`: ready pods neither terminating nor
/// recently disrupted.
pub fn count_healthy(pods: &[&Pod], disrupted: &BTreeMap<String, Time>, now: Timestamp) -> i32 {
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            disrupted.get(name).is_none_or(|at| deadline(at) <= now)
        })
        .filter(|p| is_pod_ready(p))
        .count();
    i32::try_from(healthy).unwrap_or(i32::MAX)
}

/// The counts a sync computed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counts {
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_count: i32,
    pub disrupted_pods: BTreeMap<String, Time>,
}

/// Upstream `updatePdbStatus`: the new status, or `None` when the stored
/// one is already up to date (no write).
pub fn desired_status(
    pdb: &PodDisruptionBudget,
    counts: Counts,
    now: Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    // expectedCount must be positive so a PDB that matched no pods is safe
    // when its first pods appear before this controller saw them.
    let allowed = counts.current_healthy - counts.desired_healthy;
    let allowed = if counts.expected_count <= 0 || allowed <= 0 {
        0
    } else {
        allowed
    };
    let old = pdb.status.clone().unwrap_or_default();
    let generation = pdb.metadata.generation;
    let unchanged = old.current_healthy.unwrap_or(0) == counts.current_healthy
        && old.desired_healthy.unwrap_or(0) == counts.desired_healthy
        && old.expected_pods.unwrap_or(0) == counts.expected_count
        && old.disruptions_allowed.unwrap_or(0) == allowed
        && old.disrupted_pods.clone().unwrap_or_default() == counts.disrupted_pods
        && old.observed_generation == generation
        && conditions_are_up_to_date(pdb);
    if unchanged {
        return None;
    }
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: Some(counts.current_healthy),
        desired_healthy: Some(counts.desired_healthy),
        expected_pods: Some(counts.expected_count),
        disruptions_allowed: Some(allowed),
        disrupted_pods: (!counts.disrupted_pods.is_empty()).then_some(counts.disrupted_pods),
        observed_generation: generation,
        conditions: old.conditions,
    };
    update_disruption_allowed_condition(&mut status, now);
    Some(status)
}

/// Upstream `failSafe`: no disruptions allowed, `SyncFailed` with the
/// error's text; everything else as stored.
pub fn fail_safe_status(
    pdb: &PodDisruptionBudget,
    message: &str,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = Some(0);
    let condition = condition(
        false,
        SYNC_FAILED_REASON,
        message,
        status.observed_generation,
    );
    set_status_condition(
        status.conditions.get_or_insert_with(Vec::new),
        condition,
        now,
    );
    status
}

/// Upstream `pdbhelper.UpdateDisruptionAllowedCondition`.
fn update_disruption_allowed_condition(status: &mut PodDisruptionBudgetStatus, now: Timestamp) {
    let allowed = status.disruptions_allowed.unwrap_or(0) > 0;
    let reason = if allowed {
        SUFFICIENT_PODS_REASON
    } else {
        INSUFFICIENT_PODS_REASON
    };
    let condition = condition(allowed, reason, "", status.observed_generation);
    set_status_condition(
        status.conditions.get_or_insert_with(Vec::new),
        condition,
        now,
    );
}

/// Upstream `pdbhelper.ConditionsAreUpToDate`.
pub fn conditions_are_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = pdb.status.as_ref() else {
        return false;
    };
    let Some(cond) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED_CONDITION)
    else {
        return false;
    };
    if status.observed_generation != pdb.metadata.generation {
        return false;
    }
    if status.disruptions_allowed.unwrap_or(0) > 0 {
        cond.status == "True" && cond.reason == SUFFICIENT_PODS_REASON
    } else {
        cond.status == "False" && cond.reason == INSUFFICIENT_PODS_REASON
    }
}

fn condition(status: bool, reason: &str, message: &str, generation: Option<i64>) -> Condition {
    Condition {
        type_: DISRUPTION_ALLOWED_CONDITION.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// Upstream `apimeta.SetStatusCondition`: the transition time moves only
/// when the status flips.
fn set_status_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: Timestamp) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        None => {
            new.last_transition_time = Time(now);
            conditions.push(new);
        }
        Some(existing) => {
            if existing.status != new.status {
                existing.status = new.status;
                existing.last_transition_time = Time(now);
            }
            existing.reason = new.reason;
            existing.message = new.message;
            existing.observed_generation = new.observed_generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up_as_upstream() {
        let cases = [
            (IntOrString::Int(3), 10, Ok(3)),
            (IntOrString::String("34%".into()), 3, Ok(2)),
            (IntOrString::String("28%".into()), 11, Ok(4)),
            (IntOrString::String("30%".into()), 7, Ok(3)),
            (IntOrString::String("0%".into()), 7, Ok(0)),
            (IntOrString::String("100%".into()), 7, Ok(7)),
            (
                IntOrString::String("3".into()),
                7,
                Err(ExpectedCountError::NotAPercentage),
            ),
            (
                IntOrString::String("x%".into()),
                7,
                Err(ExpectedCountError::BadPercentage("x%".into(), "x".into())),
            ),
        ];
        for (value, total, want) in cases {
            assert_eq!(
                scaled_value_round_up(&value, total),
                want,
                "{value:?} of {total}"
            );
        }
    }

    #[test]
    fn condition_transition_time_moves_only_on_flips() {
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = t0 + SignedDuration::from_secs(10);
        let mut conds = Vec::new();
        set_status_condition(
            &mut conds,
            condition(true, SUFFICIENT_PODS_REASON, "", Some(1)),
            t0,
        );
        set_status_condition(
            &mut conds,
            condition(true, SUFFICIENT_PODS_REASON, "", Some(2)),
            t1,
        );
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, Time(t0));
        assert_eq!(conds[0].observed_generation, Some(2));
        set_status_condition(
            &mut conds,
            condition(false, INSUFFICIENT_PODS_REASON, "", Some(2)),
            t1,
        );
        assert_eq!(conds[0].last_transition_time, Time(t1));
        assert_eq!(conds[0].reason, INSUFFICIENT_PODS_REASON);
    }
}
