//! The ReplicaSet controller's decisions (upstream `replica_set.go`
//! `manageReplicas`/`getPodsToDelete` and `replica_set_utils.go`
//! `calculateStatus`) as pure functions over cached objects.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::controller_utils::{
    is_pod_active, is_pod_available, is_pod_ready, sort_pods_for_deletion,
};

/// Upstream `BurstReplicas`: at most this many creations/deletions per sync.
pub const BURST_REPLICAS: usize = 500;

pub const CONDITION_REPLICA_FAILURE: &str = "ReplicaFailure";
pub const REASON_FAILED_CREATE: &str = "FailedCreate";
pub const REASON_FAILED_DELETE: &str = "FailedDelete";

/// What `manageReplicas` decides.
#[derive(Debug, PartialEq)]
pub enum Scale<'a> {
    InSync,
    Create(usize),
    /// Pods to delete, first-to-go first.
    Delete(Vec<&'a Pod>),
}

pub fn desired_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Upstream `manageReplicas`: too few → create (capped at the burst), too
/// many → delete the lowest-ranked. `related` are the active pods of all
/// ReplicaSets with the same controller, used to rank by co-location.
pub fn manage_replicas<'a>(
    rs: &ReplicaSet,
    active: &[&'a Pod],
    related: &[&Pod],
    now: Timestamp,
) -> Scale<'a> {
    let desired = desired_replicas(rs).max(0) as usize;
    if active.len() < desired {
        return Scale::Create((desired - active.len()).min(BURST_REPLICAS));
    }
    let diff = (active.len() - desired).min(BURST_REPLICAS);
    if diff == 0 {
        return Scale::InSync;
    }
    Scale::Delete(pods_to_delete(active, related, diff, now))
}

