//! `GET /containerLogs/{namespace}/{pod}/{container}` (upstream `getContainerLogs`
//! + `GetKubeletContainerLogs` + `ReadLogs`).

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::KubeletServer;
use super::logs::cri_log::LogWriter;
use super::logs::options::QueryError;
use super::logs::parse_log_options;
use super::logs::reader::{open_log, stream_log};
use super::logs::status::log_container_id;
use super::proxy::plain;
use crate::cri::api;

fn has_container(pod: &Pod, name: &str) -> bool {
    let Some(spec) = &pod.spec else { return false };
    spec.containers.iter().any(|c| c.name == name)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == name)
        || spec
            .ephemeral_containers
            .iter()
            .flatten()
            .any(|c| c.name == name)
}

pub(super) async fn get_container_logs(
    State(s): State<KubeletServer>,
    Path((namespace, pod_name, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let opts = match parse_log_options(&query) {
        Ok(o) => o,
        Err(err @ QueryError::Decode) => return plain(StatusCode::BAD_REQUEST, err.to_string()),
        Err(err @ QueryError::Invalid) => {
            return plain(StatusCode::UNPROCESSABLE_ENTITY, err.to_string());
        }
    };
    let Some(pod) = s.pods.pod_by_name(&namespace, &pod_name) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("pod {pod_name:?} does not exist"),
        );
    };
    if !has_container(&pod, &container) {
        return plain(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {pod_name:?}"),
        );
    }
    let status = pod.status.clone().unwrap_or_default();
    let id = match log_container_id(&pod_name, &status, &container, opts.previous) {
        Ok(id) => id,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let log_path = match s.runtime.container_status(&id).await {
        Ok(st) => PathBuf::from(st.log_path),
        Err(err) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("failed to get container status {id:?}: {err}"),
            );
        }
    };
    let opened = match open_log(&log_path, &opts).await {
        Ok(f) => f,
        Err(err) => return plain(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let writer = LogWriter::new(
        opts.since(jiff::Timestamp::now()),
        opts.timestamps,
        opts.limit_bytes,
    );
    let (tx, rx) = mpsc::channel(16);
    let runtime = s.runtime.clone();
    tokio::spawn(async move {
        let running = || {
            let runtime = runtime.clone();
            let id = id.clone();
            async move {
                match runtime.container_status(&id).await {
                    Ok(st) => st.state == api::ContainerState::ContainerRunning as i32,
                    Err(err) => {
                        tracing::debug!(container = %id, %err, "container status while following logs");
                        false
                    }
                }
            }
        };
        if let Err(err) = stream_log(opened, opts, writer, running, tx).await {
            tracing::error!(%err, "Failed to stream container log");
        }
    });
    let stream = ReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}
