//! Pods bound to this node, from the apiserver (upstream `config/apiserver.go`): the shared
//! informer scoped to `spec.nodeName=<node>`, turned into [`PodUpdate`]s. Mirror pods are
//! skipped: they only reflect static pods, which the file source runs.

use std::collections::HashMap;
use std::sync::Arc;

use component_base::informers::{Change, Informer, SharedInformerFactory, WatchScope};
use k8s_openapi::api::core::v1::Pod;
use tokio_util::sync::CancellationToken;

use crate::types::{PodUpdate, is_mirror_pod, pod_uid};

/// The field selector upstream uses for the kubelet's pod watch.
pub fn node_field_selector(node_name: &str) -> String {
    format!("spec.nodeName={node_name}")
}

/// The process-wide informer of this node's pods.
pub fn node_pods(factory: &SharedInformerFactory, node_name: &str) -> Arc<Informer<Pod>> {
    factory.scoped::<Pod>(WatchScope::fields(node_field_selector(node_name)))
}

/// What the source has reported, so a resync can re-emit the store and report removals.
#[derive(Default)]
struct Reported {
    /// Pods reported as upserted and not yet removed, by uid.
    pods: HashMap<String, Pod>,
    /// Resource versions of the initial list, already emitted from the store; the
    /// informer's own `Added` for them is a repeat and is dropped once.
    initial: HashMap<String, Option<String>>,
}

impl Reported {
    fn upsert(&mut self, pod: &Pod, emit: &mut impl FnMut(PodUpdate)) {
        if is_mirror_pod(pod) {
            return;
        }
        let uid = pod_uid(pod);
        if self
            .initial
            .get(&uid)
            .is_some_and(|rv| *rv == pod.metadata.resource_version)
        {
            self.initial.remove(&uid);
            return;
        }
        self.initial.remove(&uid);
        self.pods.insert(uid, pod.clone());
        emit(PodUpdate::Upsert(pod.clone()));
    }

    fn remove(&mut self, pod: &Pod, emit: &mut impl FnMut(PodUpdate)) {
        if is_mirror_pod(pod) {
            return;
        }
        let uid = pod_uid(pod);
        self.initial.remove(&uid);
        self.pods.remove(&uid);
        emit(PodUpdate::Removed(pod.clone()));
    }

    /// Re-emits the whole store as upserts, and removals for pods it no longer has.
    fn resync(&mut self, store: &[Arc<Pod>], emit: &mut impl FnMut(PodUpdate)) {
        let now: HashMap<String, &Pod> = store.iter().map(|p| (pod_uid(p), p.as_ref())).collect();
        let gone: Vec<Pod> = self
            .pods
            .iter()
            .filter(|(uid, _)| !now.contains_key(*uid))
            .map(|(_, p)| p.clone())
            .collect();
        self.initial.clear();
        for pod in gone {
            self.remove(&pod, emit);
        }
        for pod in now.into_values() {
            self.upsert(pod, emit);
        }
    }
}

/// Reports this node's pods until cancelled: the initial list as upserts then `Synced`,
/// then every change. The informer relists and retries with back-off on its own.
pub async fn watch_pods(
    pods: Arc<Informer<Pod>>,
    shutdown: CancellationToken,
    mut emit: impl FnMut(PodUpdate),
) {
    // Subscribe first so nothing between the list and the subscription is lost.
    let mut changes = pods.subscribe();
    tokio::select! {
        _ = shutdown.cancelled() => return,
        synced = pods.wait_synced() => if !synced { return },
    }
    let mut reported = Reported::default();
    let initial = pods.store().state();
    for pod in &initial {
        reported.upsert(pod, &mut emit);
    }
    reported.initial = initial
        .iter()
        .map(|p| (pod_uid(p), p.metadata.resource_version.clone()))
        .collect();
    emit(PodUpdate::Synced);
    loop {
        let change = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = changes.recv() => c,
        };
        match change {
            None => return,
            Some(Change::Added(pod) | Change::Updated { new: pod, .. }) => {
                reported.upsert(&pod, &mut emit)
            }
            Some(Change::Deleted(pod)) => reported.remove(&pod, &mut emit),
            Some(Change::Resync) => reported.resync(&pods.store().state(), &mut emit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CONFIG_MIRROR_ANNOTATION;
    use kube::api::ObjectMeta;

    fn pod(uid: &str, rv: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn describe(updates: &[PodUpdate]) -> Vec<String> {
        updates
            .iter()
            .map(|u| match u {
                PodUpdate::Upsert(p) => format!("upsert {}", pod_uid(p)),
                PodUpdate::Removed(p) => format!("removed {}", pod_uid(p)),
                PodUpdate::Synced => "synced".into(),
            })
            .collect()
    }

    #[test]
    fn initial_repeat_is_dropped_once_and_resync_reports_removals() {
        let mut out = Vec::new();
        let mut emit = |u| out.push(u);
        let mut r = Reported::default();
        r.upsert(&pod("a", "1"), &mut emit);
        r.initial.insert("a".into(), Some("1".into()));
        // The informer's Added for the listed object is a repeat.
        r.upsert(&pod("a", "1"), &mut emit);
        r.upsert(&pod("a", "2"), &mut emit);
        r.upsert(&pod("b", "1"), &mut emit);
        let mut mirror = pod("m", "1");
        mirror.metadata.annotations =
            Some([(CONFIG_MIRROR_ANNOTATION.to_string(), "h".to_string())].into());
        r.upsert(&mirror, &mut emit);
        r.resync(&[Arc::new(pod("b", "3"))], &mut emit);
        assert_eq!(
            describe(&out),
            ["upsert a", "upsert a", "upsert b", "removed a", "upsert b"]
        );
    }
}
