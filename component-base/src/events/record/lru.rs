//! The bounded least-recently-used map behind the correlator's three caches
//! (groupcache's `lru.Cache`, as client-go uses it): `get` and `add` make
//! an entry the most recent; adding past the capacity drops the least
//! recent one.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub struct Lru<K, V> {
    capacity: usize,
    /// Value and the tick of its latest use.
    entries: HashMap<K, (V, u64)>,
    /// Tick of latest use → key, oldest first.
    order: BTreeMap<u64, K>,
    tick: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    fn touch(&mut self, key: &K) -> Option<u64> {
        let tick = self.tick;
        let (_, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key.clone());
        self.tick += 1;
        Some(tick)
    }

    pub fn get(&mut self, key: &K) -> Option<&mut V> {
        self.touch(key)?;
        self.entries.get_mut(key).map(|(v, _)| v)
    }

    pub fn add(&mut self, key: K, value: V) {
        if let Some((v, _)) = self.entries.get_mut(&key) {
            *v = value;
            self.touch(&key);
            return;
        }
        self.entries.insert(key.clone(), (value, self.tick));
        self.order.insert(self.tick, key);
        self.tick += 1;
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.add("a", 1);
        lru.add("b", 2);
        // Reading a makes b the oldest.
        assert_eq!(lru.get(&"a").copied(), Some(1));
        lru.add("c", 3);
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.get(&"b"), None);
        assert_eq!(lru.get(&"a").copied(), Some(1));
        // Re-adding replaces the value and refreshes the entry.
        lru.add("c", 30);
        lru.add("d", 4);
        assert_eq!(lru.get(&"a"), None);
        assert_eq!(lru.get(&"c").copied(), Some(30));
        assert_eq!(lru.get(&"d").copied(), Some(4));
    }
}
