//! `generateAPIPodStatus`: the API status of a pod from its runtime state.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::phase::get_phase;
use crate::kuberuntime::actions::should_container_be_restarted;
use crate::kuberuntime::runtime_status::{
    ContainerRecord, ContainerState as RtState, PodRuntimeStatus,
};
use crate::kuberuntime::sync_result::StartFailure;
use crate::qos::compute_pod_qos;
use crate::types::is_static_pod;

pub const CONTAINER_CREATING: &str = "ContainerCreating";
pub const POD_INITIALIZING: &str = "PodInitializing";
pub const POD_COMPLETED: &str = "PodCompleted";
pub const CONTAINERS_NOT_READY: &str = "ContainersNotReady";
pub const CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
const KUBELET_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
];

/// Inputs of one status computation.
pub struct StatusInputs<'a> {
    pub pod: &'a Pod,
    pub runtime: &'a PodRuntimeStatus,
    /// Last start failure per container (`reasonCache`).
    pub reasons: &'a BTreeMap<String, StartFailure>,
    pub runtime_name: &'a str,
    pub host_ips: &'a [String],
    pub pod_is_terminal: bool,
    pub now: Timestamp,
    /// (started, ready) of a running container from its probes; `None`: no probes
    /// known, a running container is started and ready.
    pub probes: Option<&'a ProbeReadiness>,
}

/// Answers (started, ready) for a running container with the given runtime id.
pub type ProbeReadiness = dyn Fn(&Container, &str) -> (bool, bool) + Send + Sync;

fn ts(ns: i64) -> Option<Time> {
    (ns > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(ns)).ok())
        .flatten()
        .map(Time)
}

fn terminated(r: &ContainerRecord, runtime_name: &str) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: r.exit_code,
            reason: (!r.reason.is_empty()).then(|| r.reason.clone()),
            message: (!r.message.is_empty()).then(|| r.message.clone()),
            started_at: ts(r.started_at),
            finished_at: ts(r.finished_at),
            container_id: Some(format!("{runtime_name}://{}", r.id)),
            signal: None,
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}

/// `convertToAPIContainerStatuses` for one list of spec containers.
fn container_statuses(
    input: &StatusInputs<'_>,
    containers: &[Container],
    default_reason: &str,
) -> Vec<ContainerStatus> {
    let mut out = Vec::new();
    for c in containers {
        let latest = input.runtime.find(&c.name);
        let mut status = ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            ready: false,
            restart_count: 0,
            started: Some(false),
            state: Some(waiting(default_reason, None)),
            ..Default::default()
        };
        if let Some(r) = latest {
            status.image_id = r.image_ref.clone();
            status.container_id = Some(format!("{}://{}", input.runtime_name, r.id));
            status.restart_count = r.restart_count;
            status.state = Some(match r.state {
                RtState::Running => {
                    let (started, ready) = input.probes.map_or((true, true), |f| f(c, &r.id));
                    status.ready = ready;
                    status.started = Some(started);
                    ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: ts(r.started_at),
                        }),
                        ..Default::default()
                    }
                }
                RtState::Exited => terminated(r, input.runtime_name),
                RtState::Created => waiting(CONTAINER_CREATING, None),
                RtState::Unknown => ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 137,
                        reason: Some("ContainerStatusUnknown".into()),
                        message: Some(
                            "The container could not be located when the pod was terminated".into(),
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            });
            if let Some(prev) = input
                .runtime
                .previous(&c.name)
                .filter(|p| p.state == RtState::Exited)
            {
                status.last_state = Some(terminated(prev, input.runtime_name));
            }
        }
        // A container to be restarted with a recorded failure is Waiting for that reason.
        if should_container_be_restarted(c, input.pod, input.runtime)
            && let Some(f) = input.reasons.get(&c.name)
        {
            if status
                .state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some())
            {
                status.last_state = status.state.clone();
            }
            status.state = Some(waiting(&f.reason, Some(f.message.clone())));
        }
        out.push(status);
    }
    out
}

fn condition(
    previous: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let prev = previous.iter().find(|c| c.type_ == type_);
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: match prev {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(Time(now)),
        },
        last_probe_time: None,
        observed_generation: None,
    }
}

