//! `/stats/summary` and `/metrics/resource` against a real, private
//! containerd: a container spinning a CPU in a pod cgroup under the test's
//! own `kubepods` shows non-zero CPU (cumulative and rate) and memory, for
//! the container (from the CRI) and the pod (from its cgroup).
// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use component_base::auth::{Authenticator, Authorizer};
use component_base::serving::{HealthRegistry, component_router, serve_http};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet::cm::CgroupLayout;
use kubelet::cri::{self, RuntimeService, api};
use kubelet::server::{CriStreamingRuntime, KubeletServer, PodProvider, kubelet_auth_filter};
use kubelet::stats::{ProviderConfig, StatsProvider, SummaryProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const UID: &str = "uid-stats";

struct NoPods;

#[async_trait::async_trait]
impl PodProvider for NoPods {
    fn pods(&self) -> Vec<Pod> {
        vec![Pod {
            metadata: ObjectMeta {
                uid: Some("unrelated".into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }]
    }
    async fn running_pods(&self) -> Result<Vec<Pod>, kubelet::server::RunningPodsError> {
        Ok(Vec::new())
    }
}

fn pod_labels() -> HashMap<String, String> {
    HashMap::from([
        ("io.kubernetes.pod.uid".to_string(), UID.to_string()),
        ("io.kubernetes.pod.name".to_string(), "spin".to_string()),
        (
            "io.kubernetes.pod.namespace".to_string(),
            "default".to_string(),
        ),
    ])
}

/// A sandbox in `/<cgroup_root>/kubepods/pod<uid>` with a CPU-spinning container.
async fn start_spinner(
    runtime: &RuntimeService,
    root: &std::path::Path,
    cgroup_root: &str,
) -> (String, String) {
    let log_dir = root.join(format!("pods/default_spin_{UID}"));
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let sb = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "spin".into(),
            uid: UID.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: log_dir.display().to_string(),
        labels: pod_labels(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: format!("/{cgroup_root}/kubepods/pod{UID}"),
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
    let mut labels = pod_labels();
    labels.insert("io.kubernetes.container.name".into(), "main".into());
    let config = api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "main".into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: support::BUSYBOX_IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), "while :; do :; done".into()],
        log_path: "main/0.log".into(),
        labels,
        ..Default::default()
    };
    let id = runtime
        .create_container(&sandbox, config, sb)
        .await
        .expect("CreateContainer");
    runtime.start_container(&id).await.expect("StartContainer");
    (sandbox, id)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n").as_bytes(),
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

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l[prefix.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_container_cpu_and_memory_in_summary_and_resource_metrics() {
    let Some(containerd) = support::Containerd::start().expect("start containerd") else {
        return;
    };
    let channel = cri::connect(&containerd.socket).expect("channel");
    let runtime = RuntimeService::new(channel.clone(), Duration::from_secs(60));
    runtime
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("containerd ready");
    let cgroup_root = format!("fk-kstats-{}", std::process::id());
    let (sandbox, id) = start_spinner(&runtime, containerd.dir.path(), &cgroup_root).await;

    let provider = Arc::new(SummaryProvider::new(
        ProviderConfig {
            node_name: "node-1".into(),
            root_dir: containerd.dir.path().to_path_buf(),
            pod_log_root: containerd.dir.path().join("pods"),
            cgroup_root: cgroup_root.clone(),
            cgroups_per_qos: true,
            layout: CgroupLayout::detect(),
            memory_capacity: 1 << 34,
            num_cores: 2,
            machine_labels: Default::default(),
        },
        Arc::new(runtime.clone()),
        Arc::new(NoPods),
    ));
    // Two samples over more than a second: rates need a baseline.
    provider.collect(false).await.expect("first sample");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let server = KubeletServer::new(
        Arc::new(NoPods),
        Arc::new(CriStreamingRuntime::new(channel, Duration::from_secs(60))),
    )
    .with_stats(provider);
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

    let (status, body) = get(addr, "/stats/summary").await;
    assert_eq!(status, 200, "{body}\n{}", containerd.log());
    let summary: serde_json::Value = serde_json::from_str(&body).expect("summary json");
    let node = &summary["node"];
    assert_eq!(node["nodeName"], "node-1");
    assert!(
        node["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0,
        "{node}"
    );
    assert!(
        node["memory"]["workingSetBytes"].as_u64().unwrap() > 0,
        "{node}"
    );
    assert!(node["fs"]["capacityBytes"].as_u64().unwrap() > 0, "{node}");
    assert!(node["rlimit"]["maxpid"].as_i64().unwrap() > 0, "{node}");
    let pods = summary["pods"].as_array().expect("pods");
    let pod = pods
        .iter()
        .find(|p| p["podRef"]["uid"] == UID)
        .unwrap_or_else(|| panic!("pod missing: {summary}"));
    assert_eq!(pod["podRef"]["name"], "spin");
    assert_eq!(pod["podRef"]["namespace"], "default");
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "main", "{pod}");
    assert!(c["startTime"].is_string(), "{c}");
    assert!(
        c["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0,
        "{c}"
    );
    // A spinning shell uses a good fraction of a core.
    assert!(
        c["cpu"]["usageNanoCores"].as_u64().unwrap() > 10_000_000,
        "{c}"
    );
    assert!(c["memory"]["workingSetBytes"].as_u64().unwrap() > 0, "{c}");
    assert!(
        pod["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0,
        "pod cgroup: {pod}"
    );
    assert!(
        pod["memory"]["workingSetBytes"].as_u64().unwrap() > 0,
        "pod cgroup: {pod}"
    );

    let (status, only) = get(addr, "/stats/summary?only_cpu_and_memory=true").await;
    assert_eq!(status, 200, "{only}");
    let only: serde_json::Value = serde_json::from_str(&only).expect("json");
    assert!(only["node"].get("fs").is_none(), "{only}");
    assert!(only["node"].get("cpu").is_some(), "{only}");

    let (status, metrics) = get(addr, "/metrics/resource").await;
    assert_eq!(status, 200, "{metrics}");
    let ctr =
        "container_cpu_usage_seconds_total{container=\"main\",namespace=\"default\",pod=\"spin\"} ";
    assert!(sample(&metrics, ctr).unwrap_or_default() > 0.0, "{metrics}");
    let ws = "container_memory_working_set_bytes{container=\"main\",namespace=\"default\",pod=\"spin\"} ";
    assert!(sample(&metrics, ws).unwrap_or_default() > 0.0, "{metrics}");
    assert!(
        sample(
            &metrics,
            "pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"spin\"} "
        )
        .unwrap_or_default()
            > 0.0,
        "{metrics}"
    );
    assert!(
        sample(&metrics, "node_cpu_usage_seconds_total ").unwrap_or_default() > 0.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "resource_scrape_error "),
        Some(0.0),
        "{metrics}"
    );

    let (status, cadvisor) = get(addr, "/metrics/cadvisor").await;
    assert_eq!(status, 200, "{cadvisor}");
    assert!(
        cadvisor.lines().any(|l| l
            .starts_with("container_memory_working_set_bytes{container=\"main\",")
            && l.contains(&format!("name=\"{id}\""))),
        "{cadvisor}"
    );
    assert!(cadvisor.contains("machine_cpu_cores{"), "{cadvisor}");

    stop.cancel();
    let _ = runtime.stop_container(&id, Duration::ZERO).await;
    let _ = runtime.remove_container(&id).await;
    let _ = runtime.stop_pod_sandbox(&sandbox).await;
    let _ = runtime.remove_pod_sandbox(&sandbox).await;
    // The test's cgroups: leaf first, in every v1 controller or the v2 tree.
    for base in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/cpu,cpuacct",
        "/sys/fs/cgroup/cpuacct",
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/cpuset",
        "/sys/fs/cgroup/blkio",
        "/sys/fs/cgroup/hugetlb",
        "/sys/fs/cgroup/devices",
        "/sys/fs/cgroup/freezer",
        "/sys/fs/cgroup/net_cls,net_prio",
        "/sys/fs/cgroup/perf_event",
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/rdma",
        "/sys/fs/cgroup/misc",
    ] {
        let root = std::path::Path::new(base).join(&cgroup_root);
        let _ = std::fs::remove_dir(root.join(format!("kubepods/pod{UID}")));
        let _ = std::fs::remove_dir(root.join("kubepods"));
        let _ = std::fs::remove_dir(&root);
    }
}
