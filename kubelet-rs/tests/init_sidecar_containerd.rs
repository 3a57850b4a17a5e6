//! Init containers, a sidecar and ephemeral containers through the pod workers on a real
//! containerd: the init container completes and reports ready, the sidecar starts before
//! the app containers and does not keep a finished pod alive, and an ephemeral container
//! added to a running pod is started and reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, EphemeralContainer, Pod, PodSpec, PodStatus,
};
use kubelet::cri::{self, ImageService, RuntimeService};
use kubelet::kuberuntime::manager::{RuntimeDeps, RuntimeManager, RuntimeSettings};
use kubelet::pod_workers::{PodWorkers, WorkerContext};
use support::Recorder;
use tokio_util::sync::CancellationToken;

fn sh(name: &str, script: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(support::BUSYBOX_IMAGE.into()),
        command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    }
}

fn pod(name: &str, uid: &str, policy: &str, spec: PodSpec) -> Pod {
    Pod {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            host_network: Some(true),
            restart_policy: Some(policy.into()),
            termination_grace_period_seconds: Some(1),
            ..spec
        }),
        status: None,
    }
}

struct Kubelet {
    _containerd: support::Containerd,
    workers: PodWorkers,
    recorder: Arc<Recorder>,
    shutdown: CancellationToken,
}

async fn kubelet() -> Option<Kubelet> {
    let containerd = support::Containerd::start().expect("start containerd")?;
    let channel = cri::connect(&containerd.socket).expect("channel");
    let runtime = RuntimeService::new(channel.clone(), Duration::from_secs(60));
    runtime
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("containerd ready");
    let manager = RuntimeManager::new(RuntimeDeps {
        runtime,
        images: ImageService::new(channel, Duration::from_secs(60)),
        client: None,
        settings: RuntimeSettings {
            log_root: containerd.dir.path().join("pods"),
            memory_capacity: 8 << 30,
            cpu_cfs_quota: true,
            host_ips: vec!["127.0.0.1".into()],
            ..Default::default()
        },
        volumes: None,
        events: kubelet::events::noop(),
    });
    let recorder = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let workers = PodWorkers::new(
        WorkerContext {
            manager: Arc::new(manager),
            status: recorder.clone(),
            runtime_name: "containerd".into(),
            host_ips: vec!["127.0.0.1".into()],
            resync: Duration::from_millis(300),
            probes: None,
            exec: None,
        },
        shutdown.clone(),
    );
    Some(Kubelet {
        _containerd: containerd,
        workers,
        recorder,
        shutdown,
    })
}

impl Kubelet {
    /// Waits (up to 60s) for a reported status matching `done`.
    async fn wait_for(&self, uid: &str, done: impl Fn(&PodStatus) -> bool) -> PodStatus {
        for _ in 0..300 {
            if let Some(s) = self.recorder.last().filter(|s| done(s)) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.workers.wake(uid);
        }
        panic!(
            "condition never met; last status {:?}",
            self.recorder.last()
        );
    }

    async fn remove(&self, pod: &Pod) {
        self.workers.remove_pod(pod);
        for _ in 0..100 {
            if self
                .recorder
                .terminated
                .lock()
                .map(|t| t.contains(&pod.metadata.uid.clone().unwrap_or_default()))
                .unwrap_or(false)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pod was not terminated");
    }
}

fn find<'a>(list: &'a Option<Vec<ContainerStatus>>, name: &str) -> &'a ContainerStatus {
    list.iter()
        .flatten()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no status for {name}"))
}

fn started_at(s: &ContainerStatus) -> jiff::Timestamp {
    let state = s.state.clone().unwrap_or_default();
    state
        .running
        .and_then(|r| r.started_at)
        .or_else(|| state.terminated.and_then(|t| t.started_at))
        .map(|t| t.0)
        .unwrap_or_else(|| panic!("{} never started: {s:?}", s.name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_container_and_sidecar_run_in_order_and_pod_succeeds() {
    let Some(k) = kubelet().await else { return };
    let mut side = sh("side", "sleep 3600");
    side.restart_policy = Some("Always".into());
    let p = pod(
        "init-sidecar",
        "4d1f0b7e-init-sidecar",
        "Never",
        PodSpec {
            init_containers: Some(vec![sh("init", "echo initialised"), side]),
            containers: vec![sh("a", "sleep 2"), sh("b", "true")],
            ..Default::default()
        },
    );
    k.workers.update_pod(p.clone());
    let status = k
        .wait_for("4d1f0b7e-init-sidecar", |s| {
            s.phase.as_deref() == Some("Succeeded")
        })
        .await;

    let init = find(&status.init_container_statuses, "init");
    assert!(init.ready, "a completed init container is ready: {init:?}");
    let side = find(&status.init_container_statuses, "side");
    assert!(
        side.state.as_ref().is_some_and(|s| s.terminated.is_some()),
        "the sidecar was stopped once the app containers finished: {side:?}"
    );
    let a = find(&status.container_statuses, "a");
    let b = find(&status.container_statuses, "b");
    for app in [a, b] {
        assert_eq!(
            app.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code),
            Some(0),
            "{app:?}"
        );
        assert!(
            started_at(side) <= started_at(app),
            "sidecar before {}",
            app.name
        );
    }
    assert!(started_at(init) <= started_at(side));
    let initialized = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Initialized")
        .expect("Initialized");
    assert_eq!(
        (initialized.status.as_str(), initialized.reason.as_deref()),
        ("True", Some("PodCompleted"))
    );
    k.remove(&p).await;
    k.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_container_is_started_in_a_running_pod() {
    let Some(k) = kubelet().await else { return };
    let uid = "8c3e2a90-ephemeral";
    let mut p = pod(
        "ephemeral",
        uid,
        "Always",
        PodSpec {
            containers: vec![sh("main", "sleep 3600")],
            ..Default::default()
        },
    );
    k.workers.update_pod(p.clone());
    k.wait_for(uid, |s| s.phase.as_deref() == Some("Running"))
        .await;
    assert!(
        k.recorder
            .last()
            .is_some_and(|s| s.ephemeral_container_statuses.is_none())
    );

    if let Some(spec) = p.spec.as_mut() {
        spec.ephemeral_containers = Some(vec![EphemeralContainer {
            name: "debugger".into(),
            image: Some(support::BUSYBOX_IMAGE.into()),
            command: Some(vec!["sleep".into(), "3600".into()]),
            target_container_name: Some("main".into()),
            ..Default::default()
        }]);
    }
    p.metadata.generation = Some(2);
    k.workers.update_pod(p.clone());
    let status = k
        .wait_for(uid, |s| {
            s.ephemeral_container_statuses
                .iter()
                .flatten()
                .any(|e| e.state.as_ref().is_some_and(|st| st.running.is_some()))
        })
        .await;
    let debugger = find(&status.ephemeral_container_statuses, "debugger");
    assert!(
        debugger
            .container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://"))
    );
    assert_eq!(
        debugger.started, None,
        "the prober does not report ephemeral containers"
    );
    assert_eq!(status.observed_generation, Some(2));
    // The app container was left alone.
    let main = find(&status.container_statuses, "main");
    assert_eq!(main.restart_count, 0);
    assert_eq!(status.phase.as_deref(), Some("Running"));
    k.remove(&p).await;
    k.shutdown.cancel();
}
