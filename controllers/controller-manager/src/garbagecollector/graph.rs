//! The dependency graph (upstream `graph.go` + `graph_builder.go`): one
//! node per observed object, keyed by UID, with its owner references; plus
//! an owner → dependents index that also covers owners never observed
//! (upstream's "virtual" nodes). Feeding it watch events yields the work
//! the collector must do; it never talks to the API itself.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;

pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// Work the graph asks for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Work {
    /// Check whether this object's owners still exist (upstream `attemptToDelete`).
    AttemptToDelete(String),
    /// Remove references to this owner from its dependents (upstream `attemptToOrphan`).
    AttemptToOrphan(String),
}

/// What the graph remembers about one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Index of the object's resource in the collector's resource table.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    pub being_deleted: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    pub fn from_meta(resource: &str, meta: &ObjectMeta) -> Option<Node> {
        Some(Node {
            resource: resource.to_string(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            owners: meta.owner_references.clone().unwrap_or_default(),
            being_deleted: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        })
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted with dependents in the foreground.
    pub fn deleting_dependents(&self) -> bool {
        self.being_deleted && self.has_finalizer(FINALIZER_FOREGROUND)
    }

    /// Being deleted and waiting for its dependents to be orphaned.
    pub fn orphaning(&self) -> bool {
        self.being_deleted && self.has_finalizer(FINALIZER_ORPHAN)
    }
}

