//! The kubelet API router over real HTTP on 127.0.0.1 with a fake pod
//! provider, a fake runtime, temp CRI log files and a fake CRI streaming server.
// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_base::auth::authz::{AccessReviewer, AuthzError};
use component_base::auth::{Attributes, Authenticator, Authorizer, Decision};
use component_base::serving::{HealthRegistry, component_router, serve_http};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, Pod,
    PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet::cri::{CriError, api};
use kubelet::server::{KubeletServer, PodProvider, StreamingRuntime, kubelet_auth_filter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct FakePods(Vec<Pod>);

#[async_trait::async_trait]
impl PodProvider for FakePods {
    fn pods(&self) -> Vec<Pod> {
        self.0.clone()
    }
    async fn running_pods(&self) -> Result<Vec<Pod>, kubelet::server::RunningPodsError> {
        Ok(self.0[..1].to_vec())
    }
}

#[derive(Default)]
struct FakeRuntime {
    log_path: PathBuf,
    running: Mutex<bool>,
    streaming_url: String,
    exec_requests: Mutex<Vec<api::ExecRequest>>,
}

#[async_trait::async_trait]
impl StreamingRuntime for FakeRuntime {
    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, CriError> {
        let running = *self.running.lock().expect("lock");
        Ok(api::ContainerStatus {
            id: id.into(),
            log_path: self.log_path.display().to_string(),
            state: if running {
                api::ContainerState::ContainerRunning
            } else {
                api::ContainerState::ContainerExited
            } as i32,
            ..api::ContainerStatus::default()
        })
    }
    async fn pod_sandbox_id(&self, _uid: &str) -> Result<Option<String>, CriError> {
        Ok(Some("sandbox".into()))
    }
    async fn exec(&self, req: api::ExecRequest) -> Result<String, CriError> {
        self.exec_requests.lock().expect("lock").push(req);
        Ok(self.streaming_url.clone())
    }
    async fn attach(&self, _req: api::AttachRequest) -> Result<String, CriError> {
        Ok(self.streaming_url.clone())
    }
    async fn port_forward(&self, _req: api::PortForwardRequest) -> Result<String, CriError> {
        Ok(self.streaming_url.clone())
    }
    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        _timeout: Duration,
    ) -> Result<api::ExecSyncResponse, CriError> {
        let fail = cmd.first().map(String::as_str) == Some("false");
        Ok(api::ExecSyncResponse {
            stdout: format!("{id}:{}", cmd.join("|")).into_bytes(),
            stderr: if fail { b"bad".to_vec() } else { Vec::new() },
            exit_code: i32::from(fail),
        })
    }
}

/// Allows only `nodes/proxy` and `nodes/log`, recording what it was asked.
#[derive(Default)]
struct ProxyOnly(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl AccessReviewer for ProxyOnly {
    async fn review(&self, attrs: &Attributes) -> Result<Decision, AuthzError> {
        let sub = attrs
            .resource
            .as_ref()
            .map(|r| r.subresource.clone())
            .unwrap_or_default();
        self.0.lock().expect("lock").push(sub.clone());
        Ok(if sub == "proxy" || sub == "log" {
            Decision::Allow
        } else {
            Decision::NoOpinion(String::new())
        })
    }
}

fn container_status(name: &str, state: ContainerState) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        container_id: Some(format!("containerd://{name}-id")),
        state: Some(state),
        ..ContainerStatus::default()
    }
}

fn pods() -> Vec<Pod> {
    let running = ContainerState {
        running: Some(ContainerStateRunning::default()),
        ..ContainerState::default()
    };
    let waiting = ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some("ContainerCreating".into()),
            ..ContainerStateWaiting::default()
        }),
        ..ContainerState::default()
    };
    vec![Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("uid-1".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![
                Container {
                    name: "app".into(),
                    ..Container::default()
                },
                Container {
                    name: "slow".into(),
                    ..Container::default()
                },
            ],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            container_statuses: Some(vec![
                container_status("app", running),
                container_status("slow", waiting),
            ]),
            ..PodStatus::default()
        }),
    }]
}

