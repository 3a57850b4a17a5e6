//! Typed wrappers over the generated CRI clients: one timeout policy, one error type.
//!
//! The channel connects lazily and reconnects on its own, so a containerd restart shows
//! up as `Unavailable` errors for a while and then heals; the sync loops retry.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::api;
use super::api::image_service_client::ImageServiceClient;
use super::api::runtime_service_client::RuntimeServiceClient;
use super::error::CriError;

/// The kubelet's `maxMsgSize` for CRI responses.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// Upstream default `runtimeRequestTimeout`.
pub const DEFAULT_RUNTIME_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Opens a lazily connected channel to a CRI unix socket.
pub fn connect(socket: &Path) -> Result<Channel, CriError> {
    let path: PathBuf = socket.to_path_buf();
    // The URI is a placeholder: the connector ignores it and dials the socket.
    let endpoint = Endpoint::try_from("http://localhost").map_err(|e| CriError::Endpoint {
        endpoint: socket.display().to_string(),
        message: e.to_string(),
    })?;
    let channel = endpoint
        .connect_timeout(Duration::from_secs(10))
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }));
    Ok(channel)
}

async fn call<T>(
    op: &'static str,
    timeout: Option<Duration>,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CriError> {
    let result = match timeout {
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .map_err(|_| CriError::Timeout { op, timeout: t })?,
        None => fut.await,
    };
    result
        .map(tonic::Response::into_inner)
        .map_err(|status| CriError::Status { op, status })
}

/// CRI `RuntimeService` client (pod sandboxes, containers, runtime status).
#[derive(Clone, Debug)]
pub struct RuntimeService {
    client: RuntimeServiceClient<Channel>,
    timeout: Duration,
}

impl RuntimeService {
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        let client = RuntimeServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Self { client, timeout }
    }

    fn t(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    pub async fn version(&self) -> Result<api::VersionResponse, CriError> {
        let req = api::VersionRequest {
            version: "v1".into(),
        };
        call("Version", self.t(), self.client.clone().version(req)).await
    }

    /// Polls `Version` until the runtime answers or `deadline` passes.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<api::VersionResponse, CriError> {
        let start = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            match self.version().await {
                Ok(v) => return Ok(v),
                Err(e) if start.elapsed() + delay < deadline => {
                    tracing::debug!(error = %e, "container runtime not ready yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn status(&self) -> Result<api::StatusResponse, CriError> {
        let req = api::StatusRequest { verbose: false };
        call("Status", self.t(), self.client.clone().status(req)).await
    }

    pub async fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        runtime_handler: String,
    ) -> Result<String, CriError> {
        let req = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler,
        };
        // Sandbox creation includes CNI setup: upstream waits twice the request timeout.
        let resp = call(
            "RunPodSandbox",
            Some(self.timeout * 2),
            self.client.clone().run_pod_sandbox(req),
        )
        .await?;
        Ok(resp.pod_sandbox_id)
    }

    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let req = api::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        call(
            "StopPodSandbox",
            self.t(),
            self.client.clone().stop_pod_sandbox(req),
        )
        .await
        .map(drop)
    }

    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let req = api::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        call(
            "RemovePodSandbox",
            self.t(),
            self.client.clone().remove_pod_sandbox(req),
        )
        .await
        .map(drop)
    }

    pub async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus, CriError> {
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        let op = "PodSandboxStatus";
        let resp = call(op, self.t(), self.client.clone().pod_sandbox_status(req)).await?;
        resp.status
            .ok_or(CriError::Incomplete { op, what: "status" })
    }

    pub async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>, CriError> {
        let req = api::ListPodSandboxRequest { filter };
        let resp = call(
            "ListPodSandbox",
            self.t(),
            self.client.clone().list_pod_sandbox(req),
        )
        .await?;
        Ok(resp.items)
    }

    pub async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let resp = call(
            "CreateContainer",
            self.t(),
            self.client.clone().create_container(req),
        )
        .await?;
        Ok(resp.container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), CriError> {
        let req = api::StartContainerRequest {
            container_id: id.into(),
        };
        call(
            "StartContainer",
            self.t(),
            self.client.clone().start_container(req),
        )
        .await
        .map(drop)
    }

    /// Stops a container, giving it `grace` before SIGKILL; the call may take that long.
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), CriError> {
        let req = api::StopContainerRequest {
            container_id: id.into(),
            timeout: grace.as_secs() as i64,
        };
        call(
            "StopContainer",
            Some(self.timeout + grace),
            self.client.clone().stop_container(req),
        )
        .await
        .map(drop)
    }

    /// Applies new Linux resources to a running container (in-place resize).
    pub async fn update_container_resources(
        &self,
        id: &str,
        linux: api::LinuxContainerResources,
    ) -> Result<(), CriError> {
        let req = api::UpdateContainerResourcesRequest {
            container_id: id.into(),
            linux: Some(linux),
            ..Default::default()
        };
        call(
            "UpdateContainerResources",
            self.t(),
            self.client.clone().update_container_resources(req),
        )
        .await
        .map(drop)
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        let req = api::RemoveContainerRequest {
            container_id: id.into(),
        };
        call(
            "RemoveContainer",
            self.t(),
            self.client.clone().remove_container(req),
        )
        .await
        .map(drop)
    }

    pub async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>, CriError> {
        let req = api::ListContainersRequest { filter };
        let resp = call(
            "ListContainers",
            self.t(),
            self.client.clone().list_containers(req),
        )
        .await?;
        Ok(resp.containers)
    }

    /// Stats of every container the runtime knows (`ListContainerStats`).
    pub async fn list_container_stats(&self) -> Result<Vec<api::ContainerStats>, CriError> {
        let req = api::ListContainerStatsRequest { filter: None };
        let resp = call(
            "ListContainerStats",
            self.t(),
            self.client.clone().list_container_stats(req),
        )
        .await?;
        Ok(resp.stats)
    }

    /// Stats of every pod sandbox (`ListPodSandboxStats`: pod cgroup and netns).
    pub async fn list_pod_sandbox_stats(&self) -> Result<Vec<api::PodSandboxStats>, CriError> {
        let req = api::ListPodSandboxStatsRequest { filter: None };
        let resp = call(
            "ListPodSandboxStats",
            self.t(),
            self.client.clone().list_pod_sandbox_stats(req),
        )
        .await?;
        Ok(resp.stats)
    }

    pub async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, CriError> {
        let req = api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        let op = "ContainerStatus";
        let resp = call(op, self.t(), self.client.clone().container_status(req)).await?;
        resp.status
            .ok_or(CriError::Incomplete { op, what: "status" })
    }

    /// Runs a command synchronously in a container (exec probes, exec hooks). A zero
    /// `timeout` waits for the command however long it runs (upstream's hooks).
    pub async fn exec_sync(
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
        call(
            "ExecSync",
            (!timeout.is_zero()).then(|| self.timeout + timeout),
            self.client.clone().exec_sync(req),
        )
        .await
    }

    /// Asks the runtime for a streaming URL for `exec`.
    pub async fn exec(&self, req: api::ExecRequest) -> Result<String, CriError> {
        let resp = call("Exec", self.t(), self.client.clone().exec(req)).await?;
        Ok(resp.url)
    }

    /// Asks the runtime for a streaming URL for `attach`.
    pub async fn attach(&self, req: api::AttachRequest) -> Result<String, CriError> {
        let resp = call("Attach", self.t(), self.client.clone().attach(req)).await?;
        Ok(resp.url)
    }

    /// Asks the runtime for a streaming URL for `portforward`.
    pub async fn port_forward(&self, req: api::PortForwardRequest) -> Result<String, CriError> {
        let resp = call(
            "PortForward",
            self.t(),
            self.client.clone().port_forward(req),
        )
        .await?;
        Ok(resp.url)
    }

    pub async fn update_runtime_config(&self, pod_cidr: &str) -> Result<(), CriError> {
        let req = api::UpdateRuntimeConfigRequest {
            runtime_config: Some(api::RuntimeConfig {
                network_config: Some(api::NetworkConfig {
                    pod_cidr: pod_cidr.into(),
                }),
            }),
        };
        call(
            "UpdateRuntimeConfig",
            self.t(),
            self.client.clone().update_runtime_config(req),
        )
        .await
        .map(drop)
    }
}

