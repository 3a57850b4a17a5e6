//! Writes of one namespaced kind (ReplicaSets and Deployments for the
//! Deployment and ReplicaSet controllers).

use std::fmt::Debug;

use futures::future::BoxFuture;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// What a controller may do to objects of kind `K`. Updates are PUTs with
/// the object's resourceVersion, so a stale write is a 409.
pub trait ObjectControl<K>: Send + Sync {
    fn get<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<K, Error>>;
    fn create<'a>(&'a self, namespace: &'a str, obj: &'a K) -> BoxFuture<'a, Result<K, Error>>;
    fn update<'a>(&'a self, namespace: &'a str, obj: &'a K) -> BoxFuture<'a, Result<K, Error>>;
    fn update_status<'a>(
        &'a self,
        namespace: &'a str,
        obj: &'a K,
    ) -> BoxFuture<'a, Result<K, Error>>;
    fn delete<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<(), Error>>;
    /// Delete with upstream's options (propagation policy, UID
    /// precondition), as the CronJob and TTL-after-finished controllers do.
    fn delete_with<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        params: DeleteParams,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// Strategic merge patch, used to adopt and release.
    fn patch<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: serde_json::Value,
    ) -> BoxFuture<'a, Result<K, Error>>;
}

/// [`ObjectControl`] against the apiserver.
#[derive(Clone)]
pub struct KubeObjectControl {
    client: Client,
}

impl KubeObjectControl {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl<K> ObjectControl<K> for KubeObjectControl
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    fn get<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<K, Error>> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        Box::pin(async move { Ok(api.get(name).await?) })
    }

    fn create<'a>(&'a self, namespace: &'a str, obj: &'a K) -> BoxFuture<'a, Result<K, Error>> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        Box::pin(async move { Ok(api.create(&PostParams::default(), obj).await?) })
    }

    fn update<'a>(&'a self, namespace: &'a str, obj: &'a K) -> BoxFuture<'a, Result<K, Error>> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let name = obj.name_any();
        Box::pin(async move { Ok(api.replace(&name, &PostParams::default(), obj).await?) })
    }

    fn update_status<'a>(
        &'a self,
        namespace: &'a str,
        obj: &'a K,
    ) -> BoxFuture<'a, Result<K, Error>> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let name = obj.name_any();
        Box::pin(async move {
            Ok(api
                .replace_status(&name, &PostParams::default(), obj)
                .await?)
        })
    }

    fn delete<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        Box::pin(async move {
            api.delete(name, &DeleteParams::default()).await?;
            Ok(())
        })
    }

    fn delete_with<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        params: DeleteParams,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        Box::pin(async move {
            api.delete(name, &params).await?;
            Ok(())
        })
    }

    fn patch<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: serde_json::Value,
    ) -> BoxFuture<'a, Result<K, Error>> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        Box::pin(async move {
            let body = Patch::Strategic(patch);
            Ok(api.patch(name, &PatchParams::default(), &body).await?)
        })
    }
}
