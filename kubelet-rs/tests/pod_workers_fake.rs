//! Pod workers + runtime manager + status generation against the fake CRI.
// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_base::events::EventType;
use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod, PodSpec, PodStatus};
use kubelet::cri::{self, ImageService, RuntimeService, api};
use kubelet::events::EventSink;
use kubelet::kuberuntime::manager::{RuntimeDeps, RuntimeManager, RuntimeSettings};
use kubelet::pod_workers::{PodWorkers, WorkerContext};
use support::Recorder;
use support::fake_cri::FakeRuntime;
use tokio_util::sync::CancellationToken;

/// One recorded event: (regarding, type, reason, note).
type Recorded = (ObjectReference, EventType, String, String);

/// Keeps every event the kubelet records.
#[derive(Default)]
struct FakeEvents(Mutex<Vec<Recorded>>);

impl EventSink for FakeEvents {
    fn record(&self, regarding: &ObjectReference, event_type: EventType, reason: &str, note: &str) {
        if let Ok(mut v) = self.0.lock() {
            v.push((
                regarding.clone(),
                event_type,
                reason.to_string(),
                note.to_string(),
            ));
        }
    }
}

impl FakeEvents {
    /// Reasons recorded about the pod named `pod`, in order.
    fn reasons(&self, pod: &str) -> Vec<String> {
        self.about(pod).into_iter().map(|e| e.2).collect()
    }

    fn about(&self, pod: &str) -> Vec<Recorded> {
        self.0
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|e| e.0.name.as_deref() == Some(pod))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn find(&self, pod: &str, reason: &str) -> Option<Recorded> {
        self.about(pod).into_iter().find(|e| e.2 == reason)
    }
}

