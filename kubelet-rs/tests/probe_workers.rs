//! Probe workers with a fake exec hook under paused tokio time: thresholds, liveness
//! restarts and on-hold, startup gating, readiness initial state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ExecAction, Pod, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet::prober::{
    ContainerExec, ContainerProbeStatus, ContainerRunState, ExecError, ExecOutput, PodProbeStatus,
    ProbeManager, ProbeResult, ProbeType, ProberEvent,
};

/// Scripted exit codes per command name; the last one repeats. Records every call.
#[derive(Default)]
struct ScriptedExec {
    scripts: Mutex<HashMap<String, Vec<i32>>>,
    calls: Mutex<Vec<String>>,
}

impl ScriptedExec {
    fn with(scripts: &[(&str, &[i32])]) -> Arc<Self> {
        let exec = ScriptedExec::default();
        if let Ok(mut s) = exec.scripts.lock() {
            for (cmd, codes) in scripts {
                s.insert(cmd.to_string(), codes.to_vec());
            }
        }
        Arc::new(exec)
    }

    fn calls(&self, cmd: &str) -> usize {
        self.calls
            .lock()
            .map(|c| c.iter().filter(|x| *x == cmd).count())
            .unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl ContainerExec for ScriptedExec {
    async fn exec_sync(
        &self,
        _id: &str,
        cmd: &[String],
        _timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        let name = cmd.first().cloned().unwrap_or_default();
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(name.clone());
        }
        let code = {
            let mut scripts = self
                .scripts
                .lock()
                .map_err(|e| ExecError::Runtime(e.to_string()))?;
            let script = scripts.entry(name.clone()).or_default();
            match script.len() {
                0 => 0,
                1 => script[0],
                _ => script.remove(0),
            }
        };
        Ok(ExecOutput {
            exit_code: code,
            output: format!("{name} exit {code}").into_bytes(),
        })
    }
}

fn exec_probe(cmd: &str, success: i32, failure: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec![cmd.to_string()]),
        }),
        period_seconds: Some(10),
        success_threshold: Some(success),
        failure_threshold: Some(failure),
        termination_grace_period_seconds: Some(7),
        ..Default::default()
    }
}

