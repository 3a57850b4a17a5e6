//! Shared resource scoring for NodeResourcesFit and NodeResourcesBalancedAllocation
//! (upstream `noderesources/resource_allocation.go` and the three scoring strategies).

use serde::Deserialize;

use crate::Error;
use crate::framework::resource::{
    CPU, EPHEMERAL_STORAGE, MEMORY, is_scalar_resource_name, pod_requests,
};
use crate::framework::{MAX_NODE_SCORE, NodeInfo};
use k8s_openapi::api::core::v1::Pod;

/// Upstream `MaxCustomPriorityScore`: shape scores are 0..=10 and scaled to 0..=100.
const MAX_CUSTOM_PRIORITY_SCORE: i64 = 10;
const MAX_UTILIZATION: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResourceSpec {
    pub name: String,
    #[serde(default)]
    pub weight: i64,
}

pub fn default_resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec {
            name: CPU.into(),
            weight: 1,
        },
        ResourceSpec {
            name: MEMORY.into(),
            weight: 1,
        },
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct UtilizationShapePoint {
    pub utilization: i64,
    pub score: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    LeastAllocated,
    MostAllocated,
    RequestedToCapacityRatio(Vec<UtilizationShapePoint>),
    /// NodeResourcesBalancedAllocation's standard-deviation scorer.
    Balanced,
}

/// Scores a node from per-resource requested/allocatable values.
#[derive(Debug, Clone)]
pub struct ResourceAllocationScorer {
    pub strategy: Strategy,
    pub resources: Vec<ResourceSpec>,
    /// Use real requests rather than the non-zero scoring defaults (BalancedAllocation).
    pub use_requested: bool,
}

impl ResourceAllocationScorer {
    pub fn new(
        strategy: Strategy,
        resources: Vec<ResourceSpec>,
        use_requested: bool,
    ) -> Result<Self, Error> {
        for r in &resources {
            if !(1..=100).contains(&r.weight) {
                return Err(Error::InvalidConfig(format!(
                    "resource {:?}: weight {} must be in the range [1, 100]",
                    r.name, r.weight
                )));
            }
        }
        if let Strategy::RequestedToCapacityRatio(shape) = &strategy {
            validate_shape(shape)?;
        }
        Ok(ResourceAllocationScorer {
            strategy,
            resources,
            use_requested,
        })
    }

    /// Pod requests in `resources` order (upstream `calculatePodResourceRequestList`).
    pub fn pod_request_list(&self, pod: &Pod) -> Vec<i64> {
        let r = pod_requests(pod, !self.use_requested);
        self.resources
            .iter()
            .map(|spec| r.get(&spec.name))
            .collect()
    }

    /// Upstream `calculateResourceAllocatableRequest`.
    fn allocatable_and_requested(
        &self,
        node: &NodeInfo,
        name: &str,
        pod_request: i64,
    ) -> (i64, i64) {
        let requested = if self.use_requested {
            &node.requested
        } else {
            &node.non_zero_requested
        };
        if pod_request == 0 && is_scalar_resource_name(name) {
            return (0, 0);
        }
        match name {
            CPU => (
                node.allocatable.milli_cpu,
                requested.milli_cpu + pod_request,
            ),
            MEMORY => (node.allocatable.memory, requested.memory + pod_request),
            EPHEMERAL_STORAGE => (
                node.allocatable.ephemeral_storage,
                node.requested.ephemeral_storage + pod_request,
            ),
            other if is_scalar_resource_name(other) => (
                node.allocatable.get(other),
                node.requested.get(other) + pod_request,
            ),
            _ => (0, 0),
        }
    }

    pub fn score(&self, node: &NodeInfo, pod_requests: &[i64]) -> i64 {
        let n = self.resources.len();
        let mut requested = vec![0_i64; n];
        let mut allocatable = vec![0_i64; n];
        for (i, spec) in self.resources.iter().enumerate() {
            let (alloc, req) = self.allocatable_and_requested(
                node,
                &spec.name,
                pod_requests.get(i).copied().unwrap_or(0),
            );
            if alloc == 0 {
                continue;
            }
            allocatable[i] = alloc;
            requested[i] = req;
        }
        match &self.strategy {
            Strategy::LeastAllocated => {
                self.weighted(&requested, &allocatable, least_requested_score)
            }
            Strategy::MostAllocated => {
                self.weighted(&requested, &allocatable, most_requested_score)
            }
            Strategy::RequestedToCapacityRatio(shape) => {
                self.ratio(&requested, &allocatable, shape)
            }
            Strategy::Balanced => balanced_score(&requested, &allocatable),
        }
    }

    fn weighted(&self, requested: &[i64], allocatable: &[i64], f: fn(i64, i64) -> i64) -> i64 {
        let (mut score, mut weights) = (0, 0);
        for (i, spec) in self.resources.iter().enumerate() {
            if allocatable[i] == 0 {
                continue;
            }
            score += f(requested[i], allocatable[i]) * spec.weight;
            weights += spec.weight;
        }
        if weights == 0 { 0 } else { score / weights }
    }

