//! `/pods`, `/runningpods/`, `/configz`, `/run`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use super::KubeletServer;
use super::proxy::plain;

fn pod_list(pods: Vec<Pod>) -> Response {
    let list = List::<Pod> {
        items: pods,
        ..List::default()
    };
    Json(list).into_response()
}

pub(super) async fn get_pods(State(s): State<KubeletServer>) -> Response {
    pod_list(s.pods.pods())
}

pub(super) async fn get_running_pods(State(s): State<KubeletServer>) -> Response {
    match s.pods.running_pods().await {
        Ok(pods) => pod_list(pods),
        Err(err) => plain(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

pub(super) async fn get_configz(State(s): State<KubeletServer>) -> Response {
    Json(serde_json::json!({ "kubeletconfig": *s.configz })).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct RunQuery {
    #[serde(default)]
    cmd: String,
}

pub(super) async fn post_run(
    State(s): State<KubeletServer>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(q): Query<RunQuery>,
) -> Response {
    run(s, namespace, pod, None, container, q.cmd).await
}

pub(super) async fn post_run_uid(
    State(s): State<KubeletServer>,
    Path((namespace, pod, uid, container)): Path<(String, String, String, String)>,
    Query(q): Query<RunQuery>,
) -> Response {
    run(s, namespace, pod, Some(uid), container, q.cmd).await
}

/// upstream `getRun`: ExecSync with `cmd` split on spaces; combined output.
async fn run(
    s: KubeletServer,
    namespace: String,
    pod_name: String,
    uid: Option<String>,
    container: String,
    cmd: String,
) -> Response {
    let Some(pod) = s.pods.pod_by_name(&namespace, &pod_name) else {
        return plain(StatusCode::NOT_FOUND, "pod does not exist".into());
    };
    let Some(id) = super::running_container_id(&pod, uid.as_deref(), &container) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("container not found ({container:?})"),
        );
    };
    let cmd: Vec<String> = cmd.split(' ').map(str::to_string).collect();
    match s.runtime.exec_sync(&id, cmd.clone(), Duration::ZERO).await {
        Ok(resp) if resp.exit_code == 0 => {
            let mut out = resp.stdout;
            out.extend(resp.stderr);
            let mut r = out.into_response();
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r
        }
        Ok(resp) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "command '{}' exited with {}: {}",
                cmd.join(" "),
                resp.exit_code,
                String::from_utf8_lossy(&resp.stderr)
            ),
        ),
        Err(err) => plain(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}
