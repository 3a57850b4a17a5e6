//! Per-scheduling-cycle scratch space shared between a pod's extension points.

use std::any::Any;
use std::collections::{HashMap, HashSet};

/// Typed key/value store written in PreFilter/PreScore and read (concurrently) in Filter/Score.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
    /// Filter plugins whose PreFilter returned Skip for this pod.
    pub skip_filter_plugins: HashSet<&'static str>,
    /// Score plugins whose PreScore returned Skip for this pod.
    pub skip_score_plugins: HashSet<&'static str>,
}

impl CycleState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key).and_then(|v| v.downcast_ref::<T>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_read_back() {
        let mut s = CycleState::new();
        s.write("k", 5_i64);
        assert_eq!(s.read::<i64>("k"), Some(&5));
        assert_eq!(s.read::<u8>("k"), None);
        assert_eq!(s.read::<i64>("missing"), None);
    }
}
