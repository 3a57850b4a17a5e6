//! Kubernetes events the kubelet records (upstream `pkg/kubelet/events`).
//!
//! Components hold an [`EventSink`] handle: in production client-go
//! `tools/record`'s core/v1 recorder (`component_base::events::record`,
//! source `kubelet` on the node's name), in tests a fake that keeps what it
//! was given.

use std::sync::Arc;

use component_base::events::EventType;
use component_base::events::record::LegacyRecorder;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};

/// Upstream event reasons (`pkg/kubelet/events/event.go`).
pub mod reasons {
    pub const CREATED_CONTAINER: &str = "Created";
    pub const STARTED_CONTAINER: &str = "Started";
    pub const FAILED_TO_CREATE_CONTAINER: &str = "Failed";
    pub const KILLING_CONTAINER: &str = "Killing";
    pub const FAILED_POST_START_HOOK: &str = "FailedPostStartHook";
    pub const FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";
    pub const BACK_OFF_START_CONTAINER: &str = "BackOff";
    pub const PULLING_IMAGE: &str = "Pulling";
    pub const PULLED_IMAGE: &str = "Pulled";
    pub const FAILED_TO_PULL_IMAGE: &str = "Failed";
    pub const ERR_IMAGE_NEVER_PULL_POLICY: &str = "ErrImageNeverPull";
    pub const BACK_OFF_PULL_IMAGE: &str = "BackOff";
    pub const FAILED_MOUNT_VOLUME: &str = "FailedMount";
    pub const SANDBOX_CHANGED: &str = "SandboxChanged";
    pub const FAILED_CREATE_POD_SANDBOX: &str = "FailedCreatePodSandBox";
    pub const STARTING_KUBELET: &str = "Starting";
    pub const NODE_READY: &str = "NodeReady";
}

/// Where the kubelet's events go.
pub trait EventSink: Send + Sync + 'static {
    fn record(&self, regarding: &ObjectReference, event_type: EventType, reason: &str, note: &str);
}

/// The core/v1 recorder, as upstream's kubelet records.
impl EventSink for LegacyRecorder {
    fn record(&self, regarding: &ObjectReference, event_type: EventType, reason: &str, note: &str) {
        self.event(regarding, event_type, reason, note);
    }
}

/// Drops every event (runtime managers built without an apiserver).
pub struct NoopEventSink;

impl EventSink for NoopEventSink {
    fn record(&self, _: &ObjectReference, _: EventType, _: &str, _: &str) {}
}

/// The default sink: nothing recorded.
pub fn noop() -> Arc<dyn EventSink> {
    Arc::new(NoopEventSink)
}

/// `ref.GetReference(pod)`.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("Pod".to_string()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// The kubelet's `nodeRef`: upstream sets the node's name as its uid too,
/// and no apiVersion or namespace.
pub fn node_ref(node_name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some("Node".to_string()),
        name: Some(node_name.to_string()),
        uid: Some(node_name.to_string()),
        ..Default::default()
    }
}

/// `GenerateContainerRef`: the pod's reference pointing at one of its containers.
/// Containers not in the spec get upstream's implicit `implicitly required
/// container` prefix.
pub fn container_ref(pod: &Pod, container: &str) -> ObjectReference {
    let spec = pod.spec.as_ref();
    let in_list = |list: Option<Vec<&str>>| list.is_some_and(|l| l.contains(&container));
    let field_path =
        if in_list(spec.map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())) {
            format!("spec.containers{{{container}}}")
        } else if in_list(spec.and_then(|s| {
            s.init_containers
                .as_ref()
                .map(|l| l.iter().map(|c| c.name.as_str()).collect())
        })) {
            format!("spec.initContainers{{{container}}}")
        } else if in_list(spec.and_then(|s| {
            s.ephemeral_containers
                .as_ref()
                .map(|l| l.iter().map(|c| c.name.as_str()).collect())
        })) {
            format!("spec.ephemeralContainers{{{container}}}")
        } else {
            format!("implicitly required container {container}")
        };
    ObjectReference {
        field_path: Some(field_path),
        ..pod_ref(pod)
    }
}

/// Whether `pod` is a real API pod (orphan clean-up works on an empty one).
pub fn is_named(pod: &Pod) -> bool {
    pod.metadata.name.as_deref().is_some_and(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn pod() -> Pod {
        let c = |n: &str| Container {
            name: n.to_string(),
            ..Default::default()
        };
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![c("app")],
                init_containers: Some(vec![c("setup")]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn container_field_paths() {
        let cases = [
            ("app", "spec.containers{app}"),
            ("setup", "spec.initContainers{setup}"),
            ("ghost", "implicitly required container ghost"),
        ];
        for (name, want) in cases {
            let r = container_ref(&pod(), name);
            assert_eq!(r.field_path.as_deref(), Some(want), "{name}");
            assert_eq!(r.kind.as_deref(), Some("Pod"));
            assert_eq!(r.name.as_deref(), Some("web"));
            assert_eq!(r.uid.as_deref(), Some("u1"));
        }
        assert_eq!(pod_ref(&pod()).field_path, None);
    }
}
