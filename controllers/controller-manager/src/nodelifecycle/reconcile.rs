//! The pure half of upstream `doNoScheduleTaintingPass`: which NoSchedule
//! taints a Node's conditions (and `spec.unschedulable`) call for, and how
//! its current taint list must change to match.

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_NODE_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_NODE_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_NODE_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const TAINT_NODE_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";

pub const NO_SCHEDULE: &str = "NoSchedule";

/// Upstream `nodeConditionToTaintKeyStatusMap`: (condition type, status) → taint key.
const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    ("Ready", "False", TAINT_NODE_NOT_READY),
    ("Ready", "Unknown", TAINT_NODE_UNREACHABLE),
    ("MemoryPressure", "True", TAINT_NODE_MEMORY_PRESSURE),
    ("DiskPressure", "True", TAINT_NODE_DISK_PRESSURE),
    ("NetworkUnavailable", "True", TAINT_NODE_NETWORK_UNAVAILABLE),
    ("PIDPressure", "True", TAINT_NODE_PID_PRESSURE),
];

/// Taint keys this pass manages (upstream `taintKeyToNodeConditionMap` plus
/// the unschedulable taint); any other taint on the node is left alone.
fn is_managed_key(key: &str) -> bool {
    key == TAINT_NODE_UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == key)
}

fn no_schedule(key: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: NO_SCHEDULE.to_string(),
        value: None,
        time_added: None,
    }
}

/// Upstream `MatchTaint`: taints are the same if key and effect agree.
fn same_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// The NoSchedule taints the node's state calls for, in condition order.
pub fn desired_no_schedule_taints(node: &Node) -> Vec<Taint> {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut taints: Vec<Taint> = conditions
        .iter()
        .filter_map(|c| {
            CONDITION_TAINTS
                .iter()
                .find(|(ty, status, _)| *ty == c.type_ && *status == c.status)
                .map(|(_, _, key)| no_schedule(key))
        })
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        taints.push(no_schedule(TAINT_NODE_UNSCHEDULABLE));
    }
    taints
}

/// What must change on the node: taints to add and taints to remove.
#[derive(Debug, Default, PartialEq)]
pub struct TaintDiff {
    pub add: Vec<Taint>,
    pub remove: Vec<Taint>,
}

impl TaintDiff {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Upstream `TaintSetDiff(desired, current managed NoSchedule taints)`.
pub fn no_schedule_taint_diff(node: &Node) -> TaintDiff {
    let desired = desired_no_schedule_taints(node);
    let current: Vec<&Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|t| t.effect == NO_SCHEDULE && is_managed_key(&t.key))
        .collect();
    let add = desired
        .iter()
        .filter(|d| !current.iter().any(|c| same_taint(c, d)))
        .cloned()
        .collect();
    let remove = current
        .iter()
        .filter(|c| !desired.iter().any(|d| same_taint(c, d)))
        .map(|c| (*c).clone())
        .collect();
    TaintDiff { add, remove }
}