    fn ratio(
        &self,
        requested: &[i64],
        allocatable: &[i64],
        shape: &[UtilizationShapePoint],
    ) -> i64 {
        let scaled: Vec<UtilizationShapePoint> = shape
            .iter()
            .map(|p| UtilizationShapePoint {
                utilization: p.utilization,
                score: p.score * (MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE),
            })
            .collect();
        let (mut score, mut weights) = (0_i64, 0_i64);
        for (i, spec) in self.resources.iter().enumerate() {
            if allocatable[i] == 0 {
                continue;
            }
            let utilization = if requested[i] > allocatable[i] {
                MAX_UTILIZATION
            } else {
                requested[i] * MAX_UTILIZATION / allocatable[i]
            };
            let s = broken_linear(&scaled, utilization);
            if s > 0 {
                score += s * spec.weight;
                weights += spec.weight;
            }
        }
        if weights == 0 {
            0
        } else {
            (score as f64 / weights as f64).round() as i64
        }
    }
}

fn validate_shape(shape: &[UtilizationShapePoint]) -> Result<(), Error> {
    if shape.is_empty() {
        return Err(Error::InvalidConfig(
            "requestedToCapacityRatio.shape: at least one point must be specified".into(),
        ));
    }
    for (i, p) in shape.iter().enumerate() {
        if !(0..=100).contains(&p.utilization)
            || !(0..=MAX_CUSTOM_PRIORITY_SCORE).contains(&p.score)
        {
            return Err(Error::InvalidConfig(format!(
                "requestedToCapacityRatio.shape[{i}] out of range"
            )));
        }
        if i > 0 && shape[i - 1].utilization >= p.utilization {
            return Err(Error::InvalidConfig("requestedToCapacityRatio.shape: utilization values must be sorted in increasing order".into()));
        }
    }
    Ok(())
}

/// Upstream `helper.BuildBrokenLinearFunction`.
fn broken_linear(shape: &[UtilizationShapePoint], p: i64) -> i64 {
    for (i, pt) in shape.iter().enumerate() {
        if p <= pt.utilization {
            if i == 0 {
                return pt.score;
            }
            let prev = shape[i - 1];
            return prev.score
                + (pt.score - prev.score) * (p - prev.utilization)
                    / (pt.utilization - prev.utilization);
        }
    }
    shape.last().map_or(0, |p| p.score)
}

fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

fn most_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

/// Upstream `balancedResourceScorer`: (1 - std of utilisation fractions) * 100.
fn balanced_score(requested: &[i64], allocatable: &[i64]) -> i64 {
    let fractions: Vec<f64> = requested
        .iter()
        .zip(allocatable)
        .filter(|(_, a)| **a != 0)
        .map(|(r, a)| (*r as f64 / *a as f64).min(1.0))
        .collect();
    let std = match fractions.len() {
        0 | 1 => 0.0,
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            (fractions
                .iter()
                .map(|f| (f - mean) * (f - mean))
                .sum::<f64>()
                / n as f64)
                .sqrt()
        }
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, node, pod_named};
    use std::sync::Arc;

    fn node_with(used_cpu: &str, used_mem: &str) -> NodeInfo {
        let mut ni = NodeInfo::new(Arc::new(node("n", "4", "8Gi", "110")));
        ni.add_pod(Arc::new(pod_named(
            "e",
            vec![container(&[("cpu", used_cpu), ("memory", used_mem)])],
        )));
        ni
    }

    #[test]
    fn strategy_table() {
        let pod = pod_named("p", vec![container(&[("cpu", "1"), ("memory", "2Gi")])]);
        let ni = node_with("1", "2Gi");
        let shape = vec![
            UtilizationShapePoint {
                utilization: 0,
                score: 10,
            },
            UtilizationShapePoint {
                utilization: 100,
                score: 0,
            },
        ];
        let cases = [
            (Strategy::LeastAllocated, false, 50),
            (Strategy::MostAllocated, false, 50),
            (Strategy::RequestedToCapacityRatio(shape), false, 50),
            (Strategy::Balanced, true, 100),
        ];
        for (strategy, use_requested, want) in cases {
            let s =
                ResourceAllocationScorer::new(strategy.clone(), default_resources(), use_requested);
            let Ok(s) = s else {
                panic!("{strategy:?} rejected")
            };
            let reqs = s.pod_request_list(&pod);
            assert_eq!(s.score(&ni, &reqs), want, "{strategy:?}");
        }
    }

    #[test]
    fn balanced_penalises_skew() {
        // cpu 3/4 used, memory 2/8 used -> std = 0.25 -> 75
        assert_eq!(balanced_score(&[3000, 2], &[4000, 8]), 75);
        assert_eq!(balanced_score(&[1, 1, 1], &[2, 2, 2]), 100);
    }

    #[test]
    fn least_allocated_uses_non_zero_defaults() {
        let s = ResourceAllocationScorer::new(Strategy::LeastAllocated, default_resources(), false);
        let Ok(s) = s else { panic!("rejected") };
        let best_effort = pod_named("p", vec![container(&[])]);
        assert_eq!(
            s.pod_request_list(&best_effort),
            vec![100, 200 * 1024 * 1024]
        );
    }

    #[test]
    fn invalid_weights_and_shapes() {
        let bad = vec![ResourceSpec {
            name: "cpu".into(),
            weight: 0,
        }];
        assert!(ResourceAllocationScorer::new(Strategy::LeastAllocated, bad, false).is_err());
        let unsorted = vec![
            UtilizationShapePoint {
                utilization: 50,
                score: 1,
            },
            UtilizationShapePoint {
                utilization: 10,
                score: 1,
            },
        ];
        assert!(
            ResourceAllocationScorer::new(
                Strategy::RequestedToCapacityRatio(unsorted),
                default_resources(),
                false
            )
            .is_err()
        );
    }
}