fn pod(container: Container) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("pod-1".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn status(container_id: &str, started: Option<bool>) -> PodProbeStatus {
    let started_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3600);
    PodProbeStatus {
        pod_ip: Some("10.0.0.5".into()),
        containers: HashMap::from([(
            "c".to_string(),
            ContainerProbeStatus {
                container_id: container_id.into(),
                state: ContainerRunState::Running { started_at },
                started,
            },
        )]),
        ..Default::default()
    }
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<ProberEvent>) -> Vec<ProberEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn liveness_failure_requests_restart_after_threshold_then_holds() {
    let exec = ScriptedExec::with(&[("live", &[1])]);
    let (manager, mut events) = ProbeManager::new();
    let container = Container {
        name: "c".into(),
        liveness_probe: Some(exec_probe("live", 1, 3)),
        ..Default::default()
    };
    let p = pod(container);
    manager.add_pod(&p, exec.clone());
    assert_eq!(manager.worker_count("pod-1"), 1);
    manager.update_pod_status("pod-1", status("cid-1", Some(true)));
    let mut updates = manager.results(ProbeType::Liveness).subscribe();

    tokio::time::sleep(Duration::from_secs(45)).await;
    assert_eq!(
        exec.calls("live"),
        3,
        "probing stops once the container is condemned"
    );
    assert_eq!(
        manager.results(ProbeType::Liveness).get("cid-1"),
        Some(ProbeResult::Failure)
    );
    let mut published = Vec::new();
    while let Ok(u) = updates.try_recv() {
        published.push((u.container_id, u.result, u.pod_uid));
    }
    // The initial value (Success for liveness) first, then the failure past the threshold.
    let cid = |r| ("cid-1".to_string(), r, "pod-1".to_string());
    assert_eq!(
        published,
        [cid(ProbeResult::Success), cid(ProbeResult::Failure)]
    );

    let got = drain(&mut events);
    let unhealthy: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            ProberEvent::ContainerEvent {
                reason, message, ..
            } => Some((*reason, message.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        unhealthy,
        vec![
            (
                "Unhealthy",
                "Liveness probe failed: live exit 1".to_string()
            );
            3
        ]
    );
    let restarts: Vec<_> = got
        .iter()
        .filter(|e| matches!(e, ProberEvent::RestartContainer { .. }))
        .collect();
    assert_eq!(
        restarts,
        [&ProberEvent::RestartContainer {
            pod_uid: "pod-1".into(),
            container_name: "c".into(),
            container_id: "cid-1".into(),
            probe_type: ProbeType::Liveness,
            message: "Container c failed liveness probe, will be restarted".into(),
            termination_grace_period_seconds: Some(7),
        }]
    );

    // Still on hold later on; a new container resumes probing with a fresh result.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(exec.calls("live"), 3);
    manager.update_pod_status("pod-1", status("cid-2", Some(true)));
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(exec.calls("live") >= 4);
    assert_eq!(
        manager.results(ProbeType::Liveness).get("cid-1"),
        None,
        "old container forgotten"
    );

    manager.remove_pod("pod-1");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(manager.worker_count("pod-1"), 0);
}

#[tokio::test(start_paused = true)]
async fn startup_probe_gates_readiness() {
    let exec = ScriptedExec::with(&[("start", &[1, 1, 0]), ("ready", &[0])]);
    let (manager, _events) = ProbeManager::new();
    let container = Container {
        name: "c".into(),
        startup_probe: Some(exec_probe("start", 1, 30)),
        readiness_probe: Some(exec_probe("ready", 1, 3)),
        ..Default::default()
    };
    let p = pod(container.clone());
    manager.add_pod(&p, exec.clone());
    assert_eq!(manager.worker_count("pod-1"), 2);
    manager.update_pod_status("pod-1", status("cid-1", Some(false)));

    tokio::time::sleep(Duration::from_secs(15)).await;
    // Readiness starts out failed and is not probed before the container has started.
    assert_eq!(
        manager.results(ProbeType::Readiness).get("cid-1"),
        Some(ProbeResult::Failure)
    );
    assert_eq!(exec.calls("ready"), 0);
    assert!(!manager.container_started(&container, "cid-1", true));

    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(exec.calls("start"), 3);
    assert_eq!(
        manager.results(ProbeType::Startup).get("cid-1"),
        Some(ProbeResult::Success)
    );
    let started = manager.container_started(&container, "cid-1", true);
    assert!(started);
    assert!(!manager.container_ready(&container, "cid-1", true, started));

    // The pod worker publishes `started: true`; readiness probing begins.
    manager.update_pod_status("pod-1", status("cid-1", Some(true)));
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(exec.calls("ready") >= 1);
    assert_eq!(exec.calls("start"), 3, "startup probe stops after success");
    assert!(manager.container_ready(&container, "cid-1", true, true));
}

#[tokio::test(start_paused = true)]
async fn readiness_success_threshold_needs_consecutive_successes() {
    let exec = ScriptedExec::with(&[("ready", &[0, 1, 0, 0])]);
    let (manager, mut events) = ProbeManager::new();
    let container = Container {
        name: "c".into(),
        readiness_probe: Some(exec_probe("ready", 2, 1)),
        ..Default::default()
    };
    manager.add_pod(&pod(container), exec.clone());
    manager.update_pod_status("pod-1", status("cid-1", Some(true)));
    let readiness = manager.results(ProbeType::Readiness).clone();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let before = exec.calls("ready");
        while exec.calls("ready") == before {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tokio::task::yield_now().await;
        seen.push(readiness.get("cid-1"));
    }
    use ProbeResult::{Failure as F, Success as S};
    // 0 (1 of 2) → F stays; 1 → failure threshold 1 → F; 0 → 1 of 2; 0 → S.
    assert_eq!(seen, [Some(F), Some(F), Some(F), Some(S)]);
    assert!(
        drain(&mut events)
            .iter()
            .all(|e| !matches!(e, ProberEvent::RestartContainer { .. })),
        "readiness never restarts"
    );
}
