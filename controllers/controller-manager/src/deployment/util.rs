//! Deployment helpers (upstream `pkg/controller/deployment/util`):
//! annotations, revisions, surge/unavailability arithmetic, ReplicaSet
//! orderings, conditions and the pod-template hash.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED_CONFIG_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
const DEPRECATED_ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";

/// Upstream `apps.DefaultDeploymentUniqueLabelKey`.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Upstream `maxRevHistoryLengthInChars`.
pub const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

pub const CONDITION_PROGRESSING: &str = "Progressing";
pub const CONDITION_AVAILABLE: &str = "Available";
pub const CONDITION_REPLICA_FAILURE: &str = "ReplicaFailure";

pub const REPLICA_SET_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
pub const NEW_REPLICA_SET_REASON: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const PAUSED_DEPLOY_REASON: &str = "DeploymentPaused";
pub const RESUMED_DEPLOY_REASON: &str = "DeploymentResumed";
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

// --- spec accessors with the apiserver's defaults -------------------------

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn is_rolling_update(d: &Deployment) -> bool {
    let ty = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref());
    matches!(ty, None | Some("RollingUpdate"))
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

pub fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `None` means no deadline (unset or MaxInt32, upstream `HasProgressDeadline`).
pub fn progress_deadline_seconds(d: &Deployment) -> Option<i32> {
    match d.spec.as_ref().and_then(|s| s.progress_deadline_seconds) {
        Some(i32::MAX) => None,
        Some(v) => Some(v),
        // The apiserver defaults it to 600.
        None => Some(600),
    }
}

/// `None` means unlimited (upstream `HasRevisionHistoryLimit`).
pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    match d.spec.as_ref().and_then(|s| s.revision_history_limit) {
        Some(i32::MAX) => None,
        Some(v) => Some(v),
        None => Some(10),
    }
}

pub fn template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

// --- ReplicaSet accessors -------------------------------------------------

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Upstream `Revision`: a missing annotation is 0, garbage is an error (None).
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    match annotation(rs, REVISION_ANNOTATION) {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter()
        .filter_map(revision)
        .max()
        .unwrap_or(0)
        .max(0)
}

fn non_negative_i32_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(rs, key)?
        .parse::<u32>()
        .ok()
        .and_then(|v| i32::try_from(v).ok())
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    non_negative_i32_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    non_negative_i32_annotation(rs, MAX_REPLICAS_ANNOTATION)
}

// --- surge / unavailability ----------------------------------------------

/// Upstream `GetScaledValueFromIntOrPercent`; `None` for a malformed value.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match v {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let product = pct * i64::from(total);
            let value = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(value).ok()
        }
    }
}

fn rolling_params(d: &Deployment) -> (IntOrString, IntOrString) {
    let default = || IntOrString::String("25%".into());
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    (
        ru.and_then(|r| r.max_surge.clone()).unwrap_or_else(default),
        ru.and_then(|r| r.max_unavailable.clone())
            .unwrap_or_else(default),
    )
}

/// Upstream `ResolveFenceposts`: surge rounds up, unavailable rounds down;
/// both zero means one may be unavailable.
pub fn resolve_fenceposts(
    surge: &IntOrString,
    unavailable: &IntOrString,
    desired: i32,
) -> (i32, i32) {
    let s = scaled_value(surge, desired, true).unwrap_or(0);
    let mut u = scaled_value(unavailable, desired, false).unwrap_or(0);
    if s == 0 && u == 0 {
        u = 1;
    }
    (s, u)
}

pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    let (s, u) = rolling_params(d);
    resolve_fenceposts(&s, &u, replicas(d)).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling_update(d) || replicas(d) == 0 {
        return 0;
    }
    let (s, u) = rolling_params(d);
    resolve_fenceposts(&s, &u, replicas(d)).1.min(replicas(d))
}

// --- ReplicaSet sets ------------------------------------------------------

fn creation(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Upstream `ReplicaSetsByCreationTimestamp`: older first, then by name.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    creation(a)
        .cmp(&creation(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Upstream `ReplicaSetsBySizeNewer`: bigger first, then newer.
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// Upstream `ReplicaSetsBySizeOlder`: bigger first, then older.
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// Upstream `ReplicaSetsByRevision`: lower revision first.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    match (revision(a), revision(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        _ => by_creation(a, b),
    }
}

/// Upstream `EqualIgnoreHash`: templates equal apart from the
/// pod-template-hash label (an empty label map equals a missing one, as
/// with `Semantic.DeepEqual` after the delete).
pub fn equal_ignore_hash(t1: &PodTemplateSpec, t2: &PodTemplateSpec) -> bool {
    normalize_template(t1) == normalize_template(t2)
}

fn normalize_template(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    let meta = t.metadata.get_or_insert_with(Default::default);
    if let Some(labels) = meta.labels.as_mut() {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    if meta.labels.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.labels = None;
    }
    t
}

// --- conditions ------------------------------------------------------------

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Upstream `SetDeploymentCondition`: no-op for the same status and reason;
/// keeps the transition time when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(current) = get_condition(status, &cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conds) = status.conditions.as_mut() {
        conds.retain(|c| c.type_ != type_);
        if conds.is_empty() {
            status.conditions = None;
        }
    }
}

