//! Binary heap with a runtime comparator and O(log n) update/delete by key (upstream
//! `internal/heap`). The comparator comes from the QueueSort plugin, so `BinaryHeap` won't do.

use std::collections::HashMap;

pub type LessFn<T> = Box<dyn Fn(&T, &T) -> bool + Send + Sync>;

pub struct Heap<T> {
    items: Vec<(String, T)>,
    index: HashMap<String, usize>,
    less: LessFn<T>,
}

impl<T> Heap<T> {
    pub fn new(less: LessFn<T>) -> Self {
        Heap {
            items: Vec::new(),
            index: HashMap::new(),
            less,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&T> {
        self.index.get(key).map(|i| &self.items[*i].1)
    }

    pub fn peek(&self) -> Option<&T> {
        self.items.first().map(|(_, v)| v)
    }

    /// Inserts or replaces the item under `key`.
    pub fn add_or_update(&mut self, key: String, item: T) {
        if let Some(&i) = self.index.get(&key) {
            self.items[i].1 = item;
            self.fix(i);
            return;
        }
        let i = self.items.len();
        self.index.insert(key.clone(), i);
        self.items.push((key, item));
        self.up(i);
    }

    pub fn pop(&mut self) -> Option<T> {
        if self.items.is_empty() {
            return None;
        }
        let last = self.items.len() - 1;
        self.swap(0, last);
        let (key, item) = self.items.pop()?;
        self.index.remove(&key);
        if !self.items.is_empty() {
            self.down(0);
        }
        Some(item)
    }

    pub fn delete(&mut self, key: &str) -> Option<T> {
        let i = *self.index.get(key)?;
        let last = self.items.len() - 1;
        self.swap(i, last);
        let (k, item) = self.items.pop()?;
        self.index.remove(&k);
        if i < self.items.len() {
            self.fix(i);
        }
        Some(item)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|(_, v)| v)
    }

    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.items.swap(a, b);
        self.index.insert(self.items[a].0.clone(), a);
        self.index.insert(self.items[b].0.clone(), b);
    }

    fn is_less(&self, a: usize, b: usize) -> bool {
        (self.less)(&self.items[a].1, &self.items[b].1)
    }

    fn fix(&mut self, i: usize) {
        if !self.down(i) {
            self.up(i);
        }
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.is_less(i, parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    /// Returns whether the item moved.
    fn down(&mut self, start: usize) -> bool {
        let mut i = start;
        loop {
            let l = 2 * i + 1;
            if l >= self.items.len() {
                break;
            }
            let mut smallest = l;
            let r = l + 1;
            if r < self.items.len() && self.is_less(r, l) {
                smallest = r;
            }
            if !self.is_less(smallest, i) {
                break;
            }
            self.swap(i, smallest);
            i = smallest;
        }
        i > start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_order_with_updates_and_deletes() {
        let mut h: Heap<i32> = Heap::new(Box::new(|a, b| a < b));
        for (k, v) in [("a", 5), ("b", 3), ("c", 8), ("d", 1), ("e", 9)] {
            h.add_or_update(k.into(), v);
        }
        h.add_or_update("c".into(), 0);
        assert_eq!(h.delete("d"), Some(1));
        assert_eq!(h.delete("zz"), None);
        assert!(h.contains("a"));
        let mut out = Vec::new();
        while let Some(v) = h.pop() {
            out.push(v);
        }
        assert_eq!(out, [0, 3, 5, 9]);
        assert!(h.is_empty());
    }
}
