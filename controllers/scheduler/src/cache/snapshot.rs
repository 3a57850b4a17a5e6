//! Immutable-per-cycle view of all nodes (upstream `internal/cache.Snapshot`).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::NodeInfo;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    node_infos: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
    /// Highest NodeInfo generation copied into this snapshot.
    pub generation: u64,
    /// Pods nominated to each node by preemption, refreshed every cycle from the queue.
    nominated: HashMap<String, Vec<Arc<Pod>>>,
}

impl Snapshot {
    /// Snapshot of the given nodes in this order (tests and the cache's full rebuild).
    pub fn from_node_infos(node_infos: Vec<Arc<NodeInfo>>) -> Self {
        let index = node_infos
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_string(), i))
            .collect();
        let generation = node_infos.iter().map(|n| n.generation).max().unwrap_or(0);
        Snapshot {
            node_infos,
            index,
            generation,
            nominated: HashMap::new(),
        }
    }

    pub fn list(&self) -> &[Arc<NodeInfo>] {
        &self.node_infos
    }

    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|i| &self.node_infos[*i])
    }

    pub(crate) fn take_nominated(&mut self) -> HashMap<String, Vec<Arc<Pod>>> {
        std::mem::take(&mut self.nominated)
    }

    pub fn set_nominated(&mut self, nominated: HashMap<String, Vec<Arc<Pod>>>) {
        self.nominated = nominated;
    }

    /// Pods nominated to `node` (not yet bound there).
    pub fn nominated_pods(&self, node: &str) -> &[Arc<Pod>] {
        self.nominated.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn num_nodes(&self) -> usize {
        self.node_infos.len()
    }

    /// Replaces one node's info in place (incremental update).
    pub(crate) fn replace(&mut self, info: Arc<NodeInfo>) {
        match self.index.get(info.name()) {
            Some(i) => self.node_infos[*i] = info,
            None => {
                self.index
                    .insert(info.name().to_string(), self.node_infos.len());
                self.node_infos.push(info);
            }
        }
    }
}
