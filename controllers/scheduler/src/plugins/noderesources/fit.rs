//! NodeResourcesFit: rejects nodes without enough allocatable resources and scores nodes by the
//! configured strategy (LeastAllocated by default).

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use super::resource_allocation::{
    ResourceAllocationScorer, ResourceSpec, Strategy, UtilizationShapePoint, default_resources,
};
use crate::Error;
use crate::framework::events::{EventResource, action};
use crate::framework::resource::{Resource, is_extended_resource_name, pod_requests};
use crate::framework::{
    ClusterEvent, ClusterEventWithHint, CycleState, EventObject, FilterPlugin, NodeInfo, Plugin,
    PreFilterPlugin, PreFilterResult, PreScorePlugin, QueueingHint, ScorePlugin, Status,
};
use crate::plugins::names;

const PRE_FILTER_STATE_KEY: &str = "PreFilterNodeResourcesFit";
const PRE_SCORE_STATE_KEY: &str = "PreScoreNodeResourcesFit";

pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
pub const REASON_INSUFFICIENT_CPU: &str = "Insufficient cpu";
pub const REASON_INSUFFICIENT_MEMORY: &str = "Insufficient memory";
pub const REASON_INSUFFICIENT_EPHEMERAL_STORAGE: &str = "Insufficient ephemeral-storage";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArgs {
    #[serde(default)]
    ignored_resources: Vec<String>,
    #[serde(default)]
    ignored_resource_groups: Vec<String>,
    #[serde(default)]
    scoring_strategy: Option<RawStrategy>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStrategy {
    #[serde(rename = "type", default)]
    type_: Option<String>,
    #[serde(default)]
    resources: Option<Vec<ResourceSpec>>,
    #[serde(default)]
    requested_to_capacity_ratio: Option<RawShape>,
}

#[derive(Debug, Deserialize)]
struct RawShape {
    #[serde(default)]
    shape: Vec<UtilizationShapePoint>,
}

pub struct NodeResourcesFit {
    ignored_resources: BTreeSet<String>,
    ignored_resource_groups: BTreeSet<String>,
    scorer: ResourceAllocationScorer,
}

/// One resource the node lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsufficientResource {
    pub reason: String,
    /// The request exceeds the node's total allocatable, so preemption cannot help.
    pub unresolvable: bool,
}

impl NodeResourcesFit {
    /// Builds the plugin from `NodeResourcesFitArgs` (defaults applied like upstream).
    pub fn from_args(args: Option<&serde_json::Value>) -> Result<Self, Error> {
        let raw: RawArgs = match args {
            Some(v) if !v.is_null() => serde_json::from_value(v.clone())
                .map_err(|e| Error::InvalidConfig(format!("NodeResourcesFitArgs: {e}")))?,
            _ => RawArgs::default(),
        };
        let (strategy_type, resources, shape) = match raw.scoring_strategy {
            None => ("LeastAllocated".to_string(), default_resources(), None),
            Some(s) => (
                s.type_.unwrap_or_else(|| "LeastAllocated".into()),
                s.resources.unwrap_or_else(default_resources),
                s.requested_to_capacity_ratio.map(|r| r.shape),
            ),
        };
        let strategy = match strategy_type.as_str() {
            "LeastAllocated" => Strategy::LeastAllocated,
            "MostAllocated" => Strategy::MostAllocated,
            "RequestedToCapacityRatio" => {
                Strategy::RequestedToCapacityRatio(shape.unwrap_or_default())
            }
            other => {
                return Err(Error::InvalidConfig(format!(
                    "scoring strategy {other} is not supported"
                )));
            }
        };
        Ok(NodeResourcesFit {
            ignored_resources: raw.ignored_resources.into_iter().collect(),
            ignored_resource_groups: raw.ignored_resource_groups.into_iter().collect(),
            scorer: ResourceAllocationScorer::new(strategy, resources, false)?,
        })
    }

    fn ignored(&self, name: &str) -> bool {
        if !is_extended_resource_name(name) {
            return false;
        }
        let prefix = name.split('/').next().unwrap_or("");
        self.ignored_resources.contains(name) || self.ignored_resource_groups.contains(prefix)
    }
}