fn names_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// Init containers that have not completed (sidecars, `restartPolicy: Always`, never block).
fn incomplete_inits(inits: &[Container], init_statuses: &[ContainerStatus]) -> Vec<String> {
    inits
        .iter()
        .zip(init_statuses)
        .filter(|(c, s)| {
            c.restart_policy.as_deref() != Some("Always")
                && s.state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .is_none_or(|t| t.exit_code != 0)
        })
        .map(|(c, _)| c.name.clone())
        .collect()
}

fn unready(statuses: &[ContainerStatus]) -> Vec<String> {
    statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.clone())
        .collect()
}

/// The kubelet's conditions (`PodReadyToStartContainers`, `Initialized`, `Ready`,
/// `ContainersReady`), then the ones others own, unchanged.
fn pod_conditions(
    prev_conditions: &[PodCondition],
    sandbox_ready: bool,
    terminal: bool,
    has_inits: bool,
    not_initialized: Vec<String>,
    unready: Vec<String>,
    now: Timestamp,
) -> Vec<PodCondition> {
    let mut conditions = vec![condition(
        prev_conditions,
        "PodReadyToStartContainers",
        sandbox_ready,
        None,
        None,
        now,
    )];
    conditions.push(if terminal && has_inits {
        condition(
            prev_conditions,
            "Initialized",
            true,
            Some(POD_COMPLETED),
            None,
            now,
        )
    } else if not_initialized.is_empty() {
        condition(prev_conditions, "Initialized", true, None, None, now)
    } else {
        condition(
            prev_conditions,
            "Initialized",
            false,
            Some(CONTAINERS_NOT_INITIALIZED),
            Some(format!(
                "containers with incomplete status: {}",
                names_list(&not_initialized)
            )),
            now,
        )
    });
    for type_ in ["Ready", "ContainersReady"] {
        conditions.push(if terminal {
            condition(
                prev_conditions,
                type_,
                false,
                Some(POD_COMPLETED),
                None,
                now,
            )
        } else if unready.is_empty() {
            condition(prev_conditions, type_, true, None, None, now)
        } else {
            condition(
                prev_conditions,
                type_,
                false,
                Some(CONTAINERS_NOT_READY),
                Some(format!(
                    "containers with unready status: {}",
                    names_list(&unready)
                )),
                now,
            )
        });
    }
    // Conditions owned by others (PodScheduled, DisruptionTarget, readiness gates) are kept.
    conditions.extend(
        prev_conditions
            .iter()
            .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
            .cloned(),
    );

    conditions
}

/// Pod IPs from the sandbox; the host's for hostNetwork pods; else the last ones reported.
fn status_pod_ips(input: &StatusInputs<'_>, spec: &PodSpec, previous: &PodStatus) -> Vec<String> {
    let pod_ips = input.runtime.pod_ips();
    if pod_ips.is_empty() && spec.host_network.unwrap_or(false) {
        input.host_ips.to_vec()
    } else if pod_ips.is_empty() {
        previous
            .pod_ips
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.ip)
            .collect()
    } else {
        pod_ips
    }
}

