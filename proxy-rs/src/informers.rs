//! Turns kube-runtime watcher streams into add/update/delete calls,
//! including deletes for objects that vanished across a relist (what
//! client-go informers do with their store).

use std::collections::{BTreeMap, BTreeSet};

use kube::Resource;
use kube::runtime::watcher::Event;

/// One notification for the proxier.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<K> {
    Upsert(K),
    Delete(K),
    /// The initial list (or a relist) finished.
    Synced,
}

/// Tracks the keys seen so a relist can emit deletes for missing objects.
#[derive(Debug)]
pub struct Store<K> {
    known: BTreeMap<String, K>,
    relisting: Option<BTreeSet<String>>,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Self {
            known: BTreeMap::new(),
            relisting: None,
        }
    }
}

fn key<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

impl<K: Resource + Clone> Store<K> {
    pub fn apply(&mut self, event: Event<K>) -> Vec<Change<K>> {
        match event {
            Event::Apply(obj) => {
                self.known.insert(key(&obj), obj.clone());
                vec![Change::Upsert(obj)]
            }
            Event::Delete(obj) => {
                self.known.remove(&key(&obj));
                vec![Change::Delete(obj)]
            }
            Event::Init => {
                self.relisting = Some(BTreeSet::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                let k = key(&obj);
                if let Some(seen) = self.relisting.as_mut() {
                    seen.insert(k.clone());
                }
                self.known.insert(k, obj.clone());
                vec![Change::Upsert(obj)]
            }
            Event::InitDone => {
                let seen = self.relisting.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .known
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                let mut out: Vec<Change<K>> = gone
                    .iter()
                    .filter_map(|k| self.known.remove(k))
                    .map(Change::Delete)
                    .collect();
                out.push(Change::Synced);
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    fn svc(name: &str) -> Service {
        let mut s = Service::default();
        s.metadata.namespace = Some("ns".into());
        s.metadata.name = Some(name.into());
        s
    }

    #[test]
    fn relist_deletes_vanished_objects() {
        let mut store = Store::default();
        assert_eq!(
            store.apply(Event::Apply(svc("a"))),
            vec![Change::Upsert(svc("a"))]
        );
        store.apply(Event::Apply(svc("b")));
        assert!(store.apply(Event::Init).is_empty());
        store.apply(Event::InitApply(svc("b")));
        let done = store.apply(Event::InitDone);
        assert_eq!(done, vec![Change::Delete(svc("a")), Change::Synced]);
    }
}