/// Upstream `fitsRequest`: every resource the node lacks for `req`.
pub fn fits_request(
    req: &Resource,
    node: &NodeInfo,
    ignored: impl Fn(&str) -> bool,
) -> Vec<InsufficientResource> {
    let mut out = Vec::new();
    let alloc = &node.allocatable;
    if node.pods.len() as i64 + 1 > alloc.allowed_pod_number {
        out.push(InsufficientResource {
            reason: REASON_TOO_MANY_PODS.into(),
            unresolvable: false,
        });
    }
    if req.is_zero() {
        return out;
    }
    let used = &node.requested;
    let mut check = |want: i64, total: i64, in_use: i64, reason: &str| {
        if want > 0 && want > total - in_use {
            out.push(InsufficientResource {
                reason: reason.to_string(),
                unresolvable: want > total,
            });
        }
    };
    check(
        req.milli_cpu,
        alloc.milli_cpu,
        used.milli_cpu,
        REASON_INSUFFICIENT_CPU,
    );
    check(
        req.memory,
        alloc.memory,
        used.memory,
        REASON_INSUFFICIENT_MEMORY,
    );
    check(
        req.ephemeral_storage,
        alloc.ephemeral_storage,
        used.ephemeral_storage,
        REASON_INSUFFICIENT_EPHEMERAL_STORAGE,
    );
    for (name, want) in &req.scalar {
        if *want == 0 || ignored(name) {
            continue;
        }
        let total = alloc.get(name);
        if *want > total - used.get(name) {
            out.push(InsufficientResource {
                reason: format!("Insufficient {name}"),
                unresolvable: *want > total,
            });
        }
    }
    out
}

struct PreFilterState(Resource);
struct PreScoreState(Vec<i64>);

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        names::NODE_RESOURCES_FIT
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::hinted(
                EventResource::Pod,
                action::DELETE | action::UPDATE_POD_SCALE_DOWN,
                "PodDeleteOrScaleDown",
            ),
            ClusterEventWithHint::hinted(
                EventResource::Node,
                action::ADD | action::UPDATE_NODE_ALLOCATABLE,
                "NodeAddOrAllocatableChange",
            ),
        ]
    }
    fn queueing_hint(
        &self,
        pod: &Pod,
        _event: &ClusterEvent,
        old: Option<EventObject<'_>>,
        new: Option<EventObject<'_>>,
    ) -> QueueingHint {
        match (old, new) {
            // A deleted or shrunk pod frees resources only if it was running somewhere.
            (Some(EventObject::Pod(p)), None) | (_, Some(EventObject::Pod(p))) => {
                let assigned = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| !n.is_empty());
                if assigned || p.metadata.uid == pod.metadata.uid {
                    QueueingHint::Queue
                } else {
                    QueueingHint::QueueSkip
                }
            }
            (old, Some(EventObject::Node(n))) => {
                let empty = NodeInfo::new(Arc::new(n.clone()));
                let req = pod_requests(pod, false);
                if !fits_request(&req, &empty, |_| false).is_empty() {
                    return QueueingHint::QueueSkip;
                }
                match old {
                    Some(EventObject::Node(o)) => {
                        let before = NodeInfo::new(Arc::new(o.clone()));
                        if resources_increased(&req, &before, &empty) {
                            QueueingHint::Queue
                        } else {
                            QueueingHint::QueueSkip
                        }
                    }
                    _ => QueueingHint::Queue,
                }
            }
            _ => QueueingHint::Queue,
        }
    }
}

/// Upstream `haveAnyRequestedResourcesIncreased`.
fn resources_increased(req: &Resource, before: &NodeInfo, after: &NodeInfo) -> bool {
    let (b, a) = (&before.allocatable, &after.allocatable);
    if a.allowed_pod_number > b.allowed_pod_number {
        return true;
    }
    if req.is_zero() {
        return false;
    }
    (req.milli_cpu > 0 && a.milli_cpu > b.milli_cpu)
        || (req.memory > 0 && a.memory > b.memory)
        || (req.ephemeral_storage > 0 && a.ephemeral_storage > b.ephemeral_storage)
        || req
            .scalar
            .iter()
            .any(|(n, v)| *v > 0 && a.get(n) > b.get(n))
}

impl PreFilterPlugin for NodeResourcesFit {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        state.write(
            PRE_FILTER_STATE_KEY,
            PreFilterState(pod_requests(pod, false)),
        );
        (None, Status::success())
    }
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let computed;
        let req = match state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) {
            Some(s) => &s.0,
            None => {
                computed = pod_requests(pod, false);
                &computed
            }
        };
        let insufficient = fits_request(req, node, |n| self.ignored(n));
        if insufficient.is_empty() {
            return Status::success();
        }
        let code = if insufficient.iter().any(|i| i.unresolvable) {
            crate::framework::Code::UnschedulableAndUnresolvable
        } else {
            crate::framework::Code::Unschedulable
        };
        Status::with_reasons(
            code,
            insufficient.into_iter().map(|i| i.reason.into()).collect(),
        )
    }
}

