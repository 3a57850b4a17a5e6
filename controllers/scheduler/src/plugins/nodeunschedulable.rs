//! NodeUnschedulable: rejects nodes with `spec.unschedulable` unless the pod tolerates the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::{Pod, Taint};

use super::helper::taint::tolerations_tolerate;
use super::names;
use crate::framework::events::{EventResource, action};
use crate::framework::{
    ClusterEvent, ClusterEventWithHint, CycleState, EventObject, FilterPlugin, NodeInfo, Plugin,
    QueueingHint, Status,
};

pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

fn pod_tolerates_unschedulable(pod: &Pod) -> bool {
    let taint = Taint {
        key: TAINT_NODE_UNSCHEDULABLE.into(),
        effect: "NoSchedule".into(),
        value: None,
        time_added: None,
    };
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    tolerations_tolerate(tolerations, &taint)
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        names::NODE_UNSCHEDULABLE
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
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
                let unsched = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false);
                if !unsched || pod_tolerates_unschedulable(pod) {
                    QueueingHint::Queue
                } else {
                    QueueingHint::QueueSkip
                }
            }
            Some(EventObject::Pod(p)) if p.metadata.uid == pod.metadata.uid => {
                if pod_tolerates_unschedulable(p) {
                    QueueingHint::Queue
                } else {
                    QueueingHint::QueueSkip
                }
            }
            _ => QueueingHint::QueueSkip,
        }
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(n) = node.node() else {
            return Status::unresolvable("node not found");
        };
        let unsched = n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if unsched && !pod_tolerates_unschedulable(pod) {
            return Status::unresolvable(ERR_REASON_UNSCHEDULABLE);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod_named, toleration, with_tolerations};
    use std::sync::Arc;

    #[test]
    fn filter_table() {
        let mut cordoned = node("n", "1", "1Gi", "10");
        if let Some(s) = cordoned.spec.as_mut() {
            s.unschedulable = Some(true);
        }
        let plain = pod_named("p", vec![]);
        let tolerating = with_tolerations(
            pod_named("t", vec![]),
            vec![toleration(
                TAINT_NODE_UNSCHEDULABLE,
                "Exists",
                "",
                "NoSchedule",
            )],
        );
        let cases = [
            (node("n", "1", "1Gi", "10"), &plain, true),
            (cordoned.clone(), &plain, false),
            (cordoned, &tolerating, true),
        ];
        for (n, p, ok) in cases {
            let s = NodeUnschedulable.filter(&CycleState::new(), p, &NodeInfo::new(Arc::new(n)));
            assert_eq!(s.is_success(), ok);
            if !ok {
                assert_eq!(s.message(), ERR_REASON_UNSCHEDULABLE);
                assert_eq!(
                    s.code(),
                    crate::framework::Code::UnschedulableAndUnresolvable
                );
            }
        }
    }
}
