//! In-memory CRI runtime for tests (sandboxes and containers that never run anything).
//! Serve it on a unix socket with [`FakeRuntime::serve`]; tests flip container states
//! with [`FakeRuntime::exit_container`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use kubelet::cri::api;
use kubelet::cri::api::image_service_server::{ImageService, ImageServiceServer};
use kubelet::cri::api::runtime_service_server::{RuntimeService, RuntimeServiceServer};

#[derive(Default, Debug)]
struct State {
    next_id: u64,
    sandboxes: BTreeMap<String, api::PodSandboxStatus>,
    sandbox_configs: BTreeMap<String, api::PodSandboxConfig>,
    containers: BTreeMap<String, (String, api::ContainerStatus)>,
    images: BTreeMap<String, api::Image>,
    calls: Vec<String>,
}

/// A fake container runtime; clones share state.
#[derive(Clone, Default, Debug)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
}

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge the others.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes an image "present" so pulls are not needed.
    pub fn add_image(&self, name: &str) {
        let mut s = self.lock();
        let id = format!("sha256:{:064x}", s.images.len() + 1);
        s.images.insert(
            name.to_string(),
            api::Image {
                id,
                repo_tags: vec![name.to_string()],
                size: 1024,
                ..Default::default()
            },
        );
    }

    /// Names of the RPCs called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Marks a running container as exited with `code`.
    pub fn exit_container(&self, id: &str, code: i32) {
        let mut s = self.lock();
        if let Some((_, c)) = s.containers.get_mut(id) {
            c.state = api::ContainerState::ContainerExited as i32;
            c.exit_code = code;
            c.finished_at = now_ns();
            c.reason = if code == 0 { "Completed" } else { "Error" }.into();
        }
    }

    /// Container statuses currently known, by id.
    pub fn containers(&self) -> Vec<api::ContainerStatus> {
        self.lock()
            .containers
            .values()
            .map(|(_, c)| c.clone())
            .collect()
    }

    pub fn sandboxes(&self) -> Vec<api::PodSandboxStatus> {
        self.lock().sandboxes.values().cloned().collect()
    }

    /// Serves the fake on `socket` until the returned task is aborted.
    pub fn serve(&self, socket: &Path) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let listener = tokio::net::UnixListener::bind(socket)?;
        let runtime = RuntimeServiceServer::new(self.clone());
        let images = ImageServiceServer::new(self.clone());
        Ok(tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .add_service(runtime)
                .add_service(images)
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "fake CRI server stopped");
            }
        }))
    }

    fn record(&self, call: &str) -> MutexGuard<'_, State> {
        let mut s = self.lock();
        s.calls.push(call.to_string());
        s
    }
}

fn not_found(what: &str, id: &str) -> Status {
    Status::not_found(format!("{what} {id:?} not found"))
}

