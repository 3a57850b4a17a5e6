//! Cluster events that can make a rejected pod schedulable (upstream `framework.ClusterEvent`).

use k8s_openapi::api::core::v1::{Node, Pod};

/// What kind of object changed. Assigned and unscheduled pods are distinct, like upstream's
/// `assignedPod` / `unschedulablePod` split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventResource {
    Pod,
    AssignedPod,
    UnscheduledPod,
    Node,
    /// Matches every resource (used for the periodic flush and forced moves).
    Wildcard,
}

/// Bit set of actions (upstream `framework.ActionType`).
pub type ActionType = u32;

pub mod action {
    use super::ActionType;
    pub const ADD: ActionType = 1;
    pub const DELETE: ActionType = 1 << 1;
    pub const UPDATE_NODE_ALLOCATABLE: ActionType = 1 << 2;
    pub const UPDATE_NODE_LABEL: ActionType = 1 << 3;
    pub const UPDATE_NODE_TAINT: ActionType = 1 << 4;
    pub const UPDATE_NODE_CONDITION: ActionType = 1 << 5;
    pub const UPDATE_NODE_ANNOTATION: ActionType = 1 << 6;
    pub const UPDATE_POD_LABEL: ActionType = 1 << 7;
    pub const UPDATE_POD_SCALE_DOWN: ActionType = 1 << 8;
    pub const UPDATE_POD_TOLERATION: ActionType = 1 << 9;
    pub const UPDATE_POD_SCHEDULING_GATES_ELIMINATED: ActionType = 1 << 10;
    pub const UPDATE_POD_GENERATED_RESOURCE_CLAIM: ActionType = 1 << 11;
    pub const UPDATE: ActionType = UPDATE_NODE_ALLOCATABLE
        | UPDATE_NODE_LABEL
        | UPDATE_NODE_TAINT
        | UPDATE_NODE_CONDITION
        | UPDATE_NODE_ANNOTATION
        | UPDATE_POD_LABEL
        | UPDATE_POD_SCALE_DOWN
        | UPDATE_POD_TOLERATION
        | UPDATE_POD_SCHEDULING_GATES_ELIMINATED
        | UPDATE_POD_GENERATED_RESOURCE_CLAIM;
    pub const ALL: ActionType = ADD | DELETE | UPDATE;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterEvent {
    pub resource: EventResource,
    pub action: ActionType,
    pub label: &'static str,
}

impl ClusterEvent {
    pub const fn new(resource: EventResource, action: ActionType, label: &'static str) -> Self {
        ClusterEvent {
            resource,
            action,
            label,
        }
    }

    /// Whether a registered event (`self`) is interested in the incoming one.
    pub fn matches(&self, incoming: &ClusterEvent) -> bool {
        if incoming.resource == EventResource::Wildcard || self.resource == EventResource::Wildcard
        {
            return self.action & incoming.action != 0;
        }
        let resource_ok = self.resource == incoming.resource
            || (self.resource == EventResource::Pod
                && matches!(
                    incoming.resource,
                    EventResource::AssignedPod | EventResource::UnscheduledPod
                ));
        resource_ok && self.action & incoming.action != 0
    }
}

/// Periodic flush of pods that stayed unschedulable too long (upstream `UnschedulableTimeout`).
pub const UNSCHEDULABLE_TIMEOUT: ClusterEvent =
    ClusterEvent::new(EventResource::Wildcard, action::ALL, "UnschedulableTimeout");
/// A pod was forcibly activated (upstream `ForceActivate`).
pub const FORCE_ACTIVATE: ClusterEvent =
    ClusterEvent::new(EventResource::Wildcard, action::ALL, "ForceActivate");

/// The object(s) behind an event, for queueing hints.
#[derive(Debug, Clone, Copy)]
pub enum EventObject<'a> {
    Pod(&'a Pod),
    Node(&'a Node),
}

/// A plugin's verdict on whether an event may make a pod it rejected schedulable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueingHint {
    Queue,
    QueueSkip,
}

/// An event a plugin registers, plus whether it wants to be asked (via
/// `Plugin::queueing_hint`) before the pod is requeued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterEventWithHint {
    pub event: ClusterEvent,
    pub has_hint: bool,
}

