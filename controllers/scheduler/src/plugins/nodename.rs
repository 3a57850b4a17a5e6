//! NodeName: a pod with `spec.nodeName` only fits that node.

use k8s_openapi::api::core::v1::Pod;

use super::names;
use crate::framework::events::{EventResource, action};
use crate::framework::{
    ClusterEvent, ClusterEventWithHint, CycleState, EventObject, FilterPlugin, NodeInfo, Plugin,
    QueueingHint, Status,
};

pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

fn fits(pod: &Pod, node_name: &str) -> bool {
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        None | Some("") => true,
        Some(n) => n == node_name,
    }
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        names::NODE_NAME
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![ClusterEventWithHint::hinted(
            EventResource::Node,
            action::ADD,
            "NodeAdd",
        )]
    }
    fn queueing_hint(
        &self,
        pod: &Pod,
        _event: &ClusterEvent,
        _old: Option<EventObject<'_>>,
        new: Option<EventObject<'_>>,
    ) -> QueueingHint {
        match new {
            Some(EventObject::Node(n)) if fits(pod, n.metadata.name.as_deref().unwrap_or("")) => {
                QueueingHint::Queue
            }
            _ => QueueingHint::QueueSkip,
        }
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        if fits(pod, node.name()) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod_named};
    use std::sync::Arc;

    #[test]
    fn filter_table() {
        let cases = [(None, true), (Some("n1"), true), (Some("n2"), false)];
        let ni = NodeInfo::new(Arc::new(node("n1", "1", "1Gi", "10")));
        for (want_node, ok) in cases {
            let mut p = pod_named("p", vec![]);
            if let Some(s) = p.spec.as_mut() {
                s.node_name = want_node.map(str::to_string);
            }
            let s = NodeName.filter(&CycleState::new(), &p, &ni);
            assert_eq!(s.is_success(), ok, "{want_node:?}");
            if !ok {
                assert_eq!(s.message(), ERR_REASON);
            }
        }
    }
}
