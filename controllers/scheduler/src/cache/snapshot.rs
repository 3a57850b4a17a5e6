//! Immutable-per-cycle view of all nodes (upstream `internal/cache.Snapshot`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::NodeInfo;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    node_infos: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
    /// Highest NodeInfo generation copied into this snapshot.
    pub generation: u64,
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
        }
    }

    pub fn list(&self) -> &[Arc<NodeInfo>] {
        &self.node_infos
    }

    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|i| &self.node_infos[*i])
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
