//! Types every room shares (upstream `pkg/kubelet/types`): what a pod source reports,
//! the annotations sources stamp on pods, and the pod predicates built on them. Pod
//! sources (`config/`), the pod workers and the status code all read these, so they sit
//! here rather than in any one of them.

use k8s_openapi::api::core::v1::Pod;

/// Which source a pod came from: `api`, `file`, `http`.
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// Set on mirror pods of static pods.
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
pub const API_SOURCE: &str = "api";
pub const FILE_SOURCE: &str = "file";

/// What a pod source reports to the kubelet's sync loop (upstream `kubetypes.PodUpdate`).
#[derive(Clone, Debug)]
pub enum PodUpdate {
    /// Added or changed.
    Upsert(Pod),
    /// Gone from the source (deleted with grace 0, by someone else, or its file removed).
    Removed(Pod),
    /// The source has delivered its initial list.
    Synced,
}

/// The pod's uid, empty if unset (the key of pod workers, caches and runtime labels).
pub fn pod_uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The pod's grace period in seconds: the deletion's, else the spec's, else 30.
pub fn grace_period_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
}

/// Static pods carry `kubernetes.io/config.source` other than `api`.
pub fn is_static_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|s| s != API_SOURCE)
}

/// Mirror pods carry the mirror annotation; the kubelet never runs them itself.
pub fn is_mirror_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CONFIG_MIRROR_ANNOTATION))
}