impl PreScorePlugin for NodeResourcesFit {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, _nodes: &[Arc<NodeInfo>]) -> Status {
        state.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState(self.scorer.pod_request_list(pod)),
        );
        Status::success()
    }
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        Ok(match state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) {
            Some(s) => self.scorer.score(node, &s.0),
            None => self.scorer.score(node, &self.scorer.pod_request_list(pod)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{container, node, pod_named};
    use serde_json::json;

    fn fit() -> NodeResourcesFit {
        match NodeResourcesFit::from_args(None) {
            Ok(f) => f,
            Err(e) => panic!("default args rejected: {e}"),
        }
    }

    #[test]
    fn filter_table() {
        let mut full = NodeInfo::new(Arc::new(node("n", "2", "4Gi", "1")));
        full.add_pod(Arc::new(pod_named(
            "e",
            vec![container(&[("cpu", "1500m"), ("memory", "1Gi")])],
        )));
        let roomy = NodeInfo::new(Arc::new(node("n", "2", "4Gi", "110")));
        type Case<'a> = (
            &'a str,
            &'a NodeInfo,
            Vec<(&'a str, &'a str)>,
            Option<(Code, &'a str)>,
        );
        let cases: Vec<Case> = vec![
            ("fits", &roomy, vec![("cpu", "1"), ("memory", "1Gi")], None),
            (
                "too many pods and cpu",
                &full,
                vec![("cpu", "1")],
                Some((Code::Unschedulable, "Too many pods, Insufficient cpu")),
            ),
            (
                "more than allocatable is unresolvable",
                &roomy,
                vec![("cpu", "3")],
                Some((Code::UnschedulableAndUnresolvable, "Insufficient cpu")),
            ),
            (
                "memory",
                &roomy,
                vec![("memory", "5Gi")],
                Some((Code::UnschedulableAndUnresolvable, "Insufficient memory")),
            ),
            (
                "extended resource",
                &roomy,
                vec![("example.com/gpu", "1")],
                Some((
                    Code::UnschedulableAndUnresolvable,
                    "Insufficient example.com/gpu",
                )),
            ),
            (
                "best effort on full node",
                &full,
                vec![],
                Some((Code::Unschedulable, "Too many pods")),
            ),
        ];
        for (name, ni, reqs, want) in cases {
            let p = pod_named("p", vec![container(&reqs)]);
            let mut state = CycleState::new();
            let _ = fit().pre_filter(&mut state, &p, &[]);
            let s = fit().filter(&state, &p, ni);
            match want {
                None => assert!(s.is_success(), "{name}: {s}"),
                Some((code, msg)) => {
                    assert_eq!(s.code(), code, "{name}");
                    assert_eq!(s.message(), msg, "{name}");
                }
            }
        }
    }

    #[test]
    fn ignored_extended_resources() {
        let f =
            NodeResourcesFit::from_args(Some(&json!({"ignoredResourceGroups": ["example.com"]})));
        let Ok(f) = f else { panic!("rejected") };
        let p = pod_named("p", vec![container(&[("example.com/gpu", "1")])]);
        let ni = NodeInfo::new(Arc::new(node("n", "2", "4Gi", "110")));
        assert!(f.filter(&CycleState::new(), &p, &ni).is_success());
    }

    #[test]
    fn args_select_strategy() {
        let f = NodeResourcesFit::from_args(Some(
            &json!({"scoringStrategy": {"type": "MostAllocated"}}),
        ));
        assert!(matches!(
            f.map(|f| f.scorer.strategy),
            Ok(Strategy::MostAllocated)
        ));
        assert!(
            NodeResourcesFit::from_args(Some(&json!({"scoringStrategy": {"type": "Nope"}})))
                .is_err()
        );
    }

    #[test]
    fn node_hint_requires_fit_and_increase() {
        let p = pod_named("p", vec![container(&[("cpu", "3")])]);
        let small = node("n", "2", "4Gi", "110");
        let big = node("n", "4", "4Gi", "110");
        let ev = ClusterEvent::new(EventResource::Node, action::ADD, "");
        let f = fit();
        assert_eq!(
            f.queueing_hint(&p, &ev, None, Some(EventObject::Node(&small))),
            QueueingHint::QueueSkip
        );
        assert_eq!(
            f.queueing_hint(&p, &ev, None, Some(EventObject::Node(&big))),
            QueueingHint::Queue
        );
        assert_eq!(
            f.queueing_hint(
                &p,
                &ev,
                Some(EventObject::Node(&big)),
                Some(EventObject::Node(&big))
            ),
            QueueingHint::QueueSkip
        );
    }
}