/// The full status; `previous` supplies `startTime`, `PodScheduled` and transition times.
pub fn generate_pod_status(input: &StatusInputs<'_>) -> PodStatus {
    let pod = input.pod;
    let previous = pod.status.clone().unwrap_or_default();
    let prev_conditions = previous.conditions.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let init_statuses = container_statuses(input, &inits, CONTAINER_CREATING);
    let default_reason = if inits.is_empty() {
        CONTAINER_CREATING
    } else {
        POD_INITIALIZING
    };
    let statuses = container_statuses(input, &spec.containers, default_reason);
    let mut phase = get_phase(
        &spec,
        &init_statuses,
        &statuses,
        input.pod_is_terminal,
        is_static_pod(pod),
    );
    // A terminal phase never goes back.
    if let Some(p @ ("Succeeded" | "Failed")) = previous.phase.as_deref() {
        phase = if p == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    let terminal = phase == "Succeeded" || phase == "Failed";

    let sandbox_ready = input
        .runtime
        .sandboxes
        .first()
        .is_some_and(|s| s.state == crate::cri::api::PodSandboxState::SandboxReady as i32);
    let conditions = pod_conditions(
        &prev_conditions,
        sandbox_ready,
        terminal,
        !inits.is_empty(),
        incomplete_inits(&inits, &init_statuses),
        unready(&statuses),
        input.now,
    );
    let pod_ips = status_pod_ips(input, &spec, &previous);
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        init_container_statuses: (!inits.is_empty()).then_some(init_statuses),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty())
            .then(|| pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        host_ip: input.host_ips.first().cloned(),
        host_ips: (!input.host_ips.is_empty()).then(|| {
            input
                .host_ips
                .iter()
                .map(|ip| HostIP { ip: ip.clone() })
                .collect()
        }),
        start_time: previous.start_time.clone().or(Some(Time(input.now))),
        qos_class: Some(
            previous
                .qos_class
                .clone()
                .unwrap_or_else(|| compute_pod_qos(pod).to_string()),
        ),
        ..previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::api;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod() -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("d".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "a".into(),
                    image: Some("busybox".into()),
                    ..Default::default()
                }],
                restart_policy: Some("Always".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn rec(state: RtState, exit: i32, created: i64, restart: i32) -> ContainerRecord {
        ContainerRecord {
            id: format!("c{created}"),
            name: "a".into(),
            state,
            created_at: created,
            started_at: created,
            finished_at: created + 1,
            exit_code: exit,
            reason: if exit == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message: String::new(),
            image: "busybox".into(),
            image_ref: "sha256:abc".into(),
            restart_count: restart,
            hash: String::new(),
            init: false,
        }
    }

    fn sandbox() -> api::PodSandboxStatus {
        api::PodSandboxStatus {
            id: "sb".into(),
            state: api::PodSandboxState::SandboxReady as i32,
            network: Some(api::PodSandboxNetworkStatus {
                ip: "10.88.0.7".into(),
                additional_ips: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn running_pod_is_ready() {
        let p = pod();
        let rt = PodRuntimeStatus {
            sandboxes: vec![sandbox()],
            containers: vec![rec(RtState::Running, 0, 10, 0)],
        };
        let reasons = BTreeMap::new();
        let now = Timestamp::from_second(100).expect("ts");
        let s = generate_pod_status(&StatusInputs {
            pod: &p,
            runtime: &rt,
            reasons: &reasons,
            runtime_name: "containerd",
            host_ips: &["192.168.0.2".into()],
            pod_is_terminal: false,
            now,
            probes: None,
        });
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.88.0.7"));
        assert_eq!(s.host_ip.as_deref(), Some("192.168.0.2"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        let types: Vec<(String, String)> = s
            .conditions
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        assert_eq!(
            types,
            vec![
                ("PodReadyToStartContainers".to_string(), "True".to_string()),
                ("Initialized".into(), "True".into()),
                ("Ready".into(), "True".into()),
                ("ContainersReady".into(), "True".into()),
                ("PodScheduled".into(), "True".into()),
            ]
        );
        let cs = &s.container_statuses.unwrap_or_default()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("containerd://c10"));
    }

    #[test]
    fn crash_loop_is_waiting_with_last_state() {
        let p = pod();
        let rt = PodRuntimeStatus {
            sandboxes: vec![sandbox()],
            containers: vec![
                rec(RtState::Exited, 2, 20, 1),
                rec(RtState::Exited, 2, 10, 0),
            ],
        };
        let reasons = BTreeMap::from([(
            "a".to_string(),
            StartFailure {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 10s restarting failed container=a pod=p_d(u)".into(),
            },
        )]);
        let now = Timestamp::from_second(100).expect("ts");
        let s = generate_pod_status(&StatusInputs {
            pod: &p,
            runtime: &rt,
            reasons: &reasons,
            runtime_name: "containerd",
            host_ips: &[],
            pod_is_terminal: false,
            now,
            probes: None,
        });
        let cs = &s.container_statuses.clone().unwrap_or_default()[0];
        let w = cs.state.clone().and_then(|s| s.waiting).expect("waiting");
        assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(
            cs.last_state
                .clone()
                .and_then(|s| s.terminated)
                .map(|t| t.exit_code),
            Some(2)
        );
        assert_eq!(cs.restart_count, 1);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let ready = s
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .expect("ready");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [a]")
        );
    }
}