/// Upstream `ReplicaSetToDeploymentCondition`.
pub fn rs_condition_to_deployment(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_update_time: c.last_transition_time.clone(),
        last_transition_time: c.last_transition_time.clone(),
    }
}

// --- annotations -------------------------------------------------------------

fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_CONFIG_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | DEPRECATED_ROLLBACK_TO_ANNOTATION
    )
}

/// Upstream `copyDeploymentAnnotationsToReplicaSet`.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(k) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Upstream `SetReplicasAnnotations`.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut updated = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired.to_string()),
        (MAX_REPLICAS_ANNOTATION, max.to_string()),
    ] {
        if a.get(key) != Some(&value) {
            a.insert(key.to_string(), value);
            updated = true;
        }
    }
    updated
}

/// Upstream `ReplicasAnnotationsNeedUpdate`.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS_ANNOTATION) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS_ANNOTATION) != Some(max.to_string().as_str())
}

/// Upstream `SetNewReplicaSetAnnotations`: copy the Deployment's
/// annotations, bump the revision (remembering the previous one in
/// revision-history when the RS is re-used), and for a new RS set the
/// desired/max replicas annotations. Returns whether anything changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = a.get(REVISION_ANNOTATION).cloned();
    let old_int = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_int < new_revision {
        a.insert(REVISION_ANNOTATION.to_string(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            append_revision_history(a, &old);
        }
    }
    if !exists && set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

fn append_revision_history(a: &mut BTreeMap<String, String>, old_revision: &str) {
    let history = a
        .get(REVISION_HISTORY_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    if history.is_empty() {
        a.insert(
            REVISION_HISTORY_ANNOTATION.to_string(),
            old_revision.to_string(),
        );
        return;
    }
    let parts: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old_revision.len() + 1;
    let mut start = 0;
    while total > MAX_REV_HISTORY_LENGTH_IN_CHARS && start < parts.len() {
        total -= parts[start].len() + 1;
        start += 1;
    }
    if total <= MAX_REV_HISTORY_LENGTH_IN_CHARS {
        let mut kept: Vec<&str> = parts[start..].to_vec();
        kept.push(old_revision);
        a.insert(REVISION_HISTORY_ANNOTATION.to_string(), kept.join(","));
    }
}

/// Upstream `SetDeploymentRevision`.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let a = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if a.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    a.insert(REVISION_ANNOTATION.to_string(), revision.to_string());
    true
}

// --- pod-template hash -------------------------------------------------------

/// The `pod-template-hash` label value (see [`crate::hash`]).
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    crate::hash::pod_template_hash(template, collision_count)
}

/// Upstream `generateReplicaSetName`: truncate so the name fits 253 chars.
pub fn replica_set_name(deployment: &str, hash: &str) -> String {
    let max = 253usize.saturating_sub(1 + hash.len());
    let base = if deployment.len() > max && max > 0 {
        &deployment[..max]
    } else {
        deployment
    };
    format!("{base}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenceposts_round_like_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        let cases = [
            (pct("25%"), pct("25%"), 3, (1, 0)),
            (pct("25%"), pct("25%"), 4, (1, 1)),
            (pct("25%"), pct("25%"), 10, (3, 2)),
            (IntOrString::Int(0), IntOrString::Int(0), 5, (0, 1)),
            (IntOrString::Int(1), IntOrString::Int(0), 3, (1, 0)),
            (pct("0%"), pct("0%"), 3, (0, 1)),
        ];
        for (surge, unavailable, desired, want) in cases {
            assert_eq!(
                resolve_fenceposts(&surge, &unavailable, desired),
                want,
                "{surge:?} {unavailable:?} {desired}"
            );
        }
    }

    #[test]
    fn hash_depends_on_template_and_collision_count() {
        let t = PodTemplateSpec::default();
        assert_eq!(compute_hash(&t, None), compute_hash(&t, None));
        assert_ne!(compute_hash(&t, None), compute_hash(&t, Some(1)));
        assert_ne!(compute_hash(&t, Some(1)), compute_hash(&t, Some(2)));
    }

    #[test]
    fn revision_history_appends_and_trims() {
        let mut a = BTreeMap::new();
        append_revision_history(&mut a, "1");
        append_revision_history(&mut a, "3");
        assert_eq!(
            a.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
            Some("1,3")
        );
        let long = vec!["12345"; 400].join(",");
        a.insert(REVISION_HISTORY_ANNOTATION.into(), long);
        append_revision_history(&mut a, "99");
        let h = a
            .get(REVISION_HISTORY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        assert!(h.len() <= MAX_REV_HISTORY_LENGTH_IN_CHARS && h.ends_with(",99"));
    }
}
