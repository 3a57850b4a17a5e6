//! Pod QoS class (`v1qos.GetPodQOS`) and the OOM score policy (`pkg/kubelet/qos/policy.go`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::resources::{get, milli_value, value};
use crate::types::is_static_pod;

pub const GUARANTEED: &str = "Guaranteed";
pub const BURSTABLE: &str = "Burstable";
pub const BEST_EFFORT: &str = "BestEffort";

/// OOM score adjustments of upstream's policy.
pub const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
pub const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

fn qos_compute_resource(name: &str) -> bool {
    name == "cpu" || name == "memory"
}

/// `ComputePodQOS`: sums positive cpu/memory requests and limits over all containers.
pub fn compute_pod_qos(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return BEST_EFFORT;
    };
    let mut requests: BTreeMap<&str, i64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i64> = BTreeMap::new();
    let mut guaranteed = true;
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in all {
        let res = c.resources.as_ref();
        for (name, q) in res.and_then(|r| r.requests.as_ref()).into_iter().flatten() {
            let m = milli_value(Some(q));
            if qos_compute_resource(name) && m > 0 {
                *requests.entry(name.as_str()).or_default() += m;
            }
        }
        let mut found = 0;
        for (name, q) in res.and_then(|r| r.limits.as_ref()).into_iter().flatten() {
            let m = milli_value(Some(q));
            if qos_compute_resource(name) && m > 0 {
                found += 1;
                *limits.entry(name.as_str()).or_default() += m;
            }
        }
        if found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return BEST_EFFORT;
    }
    if guaranteed
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
        && requests.len() == limits.len()
    {
        return GUARANTEED;
    }
    BURSTABLE
}

/// `GetPodQOS`: the recorded class if the status has one.
pub fn pod_qos(pod: &Pod) -> &'static str {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some(GUARANTEED) => GUARANTEED,
        Some(BURSTABLE) => BURSTABLE,
        Some(BEST_EFFORT) => BEST_EFFORT,
        _ => compute_pod_qos(pod),
    }
}

/// `IsCriticalPod` && priority class `system-node-critical`.
pub fn is_node_critical_pod(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let critical = is_static_pod(pod)
        || spec.and_then(|s| s.priority).unwrap_or(0) >= SYSTEM_CRITICAL_PRIORITY;
    critical && spec.and_then(|s| s.priority_class_name.as_deref()) == Some("system-node-critical")
}

/// `GetContainerOOMScoreAdjust`.
pub fn container_oom_score_adjust(pod: &Pod, container: &Container, memory_capacity: i64) -> i64 {
    if is_node_critical_pod(pod) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match pod_qos(pod) {
        GUARANTEED => return GUARANTEED_OOM_SCORE_ADJ,
        BEST_EFFORT => return BEST_EFFORT_OOM_SCORE_ADJ,
        _ => {}
    }
    let request = value(get(
        container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref()),
        "memory",
    ));
    let adjust = if memory_capacity > 0 {
        1000 - (1000 * request) / memory_capacity
    } else {
        1000
    };
    if adjust < 1000 + GUARANTEED_OOM_SCORE_ADJ {
        return 1000 + GUARANTEED_OOM_SCORE_ADJ;
    }
    if adjust == BEST_EFFORT_OOM_SCORE_ADJ {
        return adjust - 1;
    }
    adjust
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn rl(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
        if pairs.is_empty() {
            return None;
        }
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect(),
        )
    }

    fn container(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: rl(req),
                limits: rl(lim),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn qos_classes() {
        let cases = [
            (vec![container(&[], &[])], BEST_EFFORT),
            (vec![container(&[("cpu", "100m")], &[])], BURSTABLE),
            (
                vec![container(
                    &[("cpu", "1"), ("memory", "1Gi")],
                    &[("cpu", "1"), ("memory", "1Gi")],
                )],
                GUARANTEED,
            ),
            // Limits only (no API defaulting applied): request count differs from limits.
            (
                vec![container(&[], &[("cpu", "1"), ("memory", "1Gi")])],
                BURSTABLE,
            ),
            (
                vec![container(
                    &[("cpu", "500m")],
                    &[("cpu", "1"), ("memory", "1Gi")],
                )],
                BURSTABLE,
            ),
            (vec![container(&[], &[("cpu", "1")])], BURSTABLE),
            (
                vec![
                    container(
                        &[("cpu", "1"), ("memory", "1Gi")],
                        &[("cpu", "1"), ("memory", "1Gi")],
                    ),
                    container(&[], &[]),
                ],
                BURSTABLE,
            ),
        ];
        for (i, (containers, want)) in cases.into_iter().enumerate() {
            assert_eq!(compute_pod_qos(&pod(containers)), want, "case {i}");
        }
    }

    #[test]
    fn oom_score_adjust_policy() {
        let gi = 1024 * 1024 * 1024;
        let burstable = container(&[("memory", "1Gi")], &[]);
        let p = pod(vec![burstable.clone()]);
        assert_eq!(container_oom_score_adjust(&p, &burstable, 4 * gi), 750);
        let tiny = container(&[("cpu", "1m")], &[]);
        assert_eq!(
            container_oom_score_adjust(&pod(vec![tiny.clone()]), &tiny, 4 * gi),
            999
        );
        let huge = container(&[("memory", "8Gi")], &[]);
        assert_eq!(
            container_oom_score_adjust(&pod(vec![huge.clone()]), &huge, 4 * gi),
            3
        );
        let be = container(&[], &[]);
        assert_eq!(
            container_oom_score_adjust(&pod(vec![be.clone()]), &be, 4 * gi),
            1000
        );
    }
}
