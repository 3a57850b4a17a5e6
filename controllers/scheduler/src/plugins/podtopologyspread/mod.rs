//! PodTopologySpread: spreads pods matching a selector evenly across topology domains, hard
//! (`DoNotSchedule`, a filter) and soft (`ScheduleAnyway`, a score), with the system default
//! constraints for pods that declare none (upstream `framework/plugins/podtopologyspread`).

mod common;
mod filtering;
mod scoring;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, TopologySpreadConstraint};
use serde::Deserialize;

use self::common::{
    Constraint, DO_NOT_SCHEDULE, LABEL_HOSTNAME, Listers, SCHEDULE_ANYWAY, node_has_all_keys,
};
use self::scoring::{ALL_NODES_KEY, AllNodes};
use super::names;
use crate::Error;
use crate::framework::events::{EventResource, action};
use crate::framework::{
    ClusterEvent, ClusterEventWithHint, CycleState, EventObject, FilterPlugin, Handle, NodeInfo,
    Plugin, PreFilterPlugin, PreScorePlugin, QueueingHint, ScorePlugin,
};

pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// Upstream `systemDefaultConstraints`.
fn system_default_constraints() -> Vec<TopologySpreadConstraint> {
    let c = |key: &str, skew| TopologySpreadConstraint {
        topology_key: key.into(),
        when_unsatisfiable: SCHEDULE_ANYWAY.into(),
        max_skew: skew,
        ..Default::default()
    };
    vec![c(LABEL_TOPOLOGY_ZONE, 5), c(LABEL_HOSTNAME, 3)]
}

/// `PodTopologySpreadArgs` (kubescheduler.config.k8s.io/v1).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Args {
    #[serde(default)]
    default_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default)]
    defaulting_type: Option<String>,
}

pub struct PodTopologySpread {
    default_constraints: Vec<TopologySpreadConstraint>,
    /// `defaultingType: System` (upstream `systemDefaulted`).
    system_defaulted: bool,
    listers: Listers,
}

fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::InvalidConfig(format!("PodTopologySpreadArgs: {msg}"))
}

impl PodTopologySpread {
    /// Upstream `New` with `ValidatePodTopologySpreadArgs`.
    pub fn new(args: Option<&serde_json::Value>, handle: &Handle) -> Result<Self, Error> {
        let mut pl = Self::from_args(args)?;
        pl.listers = Listers {
            services: handle.informer(),
            rcs: handle.informer(),
            rss: handle.informer(),
            sss: handle.informer(),
        };
        Ok(pl)
    }

    /// The plugin without listers (no default selector can be built): for unit tests.
    pub fn from_args(args: Option<&serde_json::Value>) -> Result<Self, Error> {
        let args: Args = match args {
            Some(v) if !v.is_null() => serde_json::from_value(v.clone()).map_err(invalid)?,
            _ => Args::default(),
        };
        let system = match args.defaulting_type.as_deref().unwrap_or("System") {
            "System" => true,
            "List" => false,
            other => {
                return Err(invalid(format!(
                    "defaultingType: Unsupported value: {other:?}"
                )));
            }
        };
        if system && !args.default_constraints.is_empty() {
            return Err(invalid(
                "defaultConstraints: Invalid value: when .defaultingType is \"System\", .defaultConstraints must be empty",
            ));
        }
        for c in &args.default_constraints {
            if c.label_selector.is_some() {
                return Err(invalid(
                    "defaultConstraints.labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod",
                ));
            }
            if c.max_skew <= 0 {
                return Err(invalid(
                    "defaultConstraints.maxSkew: must be greater than zero",
                ));
            }
        }
        Ok(PodTopologySpread {
            default_constraints: if system {
                system_default_constraints()
            } else {
                args.default_constraints
            },
            system_defaulted: system,
            listers: Listers::default(),
        })
    }

