//! A pod through the pod workers on a real containerd: sandbox under the QoS cgroup
//! parent, `$(VAR)` expansion, exit code → phase, and the container log file.

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec};
use kubelet::cri::{self, ImageService, RuntimeService};
use kubelet::kuberuntime::manager::{RuntimeDeps, RuntimeManager, RuntimeSettings};
use kubelet::pod_workers::{PodWorkers, WorkerContext};
use support::Recorder;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_runs_to_completion_on_containerd() {
    let Some(containerd) = support::Containerd::start().expect("start containerd") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("kubelet=debug")
        .try_init();
    let channel = cri::connect(&containerd.socket).expect("channel");
    let runtime = RuntimeService::new(channel.clone(), Duration::from_secs(60));
    runtime
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("containerd ready");
    let log_root = containerd.dir.path().join("pods");
    let settings = RuntimeSettings {
        log_root: log_root.clone(),
        memory_capacity: 8 << 30,
        cpu_cfs_quota: true,
        host_ips: vec!["127.0.0.1".into()],
        cgroups_per_qos: true,
        cgroup_root: "/ferrokube-kubelet-test".into(),
        ..Default::default()
    };
    let manager = RuntimeManager::new(RuntimeDeps {
        runtime,
        images: ImageService::new(channel, Duration::from_secs(60)),
        client: None,
        settings,
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
    let pod = Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("echo".into()),
            namespace: Some("default".into()),
            uid: Some("9f0c6a1e-real-containerd".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            host_network: Some(true),
            restart_policy: Some("Never".into()),
            termination_grace_period_seconds: Some(1),
            containers: vec![Container {
                name: "main".into(),
                image: Some(support::BUSYBOX_IMAGE.into()),
                command: Some(vec!["sh".into(), "-c".into()]),
                args: Some(vec!["echo $(WHO) says $GREETING '$$(WHO)'; exit 4".into()]),
                env: Some(vec![
                    EnvVar {
                        name: "WHO".into(),
                        value: Some("kubelet".into()),
                        value_from: None,
                    },
                    EnvVar {
                        name: "GREETING".into(),
                        value: Some("hi-$(WHO)".into()),
                        value_from: None,
                    },
                ]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    workers.update_pod(pod.clone());
    let mut failed = None;
    for _ in 0..150 {
        if let Some(s) = recorder
            .last()
            .filter(|s| s.phase.as_deref() == Some("Failed"))
        {
            failed = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        workers.wake("9f0c6a1e-real-containerd");
    }
    let status = failed.unwrap_or_else(|| {
        panic!(
            "pod never failed; last {:?}\n{}",
            recorder.last(),
            containerd.log()
        )
    });
    let cs = status.container_statuses.clone().unwrap_or_default();
    let term = cs[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(term.exit_code, 4);
    assert_eq!(term.reason.as_deref(), Some("Error"));
    assert!(
        cs[0]
            .container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://"))
    );
    assert!(cs[0].image_id.starts_with("sha256:"));

    let log =
        std::fs::read_to_string(log_root.join("default_echo_9f0c6a1e-real-containerd/main/0.log"))
            .expect("log file");
    assert!(
        log.contains(" stdout F kubelet says hi-kubelet $(WHO)"),
        "{log:?}"
    );

    workers.remove_pod(&pod);
    for _ in 0..100 {
        if recorder
            .terminated
            .lock()
            .map(|t| !t.is_empty())
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recorder
            .terminated
            .lock()
            .map(|t| !t.is_empty())
            .unwrap_or(false),
        "pod terminated"
    );
    shutdown.cancel();
    // The QoS parent dirs the runtime created stay behind; remove ours.
    for controller in kubelet::cm::V1_CONTROLLERS.iter().chain(
        [
            "blkio",
            "devices",
            "freezer",
            "net_cls",
            "perf_event",
            "systemd",
            "unified",
            "net_prio",
            "rdma",
            "misc",
        ]
        .iter(),
    ) {
        let base = std::path::Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("ferrokube-kubelet-test");
        for sub in [
            "kubepods/besteffort/pod9f0c6a1e-real-containerd",
            "kubepods/besteffort",
            "kubepods",
            "",
        ] {
            let _ = std::fs::remove_dir(base.join(sub));
        }
    }
}