struct Harness {
    addr: SocketAddr,
    runtime: Arc<FakeRuntime>,
    reviewer: Arc<ProxyOnly>,
    _dir: tempfile::TempDir,
    stop: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(log: &str, streaming_url: String) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("0.log");
    std::fs::write(&log_path, log).expect("write log");
    let runtime = Arc::new(FakeRuntime {
        log_path,
        running: Mutex::new(false),
        streaming_url,
        ..FakeRuntime::default()
    });
    let reviewer = Arc::new(ProxyOnly::default());
    let server = KubeletServer::new(Arc::new(FakePods(pods())), runtime.clone())
        .with_configz(serde_json::json!({"kind": "KubeletConfiguration", "maxPods": 110}));
    let filter = kubelet_auth_filter(
        "node-1",
        Authenticator {
            anonymous: true,
            ..Authenticator::default()
        },
        Authorizer {
            webhook: Some(reviewer.clone()),
            ..Authorizer::default()
        },
    );
    let router = component_router(&HealthRegistry::new(), server.router(), Some(filter));
    let stop = CancellationToken::new();
    let running = serve_http("127.0.0.1:0".parse().expect("addr"), router, stop.clone())
        .await
        .expect("serve");
    Harness {
        addr: running.local_addr,
        runtime,
        reviewer,
        _dir: dir,
        stop,
    }
}

/// One request over a fresh connection; the whole (de-chunked) body.
async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "kubelet")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const LOG: &str = "\
2024-01-01T00:00:01.000000001Z stdout P hel
2024-01-01T00:00:02Z stdout F lo
2024-01-01T00:00:03Z stderr F oops
2024-01-01T00:00:04Z stdout F bye
";

#[tokio::test]
async fn pods_configz_and_authorization() {
    let h = start(LOG, String::new()).await;
    let (status, body) = request(h.addr, "GET", "/pods").await;
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");
    // Fine-grained `nodes/pods` first, then the `nodes/proxy` fallback.
    assert_eq!(*h.reviewer.0.lock().expect("lock"), ["pods", "proxy"]);

    let (status, body) = request(h.addr, "GET", "/runningpods/").await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = request(h.addr, "GET", "/configz").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["kubeletconfig"]["maxPods"], 110);

    let (status, body) = request(h.addr, "GET", "/metrics").await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[metrics])\n"
    );

    let (status, body) = request(h.addr, "POST", "/run/default/web/app?cmd=ls%20-l").await;
    assert_eq!((status, body.as_str()), (200, "app-id:ls|-l"));
    let (status, body) = request(h.addr, "POST", "/run/default/web/app?cmd=false").await;
    assert_eq!(status, 500);
    assert_eq!(body, "command 'false' exited with 1: bad");
    let (status, body) = request(h.addr, "POST", "/run/default/nope/app?cmd=ls").await;
    assert_eq!((status, body.as_str()), (404, "pod does not exist"));
}

