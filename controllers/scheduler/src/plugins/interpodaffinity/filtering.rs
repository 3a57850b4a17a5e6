//! PreFilter/Filter for required pod affinity and anti-affinity (upstream
//! `interpodaffinity/filtering.go`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::{
    ERR_REASON_AFFINITY_RULES_NOT_MATCH, ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH,
    ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH, InterPodAffinity,
};
use crate::framework::affinity_term::{AffinityTerm, PodAffinityTerms};
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, PodInfo, PreFilterPlugin, PreFilterResult, Status,
};
use crate::plugins::helper::node_delta::SnapshotIndex;

const PRE_FILTER_STATE_KEY: &str = "PreFilterInterPodAffinity";

/// topology key -> value -> count (upstream `topologyToMatchedTermCount`).
#[derive(Default, Clone)]
pub(super) struct TopologyCounts(HashMap<String, HashMap<String, i64>>);

impl TopologyCounts {
    fn update(&mut self, node: &Node, key: &str, value: i64) {
        if let Some(v) = node.metadata.labels.as_ref().and_then(|l| l.get(key)) {
            let by_value = self.0.entry(key.to_string()).or_default();
            let n = by_value.entry(v.clone()).or_insert(0);
            *n += value;
            // Counts can go down (RemovePod); an entry at zero is no entry, as upstream.
            if *n == 0 {
                by_value.remove(v);
                if by_value.is_empty() {
                    self.0.remove(key);
                }
            }
        }
    }

    fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|m| m.get(value))
            .copied()
            .unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Default, Clone)]
struct Counts {
    /// Existing pods whose required anti-affinity terms match the incoming pod.
    existing_anti_affinity: TopologyCounts,
    /// Existing pods matching all the incoming pod's required affinity terms.
    affinity: TopologyCounts,
    /// Existing pods matching the incoming pod's required anti-affinity terms.
    anti_affinity: TopologyCounts,
}

impl Counts {
    /// Upstream `updateWithPod`: counts `existing` on `node` (`sign` 1) or uncounts it (-1).
    fn update_with_pod(&mut self, s: &PreFilterState, existing: &PodInfo, node: &Node, sign: i64) {
        if let Some(theirs) = existing.affinity.as_deref() {
            for t in &theirs.required_anti_affinity {
                if t.matches(&s.pod, &s.namespace_labels) {
                    self.existing_anti_affinity
                        .update(node, &t.topology_key, sign);
                }
            }
        }
        let none = BTreeMap::new();
        if matches_all(&s.terms.required_affinity, &existing.pod, &none) {
            for t in &s.terms.required_affinity {
                self.affinity.update(node, &t.topology_key, sign);
            }
        }
        for t in &s.terms.required_anti_affinity {
            if t.matches(&existing.pod, &none) {
                self.anti_affinity.update(node, &t.topology_key, sign);
            }
        }
    }
}

pub(super) struct PreFilterState {
    counts: Counts,
    /// The nodes counted, to tell what a preemption or nominated-pod copy changed.
    snapshot: SnapshotIndex,
    terms: PodAffinityTerms,
    pod: Pod,
    namespace_labels: BTreeMap<String, String>,
}

/// Upstream `podMatchesAllAffinityTerms`.
fn matches_all(terms: &[AffinityTerm], pod: &Pod, ns_labels: &BTreeMap<String, String>) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, ns_labels))
}

