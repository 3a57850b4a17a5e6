//! NodePorts: rejects nodes where a requested host port is already taken.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::names;
use crate::framework::events::{EventResource, action};
use crate::framework::node_info::pod_host_ports;
use crate::framework::{
    ClusterEvent, ClusterEventWithHint, CycleState, EventObject, FilterPlugin, NodeInfo, Plugin,
    PreFilterPlugin, PreFilterResult, QueueingHint, Status,
};

pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";
const PRE_FILTER_STATE_KEY: &str = "PreFilterNodePorts";

pub struct NodePorts;

struct PreFilterState(Vec<(String, String, i32)>);

fn fits(ports: &[(String, String, i32)], node: &NodeInfo) -> bool {
    !ports
        .iter()
        .any(|(ip, proto, port)| node.used_ports.check_conflict(ip, proto, *port))
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        names::NODE_PORTS
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::hinted(
                EventResource::AssignedPod,
                action::DELETE,
                "AssignedPodDelete",
            ),
            ClusterEventWithHint {
                event: ClusterEvent::new(EventResource::Node, action::ADD, "NodeAdd"),
                has_hint: false,
            },
        ]
    }
    /// A deleted pod only helps if it held one of the ports this pod wants.
    fn queueing_hint(
        &self,
        pod: &Pod,
        _event: &ClusterEvent,
        old: Option<EventObject<'_>>,
        _new: Option<EventObject<'_>>,
    ) -> QueueingHint {
        let Some(EventObject::Pod(deleted)) = old else {
            return QueueingHint::Queue;
        };
        let wanted = pod_host_ports(pod);
        let freed = pod_host_ports(deleted);
        let overlap = wanted.iter().any(|(_, wp, wport)| {
            freed.iter().any(|(_, fp, fport)| {
                let norm = |p: &str| {
                    if p.is_empty() {
                        "TCP".to_string()
                    } else {
                        p.to_string()
                    }
                };
                wport == fport && norm(wp) == norm(fp)
            })
        });
        if overlap {
            QueueingHint::Queue
        } else {
            QueueingHint::QueueSkip
        }
    }
}

impl PreFilterPlugin for NodePorts {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        let ports = pod_host_ports(pod);
        if ports.is_empty() {
            return (None, Status::skip());
        }
        state.write(PRE_FILTER_STATE_KEY, PreFilterState(ports));
        (None, Status::success())
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let ok = match state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) {
            Some(s) => fits(&s.0, node),
            None => fits(&pod_host_ports(pod), node),
        };
        if ok {
            Status::success()
        } else {
            Status::unschedulable(ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, node, pod_named, with_host_port};

    #[test]
    fn filter_table() {
        let mut busy = NodeInfo::new(Arc::new(node("n", "1", "1Gi", "10")));
        busy.add_pod(Arc::new(with_host_port(
            pod_named("e", vec![container(&[])]),
            80,
        )));
        let cases = [(80, false), (81, true)];
        for (port, ok) in cases {
            let p = with_host_port(pod_named("p", vec![container(&[])]), port);
            let mut state = CycleState::new();
            let (_, s) = NodePorts.pre_filter(&mut state, &p, &[]);
            assert!(s.is_success());
            let s = NodePorts.filter(&state, &p, &busy);
            assert_eq!(s.is_success(), ok, "port {port}");
            if !ok {
                assert_eq!(s.message(), ERR_REASON);
                assert_eq!(s.code(), crate::framework::Code::Unschedulable);
            }
        }
        let (_, s) = NodePorts.pre_filter(&mut CycleState::new(), &pod_named("x", vec![]), &[]);
        assert!(s.is_skip());
    }

    #[test]
    fn hint_only_for_freed_matching_port() {
        let p = with_host_port(pod_named("p", vec![container(&[])]), 80);
        let other = with_host_port(pod_named("o", vec![container(&[])]), 80);
        let unrelated = with_host_port(pod_named("u", vec![container(&[])]), 90);
        let ev = ClusterEvent::new(EventResource::AssignedPod, action::DELETE, "");
        assert_eq!(
            NodePorts.queueing_hint(&p, &ev, Some(EventObject::Pod(&other)), None),
            QueueingHint::Queue
        );
        assert_eq!(
            NodePorts.queueing_hint(&p, &ev, Some(EventObject::Pod(&unrelated)), None),
            QueueingHint::QueueSkip
        );
    }
}