    /// PreScore needs every node of the snapshot, which only PreFilter sees: keep them when the
    /// pod may have soft constraints.
    fn stash_all_nodes(&self, state: &mut CycleState, pod: &Pod, nodes: &[Arc<NodeInfo>]) {
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or_default();
        let soft = if own.is_empty() {
            self.default_constraints
                .iter()
                .any(|c| c.when_unsatisfiable == SCHEDULE_ANYWAY)
        } else {
            own.iter().any(|c| c.when_unsatisfiable == SCHEDULE_ANYWAY)
        };
        if soft {
            state.write(ALL_NODES_KEY, AllNodes(nodes.to_vec()));
        }
    }

    fn hard_constraints(&self, pod: &Pod) -> Vec<Constraint> {
        self.constraints(pod, DO_NOT_SCHEDULE).unwrap_or_default()
    }

    /// Upstream `isSchedulableAfterPodChange`.
    fn hint_pod(&self, pod: &Pod, old: Option<&Pod>, new: Option<&Pod>) -> QueueingHint {
        let involved = |other: &Pod| {
            other.metadata.uid == pod.metadata.uid
                || (crate::pod::assigned(other)
                    && other.metadata.namespace == pod.metadata.namespace)
        };
        if new.is_some_and(|p| !involved(p)) || old.is_some_and(|p| !involved(p)) {
            return QueueingHint::QueueSkip;
        }
        let constraints = self.hard_constraints(pod);
        let matches =
            |c: &Constraint, p: &Pod| c.selector.matches_labels(p.metadata.labels.as_ref());
        let queue = match (old, new) {
            (Some(o), Some(n)) => {
                o.metadata.uid == pod.metadata.uid
                    || (o.metadata.labels != n.metadata.labels
                        && constraints.iter().any(|c| matches(c, o) != matches(c, n)))
            }
            (Some(p), None) | (None, Some(p)) => constraints.iter().any(|c| matches(c, p)),
            (None, None) => false,
        };
        if queue {
            QueueingHint::Queue
        } else {
            QueueingHint::QueueSkip
        }
    }

    /// Upstream `isSchedulableAfterNodeChange`.
    fn hint_node(&self, pod: &Pod, old: Option<&Node>, new: Option<&Node>) -> QueueingHint {
        let constraints = self.hard_constraints(pod);
        let matching = |n: &Node| node_has_all_keys(n, &constraints);
        let queue = match (old, new) {
            (Some(o), Some(n)) => {
                let (om, nm) = (matching(o), matching(n));
                let keys_changed = constraints.iter().any(|c| {
                    let v = |x: &Node| {
                        x.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(&c.topology_key))
                            .cloned()
                    };
                    v(o) != v(n)
                });
                let taints = |x: &Node| x.spec.as_ref().and_then(|s| s.taints.clone());
                om != nm || (nm && (keys_changed || taints(o) != taints(n)))
            }
            (Some(n), None) | (None, Some(n)) => matching(n),
            (None, None) => false,
        };
        if queue {
            QueueingHint::Queue
        } else {
            QueueingHint::QueueSkip
        }
    }
}

fn as_pod(x: Option<EventObject<'_>>) -> Option<&Pod> {
    match x {
        Some(EventObject::Pod(p)) => Some(p),
        _ => None,
    }
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        names::POD_TOPOLOGY_SPREAD
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
                action::ADD
                    | action::UPDATE_POD_LABEL
                    | action::UPDATE_POD_TOLERATION
                    | action::DELETE,
                "PodChange",
            ),
            ClusterEventWithHint::hinted(
                EventResource::Node,
                action::ADD
                    | action::DELETE
                    | action::UPDATE_NODE_LABEL
                    | action::UPDATE_NODE_TAINT,
                "NodeChange",
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
            (Some(EventObject::Node(o)), n) => {
                let n = match n {
                    Some(EventObject::Node(n)) => Some(n),
                    _ => None,
                };
                self.hint_node(pod, Some(o), n)
            }
            (None, Some(EventObject::Node(n))) => self.hint_node(pod, None, Some(n)),
            (o, n) => self.hint_pod(pod, as_pod(o), as_pod(n)),
        }
    }
}
