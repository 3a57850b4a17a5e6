//! The kubelet API on :10250 (upstream `pkg/kubelet/server`): `/pods`,
//! `/runningpods/`, `/containerLogs`, `/exec`, `/attach`, `/portForward`,
//! `/run`, `/configz`, `/stats/summary`, `/metrics/{resource,cadvisor,probes}`. `/healthz` and `/metrics` come from
//! `component_base::serving::component_router`, which `serve_secure` merges
//! with this router; [`auth::kubelet_auth_filter`] guards all of them.
//!
//! The server knows the kubelet only through [`PodProvider`] (the pod
//! manager's view) and the CRI only through [`StreamingRuntime`].

pub mod auth;
mod containerlogs;
pub mod logs;
mod pods;
pub mod proxy;
pub mod runtime;
mod stats;
mod streaming;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use k8s_openapi::api::core::v1::Pod;

pub use auth::kubelet_auth_filter;
pub use runtime::{CriStreamingRuntime, StreamingRuntime};

/// Why the runtime's pods could not be listed (a 500; retriable).
#[derive(Debug, thiserror::Error)]
pub enum RunningPodsError {
    #[error("kubelet has not started yet")]
    NotStarted,
    #[error(transparent)]
    Runtime(#[from] crate::cri::CriError),
}

/// The kubelet's pods as the server needs them.
#[async_trait::async_trait]
pub trait PodProvider: Send + Sync {
    /// Pods bound to this node with the kubelet's latest status (upstream `GetPods`).
    fn pods(&self) -> Vec<Pod>;

    /// Pods as the runtime reports them (upstream `GetRunningPods`).
    async fn running_pods(&self) -> Result<Vec<Pod>, RunningPodsError>;

    /// upstream `GetPodByName`.
    fn pod_by_name(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.pods().into_iter().find(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.metadata.name.as_deref() == Some(name)
        })
    }
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct KubeletServer {
    pods: Arc<dyn PodProvider>,
    runtime: Arc<dyn StreamingRuntime>,
    /// `/configz` body: `{"kubeletconfig": <this>}`.
    configz: Arc<serde_json::Value>,
    /// Resource usage for `/stats/summary` and `/metrics/{resource,cadvisor}`.
    stats: Option<Arc<dyn crate::stats::StatsProvider>>,
}

impl KubeletServer {
    pub fn new(pods: Arc<dyn PodProvider>, runtime: Arc<dyn StreamingRuntime>) -> Self {
        KubeletServer {
            pods,
            runtime,
            configz: Arc::new(serde_json::Value::Null),
            stats: None,
        }
    }

    /// The source of `/stats/summary` and the resource metric endpoints.
    pub fn with_stats(mut self, stats: Arc<dyn crate::stats::StatsProvider>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The `KubeletConfiguration` (any serialisable value) served at `/configz`.
    pub fn with_configz(mut self, config: serde_json::Value) -> Self {
        self.configz = Arc::new(config);
        self
    }

    /// The routes, to be passed as `extra` to `App::serve_secure` with
    /// [`kubelet_auth_filter`] as its filter.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/pods", get(pods::get_pods))
            .route("/pods/", get(pods::get_pods))
            .route("/runningpods/", get(pods::get_running_pods))
            .route("/configz", get(pods::get_configz))
            .route("/stats/summary", get(stats::get_summary))
            .route("/metrics/resource", get(stats::get_resource_metrics))
            .route("/metrics/cadvisor", get(stats::get_cadvisor_metrics))
            .route("/metrics/probes", get(stats::get_probe_metrics))
            .route(
                "/containerLogs/{namespace}/{pod}/{container}",
                get(containerlogs::get_container_logs),
            )
            .route("/run/{namespace}/{pod}/{container}", post(pods::post_run))
            .route(
                "/run/{namespace}/{pod}/{uid}/{container}",
                post(pods::post_run_uid),
            )
            .route(
                "/exec/{namespace}/{pod}/{container}",
                get(streaming::exec).post(streaming::exec),
            )
            .route(
                "/exec/{namespace}/{pod}/{uid}/{container}",
                get(streaming::exec_uid).post(streaming::exec_uid),
            )
            .route(
                "/attach/{namespace}/{pod}/{container}",
                get(streaming::attach).post(streaming::attach),
            )
            .route(
                "/attach/{namespace}/{pod}/{uid}/{container}",
                get(streaming::attach_uid).post(streaming::attach_uid),
            )
            .route(
                "/portForward/{namespace}/{pod}",
                get(streaming::port_forward).post(streaming::port_forward),
            )
            .route(
                "/portForward/{namespace}/{pod}/{uid}",
                get(streaming::port_forward_uid).post(streaming::port_forward_uid),
            )
            .with_state(self.clone())
    }
}

/// The running container named `container` of a pod (upstream
/// `findContainer`: only running containers count), by runtime ID.
pub(crate) fn running_container_id(
    pod: &Pod,
    uid: Option<&str>,
    container: &str,
) -> Option<String> {
    if uid.is_some_and(|uid| pod.metadata.uid.as_deref() != Some(uid)) {
        return None;
    }
    let status = pod.status.as_ref()?;
    let cs = logs::status::find_status(status, container)?;
    cs.state.as_ref()?.running.as_ref()?;
    let id = cs.container_id.as_deref()?;
    Some(logs::status::strip_scheme(id).to_string())
}

/// upstream `GetPodFullName`: `name_namespace`.
pub(crate) fn pod_full_name(pod: &Pod) -> String {
    format!(
        "{}_{}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default()
    )
}