/// Upstream `getPodsToDelete` + `getPodsRankedByRelatedPodsOnSameNode`.
pub fn pods_to_delete<'a>(
    active: &[&'a Pod],
    related: &[&Pod],
    diff: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    let mut ranked: Vec<(&'a Pod, usize)> = active.iter().map(|p| (*p, 0)).collect();
    if diff < active.len() {
        let mut on_node: HashMap<&str, usize> = HashMap::new();
        for pod in related.iter().filter(|p| is_pod_active(p)) {
            *on_node.entry(node_of(pod)).or_default() += 1;
        }
        for (pod, rank) in ranked.iter_mut() {
            *rank = on_node.get(node_of(pod)).copied().unwrap_or(0);
        }
        sort_pods_for_deletion(&mut ranked, now);
    }
    ranked.into_iter().take(diff).map(|(p, _)| p).collect()
}

fn node_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// Upstream `calculateStatus`. `manage_error` is the message of a failed
/// `manageReplicas`, which sets the `ReplicaFailure` condition.
pub fn calculate_status(
    rs: &ReplicaSet,
    active: &[&Pod],
    terminating: usize,
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = min_ready_seconds(rs);
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in active {
        let labels = pod.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let has_failure = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == CONDITION_REPLICA_FAILURE);
    match manage_error {
        Some(message) if !has_failure => {
            let diff = active.len() as i64 - i64::from(desired_replicas(rs));
            let reason = match diff {
                d if d < 0 => REASON_FAILED_CREATE,
                d if d > 0 => REASON_FAILED_DELETE,
                _ => "",
            };
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(ReplicaSetCondition {
                    type_: CONDITION_REPLICA_FAILURE.to_string(),
                    status: "True".to_string(),
                    reason: Some(reason.to_string()),
                    message: Some(message.to_string()),
                    last_transition_time: Some(Time(now)),
                });
        }
        None if has_failure => {
            if let Some(conds) = status.conditions.as_mut() {
                conds.retain(|c| c.type_ != CONDITION_REPLICA_FAILURE);
            }
        }
        _ => {}
    }
    status.replicas = active.len() as i32;
    // Go's omitempty ints come back from the apiserver as absent.
    let nz = |v: i32| (v != 0).then_some(v);
    status.fully_labeled_replicas = nz(fully_labeled);
    status.ready_replicas = nz(ready);
    status.available_replicas = nz(available);
    // DeploymentReplicaSetTerminatingReplicas is beta and on in v1.36.
    status.terminating_replicas = Some(terminating as i32);
    status
}

/// The status to write: the computed one stamped with the observed
/// generation (upstream `updateReplicaSetStatus`), or `None` if unchanged.
pub fn status_update(rs: &ReplicaSet, mut computed: ReplicaSetStatus) -> Option<ReplicaSetStatus> {
    computed.observed_generation = rs.metadata.generation;
    let current = rs.status.clone().unwrap_or_default();
    (current != computed).then_some(computed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller_utils::testing::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use kube::api::ObjectMeta;

    fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: Default::default(),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "web".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: None,
                }),
                min_ready_seconds: None,
            }),
            status: None,
        }
    }

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn scale_decisions() {
        let now = ts(10_000);
        let pods: Vec<Pod> = (0..4).map(|i| pod(&format!("p{i}"))).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(
            manage_replicas(&rs(3), &refs[..0], &[], now),
            Scale::Create(3)
        );
        assert_eq!(
            manage_replicas(&rs(3), &refs[..1], &[], now),
            Scale::Create(2)
        );
        assert_eq!(manage_replicas(&rs(3), &refs[..3], &[], now), Scale::InSync);
        assert_eq!(
            manage_replicas(&rs(1000), &[], &[], now),
            Scale::Create(BURST_REPLICAS)
        );
        match manage_replicas(&rs(0), &refs, &[], now) {
            Scale::Delete(del) => assert_eq!(del.len(), 4),
            other => panic!("expected deletion, got {other:?}"),
        }
    }

    #[test]
    fn scale_down_deletes_lowest_ranked_first() {
        let now = ts(1_000_000);
        let ready = ready_since(on_node(pod("ready"), "n1"), 100);
        let pending = on_node(pod("pending"), "n1");
        let unscheduled = pod("unscheduled");
        let crowded = phase(on_node(pod("crowded"), "n2"), "Running");
        let lonely = phase(on_node(pod("lonely"), "n3"), "Running");
        let other_rs_on_n2 = phase(on_node(pod("sibling"), "n2"), "Running");
        let active = [&ready, &lonely, &crowded, &pending, &unscheduled];
        let related = [
            &ready,
            &lonely,
            &crowded,
            &pending,
            &unscheduled,
            &other_rs_on_n2,
        ];
        match manage_replicas(&rs(1), &active, &related, now) {
            Scale::Delete(del) => {
                assert_eq!(names(&del), ["unscheduled", "pending", "crowded", "lonely"])
            }
            other => panic!("expected deletion, got {other:?}"),
        }
    }

    #[test]
    fn status_counts_and_failure_condition() {
        let now = ts(1_000);
        let mut set = rs(3);
        if let Some(spec) = set.spec.as_mut() {
            spec.min_ready_seconds = Some(30);
        }
        let labeled = labels(ready_since(pod("a"), 0), &[("app", "web")]);
        let fresh = labels(ready_since(pod("b"), 990), &[("app", "web")]);
        let unlabeled = pod("c");
        let active = [&labeled, &fresh, &unlabeled];
        let status = calculate_status(&set, &active[..2], 1, Some("quota exceeded"), now);
        assert_eq!(status.replicas, 2);
        assert_eq!(status.fully_labeled_replicas, Some(2));
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(1));
        assert_eq!(status.terminating_replicas, Some(1));
        let cond = status
            .conditions
            .as_ref()
            .and_then(|c| c.first())
            .cloned()
            .unwrap_or_default();
        assert_eq!(cond.type_, CONDITION_REPLICA_FAILURE);
        assert_eq!(cond.reason.as_deref(), Some(REASON_FAILED_CREATE));
        assert_eq!(cond.message.as_deref(), Some("quota exceeded"));

        set.status = Some(status);
        let healed = calculate_status(&set, &active, 0, None, now);
        assert!(healed.conditions.unwrap_or_default().is_empty());
        assert_eq!(healed.fully_labeled_replicas, Some(2));
        let empty = calculate_status(&rs(0), &[], 0, None, now);
        assert_eq!(
            (empty.ready_replicas, empty.terminating_replicas),
            (None, Some(0))
        );
    }

    #[test]
    fn status_update_only_when_changed() {
        let mut set = rs(0);
        let computed = calculate_status(&set, &[], 0, None, ts(1));
        let update = status_update(&set, computed.clone());
        assert_eq!(update.as_ref().and_then(|s| s.observed_generation), Some(3));
        set.status = update;
        assert_eq!(status_update(&set, computed), None);
    }
}
