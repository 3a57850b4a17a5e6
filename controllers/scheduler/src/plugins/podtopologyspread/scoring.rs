//! PreScore/Score/NormalizeScore for `whenUnsatisfiable: ScheduleAnyway` (upstream
//! `podtopologyspread/scoring.go`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use component_base::selectors::nodeaffinity::RequiredNodeAffinity;
use k8s_openapi::api::core::v1::Pod;

use super::PodTopologySpread;
use super::common::{
    Constraint, LABEL_HOSTNAME, SCHEDULE_ANYWAY, count_matching, node_has_all_keys,
};
use crate::framework::{CycleState, MAX_NODE_SCORE, NodeInfo, PreScorePlugin, ScorePlugin, Status};

const PRE_SCORE_STATE_KEY: &str = "PreScorePodTopologySpread";
/// All nodes of the snapshot, stashed by PreFilter for PreScore (upstream reads the lister).
pub(super) const ALL_NODES_KEY: &str = "PodTopologySpreadAllNodes";

pub(super) struct AllNodes(pub Vec<Arc<NodeInfo>>);

struct PreScoreState {
    constraints: Vec<Constraint>,
    /// Names of filtered nodes that are not scored (missing a topology key).
    ignored: HashSet<String>,
    /// The same nodes by position in PreScore's node list, which NormalizeScore's scores follow.
    ignored_index: HashSet<usize>,
    /// Per constraint: matching pods per topology value (hostname counted in Score).
    value_to_pod_counts: Vec<HashMap<String, i64>>,
    normalizing_weight: Vec<f64>,
}

/// Upstream `topologyNormalizingWeight`.
fn normalizing_weight(size: usize) -> f64 {
    ((size + 2) as f64).ln()
}

/// Upstream `scoreForCount`.
fn score_for_count(cnt: i64, max_skew: i32, weight: f64) -> f64 {
    cnt as f64 * weight + f64::from(max_skew - 1)
}

fn label<'a>(ni: &'a NodeInfo, key: &str) -> Option<&'a String> {
    ni.node()?.metadata.labels.as_ref()?.get(key)
}

impl PodTopologySpread {
    /// Upstream `initPreScoreState`.
    fn init_state(
        &self,
        constraints: Vec<Constraint>,
        filtered: &[Arc<NodeInfo>],
        require_all: bool,
    ) -> PreScoreState {
        let mut ignored = HashSet::new();
        let mut ignored_index = HashSet::new();
        let mut counts = vec![HashMap::new(); constraints.len()];
        for (pos, ni) in filtered.iter().enumerate() {
            let Some(node) = ni.node() else { continue };
            if require_all && !node_has_all_keys(node, &constraints) {
                ignored.insert(ni.name().to_string());
                ignored_index.insert(pos);
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == LABEL_HOSTNAME {
                    continue;
                }
                let value = label(ni, &c.topology_key).cloned().unwrap_or_default();
                counts[i].entry(value).or_insert(0);
            }
        }
        let normalizing_weight = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == LABEL_HOSTNAME {
                    filtered.len() - ignored.len()
                } else {
                    counts[i].len()
                };
                normalizing_weight(size)
            })
            .collect();
        PreScoreState {
            constraints,
            ignored,
            ignored_index,
            value_to_pod_counts: counts,
            normalizing_weight,
        }
    }
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, filtered: &[Arc<NodeInfo>]) -> Status {
        let all = match state.read::<AllNodes>(ALL_NODES_KEY) {
            Some(a) => a.0.clone(),
            None => filtered.to_vec(),
        };
        if filtered.is_empty() || all.is_empty() {
            return Status::skip();
        }
        let constraints = match self.constraints(pod, SCHEDULE_ANYWAY) {
            Ok(c) => c,
            Err(e) => return Status::error(format!("calculating preScoreState: {e}")),
        };
        if constraints.is_empty() {
            return Status::skip();
        }
        let has_own = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        let require_all = has_own || !self.system_defaulted;
        let mut s = self.init_state(constraints, filtered, require_all);
        let required = RequiredNodeAffinity::from_pod(pod);
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        for ni in &all {
            let Some(node) = ni.node() else { continue };
            if require_all && !node_has_all_keys(node, &s.constraints) {
                continue;
            }
            for (i, c) in s.constraints.iter().enumerate() {
                if !c.counts_node(pod, node, &required) {
                    continue;
                }
                let value = label(ni, &c.topology_key)
                    .map(String::as_str)
                    .unwrap_or_default();
                if let Some(cnt) = s.value_to_pod_counts[i].get_mut(value) {
                    *cnt += count_matching(&ni.pods, &c.selector, ns);
                }
            }
        }
        state.write(PRE_SCORE_STATE_KEY, s);
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) else {
            return Err(Status::error(format!(
                "reading {PRE_SCORE_STATE_KEY:?} from cycleState: not found"
            )));
        };
        if s.ignored.contains(node.name()) {
            return Ok(0);
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = label(node, &c.topology_key) else {
                continue;
            };
            let cnt = if c.topology_key == LABEL_HOSTNAME {
                count_matching(&node.pods, &c.selector, ns)
            } else {
                s.value_to_pod_counts[i].get(value).copied().unwrap_or(0)
            };
            score += score_for_count(cnt, c.max_skew, s.normalizing_weight[i]);
        }
        Ok(score.round() as i64)
    }

    /// Upstream `NormalizeScore`: fewer matching pods score higher; ignored nodes score 0.
    /// Ignored nodes scored 0 in Score and are told apart here by the node order of PreScore.
    fn normalize_score(&self, state: &CycleState, _pod: &Pod, scores: &mut [i64]) -> Status {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) else {
            return Status::success();
        };
        let ignored = |i: usize| s.ignored_index.contains(&i);
        let considered = || {
            scores
                .iter()
                .enumerate()
                .filter(|(i, _)| !ignored(*i))
                .map(|(_, v)| *v)
        };
        let min = considered().min().unwrap_or(i64::MAX);
        let max = considered().max().unwrap_or(0).max(0);
        for (i, v) in scores.iter_mut().enumerate() {
            *v = if ignored(i) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *v) / max
            };
        }
        Status::success()
    }
}