impl ClusterEventWithHint {
    /// An event after which the plugin's `queueing_hint` decides whether to requeue.
    pub const fn hinted(resource: EventResource, action: ActionType, label: &'static str) -> Self {
        ClusterEventWithHint {
            event: ClusterEvent::new(resource, action, label),
            has_hint: true,
        }
    }
}

/// Node change classification (upstream `nodeSchedulingPropertiesChange`).
pub fn node_update_actions(old: &Node, new: &Node) -> ActionType {
    let mut a = 0;
    let alloc = |n: &Node| n.status.as_ref().and_then(|s| s.allocatable.clone());
    if alloc(old) != alloc(new) {
        a |= action::UPDATE_NODE_ALLOCATABLE;
    }
    if old.metadata.labels != new.metadata.labels {
        a |= action::UPDATE_NODE_LABEL;
    }
    let taints = |n: &Node| n.spec.as_ref().and_then(|s| s.taints.clone());
    let unsched = |n: &Node| {
        n.spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
    };
    if taints(old) != taints(new) || unsched(old) != unsched(new) {
        a |= action::UPDATE_NODE_TAINT;
    }
    let conds = |n: &Node| {
        n.status.as_ref().map(|s| {
            s.conditions
                .iter()
                .flatten()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect::<Vec<_>>()
        })
    };
    if conds(old) != conds(new) {
        a |= action::UPDATE_NODE_CONDITION;
    }
    if old.metadata.annotations != new.metadata.annotations {
        a |= action::UPDATE_NODE_ANNOTATION;
    }
    a
}

/// Pod change classification for pods already known to the scheduler (upstream
/// `podSchedulingPropertiesChange`, restricted to what our plugins look at).
pub fn pod_update_actions(old: &Pod, new: &Pod) -> ActionType {
    let mut a = 0;
    if old.metadata.labels != new.metadata.labels {
        a |= action::UPDATE_POD_LABEL;
    }
    let tolerations = |p: &Pod| p.spec.as_ref().and_then(|s| s.tolerations.clone());
    if tolerations(old) != tolerations(new) {
        a |= action::UPDATE_POD_TOLERATION;
    }
    let gates = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_some_and(|g| !g.is_empty())
    };
    if gates(old) && !gates(new) {
        a |= action::UPDATE_POD_SCHEDULING_GATES_ELIMINATED;
    }
    let old_req = super::resource::pod_requests(old, false);
    let new_req = super::resource::pod_requests(new, false);
    if new_req.milli_cpu < old_req.milli_cpu
        || new_req.memory < old_req.memory
        || new_req.ephemeral_storage < old_req.ephemeral_storage
    {
        a |= action::UPDATE_POD_SCALE_DOWN;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::node;

    #[test]
    fn registered_pod_event_matches_assigned_pod_delete() {
        let reg = ClusterEvent::new(EventResource::Pod, action::DELETE, "");
        let inc = ClusterEvent::new(EventResource::AssignedPod, action::DELETE, "");
        assert!(reg.matches(&inc));
        let add = ClusterEvent::new(EventResource::AssignedPod, action::ADD, "");
        assert!(!reg.matches(&add));
        assert!(reg.matches(&UNSCHEDULABLE_TIMEOUT));
        let node_ev = ClusterEvent::new(EventResource::Node, action::ADD, "");
        assert!(!reg.matches(&node_ev));
    }

    #[test]
    fn node_update_classification() {
        let old = node("n", "1", "1Gi", "10");
        let mut new = old.clone();
        if let Some(spec) = new.spec.as_mut() {
            spec.unschedulable = Some(true);
        }
        assert_eq!(node_update_actions(&old, &new), action::UPDATE_NODE_TAINT);
        let bigger = node("n", "2", "1Gi", "10");
        assert_eq!(
            node_update_actions(&old, &bigger),
            action::UPDATE_NODE_ALLOCATABLE
        );
    }
}
