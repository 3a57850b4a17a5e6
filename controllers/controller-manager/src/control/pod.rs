//! Pod writes (upstream `PodControlInterface`).

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use crate::controller_utils::pod_from_template;
use crate::error::Error;

/// What a controller may do to pods. Events stay with the caller (it knows
/// the reason); implementations only talk to the apiserver.
pub trait PodControl: Send + Sync {
    /// Upstream `CreatePods`: one pod from `template`, named after
    /// `owner_name`, controlled by `controller_ref`.
    fn create_pods<'a>(
        &'a self,
        namespace: &'a str,
        template: &'a PodTemplateSpec,
        owner_name: &'a str,
        controller_ref: OwnerReference,
    ) -> BoxFuture<'a, Result<Pod, Error>>;

    /// Upstream `DeletePod`.
    fn delete_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Upstream `PatchPod` (strategic merge), used to adopt and release.
    fn patch_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: serde_json::Value,
    ) -> BoxFuture<'a, Result<Pod, Error>>;
}

/// [`PodControl`] against the apiserver (upstream `RealPodControl`).
#[derive(Clone)]
pub struct KubePodControl {
    client: Client,
}

impl KubePodControl {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn api(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

impl PodControl for KubePodControl {
    fn create_pods<'a>(
        &'a self,
        namespace: &'a str,
        template: &'a PodTemplateSpec,
        owner_name: &'a str,
        controller_ref: OwnerReference,
    ) -> BoxFuture<'a, Result<Pod, Error>> {
        let pod = pod_from_template(template, owner_name, Some(controller_ref));
        Box::pin(async move {
            Ok(self
                .api(namespace)
                .create(&PostParams::default(), &pod)
                .await?)
        })
    }

    fn delete_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.api(namespace)
                .delete(name, &DeleteParams::default())
                .await?;
            Ok(())
        })
    }

    fn patch_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: serde_json::Value,
    ) -> BoxFuture<'a, Result<Pod, Error>> {
        Box::pin(async move {
            let body = Patch::Strategic(patch);
            Ok(self
                .api(namespace)
                .patch(name, &PatchParams::default(), &body)
                .await?)
        })
    }
}
