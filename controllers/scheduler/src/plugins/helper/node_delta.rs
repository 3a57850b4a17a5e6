//! What changed on a node since PreFilter saw it. Preemption (victims removed) and nominated
//! pods (added) run Filter on modified copies of snapshot NodeInfos; upstream keeps
//! PreFilter state current through `PreFilterExtensions.AddPod/RemovePod`, and plugins with
//! cross-node state (PodTopologySpread, InterPodAffinity) apply the same delta here instead.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use crate::framework::{NodeInfo, PodInfo};

/// The snapshot PreFilter ran on, indexed by node name on first use.
pub struct SnapshotIndex {
    nodes: Vec<Arc<NodeInfo>>,
    by_name: OnceLock<HashMap<String, usize>>,
}

/// Pods on the filtered node that PreFilter did not count, and counted pods now gone.
#[derive(Default)]
pub struct NodeDelta<'a> {
    pub added: Vec<&'a PodInfo>,
    pub removed: Vec<&'a PodInfo>,
}

impl NodeDelta<'_> {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl SnapshotIndex {
    pub fn new(nodes: &[Arc<NodeInfo>]) -> Self {
        SnapshotIndex {
            nodes: nodes.to_vec(),
            by_name: OnceLock::new(),
        }
    }

    /// The difference between `node` and the snapshot's NodeInfo of the same name (empty when
    /// `node` is that very NodeInfo, the common case, or is unknown).
    pub fn delta<'a>(&'a self, node: &'a NodeInfo) -> NodeDelta<'a> {
        let index = self.by_name.get_or_init(|| {
            self.nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name().to_string(), i))
                .collect()
        });
        let Some(before) = index.get(node.name()).map(|i| self.nodes[*i].as_ref()) else {
            return NodeDelta::default();
        };
        if std::ptr::eq(before, node) {
            return NodeDelta::default();
        }
        let uids = |n: &'a NodeInfo| n.pods.iter().map(PodInfo::uid).collect::<HashSet<_>>();
        let (was, is) = (uids(before), uids(node));
        NodeDelta {
            added: node
                .pods
                .iter()
                .filter(|p| !was.contains(p.uid()))
                .collect(),
            removed: before
                .pods
                .iter()
                .filter(|p| !is.contains(p.uid()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod_named};

    #[test]
    fn delta_of_modified_copy() {
        let mut ni = NodeInfo::new(Arc::new(node("n", "1", "1Gi", "10")));
        ni.add_pod(Arc::new(pod_named("a", vec![])));
        let snap = vec![Arc::new(ni)];
        let idx = SnapshotIndex::new(&snap);
        assert!(idx.delta(&snap[0]).is_empty());
        let mut copy = (*snap[0]).clone();
        copy.remove_pod("uid-a");
        copy.add_pod(Arc::new(pod_named("b", vec![])));
        let d = idx.delta(&copy);
        assert_eq!(
            d.added.iter().map(|p| p.uid()).collect::<Vec<_>>(),
            ["uid-b"]
        );
        assert_eq!(
            d.removed.iter().map(|p| p.uid()).collect::<Vec<_>>(),
            ["uid-a"]
        );
    }
}
