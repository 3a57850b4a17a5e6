//! Remembers this controller's own slice writes (upstream
//! `endpointslice/util/endpointslice_tracker.go`) so a sync never runs on
//! an informer cache that has not yet seen them: acting on such a cache
//! would, for example, create a second slice for the same endpoints.

use std::collections::HashMap;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::controller_utils::Key;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Generation(i64),
    Deleted,
}

/// Expected generation (or deletion) of every slice we wrote, per service,
/// keyed by slice UID.
#[derive(Debug, Default)]
pub struct SliceTracker {
    by_service: HashMap<Key, HashMap<String, Expect>>,
}

fn uid_gen(slice: &EndpointSlice) -> Option<(String, i64)> {
    Some((
        slice.metadata.uid.clone()?,
        slice.metadata.generation.unwrap_or(0),
    ))
}

impl SliceTracker {
    /// We created or updated `slice` (as returned by the apiserver).
    pub fn update(&mut self, service: &Key, slice: &EndpointSlice) {
        if let Some((uid, generation)) = uid_gen(slice) {
            let entry = self.by_service.entry(service.clone()).or_default();
            entry.insert(uid, Expect::Generation(generation));
        }
    }

    /// We deleted `slice`.
    pub fn expect_deletion(&mut self, service: &Key, slice_uid: &str) {
        let entry = self.by_service.entry(service.clone()).or_default();
        entry.insert(slice_uid.to_string(), Expect::Deleted);
    }

    /// The informer reported the deletion; forget the slice.
    pub fn handle_deletion(&mut self, service: &Key, slice_uid: &str) {
        if let Some(entry) = self.by_service.get_mut(service) {
            entry.remove(slice_uid);
        }
    }

    pub fn delete_service(&mut self, service: &Key) {
        self.by_service.remove(service);
    }

    /// Upstream `StaleSlices`: does the cache miss any of our writes?
    pub fn stale(&self, service: &Key, cached: &[&EndpointSlice]) -> bool {
        let Some(expected) = self.by_service.get(service) else {
            return false;
        };
        let cached: HashMap<String, i64> = cached.iter().filter_map(|s| uid_gen(s)).collect();
        expected
            .iter()
            .any(|(uid, expect)| match (expect, cached.get(uid)) {
                (Expect::Deleted, present) => present.is_some(),
                (Expect::Generation(_), None) => true,
                (Expect::Generation(want), Some(have)) => have < want,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn slice(uid: &str, generation: i64) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                generation: Some(generation),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: None,
            ports: None,
        }
    }

    #[test]
    fn cache_is_stale_until_it_shows_our_writes() {
        let key = Key::new(Some("ns"), "web");
        let mut t = SliceTracker::default();
        assert!(!t.stale(&key, &[]));
        t.update(&key, &slice("a", 2));
        assert!(t.stale(&key, &[]), "created slice not in cache yet");
        assert!(t.stale(&key, &[&slice("a", 1)]), "old generation");
        assert!(!t.stale(&key, &[&slice("a", 2)]));
        t.expect_deletion(&key, "a");
        assert!(
            t.stale(&key, &[&slice("a", 2)]),
            "deleted slice still cached"
        );
        assert!(!t.stale(&key, &[]));
        t.handle_deletion(&key, "a");
        assert!(
            !t.stale(&key, &[&slice("a", 2)]),
            "forgotten after the delete event"
        );
    }
}
