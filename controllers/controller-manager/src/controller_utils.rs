//! Helpers shared by the workload controllers (upstream
//! `pkg/controller/controller_utils.go`): object keys, expectations, pod
//! predicates, deletion ranking and pod-from-template creation.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

/// Upstream `ExpectationsTimeout`: a controller stops waiting for its
/// expected creations/deletions to be observed after this long.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Upstream `SlowStartInitialBatchSize`.
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;

/// Annotation holding a pod's deletion cost (`PodDeletionCost`, beta, on).
pub const POD_DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A work-queue key: `namespace/name` (or `name` for cluster objects).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: Option<String>,
    pub name: String,
}

impl Key {
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        Self {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    pub fn from_meta(meta: &ObjectMeta) -> Self {
        Self::new(
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
        )
    }

    pub fn of<K: Resource>(obj: &K) -> Self {
        Self::from_meta(obj.meta())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Upstream `UIDTrackingControllerExpectations`: how many creations a
/// controller still waits to see in its cache, and which pods it deleted
/// but has not yet seen disappear. While unsatisfied (and not expired) the
/// controller must not act on the possibly stale cache again.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Expectation>>,
}

struct Expectation {
    adds: i64,
    deletes: HashSet<String>,
    set_at: std::time::Instant,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expectation>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn expect_creations(&self, key: &str, adds: usize) {
        self.lock().insert(
            key.to_string(),
            Expectation {
                adds: adds as i64,
                deletes: HashSet::new(),
                set_at: std::time::Instant::now(),
            },
        );
    }

    /// Expects the pods with these `namespace/name` keys to disappear.
    pub fn expect_deletions(&self, key: &str, pod_keys: impl IntoIterator<Item = String>) {
        self.lock().insert(
            key.to_string(),
            Expectation {
                adds: 0,
                deletes: pod_keys.into_iter().collect(),
                set_at: std::time::Instant::now(),
            },
        );
    }

    /// Upstream `SetExpectations` with the deleted pods' keys: both kinds
    /// of write pending at once (the DaemonSet controller's `syncNodes`).
    pub fn expect_creations_and_deletions(
        &self,
        key: &str,
        adds: usize,
        pod_keys: impl IntoIterator<Item = String>,
    ) {
        self.lock().insert(
            key.to_string(),
            Expectation {
                adds: adds as i64,
                deletes: pod_keys.into_iter().collect(),
                set_at: std::time::Instant::now(),
            },
        );
    }

    pub fn creation_observed(&self, key: &str) {
        if let Some(exp) = self.lock().get_mut(key) {
            exp.adds -= 1;
        }
    }

    pub fn deletion_observed(&self, key: &str, pod_key: &str) {
        if let Some(exp) = self.lock().get_mut(key) {
            exp.deletes.remove(pod_key);
        }
    }

    /// True when nothing is pending, the expectations expired, or none exist.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(exp) => {
                (exp.adds <= 0 && exp.deletes.is_empty())
                    || exp.set_at.elapsed() > EXPECTATIONS_TIMEOUT
            }
        }
    }

    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// Upstream `slowStartBatch` sizes: 1, 2, 4, … capped by what is left.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut size = initial.max(1).min(remaining);
    while size > 0 {
        batches.push(size);
        remaining -= size;
        size = (2 * size).min(remaining);
    }
    batches
}

pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod_phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

/// Upstream `IsPodTerminating`: being deleted but not yet terminal.
pub fn is_pod_terminating(pod: &Pod) -> bool {
    let phase = pod_phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_some()
}

pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Upstream `podutil.IsPodAvailable`: ready for at least `min_ready_seconds`.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(cond) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    cond.last_transition_time
        .as_ref()
        .and_then(|t| {
            t.0.checked_add(jiff::SignedDuration::from_secs(min_ready_seconds.into()))
                .ok()
        })
        .is_some_and(|available_at| available_at <= now)
}

/// Delay until the next not-yet-available ready pod becomes available
/// (upstream `FindMinNextPodAvailabilityCheck`, simplified to the exact
/// remaining time).
pub fn min_next_availability_check<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pods.into_iter()
        .filter(|p| is_pod_ready(p) && !is_pod_available(p, min_ready_seconds, now))
        .filter_map(|p| ready_condition(p)?.last_transition_time.as_ref())
        .filter_map(|t| {
            let at =
                t.0.checked_add(jiff::SignedDuration::from_secs(min_ready_seconds.into()))
                    .ok()?;
            Duration::try_from(at.duration_since(now)).ok()
        })
        .min()
}

