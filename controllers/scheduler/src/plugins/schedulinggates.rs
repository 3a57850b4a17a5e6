//! SchedulingGates: keeps pods with `spec.schedulingGates` out of the active queue.

use k8s_openapi::api::core::v1::Pod;

use super::names;
use crate::framework::events::{EventResource, action};
use crate::framework::{
    ClusterEvent, ClusterEventWithHint, EventObject, Plugin, PreEnqueuePlugin, QueueingHint, Status,
};

pub struct SchedulingGates;

impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        names::SCHEDULING_GATES
    }
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        Some(self)
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![ClusterEventWithHint::hinted(
            EventResource::UnscheduledPod,
            action::UPDATE_POD_SCHEDULING_GATES_ELIMINATED,
            "PodSchedulingGatesEliminated",
        )]
    }
    /// Only the gated pod's own update can ungate it.
    fn queueing_hint(
        &self,
        pod: &Pod,
        _event: &ClusterEvent,
        _old: Option<EventObject<'_>>,
        new: Option<EventObject<'_>>,
    ) -> QueueingHint {
        match new {
            Some(EventObject::Pod(p)) if p.metadata.uid == pod.metadata.uid => QueueingHint::Queue,
            _ => QueueingHint::QueueSkip,
        }
    }
}

impl PreEnqueuePlugin for SchedulingGates {
    fn pre_enqueue(&self, pod: &Pod) -> Status {
        let gates = pod.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref());
        match gates {
            Some(g) if !g.is_empty() => {
                let names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
                Status::unresolvable(format!(
                    "waiting for scheduling gates: [{}]",
                    names.join(" ")
                ))
            }
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pod_named;
    use k8s_openapi::api::core::v1::PodSchedulingGate;

    #[test]
    fn gated_pods_wait() {
        let mut p = pod_named("p", vec![]);
        assert!(SchedulingGates.pre_enqueue(&p).is_success());
        if let Some(s) = p.spec.as_mut() {
            s.scheduling_gates = Some(vec![
                PodSchedulingGate { name: "a".into() },
                PodSchedulingGate { name: "b".into() },
            ]);
        }
        let s = SchedulingGates.pre_enqueue(&p);
        assert_eq!(
            s.code(),
            crate::framework::Code::UnschedulableAndUnresolvable
        );
        assert_eq!(s.message(), "waiting for scheduling gates: [a b]");
    }
}
