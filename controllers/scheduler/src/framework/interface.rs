//! Extension-point traits (upstream `framework/interface.go`). A plugin implements `Plugin` and
//! exposes the extension points it supports through the `as_*` accessors, the Rust counterpart
//! of upstream's interface type assertions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;

use super::cycle_state::CycleState;
use super::events::{ClusterEvent, ClusterEventWithHint, EventObject, QueueingHint};
use super::node_info::NodeInfo;
use super::status::{Code, Status};

/// Highest score a Score plugin may return after normalisation.
pub const MAX_NODE_SCORE: i64 = 100;
pub const MIN_NODE_SCORE: i64 = 0;

pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;

    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        None
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        None
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
    fn as_permit(&self) -> Option<&dyn PermitPlugin> {
        None
    }
    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        None
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
    fn as_post_bind(&self) -> Option<&dyn PostBindPlugin> {
        None
    }

    /// Events that could make a pod this plugin rejected schedulable (upstream
    /// `EnqueueExtensions.EventsToRegister`). Plugins that reject pods must register something.
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        Vec::new()
    }

    /// Queueing hint for events registered with `has_hint`.
    fn queueing_hint(
        &self,
        _pod: &Pod,
        _event: &ClusterEvent,
        _old: Option<EventObject<'_>>,
        _new: Option<EventObject<'_>>,
    ) -> QueueingHint {
        QueueingHint::Queue
    }
}

pub trait PreEnqueuePlugin: Send + Sync {
    fn pre_enqueue(&self, pod: &Pod) -> Status;
}

/// What the queue knows about a pod when ordering it.
pub struct QueuedPodView<'a> {
    pub pod: &'a Pod,
    /// When the pod was (last) added to the queue.
    pub timestamp: Instant,
}

pub trait QueueSortPlugin: Send + Sync {
    fn less(&self, a: &QueuedPodView<'_>, b: &QueuedPodView<'_>) -> bool;
}

/// Node subset a PreFilter plugin restricts the pod to; `None` means all nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreFilterResult {
    pub node_names: Option<HashSet<String>>,
}

impl PreFilterResult {
    pub fn all_nodes(&self) -> bool {
        self.node_names.is_none()
    }

    /// Intersection of two results (upstream `PreFilterResult.Merge`).
    pub fn merge(self, other: PreFilterResult) -> PreFilterResult {
        match (self.node_names, other.node_names) {
            (None, x) | (x, None) => PreFilterResult { node_names: x },
            (Some(a), Some(b)) => PreFilterResult {
                node_names: Some(a.intersection(&b).cloned().collect()),
            },
        }
    }
}

pub trait PreFilterPlugin: Send + Sync {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status);
}

pub trait FilterPlugin: Send + Sync {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status;
}

/// Per-node filter outcome plus the status for nodes that were never evaluated.
#[derive(Debug, Clone)]
pub struct NodeToStatus {
    pub explicit: HashMap<String, Status>,
    pub absent_nodes_status: Status,
}

impl Default for NodeToStatus {
    fn default() -> Self {
        NodeToStatus {
            explicit: HashMap::new(),
            absent_nodes_status: Status::code_only(Code::UnschedulableAndUnresolvable),
        }
    }
}

impl NodeToStatus {
    pub fn get(&self, node: &str) -> &Status {
        self.explicit.get(node).unwrap_or(&self.absent_nodes_status)
    }
}

/// What a PostFilter plugin decided: a node to nominate and the pods to evict for it.
#[derive(Debug, Clone, Default)]
pub struct PostFilterResult {
    pub nominated_node_name: Option<String>,
    pub victims: Vec<Arc<Pod>>,
}

/// What a plugin may run of its profile's other plugins (upstream `framework.PluginsRunner`);
/// the profile's `Framework` implements it.
pub trait PluginsRunner {
    /// Runs the profile's Filter plugins against one node.
    fn run_filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status;
}

pub trait PostFilterPlugin: Send + Sync {
    /// Runs after no node fit; the status message becomes `Diagnosis.post_filter_msg`.
    /// `nodes` is the cycle's snapshot and `fw` lets the plugin re-run filters.
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &Pod,
        statuses: &NodeToStatus,
        nodes: &[Arc<NodeInfo>],
        fw: &dyn PluginsRunner,
    ) -> (Option<PostFilterResult>, Status);
}

pub trait PreScorePlugin: Send + Sync {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, nodes: &[Arc<NodeInfo>]) -> Status;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScore {
    pub name: String,
    pub score: i64,
}

pub trait ScorePlugin: Send + Sync {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status>;

    /// Optional normalisation to [0, MAX_NODE_SCORE] after all nodes were scored.
    fn normalize_score(&self, _state: &CycleState, _pod: &Pod, _scores: &mut [i64]) -> Status {
        Status::success()
    }
}

pub trait ReservePlugin: Send + Sync {
    fn reserve(&self, state: &mut CycleState, pod: &Pod, node: &str) -> Status;
    fn unreserve(&self, state: &mut CycleState, pod: &Pod, node: &str);
}

pub trait PermitPlugin: Send + Sync {
    /// `Wait` statuses carry how long the pod may wait for approval.
    fn permit(&self, state: &CycleState, pod: &Pod, node: &str) -> (Status, Duration);
}

#[async_trait]
pub trait PreBindPlugin: Send + Sync {
    async fn pre_bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status;
}

#[async_trait]
pub trait BindPlugin: Send + Sync {
    /// `Skip` hands the pod to the next bind plugin.
    async fn bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status;
}

#[async_trait]
pub trait PostBindPlugin: Send + Sync {
    async fn post_bind(&self, state: &CycleState, pod: &Pod, node: &str);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefilter_result_merge() {
        let a = PreFilterResult {
            node_names: Some(["a", "b"].iter().map(|s| s.to_string()).collect()),
        };
        let b = PreFilterResult {
            node_names: Some(["b", "c"].iter().map(|s| s.to_string()).collect()),
        };
        let m = a.clone().merge(b);
        assert_eq!(m.node_names.map(|s| s.len()), Some(1));
        assert_eq!(a.clone().merge(PreFilterResult::default()), a);
    }
}
