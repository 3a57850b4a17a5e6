//! Pod accessors used across the scheduler (upstream `corev1helpers.PodPriority`,
//! `klog.KObj`, the informer's UID key): one home so framework, cache, queue and handlers agree.

use k8s_openapi::api::core::v1::Pod;

/// The pod's UID, the key the cache and the queue use (empty when unset).
pub fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// `namespace/name`, as upstream logs and reports a pod.
pub fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `spec.nodeName` (empty while unassigned).
pub fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// Whether the pod is bound (or assumed) to a node.
pub fn assigned(pod: &Pod) -> bool {
    !node_name(pod).is_empty()
}

/// Pod priority as upstream `corev1helpers.PodPriority` (unset means 0).
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// The profile the pod asks for (`spec.schedulerName`, default `default-scheduler`).
pub fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(crate::config::DEFAULT_SCHEDULER_NAME)
}
