//! Running one lifecycle handler (upstream pkg/kubelet/lifecycle/handlers.go
//! `handlerRunner.Run`): `exec` through CRI `ExecSync` with no timeout, `httpGet` to the
//! pod IP unless a host is given (the probes' request rules, `User-Agent:
//! kube-lifecycle/<version>`, an HTTPS hook that meets a plain-HTTP server retried over
//! HTTP), `sleep`. A hook's HTTP status code does not matter, only that it was answered.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::cri::RuntimeService;
use crate::events::{EventSink, pod_ref};
use crate::prober::{HttpGetError, HttpProbeRequest, http_get};
use component_base::events::EventType;

/// Event reason when an HTTPS hook had to fall back to HTTP.
pub const LIFECYCLE_HTTP_FALLBACK: &str = "LifecycleHTTPFallback";

/// `User-Agent` of hook requests: `kube-lifecycle/<major>.<minor>`.
pub fn user_agent() -> String {
    "kube-lifecycle/1.36".to_string()
}

/// Why a command run in a container failed (upstream `RunInContainer` errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command '{cmd}' exited with {code}: {stderr}")]
    Exit {
        cmd: String,
        code: i32,
        stderr: String,
    },
    #[error("{0}")]
    Runtime(String),
}

/// What a command run in a container printed (stdout then stderr), and how it ended.
pub struct CommandOutput {
    pub output: Vec<u8>,
    pub result: Result<(), CommandError>,
}

/// `RunInContainer`: the hook's only way into a container.
#[async_trait::async_trait]
pub trait CommandRunner: Send + Sync {
    async fn run_in_container(&self, container_id: &str, cmd: &[String]) -> CommandOutput;
}

#[async_trait::async_trait]
impl CommandRunner for RuntimeService {
    async fn run_in_container(&self, container_id: &str, cmd: &[String]) -> CommandOutput {
        match self
            .exec_sync(container_id, cmd.to_vec(), Duration::ZERO)
            .await
        {
            Ok(resp) => {
                let mut output = resp.stdout.clone();
                output.extend_from_slice(&resp.stderr);
                let result = if resp.exit_code == 0 {
                    Ok(())
                } else {
                    Err(CommandError::Exit {
                        cmd: cmd.join(" "),
                        code: resp.exit_code,
                        stderr: String::from_utf8_lossy(&resp.stderr).into_owned(),
                    })
                };
                CommandOutput { output, result }
            }
            Err(e) => CommandOutput {
                output: Vec::new(),
                result: Err(CommandError::Runtime(e.to_string())),
            },
        }
    }
}

/// A failed hook; `Display` is upstream's message (logged; events say less, so secrets
/// in commands or URLs do not leak).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error(
        "Exec lifecycle hook ({command}) for Container {container:?} in Pod {pod:?} failed - error: {error}, message: {output:?}"
    )]
    Exec {
        command: String,
        container: String,
        pod: String,
        error: CommandError,
        output: String,
    },
    #[error(
        "HTTP lifecycle hook ({path}) for Container {container:?} in Pod {pod:?} failed - error: {error}"
    )]
    Http {
        path: String,
        container: String,
        pod: String,
        error: String,
    },
    #[error("Cannot run handler: invalid handler: {0}")]
    Invalid(String),
}

/// The container a hook runs for.
pub struct HookTarget<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub container_id: &'a str,
    /// The pod's first IP, the default host of `httpGet`.
    pub pod_ip: Option<&'a str>,
}

/// Upstream `format.Pod`: `name_namespace(uid)`.
fn format_pod(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// Go's `%v` of a string slice: `[a b c]`.
fn go_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// `ResolveContainerPort`: a number, or a named container port (or a number as text).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<i32, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .or_else(|| name.parse().ok())
            .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name))?,
    };
    if number > 0 && number < 65536 {
        Ok(number)
    } else {
        Err(format!("invalid port number: {number}"))
    }
}

