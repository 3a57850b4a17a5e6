//! What the handlers last applied per object. The informer's store is always ahead of the
//! handlers; diffing its current object against this view gives every transition the handlers
//! must see (old/new on update, deletes), even after a lagged subscription was told to resync.

use std::collections::HashMap;
use std::sync::Arc;

use component_base::informers::Informable;
use kube::runtime::reflector::{ObjectRef, Store};

/// One step the handlers must take to catch up with the store.
#[derive(Debug)]
pub enum Transition<K> {
    /// Added (`old: None`) or updated.
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    /// Gone from the store; carries the last object the handlers applied.
    Deleted(Arc<K>),
}

/// The objects the handlers last applied, sharing the store's `Arc`s (no second copy).
pub struct Seen<K: Informable> {
    objects: HashMap<ObjectRef<K>, Arc<K>>,
}

impl<K: Informable> Default for Seen<K> {
    fn default() -> Self {
        Self {
            objects: HashMap::new(),
        }
    }
}

impl<K: Informable> Seen<K> {
    /// The transition that brings `key` up to date with `store`; `None` when the handlers
    /// already applied the stored object (a repeated or superseded notification).
    pub fn catch_up(&mut self, store: &Store<K>, key: &ObjectRef<K>) -> Option<Transition<K>> {
        match store.get(key) {
            Some(new) => {
                let old = self.objects.insert(key.clone(), new.clone());
                if old.as_ref().is_some_and(|o| Arc::ptr_eq(o, &new)) {
                    return None;
                }
                Some(Transition::Applied { old, new })
            }
            None => self.objects.remove(key).map(Transition::Deleted),
        }
    }

    /// Every key the store or the handlers know: what a full resync walks.
    pub fn all_keys(&self, store: &Store<K>) -> Vec<ObjectRef<K>> {
        let mut keys: Vec<ObjectRef<K>> = store
            .state()
            .iter()
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect();
        keys.extend(
            self.objects
                .keys()
                .filter(|k| store.get(k).is_none())
                .cloned(),
        );
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::node;
    use k8s_openapi::api::core::v1::Node;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    fn describe(t: Option<Transition<Node>>) -> String {
        let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
        match t {
            None => "none".into(),
            Some(Transition::Applied { old: None, new }) => format!("add {}", name(&new)),
            Some(Transition::Applied { old: Some(_), new }) => format!("update {}", name(&new)),
            Some(Transition::Deleted(old)) => format!("delete {}", name(&old)),
        }
    }

    #[test]
    fn catches_up_once_per_stored_object_and_finds_deletions() {
        let mut writer = Writer::<Node>::default();
        let store = writer.as_reader();
        let mut seen = Seen::default();
        let a = node("a", "1", "1Gi", "10");
        let key = ObjectRef::from_obj(&a);
        writer.apply_watcher_event(&Event::Apply(a.clone()));
        assert_eq!(describe(seen.catch_up(&store, &key)), "add a");
        assert_eq!(
            describe(seen.catch_up(&store, &key)),
            "none",
            "already applied"
        );
        writer.apply_watcher_event(&Event::Apply(a.clone()));
        assert_eq!(describe(seen.catch_up(&store, &key)), "update a");
        writer.apply_watcher_event(&Event::Delete(a));
        assert_eq!(seen.all_keys(&store), vec![key.clone()]);
        assert_eq!(describe(seen.catch_up(&store, &key)), "delete a");
        assert_eq!(describe(seen.catch_up(&store, &key)), "none");
        assert!(seen.all_keys(&store).is_empty());
    }
}