/// Upstream `GetPodFromTemplate`: labels, annotations, finalizers and spec
/// from the template, `generateName` `<owner>-`, the controller reference.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner_name: &str,
    controller_ref: Option<OwnerReference>,
) -> Pod {
    let tmeta = template.metadata.as_ref();
    let non_empty = |m: Option<&BTreeMap<String, String>>| m.filter(|m| !m.is_empty()).cloned();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(pod_name_prefix(owner_name)),
            labels: non_empty(tmeta.and_then(|m| m.labels.as_ref())),
            annotations: non_empty(tmeta.and_then(|m| m.annotations.as_ref())),
            finalizers: tmeta
                .and_then(|m| m.finalizers.clone())
                .filter(|f| !f.is_empty()),
            owner_references: controller_ref.map(|r| vec![r]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// `<name>-` unless that would be an invalid generateName, as upstream.
fn pod_name_prefix(owner_name: &str) -> String {
    let prefix = format!("{owner_name}-");
    // Generated names are the prefix plus 5 characters within the
    // 253-character subdomain limit; upstream validates the masked prefix.
    if owner_name.len() <= 252 {
        prefix
    } else {
        owner_name.to_string()
    }
}

/// Upstream `ActivePodsWithRanks` sort order: the pods to delete first come
/// first. Each pod's rank is the number of related active pods on its node.
pub fn sort_pods_for_deletion(pods: &mut [(&Pod, usize)], now: Timestamp) {
    pods.sort_by(|a, b| deletion_order(a, b, now));
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod_phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn deletion_cost(pod: &Pod) -> i32 {
    let Some(value) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST_ANNOTATION))
    else {
        return 0;
    };
    // Upstream rejects "+1" and leading zeros ("007") and defaults to 0.
    let valid_start = match value.as_bytes() {
        [] => false,
        [b'0', _, ..] => false,
        [b'-', b'0', ..] => false,
        [b'-', rest @ ..] => rest.first().is_some_and(u8::is_ascii_digit),
        [first, ..] => first.is_ascii_digit(),
    };
    if !valid_start {
        return 0;
    }
    value.parse().unwrap_or(0)
}

fn ready_time(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

fn creation_time(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn max_restarts(pod: &Pod) -> (i32, i32) {
    let Some(status) = pod.status.as_ref() else {
        return (0, 0);
    };
    let regular = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    let sidecars: HashSet<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let sidecar = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| sidecars.contains(c.name.as_str()))
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    (regular, sidecar)
}

/// `afterOrZero(t1, t2)` as an ordering: a missing time sorts first, then
/// newer before older.
fn newer_first(t1: Option<Timestamp>, t2: Option<Timestamp>) -> Ordering {
    match (t1, t2) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// Upstream `logarithmicRankDiff` (LogarithmicScaleDown is GA): times in
/// the same power-of-two age bucket count as equal.
fn log_bucket(t: Timestamp, now: Timestamp) -> i64 {
    let nanos = now.duration_since(t).as_nanos();
    if nanos > 0 {
        (nanos as f64).log2() as i64
    } else {
        -1
    }
}

/// Newer (by log bucket) first; equal buckets fall back to UID order.
fn compare_times_logarithmic(
    t1: Option<Timestamp>,
    t2: Option<Timestamp>,
    a: &Pod,
    b: &Pod,
    now: Timestamp,
) -> Ordering {
    match (t1, t2) {
        (Some(x), Some(y)) if x != y => match log_bucket(x, now).cmp(&log_bucket(y, now)) {
            Ordering::Equal => a.metadata.uid.cmp(&b.metadata.uid),
            other => other,
        },
        (x, y) if x != y => newer_first(x, y),
        _ => Ordering::Equal,
    }
}

fn deletion_order(a: &(&Pod, usize), b: &(&Pod, usize), now: Timestamp) -> Ordering {
    let (pa, ra) = (a.0, a.1);
    let (pb, rb) = (b.0, b.1);
    let (na, nb) = (node_name(pa), node_name(pb));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let by_phase = phase_ordinal(pa).cmp(&phase_ordinal(pb));
    if by_phase != Ordering::Equal {
        return by_phase;
    }
    let (ready_a, ready_b) = (is_pod_ready(pa), is_pod_ready(pb));
    if ready_a != ready_b {
        return if ready_a {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    let by_cost = deletion_cost(pa).cmp(&deletion_cost(pb));
    if by_cost != Ordering::Equal {
        return by_cost;
    }
    // More co-located pods: delete first.
    if ra != rb {
        return rb.cmp(&ra);
    }
    if ready_a && ready_b {
        let by_ready = compare_times_logarithmic(ready_time(pa), ready_time(pb), pa, pb, now);
        if by_ready != Ordering::Equal {
            return by_ready;
        }
    }
    let (restarts_a, restarts_b) = (max_restarts(pa), max_restarts(pb));
    if restarts_a.0 != restarts_b.0 {
        return restarts_b.0.cmp(&restarts_a.0);
    }
    if restarts_a.1 != restarts_b.1 {
        return restarts_b.1.cmp(&restarts_a.1);
    }
    compare_times_logarithmic(creation_time(pa), creation_time(pb), pa, pb, now)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Plain-object builders shared by the controllers' unit tests.
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    pub fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(ts(1000))),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            }),
        }
    }

    pub fn on_node(mut p: Pod, node: &str) -> Pod {
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = Some(node.into());
        }
        p
    }

    pub fn phase(mut p: Pod, phase: &str) -> Pod {
        if let Some(status) = p.status.as_mut() {
            status.phase = Some(phase.into());
        }
        p
    }

    pub fn ready_since(mut p: Pod, secs: i64) -> Pod {
        if let Some(status) = p.status.as_mut() {
            status.phase = Some("Running".into());
            status.conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(secs))),
                ..Default::default()
            }]);
        }
        p
    }

    pub fn created(mut p: Pod, secs: i64) -> Pod {
        p.metadata.creation_timestamp = Some(Time(ts(secs)));
        p
    }

    pub fn labels(mut p: Pod, pairs: &[(&str, &str)]) -> Pod {
        p.metadata.labels = Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        p
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn slow_start_doubles_batches() {
        assert_eq!(slow_start_batches(0, 1), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1, 1), vec![1]);
        assert_eq!(slow_start_batches(10, 1), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15, 1), vec![1, 2, 4, 8]);
    }

    #[test]
    fn expectations_lifecycle() {
        let exp = Expectations::default();
        assert!(exp.satisfied("ns/rs"));
        exp.expect_creations("ns/rs", 2);
        assert!(!exp.satisfied("ns/rs"));
        exp.creation_observed("ns/rs");
        assert!(!exp.satisfied("ns/rs"));
        exp.creation_observed("ns/rs");
        assert!(exp.satisfied("ns/rs"));
        exp.expect_deletions("ns/rs", ["ns/a".to_string(), "ns/b".to_string()]);
        exp.deletion_observed("ns/rs", "ns/a");
        exp.deletion_observed("ns/rs", "ns/a");
        assert!(!exp.satisfied("ns/rs"));
        exp.deletion_observed("ns/rs", "ns/b");
        assert!(exp.satisfied("ns/rs"));
        exp.expect_creations("ns/rs", 1);
        exp.delete("ns/rs");
        assert!(exp.satisfied("ns/rs"));
    }

    #[test]
    fn deletion_ranking_matches_upstream_order() {
        let now = ts(100_000);
        let unassigned = pod("unassigned");
        let pending = on_node(pod("pending"), "n1");
        let unknown = phase(on_node(pod("unknown"), "n1"), "Unknown");
        let running = phase(on_node(pod("running"), "n1"), "Running");
        let ready_old = ready_since(on_node(pod("ready-old"), "n1"), 1_000);
        let ready_new = ready_since(on_node(pod("ready-new"), "n1"), 90_000);
        let mut costly = ready_since(on_node(pod("costly"), "n1"), 90_000);
        costly.metadata.annotations =
            Some([(POD_DELETION_COST_ANNOTATION.to_string(), "100".to_string())].into());
        let mut pods: Vec<(&Pod, usize)> = vec![
            (&costly, 1),
            (&ready_old, 1),
            (&running, 1),
            (&ready_new, 1),
            (&unknown, 1),
            (&pending, 1),
            (&unassigned, 1),
        ];
        sort_pods_for_deletion(&mut pods, now);
        let names: Vec<_> = pods
            .iter()
            .map(|(p, _)| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "unassigned",
                "pending",
                "unknown",
                "running",
                "ready-new",
                "ready-old",
                "costly"
            ]
        );
    }

    #[test]
    fn deletion_ranking_prefers_crowded_nodes_then_restarts_then_newer() {
        let now = ts(1_000_000);
        let a = created(phase(on_node(pod("a"), "n1"), "Running"), 10);
        let b = created(phase(on_node(pod("b"), "n2"), "Running"), 10);
        let mut c = created(phase(on_node(pod("c"), "n1"), "Running"), 10);
        if let Some(status) = c.status.as_mut() {
            status.container_statuses = Some(vec![k8s_openapi::api::core::v1::ContainerStatus {
                restart_count: 3,
                ..Default::default()
            }]);
        }
        // Much newer creation time: a different log2 age bucket.
        let d = created(phase(on_node(pod("d"), "n1"), "Running"), 999_990);
        let mut pods = vec![(&a, 1), (&b, 3), (&c, 1), (&d, 1)];
        sort_pods_for_deletion(&mut pods, now);
        let names: Vec<_> = pods
            .iter()
            .map(|(p, _)| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["b", "c", "d", "a"]);
    }

    #[test]
    fn deletion_cost_parsing_follows_upstream_validation() {
        let with = |v: &str| {
            let mut p = pod("p");
            p.metadata.annotations =
                Some([(POD_DELETION_COST_ANNOTATION.to_string(), v.to_string())].into());
            deletion_cost(&p)
        };
        assert_eq!(with("10"), 10);
        assert_eq!(with("-5"), -5);
        assert_eq!(with("0"), 0);
        assert_eq!(with("+3"), 0);
        assert_eq!(with("007"), 0);
        assert_eq!(with("abc"), 0);
    }

    #[test]
    fn availability_respects_min_ready_seconds() {
        let p = ready_since(pod("p"), 100);
        assert!(is_pod_available(&p, 0, ts(100)));
        assert!(!is_pod_available(&p, 10, ts(105)));
        assert!(is_pod_available(&p, 10, ts(110)));
        assert!(!is_pod_available(&pod("q"), 0, ts(110)));
        assert_eq!(
            min_next_availability_check([&p], 10, ts(105)),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn pod_from_template_sets_generate_name_and_owner() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(Default::default()),
        };
        let owner = ObjectMeta {
            name: Some("web-abc".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let pod = pod_from_template(
            &template,
            "web-abc",
            Some(component_base::ownerref::new_controller_ref(
                &owner,
                "apps/v1",
                "ReplicaSet",
            )),
        );
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(
            component_base::ownerref::get_controller_of(&pod.metadata).map(|r| r.uid.as_str()),
            Some("u1")
        );
        assert_eq!(
            pod.metadata.labels,
            template.metadata.and_then(|m| m.labels)
        );
    }
}

/// An object's UID, empty when unset (objects from the apiserver have one).
pub fn uid_of<K: Resource>(obj: &K) -> &str {
    obj.meta().uid.as_deref().unwrap_or_default()
}

/// Upstream `controller_ref_manager` adoption: the patch naming `me` as
/// the controller of the object with `uid`.
pub fn adopt_patch(
    me: &component_base::ownerref::ClaimingController,
    uid: &str,
) -> Result<serde_json::Value, crate::error::Error> {
    Ok(serde_json::to_value(
        component_base::ownerref::adopt_patch(me, uid, &[]),
    )?)
}

/// Upstream release: the patch dropping `me` from the object with `uid`.
pub fn release_patch(
    me: &component_base::ownerref::ClaimingController,
    uid: &str,
) -> Result<serde_json::Value, crate::error::Error> {
    Ok(serde_json::to_value(
        component_base::ownerref::release_patch(uid, &[me.uid.as_str()], &[]),
    )?)
}

/// The outcome of an adopt patch: `Ok(None)` when the object vanished
/// (ignorable, as upstream), otherwise the patched object.
pub fn adopted<K>(
    result: Result<K, crate::error::Error>,
) -> Result<Option<K>, crate::error::Error> {
    claimed(
        result,
        component_base::ownerref::adoption_error_is_ignorable,
    )
}

/// The outcome of a release patch: NotFound and Invalid are ignorable, as
/// upstream.
pub fn released<K>(result: Result<K, crate::error::Error>) -> Result<(), crate::error::Error> {
    claimed(result, component_base::ownerref::release_error_is_ignorable).map(|_| ())
}

fn claimed<K>(
    result: Result<K, crate::error::Error>,
    ignorable: fn(&kube::Error) -> bool,
) -> Result<Option<K>, crate::error::Error> {
    match result {
        Ok(patched) => Ok(Some(patched)),
        Err(crate::error::Error::Kube(err)) if ignorable(&err) => Ok(None),
        Err(err) => Err(err),
    }
}
