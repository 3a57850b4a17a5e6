//! Pod-source adapters (upstream `PodConfig` feeding `syncLoopIteration`): turn each
//! source's [`PodUpdate`]s into pod-worker calls, and keep the apiserver's pod set for
//! housekeeping.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::pod_workers::PodWorkers;
use crate::types::{PodUpdate, pod_uid};

/// The uids the apiserver source has reported; `None` until its first list, so
/// housekeeping never mistakes a not-yet-listed pod for an orphan.
#[derive(Clone, Default)]
pub(super) struct ApiPods(Arc<Mutex<Option<HashSet<String>>>>);

impl ApiPods {
    /// The apiserver's pods now, or `None` before the first list.
    pub(super) fn snapshot(&self) -> Option<HashSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The handler for the apiserver source: dispatches to the workers and records the set.
pub(super) fn api_source(workers: PodWorkers, known: ApiPods) -> impl FnMut(PodUpdate) {
    let mut seen: HashSet<String> = HashSet::new();
    move |update| {
        // Workers first, then the set, so the lock is never held across worker calls.
        match &update {
            PodUpdate::Upsert(pod) => {
                seen.insert(pod_uid(pod));
                workers.update_pod(pod.clone());
            }
            PodUpdate::Removed(pod) => {
                seen.remove(&pod_uid(pod));
                workers.remove_pod(pod);
            }
            PodUpdate::Synced => {}
        }
        let mut known = known.0.lock().unwrap_or_else(|p| p.into_inner());
        match (update, known.as_mut()) {
            (PodUpdate::Upsert(pod), Some(k)) => {
                k.insert(pod_uid(&pod));
            }
            (PodUpdate::Removed(pod), Some(k)) => {
                k.remove(&pod_uid(&pod));
            }
            (PodUpdate::Synced, _) => *known = Some(seen.clone()),
            (_, None) => {}
        }
    }
}

/// The handler for the static pod source (its pods are never orphans: they have workers).
pub(super) fn file_source(workers: PodWorkers) -> impl FnMut(PodUpdate) {
    move |update| match update {
        PodUpdate::Upsert(pod) => workers.update_pod(pod),
        PodUpdate::Removed(pod) => workers.remove_pod(&pod),
        PodUpdate::Synced => {}
    }
}
