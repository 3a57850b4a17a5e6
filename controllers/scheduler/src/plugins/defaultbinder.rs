//! DefaultBinder: binds the pod by POSTing a `Binding` to `pods/<name>/binding`.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use super::names;
use crate::framework::{BindPlugin, CycleState, Handle, Plugin, Status};

pub struct DefaultBinder {
    client: Option<kube::Client>,
}

impl DefaultBinder {
    pub fn new(handle: &Handle) -> Self {
        DefaultBinder {
            client: handle.client.clone(),
        }
    }
}

/// The Binding object for `pod` onto `node`, carrying the pod UID so a recreated pod with the
/// same name is never bound by mistake.
pub fn binding_for(pod: &Pod, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    }
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        names::DEFAULT_BINDER
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

#[async_trait]
impl BindPlugin for DefaultBinder {
    async fn bind(&self, _state: &CycleState, pod: &Pod, node: &str) -> Status {
        let Some(client) = self.client.clone() else {
            return Status::error("DefaultBinder has no API client");
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let body = binding_for(pod, node);
        let api: Api<Pod> = Api::namespaced(client, ns);
        match api
            .create_subresource::<Binding, serde_json::Value>(
                "binding",
                name,
                &PostParams::default(),
                &body,
            )
            .await
        {
            Ok(_) => Status::success(),
            Err(e) => Status::error(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pod_named;

    #[test]
    fn binding_targets_node_and_keeps_uid() {
        let b = binding_for(&pod_named("p", vec![]), "n1");
        assert_eq!(b.target.kind.as_deref(), Some("Node"));
        assert_eq!(b.target.name.as_deref(), Some("n1"));
        assert_eq!(b.metadata.uid.as_deref(), Some("uid-p"));
        assert_eq!(b.metadata.namespace.as_deref(), Some("default"));
    }
}