fn labels_match(
    labels: &std::collections::HashMap<String, String>,
    want: &std::collections::HashMap<String, String>,
) -> bool {
    want.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[tonic::async_trait]
impl RuntimeService for FakeRuntime {
    async fn version(
        &self,
        _: Request<api::VersionRequest>,
    ) -> Result<Response<api::VersionResponse>, Status> {
        Ok(Response::new(api::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "0.0.1".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn status(
        &self,
        _: Request<api::StatusRequest>,
    ) -> Result<Response<api::StatusResponse>, Status> {
        let cond = |t: &str| api::RuntimeCondition {
            r#type: t.into(),
            status: true,
            ..Default::default()
        };
        Ok(Response::new(api::StatusResponse {
            status: Some(api::RuntimeStatus {
                conditions: vec![cond("RuntimeReady"), cond("NetworkReady")],
            }),
            ..Default::default()
        }))
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<api::RunPodSandboxRequest>,
    ) -> Result<Response<api::RunPodSandboxResponse>, Status> {
        let config = req.into_inner().config.unwrap_or_default();
        let mut s = self.record("RunPodSandbox");
        s.next_id += 1;
        let id = format!("sandbox{}", s.next_id);
        let ip = format!("10.88.0.{}", s.next_id % 250 + 2);
        let status = api::PodSandboxStatus {
            id: id.clone(),
            metadata: config.metadata.clone(),
            state: api::PodSandboxState::SandboxReady as i32,
            created_at: now_ns(),
            network: Some(api::PodSandboxNetworkStatus {
                ip,
                additional_ips: vec![],
            }),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            ..Default::default()
        };
        s.sandboxes.insert(id.clone(), status);
        s.sandbox_configs.insert(id.clone(), config);
        Ok(Response::new(api::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<api::StopPodSandboxRequest>,
    ) -> Result<Response<api::StopPodSandboxResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        let mut s = self.record("StopPodSandbox");
        if let Some(sb) = s.sandboxes.get_mut(&id) {
            sb.state = api::PodSandboxState::SandboxNotready as i32;
        }
        for (sid, c) in s.containers.values_mut() {
            if *sid == id && c.state == api::ContainerState::ContainerRunning as i32 {
                c.state = api::ContainerState::ContainerExited as i32;
                c.exit_code = 137;
                c.finished_at = now_ns();
            }
        }
        Ok(Response::new(api::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<api::RemovePodSandboxRequest>,
    ) -> Result<Response<api::RemovePodSandboxResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        let mut s = self.record("RemovePodSandbox");
        s.sandboxes.remove(&id);
        s.sandbox_configs.remove(&id);
        s.containers.retain(|_, (sid, _)| *sid != id);
        Ok(Response::new(api::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<api::PodSandboxStatusRequest>,
    ) -> Result<Response<api::PodSandboxStatusResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        let s = self.lock();
        let status = s
            .sandboxes
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("sandbox", &id))?;
        Ok(Response::new(api::PodSandboxStatusResponse {
            status: Some(status),
            ..Default::default()
        }))
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<api::ListPodSandboxRequest>,
    ) -> Result<Response<api::ListPodSandboxResponse>, Status> {
        let filter = req.into_inner().filter.unwrap_or_default();
        let s = self.lock();
        let items = s
            .sandboxes
            .values()
            .filter(|sb| filter.id.is_empty() || sb.id == filter.id)
            .filter(|sb| labels_match(&sb.labels, &filter.label_selector))
            .map(|sb| api::PodSandbox {
                id: sb.id.clone(),
                metadata: sb.metadata.clone(),
                state: sb.state,
                created_at: sb.created_at,
                labels: sb.labels.clone(),
                annotations: sb.annotations.clone(),
                runtime_handler: String::new(),
            })
            .collect();
        Ok(Response::new(api::ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        req: Request<api::CreateContainerRequest>,
    ) -> Result<Response<api::CreateContainerResponse>, Status> {
        let req = req.into_inner();
        let config = req.config.unwrap_or_default();
        let mut s = self.record("CreateContainer");
        if !s.sandboxes.contains_key(&req.pod_sandbox_id) {
            return Err(not_found("sandbox", &req.pod_sandbox_id));
        }
        let image = config.image.clone().unwrap_or_default().image;
        // The kubelet passes the image id it resolved; accept names too.
        let image_ref = s
            .images
            .iter()
            .find(|(name, i)| **name == image || i.id == image)
            .map(|(_, i)| i.id.clone())
            .ok_or_else(|| not_found("image", &image))?;
        s.next_id += 1;
        let id = format!("container{}", s.next_id);
        let status = api::ContainerStatus {
            id: id.clone(),
            metadata: config.metadata.clone(),
            state: api::ContainerState::ContainerCreated as i32,
            created_at: now_ns(),
            image: config.image.clone(),
            image_ref,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            log_path: config.log_path.clone(),
            ..Default::default()
        };
        s.containers
            .insert(id.clone(), (req.pod_sandbox_id, status));
        Ok(Response::new(api::CreateContainerResponse {
            container_id: id,
        }))
    }

    async fn start_container(
        &self,
        req: Request<api::StartContainerRequest>,
    ) -> Result<Response<api::StartContainerResponse>, Status> {
        let id = req.into_inner().container_id;
        let mut s = self.record("StartContainer");
        let (_, c) = s
            .containers
            .get_mut(&id)
            .ok_or_else(|| not_found("container", &id))?;
        c.state = api::ContainerState::ContainerRunning as i32;
        c.started_at = now_ns();
        Ok(Response::new(api::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        req: Request<api::StopContainerRequest>,
    ) -> Result<Response<api::StopContainerResponse>, Status> {
        let id = req.into_inner().container_id;
        let mut s = self.record("StopContainer");
        if let Some((_, c)) = s.containers.get_mut(&id)
            && c.state == api::ContainerState::ContainerRunning as i32
        {
            c.state = api::ContainerState::ContainerExited as i32;
            c.exit_code = 137;
            c.reason = "Error".into();
            c.finished_at = now_ns();
        }
        Ok(Response::new(api::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        req: Request<api::RemoveContainerRequest>,
    ) -> Result<Response<api::RemoveContainerResponse>, Status> {
        let id = req.into_inner().container_id;
        self.record("RemoveContainer").containers.remove(&id);
        Ok(Response::new(api::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        req: Request<api::ListContainersRequest>,
    ) -> Result<Response<api::ListContainersResponse>, Status> {
        let filter = req.into_inner().filter.unwrap_or_default();
        let s = self.lock();
        let containers = s
            .containers
            .values()
            .filter(|(sid, _)| filter.pod_sandbox_id.is_empty() || *sid == filter.pod_sandbox_id)
            .filter(|(_, c)| labels_match(&c.labels, &filter.label_selector))
            .map(|(sid, c)| api::Container {
                id: c.id.clone(),
                pod_sandbox_id: sid.clone(),
                metadata: c.metadata.clone(),
                image: c.image.clone(),
                image_ref: c.image_ref.clone(),
                state: c.state,
                created_at: c.created_at,
                labels: c.labels.clone(),
                annotations: c.annotations.clone(),
                image_id: c.image_ref.clone(),
            })
            .collect();
        Ok(Response::new(api::ListContainersResponse { containers }))
    }

    /// Exec probes: `true` exits 0, anything else exits 1.
    async fn exec_sync(
        &self,
        req: Request<api::ExecSyncRequest>,
    ) -> Result<Response<api::ExecSyncResponse>, Status> {
        let req = req.into_inner();
        let s = self.record("ExecSync");
        let running = s
            .containers
            .get(&req.container_id)
            .is_some_and(|(_, c)| c.state == api::ContainerState::ContainerRunning as i32);
        if !running {
            return Err(not_found("running container", &req.container_id));
        }
        let ok = req.cmd.first().map(String::as_str) == Some("true");
        Ok(Response::new(api::ExecSyncResponse {
            stdout: Vec::new(),
            stderr: if ok {
                Vec::new()
            } else {
                b"probe failed".to_vec()
            },
            exit_code: if ok { 0 } else { 1 },
        }))
    }

    async fn container_status(
        &self,
        req: Request<api::ContainerStatusRequest>,
    ) -> Result<Response<api::ContainerStatusResponse>, Status> {
        let id = req.into_inner().container_id;
        let s = self.lock();
        let (_, c) = s
            .containers
            .get(&id)
            .ok_or_else(|| not_found("container", &id))?;
        Ok(Response::new(api::ContainerStatusResponse {
            status: Some(c.clone()),
            ..Default::default()
        }))
    }
}

#[tonic::async_trait]
impl ImageService for FakeRuntime {
    async fn list_images(
        &self,
        _: Request<api::ListImagesRequest>,
    ) -> Result<Response<api::ListImagesResponse>, Status> {
        let images = self.lock().images.values().cloned().collect();
        Ok(Response::new(api::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        req: Request<api::ImageStatusRequest>,
    ) -> Result<Response<api::ImageStatusResponse>, Status> {
        let name = req.into_inner().image.unwrap_or_default().image;
        let image = self.lock().images.get(&name).cloned();
        Ok(Response::new(api::ImageStatusResponse {
            image,
            ..Default::default()
        }))
    }

    async fn pull_image(
        &self,
        req: Request<api::PullImageRequest>,
    ) -> Result<Response<api::PullImageResponse>, Status> {
        let name = req.into_inner().image.unwrap_or_default().image;
        drop(self.record("PullImage"));
        if name.contains("does-not-exist") {
            return Err(Status::not_found(format!("pull access denied for {name}")));
        }
        self.add_image(&name);
        let image_ref = self
            .lock()
            .images
            .get(&name)
            .map(|i| i.id.clone())
            .unwrap_or_default();
        Ok(Response::new(api::PullImageResponse { image_ref }))
    }
}