/// The node's full taint list after applying `diff`, as upstream's
/// `SwapNodeControllerTaint` leaves it: removed taints dropped, added ones
/// appended (replacing any same key/effect) with `timeAdded = now`.
pub fn apply_taint_diff(current: &[Taint], diff: &TaintDiff, now: &Time) -> Vec<Taint> {
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !diff.remove.iter().any(|r| same_taint(t, r)))
        .filter(|t| !diff.add.iter().any(|a| same_taint(t, a)))
        .cloned()
        .collect();
    taints.extend(diff.add.iter().map(|t| Taint {
        time_added: Some(now.clone()),
        ..t.clone()
    }));
    taints
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    fn node(conditions: &[(&str, &str)], unschedulable: bool, taints: &[(&str, &str)]) -> Node {
        Node {
            spec: Some(NodeSpec {
                unschedulable: unschedulable.then_some(true),
                taints: Some(
                    taints
                        .iter()
                        .map(|(key, effect)| Taint {
                            key: key.to_string(),
                            effect: effect.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(ty, status)| NodeCondition {
                            type_: ty.to_string(),
                            status: status.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn keys(taints: &[Taint]) -> Vec<&str> {
        taints.iter().map(|t| t.key.as_str()).collect()
    }

    #[test]
    fn diff_follows_conditions() {
        const NS: &str = NO_SCHEDULE;
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, &'a str)>,
            bool,
            Vec<(&'a str, &'a str)>,
            Vec<&'a str>,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "ready node loses admission's not-ready taint",
                vec![("Ready", "True")],
                false,
                vec![(TAINT_NODE_NOT_READY, NS)],
                vec![],
                vec![TAINT_NODE_NOT_READY],
            ),
            (
                "not-ready node gets the taint",
                vec![("Ready", "False")],
                false,
                vec![],
                vec![TAINT_NODE_NOT_READY],
                vec![],
            ),
            (
                "unknown swaps not-ready for unreachable",
                vec![("Ready", "Unknown")],
                false,
                vec![(TAINT_NODE_NOT_READY, NS)],
                vec![TAINT_NODE_UNREACHABLE],
                vec![TAINT_NODE_NOT_READY],
            ),
            (
                "pressure conditions and unschedulable",
                vec![
                    ("Ready", "True"),
                    ("MemoryPressure", "True"),
                    ("DiskPressure", "True"),
                    ("PIDPressure", "True"),
                    ("NetworkUnavailable", "True"),
                ],
                true,
                vec![],
                vec![
                    TAINT_NODE_MEMORY_PRESSURE,
                    TAINT_NODE_DISK_PRESSURE,
                    TAINT_NODE_PID_PRESSURE,
                    TAINT_NODE_NETWORK_UNAVAILABLE,
                    TAINT_NODE_UNSCHEDULABLE,
                ],
                vec![],
            ),
            (
                "pressure False removes its taint, in sync is a no-op",
                vec![("Ready", "False"), ("DiskPressure", "False")],
                false,
                vec![(TAINT_NODE_NOT_READY, NS), (TAINT_NODE_DISK_PRESSURE, NS)],
                vec![],
                vec![TAINT_NODE_DISK_PRESSURE],
            ),
            (
                "foreign taints and NoExecute taints are left alone",
                vec![("Ready", "True")],
                false,
                vec![
                    ("example.com/dedicated", NS),
                    (TAINT_NODE_NOT_READY, "NoExecute"),
                    (TAINT_NODE_UNSCHEDULABLE, "PreferNoSchedule"),
                ],
                vec![],
                vec![],
            ),
            (
                "schedulable again drops unschedulable taint",
                vec![("Ready", "True")],
                false,
                vec![(TAINT_NODE_UNSCHEDULABLE, NS)],
                vec![],
                vec![TAINT_NODE_UNSCHEDULABLE],
            ),
            (
                "no conditions yet means no condition taints",
                vec![],
                false,
                vec![],
                vec![],
                vec![],
            ),
        ];
        for (name, conditions, unschedulable, taints, want_add, want_remove) in cases {
            let diff = no_schedule_taint_diff(&node(&conditions, unschedulable, &taints));
            assert_eq!(keys(&diff.add), want_add, "{name}: add");
            assert_eq!(keys(&diff.remove), want_remove, "{name}: remove");
            assert!(
                diff.add.iter().chain(&diff.remove).all(|t| t.effect == NS),
                "{name}: only NoSchedule taints change"
            );
        }
    }

    #[test]
    fn apply_keeps_foreign_taints_and_stamps_time_added() {
        let n = node(
            &[("Ready", "Unknown")],
            false,
            &[
                ("example.com/gpu", NO_SCHEDULE),
                (TAINT_NODE_NOT_READY, NO_SCHEDULE),
            ],
        );
        let diff = no_schedule_taint_diff(&n);
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        let current = n.spec.and_then(|s| s.taints).unwrap_or_default();
        let result = apply_taint_diff(&current, &diff, &now);
        assert_eq!(
            keys(&result),
            vec!["example.com/gpu", TAINT_NODE_UNREACHABLE]
        );
        assert_eq!(result[0].time_added, None);
        assert_eq!(result[1].time_added, Some(now));
        assert_eq!(result[1].value, None);
    }
}
