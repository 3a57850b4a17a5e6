//! `/exec`, `/attach`, `/portForward`: ask the runtime for a streaming URL,
//! then proxy the upgrade to it. The apiserver only sends WebSockets to
//! kubelets declaring `ExtendWebSocketsToKubelet`; everything else arrives as
//! SPDY, which the runtime's streaming server speaks, so no translation is needed.

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;

use super::proxy::{plain, proxy_upgrade};
use super::{KubeletServer, pod_full_name, running_container_id};
use crate::cri::{CriError, api};

type Pairs = Query<Vec<(String, String)>>;

/// upstream `remotecommandserver.Options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// A stream request naming no stream (upstream `NewOptions`' error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("you must specify at least 1 of stdin, stdout, stderr")]
pub struct NoStreams;

/// upstream `NewOptions`: the apiserver passes the streams as `input`,
/// `output`, `error` and `tty` (`api.Exec*Param`), each `"1"` when set; tty
/// drops stderr; one stream is required.
pub fn stream_options(pairs: &[(String, String)]) -> Result<StreamOptions, NoStreams> {
    let flag = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .is_some_and(|(_, v)| v == "1")
    };
    let tty = flag("tty");
    let opts = StreamOptions {
        stdin: flag("input"),
        stdout: flag("output"),
        stderr: flag("error") && !tty,
        tty,
    };
    if !opts.stdin && !opts.stdout && !opts.stderr {
        return Err(NoStreams);
    }
    Ok(opts)
}

/// The repeated `command` parameters.
pub fn command(pairs: &[(String, String)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect()
}

/// upstream `streaming.WriteError`: NotFound → 404, ResourceExhausted → 429, else 500.
fn runtime_error(err: &CriError) -> Response {
    let status = match err {
        CriError::Status { status, .. } => match status.code() {
            tonic::Code::NotFound => StatusCode::NOT_FOUND,
            tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    plain(status, err.to_string())
}

fn pod_or_404(s: &KubeletServer, namespace: &str, name: &str) -> Result<Pod, Box<Response>> {
    s.pods
        .pod_by_name(namespace, name)
        .ok_or_else(|| Box::new(plain(StatusCode::NOT_FOUND, "pod does not exist".into())))
}

pub(super) async fn exec(
    State(s): State<KubeletServer>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Pairs,
    req: Request,
) -> Response {
    do_exec(s, ns, pod, None, container, q, req, false).await
}

pub(super) async fn exec_uid(
    State(s): State<KubeletServer>,
    Path((ns, pod, uid, container)): Path<(String, String, String, String)>,
    Query(q): Pairs,
    req: Request,
) -> Response {
    do_exec(s, ns, pod, Some(uid), container, q, req, false).await
}

pub(super) async fn attach(
    State(s): State<KubeletServer>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Pairs,
    req: Request,
) -> Response {
    do_exec(s, ns, pod, None, container, q, req, true).await
}

pub(super) async fn attach_uid(
    State(s): State<KubeletServer>,
    Path((ns, pod, uid, container)): Path<(String, String, String, String)>,
    Query(q): Pairs,
    req: Request,
) -> Response {
    do_exec(s, ns, pod, Some(uid), container, q, req, true).await
}

/// Exec or attach (they differ only in the CRI call and the not-found text).
#[allow(clippy::too_many_arguments)]
async fn do_exec(
    s: KubeletServer,
    ns: String,
    pod_name: String,
    uid: Option<String>,
    container: String,
    query: Vec<(String, String)>,
    req: Request,
    is_attach: bool,
) -> Response {
    let opts = match stream_options(&query) {
        Ok(o) => o,
        Err(err) => return plain(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let pod = match pod_or_404(&s, &ns, &pod_name) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let Some(id) = running_container_id(&pod, uid.as_deref(), &container) else {
        let msg = if is_attach {
            format!(
                "container {container} not found in pod {}",
                pod_full_name(&pod)
            )
        } else {
            format!("container not found ({container:?})")
        };
        return plain(StatusCode::INTERNAL_SERVER_ERROR, msg);
    };
    let url = if is_attach {
        // The TTY must match how the container was started.
        let spec_tty = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == container))
            .and_then(|c| c.tty)
            .unwrap_or(false);
        s.runtime
            .attach(api::AttachRequest {
                container_id: id,
                stdin: opts.stdin,
                tty: opts.tty && spec_tty,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
            .await
    } else {
        s.runtime
            .exec(api::ExecRequest {
                container_id: id,
                cmd: command(&query),
                tty: opts.tty,
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
            .await
    };
    match url {
        Ok(url) => proxy_upgrade(&url, req).await,
        Err(err) => runtime_error(&err),
    }
}

pub(super) async fn port_forward(
    State(s): State<KubeletServer>,
    Path((ns, pod)): Path<(String, String)>,
    req: Request,
) -> Response {
    do_port_forward(s, ns, pod, None, req).await
}

pub(super) async fn port_forward_uid(
    State(s): State<KubeletServer>,
    Path((ns, pod, uid)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    do_port_forward(s, ns, pod, Some(uid), req).await
}

async fn do_port_forward(
    s: KubeletServer,
    ns: String,
    pod_name: String,
    uid: Option<String>,
    req: Request,
) -> Response {
    let pod = match pod_or_404(&s, &ns, &pod_name) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let pod_uid = crate::types::pod_uid(&pod);
    if uid.is_some_and(|uid| uid != pod_uid) {
        return plain(StatusCode::NOT_FOUND, "pod not found".into());
    }
    let sandbox = match s.runtime.pod_sandbox_id(&pod_uid).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("pod not found ({:?})", pod_full_name(&pod)),
            );
        }
        Err(err) => return runtime_error(&err),
    };
    // Ports travel in the SPDY stream headers; the CRI request needs none.
    let url = s
        .runtime
        .port_forward(api::PortForwardRequest {
            pod_sandbox_id: sandbox,
            port: Vec::new(),
        })
        .await;
    match url {
        Ok(url) => proxy_upgrade(&url, req).await,
        Err(err) => runtime_error(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_stream_options() {
        let q = pairs(&[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo hi"),
            ("output", "1"),
            ("error", "1"),
        ]);
        assert_eq!(command(&q), ["sh", "-c", "echo hi"]);
        assert_eq!(
            stream_options(&q),
            Ok(StreamOptions {
                stdout: true,
                stderr: true,
                ..StreamOptions::default()
            })
        );
        let tty = pairs(&[("tty", "1"), ("error", "1"), ("input", "1")]);
        assert_eq!(
            stream_options(&tty),
            Ok(StreamOptions {
                stdin: true,
                tty: true,
                ..StreamOptions::default()
            })
        );
        assert_eq!(
            stream_options(&pairs(&[("output", "true")])).map_err(|e| e.to_string()),
            Err("you must specify at least 1 of stdin, stdout, stderr".into())
        );
    }
}