struct Harness {
    fake: FakeRuntime,
    recorder: Arc<Recorder>,
    events: Arc<FakeEvents>,
    workers: PodWorkers,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

fn harness() -> Harness {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("kubelet=debug")
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("cri.sock");
    let fake = FakeRuntime::new();
    fake.add_image("busybox:1.0");
    let server = fake.serve(&socket).expect("serve fake CRI");
    let channel = cri::connect(&socket).expect("channel");
    let settings = RuntimeSettings {
        log_root: dir.path().join("pods"),
        memory_capacity: 8 << 30,
        cpu_cfs_quota: true,
        host_ips: vec!["192.168.1.10".into()],
        ..Default::default()
    };
    let events = Arc::new(FakeEvents::default());
    let manager = RuntimeManager::new(RuntimeDeps {
        runtime: RuntimeService::new(channel.clone(), Duration::from_secs(5)),
        images: ImageService::new(channel, Duration::from_secs(5)),
        client: None,
        settings,
        volumes: None,
        events: events.clone(),
    });
    let recorder = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let workers = PodWorkers::new(
        WorkerContext {
            manager: Arc::new(manager),
            status: recorder.clone(),
            runtime_name: "fake".into(),
            host_ips: vec!["192.168.1.10".into()],
            resync: Duration::from_millis(200),
            probes: None,
            exec: None,
        },
        shutdown.clone(),
    );
    Harness {
        fake,
        recorder,
        events,
        workers,
        _dir: dir,
        _server: server,
        shutdown,
    }
}

fn pod(uid: &str, restart_policy: &str, image: &str) -> Pod {
    Pod {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("pod-{uid}")),
            namespace: Some("default".into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some(restart_policy.into()),
            node_name: Some("node-1".into()),
            termination_grace_period_seconds: Some(1),
            containers: vec![Container {
                name: "main".into(),
                image: Some(image.into()),
                command: Some(vec!["sh".into()]),
                args: Some(vec!["-c".into(), "echo $(POD_NAME)".into()]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn phase(s: &PodStatus) -> &str {
    s.phase.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn pod_runs_then_succeeds_and_is_removed_on_delete() {
    let h = harness();
    let p = pod("u1", "Never", "busybox:1.0");
    h.workers.update_pod(p.clone());
    let running = eventually("Running status", || {
        h.recorder.last().filter(|s| phase(s) == "Running")
    })
    .await;
    assert_eq!(
        running
            .pod_ip
            .as_deref()
            .map(|ip| ip.starts_with("10.88.0.")),
        Some(true)
    );
    assert_eq!(running.host_ip.as_deref(), Some("192.168.1.10"));
    let calls = h.fake.calls();
    assert!(
        calls.starts_with(&[
            "RunPodSandbox".to_string(),
            "CreateContainer".into(),
            "StartContainer".into()
        ]),
        "{calls:?}"
    );

    // The image is present (IfNotPresent): Pulled, Created, Started on the container.
    let reasons = eventually("Started event", || {
        let r = h.events.reasons("pod-u1");
        r.contains(&"Started".to_string()).then_some(r)
    })
    .await;
    assert_eq!(reasons, ["Pulled", "Created", "Started"]);
    let expected_notes = [
        "Container image \"busybox:1.0\" already present on machine and can be accessed by the pod",
        "Container created",
        "Container started",
    ];
    for (event, note) in h.events.about("pod-u1").iter().zip(expected_notes) {
        assert_eq!(event.3, note);
        assert_eq!(event.1, EventType::Normal);
        assert_eq!(event.0.kind.as_deref(), Some("Pod"));
        assert_eq!(event.0.uid.as_deref(), Some("u1"));
        assert_eq!(event.0.field_path.as_deref(), Some("spec.containers{main}"));
    }

    let sandbox = h.fake.sandboxes().first().cloned().expect("sandbox");
    assert_eq!(
        sandbox
            .labels
            .get("io.kubernetes.pod.uid")
            .map(String::as_str),
        Some("u1")
    );
    let container = h.fake.containers().first().cloned().expect("container");
    assert_eq!(container.log_path, "main/0.log");
    assert_eq!(
        container
            .labels
            .get("io.kubernetes.container.name")
            .map(String::as_str),
        Some("main")
    );

    h.fake.exit_container(&container.id, 0);
    h.workers.wake("u1");
    let done = eventually("Succeeded status", || {
        h.recorder.last().filter(|s| phase(s) == "Succeeded")
    })
    .await;
    let cs = done.container_statuses.unwrap_or_default();
    assert_eq!(
        cs[0]
            .state
            .clone()
            .and_then(|s| s.terminated)
            .map(|t| t.exit_code),
        Some(0)
    );
    // The terminal pod's sandbox is stopped.
    eventually("sandbox stopped", || {
        h.fake
            .sandboxes()
            .iter()
            .all(|s| s.state == api::PodSandboxState::SandboxNotready as i32)
            .then_some(())
    })
    .await;

    h.workers.remove_pod(&p);
    eventually("pod terminated", || {
        h.recorder
            .terminated
            .lock()
            .ok()?
            .contains(&"u1".to_string())
            .then_some(())
    })
    .await;
    assert!(h.fake.sandboxes().is_empty());
    assert!(h.fake.containers().is_empty());
    h.shutdown.cancel();
}

#[tokio::test]
async fn failing_container_enters_crash_loop_backoff() {
    let h = harness();
    h.workers.update_pod(pod("u2", "Always", "busybox:1.0"));
    let first = eventually("first container", || h.fake.containers().first().cloned()).await;
    h.fake.exit_container(&first.id, 1);
    h.workers.wake("u2");
    // Restarted immediately once (the first failure starts the back-off clock)...
    let second = eventually("restart", || {
        h.fake
            .containers()
            .into_iter()
            .find(|c| c.id != first.id && c.state == api::ContainerState::ContainerRunning as i32)
    })
    .await;
    assert_eq!(
        second
            .annotations
            .get("io.kubernetes.container.restartCount")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(second.log_path, "main/1.log");
    h.fake.exit_container(&second.id, 1);
    h.workers.wake("u2");
    // ...then held in CrashLoopBackOff.
    let status = eventually("CrashLoopBackOff", || {
        h.recorder.last().filter(|s| {
            s.container_statuses.iter().flatten().any(|c| {
                c.state
                    .as_ref()
                    .and_then(|st| st.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some("CrashLoopBackOff")
            })
        })
    })
    .await;
    let cs = &status.container_statuses.clone().unwrap_or_default()[0];
    assert_eq!(cs.restart_count, 1);
    assert_eq!(
        cs.last_state
            .clone()
            .and_then(|s| s.terminated)
            .map(|t| t.exit_code),
        Some(1)
    );
    let message = cs
        .state
        .clone()
        .and_then(|s| s.waiting)
        .and_then(|w| w.message)
        .unwrap_or_default();
    assert!(
        message.starts_with("back-off 10s restarting failed container=main pod=pod-u2_default(u2)"),
        "{message}"
    );
    assert_eq!(phase(&status), "Running");
    let backoff = eventually("BackOff event", || h.events.find("pod-u2", "BackOff")).await;
    assert_eq!(backoff.1, EventType::Warning);
    assert_eq!(
        backoff.3,
        "Back-off restarting failed container main in pod pod-u2_default(u2)"
    );
    assert_eq!(
        backoff.0.field_path.as_deref(),
        Some("spec.containers{main}")
    );
    h.shutdown.cancel();
}

#[tokio::test]
async fn never_pull_policy_reports_err_image_never_pull() {
    let h = harness();
    let mut p = pod("u3", "Always", "absent:1.0");
    if let Some(spec) = p.spec.as_mut() {
        spec.containers[0].image_pull_policy = Some("Never".into());
    }
    h.workers.update_pod(p);
    let status = eventually("ErrImageNeverPull", || {
        h.recorder.last().filter(|s| {
            s.container_statuses.iter().flatten().any(|c| {
                c.state
                    .as_ref()
                    .and_then(|st| st.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some("ErrImageNeverPull")
            })
        })
    })
    .await;
    assert_eq!(phase(&status), "Pending");
    let w = status.container_statuses.unwrap_or_default()[0]
        .state
        .clone()
        .and_then(|s| s.waiting)
        .expect("waiting");
    assert_eq!(
        w.message.as_deref(),
        Some("Container image \"absent:1.0\" is not present with pull policy of Never")
    );
    let never = h.events.about("pod-u3");
    let notes: Vec<(&str, &str)> = never
        .iter()
        .take(2)
        .map(|e| (e.2.as_str(), e.3.as_str()))
        .collect();
    assert_eq!(
        notes,
        [
            (
                "ErrImageNeverPull",
                "Container image \"absent:1.0\" is not present with pull policy of Never"
            ),
            ("Failed", "Error: ErrImageNeverPull"),
        ]
    );

    let mut pull = pod("u4", "Always", "registry.invalid/does-not-exist:1.0");
    pull.metadata.name = Some("pull".into());
    h.workers.update_pod(pull);
    eventually("ErrImagePull or ImagePullBackOff", || {
        h.recorder
            .statuses
            .lock()
            .ok()?
            .iter()
            .find(|s| {
                s.container_statuses.iter().flatten().any(|c| {
                    matches!(
                        c.state
                            .as_ref()
                            .and_then(|st| st.waiting.as_ref())
                            .and_then(|w| w.reason.as_deref()),
                        Some("ErrImagePull" | "ImagePullBackOff")
                    )
                })
            })
            .cloned()
    })
    .await;
    let pulls = eventually("pull failure events", || {
        let e = h.events.about("pull");
        (e.len() >= 3).then_some(e)
    })
    .await;
    assert_eq!(
        (pulls[0].2.as_str(), pulls[0].3.as_str()),
        (
            "Pulling",
            "Pulling image \"registry.invalid/does-not-exist:1.0\""
        )
    );
    assert_eq!(pulls[1].2, "Failed");
    assert!(
        pulls[1]
            .3
            .starts_with("Failed to pull image \"registry.invalid/does-not-exist:1.0\": "),
        "{}",
        pulls[1].3
    );
    assert_eq!(pulls[1].1, EventType::Warning);
    assert_eq!(
        (pulls[2].2.as_str(), pulls[2].3.as_str()),
        ("Failed", "Error: ErrImagePull")
    );
    h.shutdown.cancel();
}

#[tokio::test]
async fn readiness_probe_drives_ready_condition() {
    use k8s_openapi::api::core::v1::{ExecAction, Probe};
    use kubelet::prober::ProbeManager;

    let base = harness();
    // Same fake runtime, but workers with a prober and the CRI exec hook.
    let socket = base._dir.path().join("cri.sock");
    let channel = cri::connect(&socket).expect("channel");
    let runtime = RuntimeService::new(channel.clone(), Duration::from_secs(5));
    let manager = RuntimeManager::new(RuntimeDeps {
        runtime: runtime.clone(),
        images: ImageService::new(channel, Duration::from_secs(5)),
        client: None,
        settings: RuntimeSettings {
            log_root: base._dir.path().join("pods"),
            ..Default::default()
        },
        volumes: None,
        events: kubelet::events::noop(),
    });
    let (probes, _events) = ProbeManager::new();
    let probes = Arc::new(probes);
    let recorder = Arc::new(Recorder::default());
    let workers = PodWorkers::new(
        WorkerContext {
            manager: Arc::new(manager),
            status: recorder.clone(),
            runtime_name: "fake".into(),
            host_ips: vec![],
            resync: Duration::from_millis(200),
            probes: Some(probes),
            exec: Some(Arc::new(runtime)),
        },
        base.shutdown.clone(),
    );
    let probe = |cmd: &str| Probe {
        exec: Some(ExecAction {
            command: Some(vec![cmd.to_string()]),
        }),
        period_seconds: Some(1),
        ..Default::default()
    };
    let mut ready = pod("u5", "Always", "busybox:1.0");
    let mut unready = pod("u6", "Always", "busybox:1.0");
    if let Some(spec) = ready.spec.as_mut() {
        spec.containers[0].readiness_probe = Some(probe("true"));
    }
    if let Some(spec) = unready.spec.as_mut() {
        spec.containers[0].readiness_probe = Some(probe("false"));
    }
    workers.update_pod(ready);
    workers.update_pod(unready);
    // Wait until both pods have reported a running container, then check readiness.
    eventually("ready pod", || {
        recorder
            .statuses
            .lock()
            .ok()?
            .iter()
            .find(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
            .cloned()
    })
    .await;
    let not_ready = eventually("unready pod with running container", || {
        recorder
            .statuses
            .lock()
            .ok()?
            .iter()
            .rev()
            .find(|s| {
                s.phase.as_deref() == Some("Running")
                    && s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "ContainersReady" && c.status == "False")
            })
            .cloned()
    })
    .await;
    let ready_cond = not_ready
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready_cond.reason.as_deref(), Some("ContainersNotReady"));
    assert!(
        base.fake.calls().iter().any(|c| c == "ExecSync"),
        "exec probe went through CRI ExecSync"
    );
    base.shutdown.cancel();
}

#[tokio::test]
async fn pre_stop_exec_hook_runs_before_stop() {
    use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, LifecycleHandler};

    let h = harness();
    let mut p = pod("u7", "Always", "busybox:1.0");
    if let Some(spec) = p.spec.as_mut() {
        spec.containers[0].lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec!["true".into()]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    h.workers.update_pod(p.clone());
    eventually("running container", || {
        h.fake
            .containers()
            .into_iter()
            .find(|c| c.state == api::ContainerState::ContainerRunning as i32)
    })
    .await;
    h.workers.remove_pod(&p);
    eventually("pod terminated", || {
        h.recorder
            .terminated
            .lock()
            .ok()?
            .contains(&"u7".to_string())
            .then_some(())
    })
    .await;
    let calls = h.fake.calls();
    let exec = calls
        .iter()
        .position(|c| c == "ExecSync")
        .expect("preStop ran through ExecSync");
    let stop = calls
        .iter()
        .position(|c| c == "StopContainer")
        .expect("container stopped");
    assert!(exec < stop, "preStop before StopContainer: {calls:?}");
    h.shutdown.cancel();
}

#[tokio::test]
async fn failing_liveness_probe_records_unhealthy_and_killing() {
    use k8s_openapi::api::core::v1::{ExecAction, Probe};
    use kubelet::prober::ProbeManager;

    let base = harness();
    // Workers with a prober whose verdicts go through the pod workers' handler.
    let socket = base._dir.path().join("cri.sock");
    let channel = cri::connect(&socket).expect("channel");
    let runtime = RuntimeService::new(channel.clone(), Duration::from_secs(5));
    let events = Arc::new(FakeEvents::default());
    let manager = RuntimeManager::new(RuntimeDeps {
        runtime: runtime.clone(),
        images: ImageService::new(channel, Duration::from_secs(5)),
        client: None,
        settings: RuntimeSettings {
            log_root: base._dir.path().join("pods"),
            ..Default::default()
        },
        volumes: None,
        events: events.clone(),
    });
    let (probes, prober_events) = ProbeManager::new();
    let workers = PodWorkers::new(
        WorkerContext {
            manager: Arc::new(manager),
            status: Arc::new(Recorder::default()),
            runtime_name: "fake".into(),
            host_ips: vec![],
            resync: Duration::from_millis(200),
            probes: Some(Arc::new(probes)),
            exec: Some(Arc::new(runtime)),
        },
        base.shutdown.clone(),
    );
    tokio::spawn(
        workers
            .clone()
            .run_prober_events(prober_events, base.shutdown.clone()),
    );
    let mut p = pod("u7", "Always", "busybox:1.0");
    if let Some(spec) = p.spec.as_mut() {
        spec.containers[0].liveness_probe = Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["false".to_string()]),
            }),
            period_seconds: Some(1),
            failure_threshold: Some(1),
            ..Default::default()
        });
    }
    workers.update_pod(p);

    let killing = eventually("Killing event", || events.find("pod-u7", "Killing")).await;
    assert_eq!(killing.1, EventType::Normal);
    assert_eq!(
        killing.3,
        "Container main failed liveness probe, will be restarted"
    );
    assert_eq!(
        killing.0.field_path.as_deref(),
        Some("spec.containers{main}")
    );
    assert_eq!(killing.0.uid.as_deref(), Some("u7"));

    let unhealthy = events
        .find("pod-u7", "Unhealthy")
        .expect("Unhealthy before Killing");
    assert_eq!(unhealthy.1, EventType::Warning);
    assert!(
        unhealthy.3.starts_with("Liveness probe failed:"),
        "{}",
        unhealthy.3
    );
    assert_eq!(
        unhealthy.0.field_path.as_deref(),
        Some("spec.containers{main}")
    );
    assert_eq!(unhealthy.0.kind.as_deref(), Some("Pod"));

    // The killed container is started again.
    eventually("restarted container", || {
        let started = events
            .reasons("pod-u7")
            .iter()
            .filter(|r| *r == "Started")
            .count();
        (started >= 2).then_some(())
    })
    .await;
    base.shutdown.cancel();
}
