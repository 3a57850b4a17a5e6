//! PreScore/Score/NormalizeScore for preferred pod (anti-)affinity in both directions and
//! existing pods' required affinity (upstream `interpodaffinity/scoring.go`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::InterPodAffinity;
use crate::framework::affinity_term::{AffinityTerm, PodAffinityTerms, WeightedAffinityTerm};
use crate::framework::{
    CycleState, MAX_NODE_SCORE, NodeInfo, PodInfo, PreScorePlugin, ScorePlugin, Status,
};

const PRE_SCORE_STATE_KEY: &str = "PreScoreInterPodAffinity";
/// The nodes PreScore must visit, stashed by PreFilter (which sees the whole snapshot).
const SCORE_NODES_KEY: &str = "InterPodAffinityScoreNodes";

struct ScoreNodes(Vec<Arc<NodeInfo>>);

/// topology key -> value -> score (upstream `scoreMap`).
#[derive(Default)]
struct ScoreMap(HashMap<String, HashMap<String, i64>>);

impl ScoreMap {
    fn process_term(
        &mut self,
        term: &AffinityTerm,
        weight: i64,
        pod: &Pod,
        ns_labels: &BTreeMap<String, String>,
        node: &Node,
    ) {
        if !term.matches(pod, ns_labels) {
            return;
        }
        if let Some(v) = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(&term.topology_key))
        {
            *self
                .0
                .entry(term.topology_key.clone())
                .or_default()
                .entry(v.clone())
                .or_insert(0) += weight;
        }
    }

    fn process_terms(
        &mut self,
        terms: &[WeightedAffinityTerm],
        pod: &Pod,
        ns_labels: &BTreeMap<String, String>,
        node: &Node,
        multiplier: i64,
    ) {
        for t in terms {
            self.process_term(
                &t.term,
                i64::from(t.weight) * multiplier,
                pod,
                ns_labels,
                node,
            );
        }
    }
}

struct PreScoreState(ScoreMap);

fn has_preferred(pod: &Pod) -> bool {
    let Some(a) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return false;
    };
    let aff = a.pod_affinity.as_ref().and_then(|p| {
        p.preferred_during_scheduling_ignored_during_execution
            .as_ref()
    });
    let anti = a.pod_anti_affinity.as_ref().and_then(|p| {
        p.preferred_during_scheduling_ignored_during_execution
            .as_ref()
    });
    aff.is_some_and(|t| !t.is_empty()) || anti.is_some_and(|t| !t.is_empty())
}

impl InterPodAffinity {
    /// All nodes when the pod has preferred terms, else those hosting pods with affinity.
    pub(super) fn stash_score_nodes(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) {
        let list = if has_preferred(pod) {
            nodes.to_vec()
        } else {
            nodes
                .iter()
                .filter(|n| n.pods_with_affinity > 0)
                .cloned()
                .collect()
        };
        state.write(SCORE_NODES_KEY, ScoreNodes(list));
    }

    /// Upstream `processExistingPod`.
    fn process_existing_pod(
        &self,
        incoming: &PodAffinityTerms,
        ns_labels: &BTreeMap<String, String>,
        existing: &PodInfo,
        node: &Node,
        pod: &Pod,
        scores: &mut ScoreMap,
    ) {
        if node.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            return;
        }
        let none = BTreeMap::new();
        scores.process_terms(&incoming.preferred_affinity, &existing.pod, &none, node, 1);
        scores.process_terms(
            &incoming.preferred_anti_affinity,
            &existing.pod,
            &none,
            node,
            -1,
        );
        let Some(theirs) = existing.affinity.as_deref() else {
            return;
        };
        if self.hard_pod_affinity_weight > 0 {
            for t in &theirs.required_affinity {
                scores.process_term(
                    t,
                    i64::from(self.hard_pod_affinity_weight),
                    pod,
                    ns_labels,
                    node,
                );
            }
        }
        scores.process_terms(&theirs.preferred_affinity, pod, ns_labels, node, 1);
        scores.process_terms(&theirs.preferred_anti_affinity, pod, ns_labels, node, -1);
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, filtered: &[Arc<NodeInfo>]) -> Status {
        if filtered.is_empty() {
            return Status::skip();
        }
        let has_constraints = has_preferred(pod);
        if self.ignore_preferred_terms_of_existing_pods && !has_constraints {
            return Status::skip();
        }
        let mut incoming = match PodAffinityTerms::of(pod) {
            Ok(t) => t.unwrap_or_default(),
            Err(e) => return Status::error(format!("parsing pod: {e}")),
        };
        for t in incoming
            .preferred_affinity
            .iter_mut()
            .chain(incoming.preferred_anti_affinity.iter_mut())
        {
            self.merge_term_namespaces(&mut t.term);
        }
        let ns_labels =
            self.namespace_labels(pod.metadata.namespace.as_deref().unwrap_or_default());
        let nodes = match state.read::<ScoreNodes>(SCORE_NODES_KEY) {
            Some(n) => n.0.clone(),
            None => filtered.to_vec(),
        };
        let mut scores = ScoreMap::default();
        for ni in &nodes {
            let Some(node) = ni.node() else { continue };
            for existing in &ni.pods {
                if has_constraints || existing.affinity.is_some() {
                    self.process_existing_pod(
                        &incoming,
                        &ns_labels,
                        existing,
                        node,
                        pod,
                        &mut scores,
                    );
                }
            }
        }
        if scores.0.is_empty() {
            return Status::skip();
        }
        state.write(PRE_SCORE_STATE_KEY, PreScoreState(scores));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) else {
            return Err(Status::error(format!(
                "reading {PRE_SCORE_STATE_KEY:?} from cycleState: not found"
            )));
        };
        let labels = node.node().and_then(|n| n.metadata.labels.as_ref());
        let Some(labels) = labels else {
            return Ok(0);
        };
        Ok(s.0
            .0
            .iter()
            .filter_map(|(key, by_value)| by_value.get(labels.get(key)?))
            .sum())
    }

    /// Upstream `NormalizeScore`: min-max scaling to [0, 100].
    fn normalize_score(&self, state: &CycleState, _pod: &Pod, scores: &mut [i64]) -> Status {
        if state.read::<PreScoreState>(PRE_SCORE_STATE_KEY).is_none() {
            return Status::success();
        }
        let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
            return Status::success();
        };
        let diff = max - min;
        for v in scores.iter_mut() {
            *v = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((*v - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
        Status::success()
    }
}
