//! The runtime calls the server makes, behind a trait so tests can fake them;
//! [`CriStreamingRuntime`] is the real CRI implementation.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tonic::transport::Channel;

use crate::cri::api::runtime_service_client::RuntimeServiceClient;
use crate::cri::{self, CriError, MAX_MESSAGE_SIZE, api};

/// CRI calls behind `/containerLogs`, `/exec`, `/attach`, `/portForward`, `/run`.
#[async_trait::async_trait]
pub trait StreamingRuntime: Send + Sync {
    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, CriError>;
    /// The ready sandbox of the pod with `uid`, if any.
    async fn pod_sandbox_id(&self, uid: &str) -> Result<Option<String>, CriError>;
    async fn exec(&self, req: api::ExecRequest) -> Result<String, CriError>;
    async fn attach(&self, req: api::AttachRequest) -> Result<String, CriError>;
    async fn port_forward(&self, req: api::PortForwardRequest) -> Result<String, CriError>;
    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse, CriError>;
}

/// [`StreamingRuntime`] over a CRI socket.
#[derive(Clone, Debug)]
pub struct CriStreamingRuntime {
    client: RuntimeServiceClient<Channel>,
    timeout: Duration,
}

impl CriStreamingRuntime {
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        let client = RuntimeServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        CriStreamingRuntime { client, timeout }
    }

    /// Connects (lazily) to the runtime endpoint, e.g. containerd's socket.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, CriError> {
        Ok(Self::new(cri::connect(socket)?, timeout))
    }

    async fn call<T>(
        &self,
        op: &'static str,
        timeout: Duration,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CriError> {
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| CriError::Timeout { op, timeout })?
            .map(tonic::Response::into_inner)
            .map_err(|status| CriError::Status { op, status })
    }
}

#[async_trait::async_trait]
impl StreamingRuntime for CriStreamingRuntime {
    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, CriError> {
        let op = "ContainerStatus";
        let req = api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        let resp = self
            .call(op, self.timeout, self.client.clone().container_status(req))
            .await?;
        resp.status
            .ok_or(CriError::Incomplete { op, what: "status" })
    }

    async fn pod_sandbox_id(&self, uid: &str) -> Result<Option<String>, CriError> {
        let filter = api::PodSandboxFilter {
            state: Some(api::PodSandboxStateValue {
                state: api::PodSandboxState::SandboxReady as i32,
            }),
            label_selector: HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]),
            ..api::PodSandboxFilter::default()
        };
        let req = api::ListPodSandboxRequest {
            filter: Some(filter),
        };
        let resp = self
            .call(
                "ListPodSandbox",
                self.timeout,
                self.client.clone().list_pod_sandbox(req),
            )
            .await?;
        // Newest first, like the kubelet picks the latest sandbox.
        Ok(resp
            .items
            .into_iter()
            .max_by_key(|s| s.created_at)
            .map(|s| s.id))
    }

    async fn exec(&self, req: api::ExecRequest) -> Result<String, CriError> {
        let resp = self
            .call("Exec", self.timeout, self.client.clone().exec(req))
            .await?;
        Ok(resp.url)
    }

    async fn attach(&self, req: api::AttachRequest) -> Result<String, CriError> {
        let resp = self
            .call("Attach", self.timeout, self.client.clone().attach(req))
            .await?;
        Ok(resp.url)
    }

    async fn port_forward(&self, req: api::PortForwardRequest) -> Result<String, CriError> {
        let resp = self
            .call(
                "PortForward",
                self.timeout,
                self.client.clone().port_forward(req),
            )
            .await?;
        Ok(resp.url)
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse, CriError> {
        let req = api::ExecSyncRequest {
            container_id: id.into(),
            cmd,
            timeout: timeout.as_secs() as i64,
        };
        self.call(
            "ExecSync",
            self.timeout + timeout,
            self.client.clone().exec_sync(req),
        )
        .await
    }
}