#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Dependents that reference `owner_uid` (observed ones only).
    pub fn dependents(&self, owner_uid: &str) -> Vec<&Node> {
        self.dependents
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.nodes.get(uid))
            .collect()
    }

    /// UIDs of every node of `resource`, to diff a relist against.
    pub fn uids_of(&self, resource: &str) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.resource == resource)
            .map(|n| n.uid.clone())
            .collect()
    }

    /// An object was added or updated.
    pub fn observe(&mut self, node: Node) -> Vec<Work> {
        let mut work = BTreeSet::new();
        let old = self.nodes.remove(&node.uid);
        let old_owners = old.as_ref().map(|o| o.owners.clone()).unwrap_or_default();
        for removed in old_owners
            .iter()
            .filter(|o| !node.owners.iter().any(|n| n.uid == o.uid))
        {
            if let Some(set) = self.dependents.get_mut(&removed.uid) {
                set.remove(&node.uid);
            }
        }
        // An owner waiting for this dependent may proceed once the
        // reference is gone or no longer blocks (upstream
        // `addUnblockedOwnersToDeleteQueue`).
        for before in old_owners
            .iter()
            .filter(|o| o.block_owner_deletion == Some(true))
        {
            let still_blocks = node
                .owners
                .iter()
                .any(|n| n.uid == before.uid && n.block_owner_deletion == Some(true));
            if !still_blocks
                && self
                    .nodes
                    .get(&before.uid)
                    .is_some_and(Node::deleting_dependents)
            {
                work.insert(Work::AttemptToDelete(before.uid.clone()));
            }
        }
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(node.uid.clone());
            // A new reference to an owner never observed may be dangling:
            // verify it (upstream's virtual nodes).
            let new_ref = !old_owners.iter().any(|o| o.uid == owner.uid);
            if new_ref && !self.nodes.contains_key(&owner.uid) {
                work.insert(Work::AttemptToDelete(node.uid.clone()));
            }
        }
        let was_orphaning = old.as_ref().is_some_and(Node::orphaning);
        let was_deleting_dependents = old.as_ref().is_some_and(Node::deleting_dependents);
        if node.orphaning() && !was_orphaning {
            work.insert(Work::AttemptToOrphan(node.uid.clone()));
        }
        if node.deleting_dependents() && !was_deleting_dependents {
            for dep in self.dependents.get(&node.uid).into_iter().flatten() {
                work.insert(Work::AttemptToDelete(dep.clone()));
            }
            work.insert(Work::AttemptToDelete(node.uid.clone()));
        }
        self.nodes.insert(node.uid.clone(), node);
        work.into_iter().collect()
    }

    /// An object is gone: its dependents must re-check their owners, and a
    /// foreground-deleting owner it blocked may finish.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let mut work = BTreeSet::new();
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        for dep in self.dependents.get(uid).into_iter().flatten() {
            if self.nodes.contains_key(dep) {
                work.insert(Work::AttemptToDelete(dep.clone()));
            }
        }
        for owner in &node.owners {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
            if self
                .nodes
                .get(&owner.uid)
                .is_some_and(Node::deleting_dependents)
            {
                work.insert(Work::AttemptToDelete(owner.uid.clone()));
            }
        }
        if self
            .dependents
            .get(uid)
            .is_none_or(|d| d.iter().all(|x| !self.nodes.contains_key(x)))
        {
            self.dependents.remove(uid);
        }
        work.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn oref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("name-{uid}"),
            uid: uid.into(),
            controller: None,
            block_owner_deletion: Some(block),
        }
    }

    fn node(uid: &str, owners: Vec<OwnerReference>) -> Node {
        Node {
            resource: "v1/configmaps".into(),
            namespace: Some("ns".into()),
            name: format!("name-{uid}"),
            uid: uid.into(),
            owners,
            being_deleted: false,
            finalizers: Vec::new(),
        }
    }

    fn deleting(mut n: Node, finalizer: &str) -> Node {
        n.being_deleted = true;
        n.finalizers = vec![finalizer.into()];
        n
    }

    #[test]
    fn unseen_owner_is_verified_and_owner_removal_wakes_dependents() {
        let mut g = Graph::default();
        assert_eq!(
            g.observe(node("dep", vec![oref("owner", false)])),
            vec![Work::AttemptToDelete("dep".into())]
        );
        assert!(g.observe(node("owner", vec![])).is_empty());
        assert!(
            g.observe(node("dep2", vec![oref("owner", true)]))
                .is_empty()
        );
        assert_eq!(
            g.remove("owner"),
            vec![
                Work::AttemptToDelete("dep".into()),
                Work::AttemptToDelete("dep2".into())
            ]
        );
        assert_eq!(g.dependents("owner").len(), 2);
        // An update adding a reference to an unseen owner is verified too.
        assert_eq!(
            g.observe(node("dep2", vec![oref("owner", true), oref("ghost", true)])),
            vec![Work::AttemptToDelete("dep2".into())]
        );
    }

    #[test]
    fn foreground_and_orphan_transitions_queue_work_once() {
        let mut g = Graph::default();
        g.observe(node("owner", vec![]));
        g.observe(node("dep", vec![oref("owner", true)]));
        let fg = deleting(node("owner", vec![]), FINALIZER_FOREGROUND);
        assert_eq!(
            g.observe(fg.clone()),
            vec![
                Work::AttemptToDelete("dep".into()),
                Work::AttemptToDelete("owner".into())
            ]
        );
        assert!(g.observe(fg).is_empty());
        // The blocking dependent goes away: the owner may drop its finalizer.
        assert_eq!(g.remove("dep"), vec![Work::AttemptToDelete("owner".into())]);
        let orphan = deleting(node("other", vec![]), FINALIZER_ORPHAN);
        assert_eq!(
            g.observe(orphan),
            vec![Work::AttemptToOrphan("other".into())]
        );
    }

    #[test]
    fn dropping_a_blocking_reference_wakes_the_waiting_owner() {
        let mut g = Graph::default();
        g.observe(deleting(node("owner", vec![]), FINALIZER_FOREGROUND));
        g.observe(node("dep", vec![oref("owner", true)]));
        assert_eq!(
            g.observe(node("dep", vec![])),
            vec![Work::AttemptToDelete("owner".into())]
        );
        assert!(g.dependents("owner").is_empty());
    }
}