fn build_state(
    pl: &InterPodAffinity,
    pod: &Pod,
    mut terms: PodAffinityTerms,
    nodes: &[Arc<NodeInfo>],
) -> PreFilterState {
    for t in terms
        .required_affinity
        .iter_mut()
        .chain(terms.required_anti_affinity.iter_mut())
    {
        pl.merge_term_namespaces(t);
    }
    let namespace_labels =
        pl.namespace_labels(pod.metadata.namespace.as_deref().unwrap_or_default());
    let none = BTreeMap::new();
    let mut existing_anti_affinity = TopologyCounts::default();
    let mut affinity = TopologyCounts::default();
    let mut anti_affinity = TopologyCounts::default();
    let own = !terms.required_affinity.is_empty() || !terms.required_anti_affinity.is_empty();
    for ni in nodes {
        let Some(node) = ni.node() else { continue };
        if !own && ni.pods_with_required_anti_affinity == 0 {
            continue;
        }
        for existing in &ni.pods {
            if let Some(theirs) = existing.affinity.as_deref() {
                for t in &theirs.required_anti_affinity {
                    if t.matches(pod, &namespace_labels) {
                        existing_anti_affinity.update(node, &t.topology_key, 1);
                    }
                }
            }
            if !own {
                continue;
            }
            // The incoming pod's terms have their namespaceSelector merged into namespaces.
            if matches_all(&terms.required_affinity, &existing.pod, &none) {
                for t in &terms.required_affinity {
                    affinity.update(node, &t.topology_key, 1);
                }
            }
            for t in &terms.required_anti_affinity {
                if t.matches(&existing.pod, &none) {
                    anti_affinity.update(node, &t.topology_key, 1);
                }
            }
        }
    }
    PreFilterState {
        counts: Counts {
            existing_anti_affinity,
            affinity,
            anti_affinity,
        },
        snapshot: SnapshotIndex::new(nodes),
        terms,
        pod: pod.clone(),
        namespace_labels,
    }
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        let terms = match PodAffinityTerms::of(pod) {
            Ok(t) => t.unwrap_or_default(),
            Err(e) => return (None, Status::unresolvable(format!("parsing pod: {e}"))),
        };
        self.stash_score_nodes(state, pod, nodes);
        let s = build_state(self, pod, terms, nodes);
        if s.counts.existing_anti_affinity.is_empty()
            && s.terms.required_affinity.is_empty()
            && s.terms.required_anti_affinity.is_empty()
        {
            return (None, Status::skip());
        }
        state.write(PRE_FILTER_STATE_KEY, s);
        (None, Status::success())
    }
}

/// Upstream `satisfyPodAffinity`, with the "first pod of a group" exception.
fn satisfies_affinity(s: &PreFilterState, c: &Counts, node: &Node) -> bool {
    let labels = node.metadata.labels.as_ref();
    let mut pods_exist = true;
    for t in &s.terms.required_affinity {
        let Some(v) = labels.and_then(|l| l.get(&t.topology_key)) else {
            return false;
        };
        if c.affinity.get(&t.topology_key, v) <= 0 {
            pods_exist = false;
        }
    }
    pods_exist
        || (c.affinity.is_empty()
            && matches_all(&s.terms.required_affinity, &s.pod, &s.namespace_labels))
}

/// Upstream `satisfyPodAntiAffinity`.
fn satisfies_anti_affinity(s: &PreFilterState, c: &Counts, node: &Node) -> bool {
    if c.anti_affinity.is_empty() {
        return true;
    }
    let labels = node.metadata.labels.as_ref();
    !s.terms.required_anti_affinity.iter().any(|t| {
        labels
            .and_then(|l| l.get(&t.topology_key))
            .is_some_and(|v| c.anti_affinity.get(&t.topology_key, v) > 0)
    })
}

/// Upstream `satisfyExistingPodsAntiAffinity`.
fn satisfies_existing_anti_affinity(c: &Counts, node: &Node) -> bool {
    c.existing_anti_affinity.is_empty()
        || !node
            .metadata
            .labels
            .iter()
            .flatten()
            .any(|(k, v)| c.existing_anti_affinity.get(k, v) > 0)
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "reading {PRE_FILTER_STATE_KEY:?} from cycleState: not found"
            ));
        };
        let Some(n) = node.node() else {
            return Status::error("node not found");
        };
        // A preemption or nominated-pod copy: count what changed since PreFilter.
        let delta = s.snapshot.delta(node);
        let adjusted;
        let c = if delta.is_empty() {
            &s.counts
        } else {
            let mut counts = s.counts.clone();
            for p in &delta.added {
                counts.update_with_pod(s, p, n, 1);
            }
            for p in &delta.removed {
                counts.update_with_pod(s, p, n, -1);
            }
            adjusted = counts;
            &adjusted
        };
        if !satisfies_affinity(s, c, n) {
            return Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH);
        }
        if !satisfies_anti_affinity(s, c, n) {
            return Status::unschedulable(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        if !satisfies_existing_anti_affinity(c, n) {
            return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        Status::success()
    }
}
