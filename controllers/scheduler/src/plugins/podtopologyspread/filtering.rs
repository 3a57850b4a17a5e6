//! PreFilter/Filter for `whenUnsatisfiable: DoNotSchedule` (upstream
//! `podtopologyspread/filtering.go`).

use std::collections::HashMap;
use std::sync::Arc;

use component_base::selectors::nodeaffinity::RequiredNodeAffinity;
use k8s_openapi::api::core::v1::Pod;

use super::common::{Constraint, DO_NOT_SCHEDULE, count_matching, node_has_all_keys};
use super::{ERR_REASON_CONSTRAINTS_NOT_MATCH, ERR_REASON_NODE_LABEL_NOT_MATCH, PodTopologySpread};
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, PreFilterPlugin, PreFilterResult, Status,
};
use crate::plugins::helper::node_delta::{NodeDelta, SnapshotIndex};

pub(super) const PRE_FILTER_STATE_KEY: &str = "PreFilterPodTopologySpread";

/// Per constraint: matching pods per topology value over the eligible nodes.
pub(super) struct PreFilterState {
    constraints: Vec<Constraint>,
    value_to_match_num: Vec<HashMap<String, i64>>,
    /// The nodes counted, to tell what a preemption or nominated-pod copy changed.
    snapshot: SnapshotIndex,
}

impl PreFilterState {
    /// Upstream `minMatchNum`: the global minimum, 0 while fewer than minDomains domains exist.
    fn min_match_num(&self, i: usize) -> i64 {
        self.min_with(i, None)
    }

    /// The minimum with `value`'s count replaced (upstream keeps it current via AddPod/RemovePod).
    fn min_with(&self, i: usize, replaced: Option<(&str, i64)>) -> i64 {
        let counts = &self.value_to_match_num[i];
        if (counts.len() as i64) < i64::from(self.constraints[i].min_domains) {
            return 0;
        }
        counts
            .iter()
            .map(|(v, n)| match replaced {
                Some((rv, rn)) if rv == v => rn,
                _ => *n,
            })
            .min()
            .unwrap_or(0)
    }

    /// (matching pods in the node's domain, global minimum) for constraint `i`, counting the
    /// pods `node` gained or lost since PreFilter.
    fn counts_for(
        &self,
        i: usize,
        pod: &Pod,
        node: &NodeInfo,
        value: &str,
        delta: &NodeDelta<'_>,
        required: Option<&RequiredNodeAffinity>,
    ) -> (i64, i64) {
        let base = self.value_to_match_num[i].get(value).copied().unwrap_or(0);
        let c = &self.constraints[i];
        let eligible = |required| {
            node.node().is_some_and(|n| {
                node_has_all_keys(n, &self.constraints) && c.counts_node(pod, n, required)
            })
        };
        if !required.is_some_and(|r| !delta.is_empty() && eligible(r)) {
            return (base, self.min_match_num(i));
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let d = count_matching(delta.added.iter().copied(), &c.selector, ns)
            - count_matching(delta.removed.iter().copied(), &c.selector, ns);
        (base + d, self.min_with(i, Some((value, base + d))))
    }
}

/// Upstream `calPreFilterState`.
fn compute_state(
    pod: &Pod,
    constraints: Vec<Constraint>,
    nodes: &[Arc<NodeInfo>],
) -> PreFilterState {
    let required = RequiredNodeAffinity::from_pod(pod);
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut value_to_match_num = vec![HashMap::new(); constraints.len()];
    for ni in nodes {
        let Some(node) = ni.node() else { continue };
        if !node_has_all_keys(node, &constraints) {
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            if !c.counts_node(pod, node, &required) {
                continue;
            }
            let value = node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(&c.topology_key))
                .cloned()
                .unwrap_or_default();
            *value_to_match_num[i].entry(value).or_insert(0) +=
                count_matching(&ni.pods, &c.selector, ns);
        }
    }
    PreFilterState {
        constraints,
        value_to_match_num,
        snapshot: SnapshotIndex::new(nodes),
    }
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        self.stash_all_nodes(state, pod, nodes);
        let constraints = match self.constraints(pod, DO_NOT_SCHEDULE) {
            Ok(c) => c,
            Err(e) => {
                return (
                    None,
                    Status::error(format!(
                        "obtaining pod's hard topology spread constraints: {e}"
                    )),
                );
            }
        };
        if constraints.is_empty() {
            return (None, Status::skip());
        }
        state.write(PRE_FILTER_STATE_KEY, compute_state(pod, constraints, nodes));
        (None, Status::success())
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "reading {PRE_FILTER_STATE_KEY:?} from cycleState: not found"
            ));
        };
        let Some(n) = node.node() else {
            return Status::error("node not found");
        };
        let labels = n.metadata.labels.as_ref();
        let delta = s.snapshot.delta(node);
        // Only a modified copy needs the pod's node affinity (for the inclusion policies).
        let required = (!delta.is_empty()).then(|| RequiredNodeAffinity::from_pod(pod));
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = labels.and_then(|l| l.get(&c.topology_key)) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let self_match = i64::from(c.selector.matches_labels(pod.metadata.labels.as_ref()));
            let (match_num, min) = s.counts_for(i, pod, node, value, &delta, required.as_ref());
            let skew = match_num + self_match - min;
            if skew > i64::from(c.max_skew) {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}
