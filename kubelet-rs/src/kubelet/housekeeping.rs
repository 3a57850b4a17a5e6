//! Housekeeping (upstream `HandlePodCleanups`): kills and removes runtime pods that
//! neither the apiserver nor a pod worker knows about.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::pod_sources::ApiPods;
use crate::kuberuntime::manager::RuntimeManager;
use crate::pleg::Snapshot;
use crate::pod_workers::PodWorkers;

/// Grace given to an orphan's containers: there is no pod spec left to read one from.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

pub(super) struct Housekeeping {
    pub manager: Arc<RuntimeManager>,
    pub workers: PodWorkers,
    pub api_pods: ApiPods,
    /// Orphans being cleaned up, so a relist during cleanup does not start a second one.
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Housekeeping {
    pub(super) fn new(
        manager: Arc<RuntimeManager>,
        workers: PodWorkers,
        api_pods: ApiPods,
    ) -> Self {
        Self {
            manager,
            workers,
            api_pods,
            in_flight: Arc::default(),
        }
    }

    /// Starts cleanup of each orphan in the runtime `snapshot`; does nothing before the
    /// apiserver's first list.
    pub(super) fn cleanup_orphans(&self, snapshot: &Snapshot) {
        let Some(known) = self.api_pods.snapshot() else {
            return;
        };
        let active: HashSet<String> = self.workers.known_uids().into_iter().collect();
        for uid in orphans(snapshot, &known, &active) {
            if !self
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(uid.clone())
            {
                continue;
            }
            let manager = self.manager.clone();
            let in_flight = self.in_flight.clone();
            let uid = uid.clone();
            tokio::spawn(async move {
                remove_orphan(&manager, &uid).await;
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&uid);
            });
        }
    }
}

/// Runtime pods neither the apiserver (`known`) nor a pod worker (`active`) has.
fn orphans<'a>(
    snapshot: &'a Snapshot,
    known: &'a HashSet<String>,
    active: &'a HashSet<String>,
) -> impl Iterator<Item = &'a String> {
    snapshot
        .keys()
        .filter(move |u| !known.contains(*u) && !active.contains(*u))
}

/// A pod the apiserver no longer has: kill and remove what is left.
async fn remove_orphan(manager: &RuntimeManager, uid: &str) {
    let Ok(rt) = manager.get_pod_status(uid).await else {
        return;
    };
    // No API pod: kill without hooks' spec or events (an unnamed pod records none).
    let pod = Pod::default();
    let _ = manager.kill_pod(&pod, &rt, ORPHAN_GRACE).await;
    if let Ok(rt) = manager.get_pod_status(uid).await
        && let Err(e) = manager.remove_pod(&rt).await
    {
        tracing::warn!(uid = %uid, error = %e, "removing orphaned pod");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphans_are_runtime_pods_nobody_knows() {
        let snapshot: Snapshot = ["api", "worker", "static", "orphan"]
            .into_iter()
            .map(|u| (u.to_string(), Default::default()))
            .collect();
        let known: HashSet<String> = ["api".to_string()].into();
        let active: HashSet<String> = ["worker".to_string(), "static".to_string()].into();
        let found: Vec<&String> = orphans(&snapshot, &known, &active).collect();
        assert_eq!(found, ["orphan"]);
    }
}
