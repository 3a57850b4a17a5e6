//! TaintToleration: filters nodes with untolerated NoSchedule/NoExecute taints and prefers
//! nodes with fewer untolerated PreferNoSchedule taints.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};

use super::helper::default_normalize_score;
use super::helper::taint::{find_untolerated, tolerations_tolerate};
use super::names;
use crate::framework::events::{EventResource, action};
use crate::framework::{
    ClusterEvent, ClusterEventWithHint, CycleState, EventObject, FilterPlugin, MAX_NODE_SCORE,
    NodeInfo, Plugin, PreScorePlugin, QueueingHint, ScorePlugin, Status,
};

const PRE_SCORE_STATE_KEY: &str = "PreScoreTaintToleration";

pub struct TaintToleration;

fn do_not_schedule(t: &Taint) -> bool {
    t.effect == "NoSchedule" || t.effect == "NoExecute"
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node()
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// Upstream's message for an untolerated taint, e.g. `{node-role.kubernetes.io/control-plane: }`.
pub fn untolerated_taint_reason(t: &Taint) -> String {
    format!(
        "node(s) had untolerated taint {{{}: {}}}",
        t.key,
        t.value.as_deref().unwrap_or("")
    )
}

/// Pod tolerations that can tolerate PreferNoSchedule taints (empty effect or PreferNoSchedule).
struct PreScoreState(Vec<Toleration>);

fn count_intolerable_prefer_no_schedule(taints: &[Taint], tolerations: &[Toleration]) -> i64 {
    taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerations_tolerate(tolerations, t))
        .count() as i64
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        names::TAINT_TOLERATION
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
                EventResource::Node,
                action::ADD | action::UPDATE_NODE_TAINT,
                "NodeAddOrTaintChange",
            ),
            ClusterEventWithHint::hinted(
                EventResource::UnscheduledPod,
                action::UPDATE_POD_TOLERATION,
                "PodTolerationChange",
            ),
        ]
    }
    fn queueing_hint(
        &self,
        pod: &Pod,
        _event: &ClusterEvent,
        _old: Option<EventObject<'_>>,
        new: Option<EventObject<'_>>,
    ) -> QueueingHint {
        match new {
            Some(EventObject::Node(n)) => {
                let taints = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_deref())
                    .unwrap_or(&[]);
                if find_untolerated(taints, tolerations(pod), do_not_schedule).is_none() {
                    QueueingHint::Queue
                } else {
                    QueueingHint::QueueSkip
                }
            }
            Some(EventObject::Pod(p)) if p.metadata.uid == pod.metadata.uid => QueueingHint::Queue,
            _ => QueueingHint::QueueSkip,
        }
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        match find_untolerated(taints(node), tolerations(pod), do_not_schedule) {
            None => Status::success(),
            Some(t) => Status::unresolvable(untolerated_taint_reason(t)),
        }
    }
}

impl PreScorePlugin for TaintToleration {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, _nodes: &[Arc<NodeInfo>]) -> Status {
        let prefer: Vec<Toleration> = tolerations(pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .cloned()
            .collect();
        state.write(PRE_SCORE_STATE_KEY, PreScoreState(prefer));
        Status::success()
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let count = match state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) {
            Some(s) => count_intolerable_prefer_no_schedule(taints(node), &s.0),
            None => count_intolerable_prefer_no_schedule(taints(node), tolerations(pod)),
        };
        Ok(count)
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &Pod, scores: &mut [i64]) -> Status {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod_named, taint, toleration, with_taints, with_tolerations};

    fn ni(taints: Vec<Taint>) -> NodeInfo {
        NodeInfo::new(Arc::new(with_taints(node("n", "1", "1Gi", "10"), taints)))
    }

    #[test]
    fn filter_table() {
        let cp = taint("node-role.kubernetes.io/control-plane", "", "NoSchedule");
        let cases = [
            (vec![], vec![], None),
            (
                vec![cp.clone()],
                vec![],
                Some("node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"),
            ),
            (
                vec![taint("dedicated", "gpu", "NoExecute")],
                vec![],
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (vec![taint("soft", "x", "PreferNoSchedule")], vec![], None),
            (
                vec![cp.clone()],
                vec![toleration(
                    "node-role.kubernetes.io/control-plane",
                    "Exists",
                    "",
                    "NoSchedule",
                )],
                None,
            ),
        ];
        for (taints, tols, want) in cases {
            let p = with_tolerations(pod_named("p", vec![]), tols);
            let s = TaintToleration.filter(&CycleState::new(), &p, &ni(taints));
            match want {
                None => assert!(s.is_success(), "{s}"),
                Some(msg) => {
                    assert_eq!(s.message(), msg);
                    assert_eq!(
                        s.code(),
                        crate::framework::Code::UnschedulableAndUnresolvable
                    );
                }
            }
        }
    }

    #[test]
    fn score_prefers_fewer_intolerable_prefer_no_schedule_taints() {
        let p = with_tolerations(
            pod_named("p", vec![]),
            vec![toleration("ok", "Exists", "", "PreferNoSchedule")],
        );
        let nodes = [
            ni(vec![]),
            ni(vec![taint("a", "", "PreferNoSchedule")]),
            ni(vec![
                taint("a", "", "PreferNoSchedule"),
                taint("b", "", "PreferNoSchedule"),
            ]),
            ni(vec![taint("ok", "", "PreferNoSchedule")]),
        ];
        let mut state = CycleState::new();
        let _ = TaintToleration.pre_score(&mut state, &p, &[]);
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| TaintToleration.score(&state, &p, n).unwrap_or(-1))
            .collect();
        assert_eq!(scores, [0, 1, 2, 0]);
        let _ = TaintToleration.normalize_score(&state, &p, &mut scores);
        assert_eq!(scores, [100, 50, 0, 100]);
    }
}