#[tokio::test]
async fn container_logs() {
    let h = start(LOG, String::new()).await;
    let addr = h.addr;
    let logs = |q: &'static str| async move {
        request(addr, "GET", &format!("/containerLogs/default/web/app{q}")).await
    };
    assert_eq!(logs("").await, (200, "hello\noops\nbye\n".into()));
    assert_eq!(logs("?tailLines=2").await, (200, "oops\nbye\n".into()));
    assert_eq!(logs("?limitBytes=7").await, (200, "hello\no".into()));
    assert_eq!(
        logs("?timestamps=true&sinceTime=2024-01-01T00:00:03Z").await,
        (
            200,
            "2024-01-01T00:00:03.000000000Z oops\n2024-01-01T00:00:04.000000000Z bye\n".into()
        )
    );
    assert_eq!(
        logs("?tailLines=x").await,
        (400, r#"{"message": "Unable to decode query."}"#.into())
    );
    assert_eq!(
        logs("?limitBytes=0").await,
        (422, r#"{"message": "Invalid request."}"#.into())
    );
    assert_eq!(
        logs("?previous=true").await,
        (
            400,
            r#"previous terminated container "app" in pod "web" not found"#.into()
        )
    );
    assert_eq!(
        request(h.addr, "GET", "/containerLogs/default/web/slow").await,
        (
            400,
            r#"container "slow" in pod "web" is waiting to start: ContainerCreating"#.into()
        )
    );
    assert_eq!(
        request(h.addr, "GET", "/containerLogs/default/web/nope").await,
        (404, r#"container "nope" not found in pod "web""#.into())
    );
    assert_eq!(
        request(h.addr, "GET", "/containerLogs/default/gone/app").await,
        (404, r#"pod "gone" does not exist"#.into())
    );
}

#[tokio::test]
async fn follow_survives_rotation_and_ends_when_the_container_stops() {
    let h = start("2024-01-01T00:00:01Z stdout F one\n", String::new()).await;
    *h.runtime.running.lock().expect("lock") = true;
    let addr = h.addr;
    let follow = tokio::spawn(async move {
        request(addr, "GET", "/containerLogs/default/web/app?follow=true").await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let path = h.runtime.log_path.clone();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(b"2024-01-01T00:00:02Z stdout P tw")
            .expect("write");
        f.flush().expect("flush");
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.write_all(b"\n2024-01-01T00:00:02Z stdout F o\n")
            .expect("write");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Rotation: the runtime renames the file and starts a new one.
    std::fs::rename(&path, path.with_extension("log.20240101-000003")).expect("rename");
    std::fs::write(&path, "2024-01-01T00:00:03Z stdout F three\n").expect("write");
    tokio::time::sleep(Duration::from_millis(500)).await;
    *h.runtime.running.lock().expect("lock") = false;
    let (status, body) = tokio::time::timeout(Duration::from_secs(15), follow)
        .await
        .expect("follow ends after the container stops")
        .expect("join");
    assert_eq!((status, body.as_str()), (200, "one\ntwo\nthree\n"));
}

/// A stand-in for containerd's streaming server: answers the upgrade with
/// 101 and echoes everything back, upper-cased.
async fn fake_streaming_server() -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.expect("accept");
        let head = read_head(&mut conn).await;
        conn.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
        )
        .await
        .expect("write 101");
        let mut buf = [0u8; 1024];
        loop {
            let n = conn.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            let upper = buf[..n].to_ascii_uppercase();
            if conn.write_all(&upper).await.is_err() {
                break;
            }
        }
        head
    });
    (addr, task)
}

async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = conn.read(&mut byte).await.expect("read head");
        assert_eq!(n, 1, "connection closed inside the head");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn exec_upgrade_is_spliced_both_ways() {
    let (backend, backend_task) = fake_streaming_server().await;
    let h = start(LOG, format!("http://{backend}/exec/tok3n")).await;
    let mut conn = TcpStream::connect(h.addr).await.expect("connect");
    conn.write_all(
        b"POST /exec/default/web/app?command=sh&command=-c&command=echo%20hi&output=1&error=1 HTTP/1.1\r\n\
          Host: node-1:10250\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
          X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
    )
    .await
    .expect("write");
    let head = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: spdy/3.1"),
        "{head}"
    );
    conn.write_all(b"ping").await.expect("write");
    let mut got = [0u8; 4];
    conn.read_exact(&mut got).await.expect("echo");
    assert_eq!(&got, b"PING");
    conn.write_all(b"more bytes").await.expect("write");
    let mut got = [0u8; 10];
    conn.read_exact(&mut got).await.expect("echo");
    assert_eq!(&got, b"MORE BYTES");
    drop(conn);

    let backend_head = tokio::time::timeout(Duration::from_secs(5), backend_task)
        .await
        .expect("backend sees the close")
        .expect("join");
    assert!(
        backend_head.starts_with("POST /exec/tok3n HTTP/1.1\r\n"),
        "{backend_head}"
    );
    let lower = backend_head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: spdy/3.1"), "{backend_head}");
    assert!(
        lower.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{backend_head}"
    );
    let req = h.runtime.exec_requests.lock().expect("lock").remove(0);
    assert_eq!(req.container_id, "app-id");
    assert_eq!(req.cmd, ["sh", "-c", "echo hi"]);
    assert!(req.stdout && req.stderr && !req.stdin && !req.tty);
}

#[tokio::test]
async fn exec_errors() {
    let h = start(LOG, "http://127.0.0.1:1/exec/x".into()).await;
    assert_eq!(
        request(h.addr, "POST", "/exec/default/web/app?command=ls&output=1").await,
        (500, "Upgrade request required\n".into())
    );
    assert_eq!(
        request(h.addr, "POST", "/exec/default/web/app?command=ls").await,
        (
            400,
            "you must specify at least 1 of stdin, stdout, stderr".into()
        )
    );
    assert_eq!(
        request(h.addr, "POST", "/exec/default/gone/app?output=1").await,
        (404, "pod does not exist".into())
    );
    assert_eq!(
        request(h.addr, "POST", "/exec/default/web/slow?output=1").await,
        (500, r#"container not found ("slow")"#.into())
    );
    assert_eq!(
        request(h.addr, "POST", "/exec/default/web/other-uid/app?output=1").await,
        (500, r#"container not found ("app")"#.into())
    );
    assert_eq!(
        request(h.addr, "GET", "/portForward/default/web/other-uid").await,
        (404, "pod not found".into())
    );
}