/// CRI `ImageService` client.
#[derive(Clone, Debug)]
pub struct ImageService {
    client: ImageServiceClient<Channel>,
    timeout: Duration,
}

impl ImageService {
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        let client = ImageServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Self { client, timeout }
    }

    pub async fn list_images(&self) -> Result<Vec<api::Image>, CriError> {
        let req = api::ListImagesRequest { filter: None };
        let resp = call(
            "ListImages",
            Some(self.timeout),
            self.client.clone().list_images(req),
        )
        .await?;
        Ok(resp.images)
    }

    /// The image if present locally, `None` if not.
    pub async fn image_status(&self, image: &str) -> Result<Option<api::Image>, CriError> {
        let req = api::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        let resp = call(
            "ImageStatus",
            Some(self.timeout),
            self.client.clone().image_status(req),
        )
        .await?;
        Ok(resp.image)
    }

    /// Pulls an image; returns its image ref. No timeout: pulls can be long
    /// (upstream relies on progress deadlines instead).
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let req = api::PullImageRequest {
            image: Some(image_spec(image)),
            auth,
            sandbox_config,
        };
        let resp = call("PullImage", None, self.client.clone().pull_image(req)).await?;
        Ok(resp.image_ref)
    }

    pub async fn remove_image(&self, image: &str) -> Result<(), CriError> {
        let req = api::RemoveImageRequest {
            image: Some(image_spec(image)),
        };
        call(
            "RemoveImage",
            Some(self.timeout),
            self.client.clone().remove_image(req),
        )
        .await
        .map(drop)
    }
}

fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.into(),
        ..Default::default()
    }
}
