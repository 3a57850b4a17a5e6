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

/// An informer's store and the objects the handlers last applied from it, sharing the
/// store's `Arc`s (no second copy).
pub struct Seen<K: Informable> {
    store: Store<K>,
    objects: HashMap<ObjectRef<K>, Arc<K>>,
}

impl<K: Informable> Seen<K> {
    pub fn new(store: Store<K>) -> Self {
        Self {
            store,
            objects: HashMap::new(),
        }
    }

    /// The transition that brings `key` up to date with the store; `None` when the handlers
    /// already applied the stored object (a repeated or superseded notification).
    pub fn catch_up(&mut self, key: &ObjectRef<K>) -> Option<Transition<K>> {
        match self.store.get(key) {
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
    pub fn all_keys(&self) -> Vec<ObjectRef<K>> {
        let store = &self.store;
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
        let mut seen = Seen::new(writer.as_reader());
        let a = node("a", "1", "1Gi", "10");
        let key = ObjectRef::from_obj(&a);
        writer.apply_watcher_event(&Event::Apply(a.clone()));
        assert_eq!(describe(seen.catch_up(&key)), "add a");
        assert_eq!(describe(seen.catch_up(&key)), "none", "already applied");
        writer.apply_watcher_event(&Event::Apply(a.clone()));
        assert_eq!(describe(seen.catch_up(&key)), "update a");
        writer.apply_watcher_event(&Event::Delete(a));
        assert_eq!(seen.all_keys(), vec![key.clone()]);
        assert_eq!(describe(seen.catch_up(&key)), "delete a");
        assert_eq!(describe(seen.catch_up(&key)), "none");
        assert!(seen.all_keys().is_empty());
    }
}
