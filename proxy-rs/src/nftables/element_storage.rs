//! Mirror of one nftables set/map's elements, so a partial sync only adds,
//! replaces and deletes the elements that changed (upstream `nftElementStorage`).

use std::collections::{BTreeMap, BTreeSet};

use super::transaction::{Element, Transaction};

#[derive(Debug)]
pub struct ElementStorage {
    object: &'static str,
    name: &'static str,
    elements: BTreeMap<String, Option<String>>,
    leftover: BTreeSet<String>,
}

impl ElementStorage {
    pub fn set(name: &'static str) -> Self {
        Self::new("set", name)
    }

    pub fn map(name: &'static str) -> Self {
        Self::new("map", name)
    }

    fn new(object: &'static str, name: &'static str) -> Self {
        Self {
            object,
            name,
            elements: BTreeMap::new(),
            leftover: BTreeSet::new(),
        }
    }

    /// Full sync: flush the kernel container and forget what we knew.
    pub fn reset(&mut self, tx: &mut Transaction) {
        self.elements.clear();
        tx.flush_container(self.object, self.name);
        self.leftover.clear();
    }

    /// Forgets everything without touching the kernel (after a failed sync,
    /// our view can no longer be trusted; the next sync is a full one).
    pub fn invalidate(&mut self) {
        self.elements.clear();
        self.leftover.clear();
    }

    /// Starts a sync: every known element is a leftover until ensured again.
    pub fn begin(&mut self) {
        self.leftover = self.elements.keys().cloned().collect();
    }

    pub fn ensure(
        &mut self,
        tx: &mut Transaction,
        key: String,
        value: Option<String>,
        comment: Option<String>,
    ) {
        match self.elements.get(&key) {
            Some(existing) if *existing == value => {}
            Some(_) => {
                tx.delete_element(self.name, &key);
                self.add(tx, key.clone(), value, comment);
            }
            None => self.add(tx, key.clone(), value, comment),
        }
        self.leftover.remove(&key);
    }

    fn add(
        &mut self,
        tx: &mut Transaction,
        key: String,
        value: Option<String>,
        comment: Option<String>,
    ) {
        tx.add_element(&Element {
            container: self.name.to_string(),
            key: key.clone(),
            value: value.clone(),
            comment,
        });
        self.elements.insert(key, value);
    }

    /// Ends a sync: deletes elements nobody ensured.
    pub fn cleanup(&mut self, tx: &mut Transaction) {
        for key in std::mem::take(&mut self.leftover) {
            tx.delete_element(self.name, &key);
            self.elements.remove(&key);
        }
    }
}
