//! `/exec` and `/run` through the kubelet server against a real, private
//! containerd: the upgrade is spliced to containerd's streaming server and the
//! exec output and exit code come back over `v4.channel.k8s.io` WebSocket frames.
// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use component_base::auth::{Authenticator, Authorizer};
use component_base::serving::{HealthRegistry, component_router, serve_http};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet::cri::{self, RuntimeService, api};
use kubelet::server::{CriStreamingRuntime, KubeletServer, PodProvider, kubelet_auth_filter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct OnePod(Pod);

#[async_trait::async_trait]
impl PodProvider for OnePod {
    fn pods(&self) -> Vec<Pod> {
        vec![self.0.clone()]
    }
    async fn running_pods(&self) -> Result<Vec<Pod>, kubelet::server::RunningPodsError> {
        Ok(self.pods())
    }
}

fn pod(container_id: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("busy".into()),
            namespace: Some("default".into()),
            uid: Some("uid-exec".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: "main".into(),
                container_id: Some(format!("containerd://{container_id}")),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

/// Starts a host-network sandbox with a long-running busybox container.
async fn start_container(runtime: &RuntimeService, root: &std::path::Path) -> (String, String) {
    let log_dir = root.join("pods/default_busy_uid-exec");
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let sb = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "busy".into(),
            uid: "uid-exec".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: log_dir.display().to_string(),
        labels: HashMap::from([("io.kubernetes.pod.uid".to_string(), "uid-exec".to_string())]),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: api::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox = runtime
        .run_pod_sandbox(sb.clone(), String::new())
        .await
        .expect("RunPodSandbox");
    let config = api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "main".into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: support::BUSYBOX_IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "3600".into()],
        log_path: "main/0.log".into(),
        ..Default::default()
    };
    let id = runtime
        .create_container(&sandbox, config, sb)
        .await
        .expect("CreateContainer");
    runtime.start_container(&id).await.expect("StartContainer");
    (sandbox, id)
}

async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = conn.read(&mut byte).await.expect("read head");
        assert_eq!(n, 1, "connection closed inside the head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads server→client WebSocket frames until close; returns per-channel data.
async fn read_channels(conn: &mut TcpStream) -> HashMap<u8, Vec<u8>> {
    let mut channels: HashMap<u8, Vec<u8>> = HashMap::new();
    loop {
        let mut hdr = [0u8; 2];
        if conn.read_exact(&mut hdr).await.is_err() {
            return channels;
        }
        let opcode = hdr[0] & 0x0f;
        let mut len = u64::from(hdr[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            conn.read_exact(&mut b).await.expect("len16");
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            conn.read_exact(&mut b).await.expect("len64");
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0u8; usize::try_from(len).expect("frame size")];
        conn.read_exact(&mut payload).await.expect("payload");
        match opcode {
            0x8 => return channels,
            0x1 | 0x2 if !payload.is_empty() => {
                channels
                    .entry(payload[0])
                    .or_default()
                    .extend_from_slice(&payload[1..]);
            }
            _ => {}
        }
    }
}

async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: k\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_run_through_the_kubelet_server() {
    let Some(containerd) = support::Containerd::start().expect("start containerd") else {
        return;
    };
    let channel = cri::connect(&containerd.socket).expect("channel");
    let runtime = RuntimeService::new(channel.clone(), Duration::from_secs(60));
    runtime
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("containerd ready");
    let (sandbox, id) = start_container(&runtime, containerd.dir.path()).await;

    let server = KubeletServer::new(
        Arc::new(OnePod(pod(&id))),
        Arc::new(CriStreamingRuntime::new(channel, Duration::from_secs(60))),
    );
    let filter = kubelet_auth_filter(
        "node-1",
        Authenticator {
            anonymous: true,
            ..Authenticator::default()
        },
        Authorizer {
            always_allow: true,
            ..Authorizer::default()
        },
    );
    let stop = CancellationToken::new();
    let served = serve_http(
        "127.0.0.1:0".parse().expect("addr"),
        component_router(&HealthRegistry::new(), server.router(), Some(filter)),
        stop.clone(),
    )
    .await
    .expect("serve");
    let addr = served.local_addr;

    let (status, body) = request(addr, "POST", "/run/default/busy/main?cmd=echo%20hi").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "hi\n"),
        "{}",
        containerd.log()
    );

    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(
        b"GET /exec/default/busy/main?command=sh&command=-c&command=echo%20hi%3B%20echo%20err%20%3E%262%3B%20exit%203&output=1&error=1 HTTP/1.1\r\n\
          Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n",
    )
    .await
    .expect("write");
    let head = read_head(&mut conn).await;
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "{head}\n{}",
        containerd.log()
    );
    assert!(head.contains("v4.channel.k8s.io"), "{head}");
    let channels = tokio::time::timeout(Duration::from_secs(30), read_channels(&mut conn))
        .await
        .expect("exec finishes");
    assert_eq!(channels.get(&1).map(Vec::as_slice), Some(&b"hi\n"[..]));
    assert_eq!(channels.get(&2).map(Vec::as_slice), Some(&b"err\n"[..]));
    let status: serde_json::Value =
        serde_json::from_slice(channels.get(&3).expect("error channel")).expect("status json");
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");

    stop.cancel();
    let _ = runtime.stop_container(&id, Duration::ZERO).await;
    let _ = runtime.remove_container(&id).await;
    let _ = runtime.stop_pod_sandbox(&sandbox).await;
    let _ = runtime.remove_pod_sandbox(&sandbox).await;
}