/// `NewRequestForHTTPGetAction` with the `lifecycle` user agent.
pub fn http_request(
    get: &k8s_openapi::api::core::v1::HTTPGetAction,
    container: &Container,
    pod_ip: Option<&str>,
) -> Result<HttpProbeRequest, String> {
    let host = match get.host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_string(),
        None => pod_ip
            .filter(|ip| !ip.is_empty())
            .map(str::to_string)
            .ok_or_else(|| "failed to find networking container: pod has no IP".to_string())?,
    };
    let mut headers: Vec<(String, String)> = get
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        headers.push(("User-Agent".to_string(), user_agent()));
    }
    Ok(HttpProbeRequest {
        scheme: get.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase(),
        host,
        port: resolve_port(&get.port, container)?,
        path: get.path.clone().unwrap_or_default(),
        headers,
    })
}

async fn run_http(
    get: &k8s_openapi::api::core::v1::HTTPGetAction,
    target: &HookTarget<'_>,
    events: &dyn EventSink,
) -> Result<(), String> {
    let request = http_request(get, target.container, target.pod_ip)?;
    match http_get(&request, None).await {
        Ok(_) => Ok(()),
        Err(HttpGetError::Tls(tls_error)) if request.scheme == "https" => {
            tracing::info!(pod = %format_pod(target.pod), error = %tls_error, "HTTPS request to lifecycle hook failed its TLS handshake, retrying with HTTP");
            let plain = HttpProbeRequest {
                scheme: "http".into(),
                headers: request
                    .headers
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
                    .cloned()
                    .collect(),
                ..request.clone()
            };
            http_get(&plain, None).await.map_err(|_| tls_error)?;
            events.record(
                &pod_ref(target.pod),
                EventType::Warning,
                LIFECYCLE_HTTP_FALLBACK,
                &format!(
                    "request to HTTPS lifecycle hook {} got HTTP response, retry with HTTP succeeded",
                    crate::prober::HttpProbeRequest {
                        path: String::new(),
                        ..plain
                    }
                    .url()
                    .trim_start_matches("http://")
                ),
            );
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `handlerRunner.Run`.
pub async fn run(
    runner: &dyn CommandRunner,
    events: &dyn EventSink,
    handler: &LifecycleHandler,
    target: &HookTarget<'_>,
) -> Result<(), HookError> {
    let pod = format_pod(target.pod);
    let container = target.container.name.clone();
    if let Some(exec) = &handler.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let out = runner.run_in_container(target.container_id, &cmd).await;
        return out.result.map_err(|error| HookError::Exec {
            command: go_slice(&cmd),
            container,
            pod,
            error,
            output: String::from_utf8_lossy(&out.output).into_owned(),
        });
    }
    if let Some(get) = &handler.http_get {
        return run_http(get, target, events)
            .await
            .map_err(|error| HookError::Http {
                path: get.path.clone().unwrap_or_default(),
                container,
                pod,
                error,
            });
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(
            u64::try_from(sleep.seconds).unwrap_or(0),
        ))
        .await;
        return Ok(());
    }
    Err(HookError::Invalid(
        "tcpSocket is not a supported lifecycle handler".to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, ExecAction, HTTPGetAction, HTTPHeader};
    use std::sync::Mutex;

    struct FakeRunner {
        code: i32,
        ran: Mutex<Vec<(String, Vec<String>)>>,
    }

    #[async_trait::async_trait]
    impl CommandRunner for FakeRunner {
        async fn run_in_container(&self, id: &str, cmd: &[String]) -> CommandOutput {
            if let Ok(mut ran) = self.ran.lock() {
                ran.push((id.to_string(), cmd.to_vec()));
            }
            CommandOutput {
                output: b"oops".to_vec(),
                result: if self.code == 0 {
                    Ok(())
                } else {
                    Err(CommandError::Exit {
                        cmd: cmd.join(" "),
                        code: self.code,
                        stderr: "oops".into(),
                    })
                },
            }
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn container() -> Container {
        Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn exec_hooks_report_like_upstream() {
        let (p, c) = (pod(), container());
        let handler = LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["sh".into(), "-c".into(), "exit 3".into()]),
            }),
            ..Default::default()
        };
        let target = HookTarget {
            pod: &p,
            container: &c,
            container_id: "cid",
            pod_ip: None,
        };
        let ok = FakeRunner {
            code: 0,
            ran: Mutex::default(),
        };
        let events = crate::events::noop();
        assert_eq!(run(&ok, events.as_ref(), &handler, &target).await, Ok(()));
        assert_eq!(ok.ran.lock().unwrap()[0].0, "cid");
        let failing = FakeRunner {
            code: 3,
            ran: Mutex::default(),
        };
        let err = run(&failing, events.as_ref(), &handler, &target)
            .await
            .map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("Exec lifecycle hook ([sh -c exit 3]) for Container \"c\" in Pod \"web_ns(u1)\" failed - error: command 'sh -c exit 3' exited with 3: oops, message: \"oops\"".to_string())
        );
        let tcp = LifecycleHandler {
            tcp_socket: Some(Default::default()),
            ..Default::default()
        };
        assert!(matches!(
            run(&ok, events.as_ref(), &tcp, &target).await,
            Err(HookError::Invalid(_))
        ));
    }

    #[test]
    fn builds_http_requests_like_upstream() {
        let c = container();
        let get = HTTPGetAction {
            path: Some("/dial?host=10.0.0.9&port=8080&request=echo%3Fmsg%3Dpoststart".into()),
            port: IntOrString::String("http".into()),
            http_headers: Some(vec![HTTPHeader {
                name: "X-Test".into(),
                value: "1".into(),
            }]),
            ..Default::default()
        };
        let req = http_request(&get, &c, Some("10.1.2.3")).unwrap();
        assert_eq!(
            req.url(),
            "http://10.1.2.3:8080/dial?host=10.0.0.9&port=8080&request=echo%3Fmsg%3Dpoststart"
        );
        assert_eq!(
            req.headers,
            vec![
                ("X-Test".to_string(), "1".to_string()),
                ("User-Agent".to_string(), "kube-lifecycle/1.36".to_string())
            ]
        );
        let explicit = HTTPGetAction {
            host: Some("example.com".into()),
            scheme: Some("HTTPS".into()),
            port: IntOrString::Int(443),
            ..Default::default()
        };
        let req = http_request(&explicit, &c, None).unwrap();
        assert_eq!(req.url(), "https://example.com:443");
        assert_eq!(
            http_request(&get, &c, None),
            Err("failed to find networking container: pod has no IP".to_string())
        );
        assert_eq!(
            resolve_port(&IntOrString::String("metrics".into()), &c),
            Err("couldn't find port: metrics in c".to_string())
        );
        assert_eq!(
            resolve_port(&IntOrString::String("9090".into()), &c),
            Ok(9090)
        );
        assert_eq!(
            resolve_port(&IntOrString::Int(0), &c),
            Err("invalid port number: 0".to_string())
        );
    }

    #[tokio::test]
    async fn http_hooks_need_an_answer_not_a_2xx() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            sock.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let (p, c) = (pod(), container());
        let handler = LifecycleHandler {
            http_get: Some(HTTPGetAction {
                path: Some("/echo?msg=prestop".into()),
                port: IntOrString::Int(i32::from(port)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let target = HookTarget {
            pod: &p,
            container: &c,
            container_id: "cid",
            pod_ip: Some("127.0.0.1"),
        };
        let runner = FakeRunner {
            code: 0,
            ran: Mutex::default(),
        };
        let events = crate::events::noop();
        assert_eq!(
            run(&runner, events.as_ref(), &handler, &target).await,
            Ok(())
        );
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /echo?msg=prestop HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("user-agent: kube-lifecycle/1.36")
        );
        // Nobody listening: the hook fails with the dial error.
        let closed = LifecycleHandler {
            http_get: Some(HTTPGetAction {
                path: Some("/x".into()),
                port: IntOrString::Int(i32::from(port)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = run(&runner, events.as_ref(), &closed, &target).await;
        assert!(
            matches!(&err, Err(HookError::Http { path, .. }) if path == "/x"),
            "{err:?}"
        );
    }
}
