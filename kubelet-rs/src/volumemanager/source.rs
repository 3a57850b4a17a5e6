//! Where volume content comes from: configMaps, secrets and service-account tokens.
//! A trait so tests and other callers can supply objects without an apiserver.

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PostParams};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Reads the API objects volumes are built from. `Ok(None)` means "not found".
#[async_trait::async_trait]
pub trait ObjectSource: Send + Sync {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, SourceError>;
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError>;
    /// `POST /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token`.
    async fn request_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, SourceError>;
}

/// Reads straight from the apiserver on every sync (the pod resync period bounds staleness).
pub struct KubeObjectSource {
    client: kube::Client,
}

impl KubeObjectSource {
    pub fn new(client: kube::Client) -> Self {
        KubeObjectSource { client }
    }
}

#[async_trait::async_trait]
impl ObjectSource for KubeObjectSource {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, SourceError> {
        Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| SourceError(e.to_string()))
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| SourceError(e.to_string()))
    }

    async fn request_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, SourceError> {
        Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .create_subresource::<TokenRequest, TokenRequest>(
                "token",
                service_account,
                &PostParams::default(),
                request,
            )
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) => SourceError(status.message.clone()),
                other => SourceError(other.to_string()),
            })
    }
}
