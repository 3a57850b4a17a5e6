//! The runtime calls the server makes, behind a trait so tests can fake them;
//! [`CriStreamingRuntime`] is the real CRI implementation.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tonic::transport::Channel;

use crate::cri::{self, CriError, RuntimeService, api};
use crate::kuberuntime::labels::POD_UID;

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

/// [`StreamingRuntime`] over the kubelet's CRI client.
#[derive(Clone, Debug)]
pub struct CriStreamingRuntime {
    runtime: RuntimeService,
}

impl CriStreamingRuntime {
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        CriStreamingRuntime {
            runtime: RuntimeService::new(channel, timeout),
        }
    }

    /// Connects (lazily) to the runtime endpoint, e.g. containerd's socket.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, CriError> {
        Ok(Self::new(cri::connect(socket)?, timeout))
    }
}

#[async_trait::async_trait]
impl StreamingRuntime for CriStreamingRuntime {
    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, CriError> {
        self.runtime.container_status(id).await
    }

    async fn pod_sandbox_id(&self, uid: &str) -> Result<Option<String>, CriError> {
        let filter = api::PodSandboxFilter {
            state: Some(api::PodSandboxStateValue {
                state: api::PodSandboxState::SandboxReady as i32,
            }),
            label_selector: HashMap::from([(POD_UID.to_string(), uid.to_string())]),
            ..api::PodSandboxFilter::default()
        };
        let sandboxes = self.runtime.list_pod_sandbox(Some(filter)).await?;
        // Newest first, like the kubelet picks the latest sandbox.
        Ok(sandboxes
            .into_iter()
            .max_by_key(|s| s.created_at)
            .map(|s| s.id))
    }

    async fn exec(&self, req: api::ExecRequest) -> Result<String, CriError> {
        self.runtime.exec(req).await
    }

    async fn attach(&self, req: api::AttachRequest) -> Result<String, CriError> {
        self.runtime.attach(req).await
    }

    async fn port_forward(&self, req: api::PortForwardRequest) -> Result<String, CriError> {
        self.runtime.port_forward(req).await
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse, CriError> {
        self.runtime.exec_sync(id, cmd, timeout).await
    }
}
