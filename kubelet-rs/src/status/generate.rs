//! `generateAPIPodStatus`: the API status of a pod from its runtime state.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::{ConditionInputs, has_any_regular_container_started, pod_conditions};
use super::deadline::{DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_MESSAGE, past_active_deadline};
use super::phase::get_phase;
use crate::kuberuntime::actions::{is_restartable_init, should_container_be_restarted};
use crate::kuberuntime::resize::{allocated_resources, resize_in_progress, status_resources};
use crate::kuberuntime::runtime_status::{
    ContainerRecord, ContainerState as RtState, PodRuntimeStatus,
};
use crate::kuberuntime::sync::ephemeral_as_container;
use crate::kuberuntime::sync_result::StartFailure;
use crate::qos::compute_pod_qos;
use crate::types::is_static_pod;

pub const CONTAINER_CREATING: &str = "ContainerCreating";
pub const POD_INITIALIZING: &str = "PodInitializing";

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
    /// `--cpu-cfs-quota` (whether CPU limits were applied, for resize progress).
    pub cpu_cfs_quota: bool,
}

/// Which list of the spec a container status belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Init,
    Regular,
    Ephemeral,
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
    kind: Kind,
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
            // The prober reports `started` for init and regular containers only.
            started: (kind != Kind::Ephemeral).then_some(false),
            state: Some(waiting(default_reason, None)),
            ..Default::default()
        };
        if let Some(r) = latest {
            status.image_id = r.image_ref.clone();
            status.container_id = Some(format!("{}://{}", input.runtime_name, r.id));
            status.restart_count = r.restart_count;
            status.state = Some(match r.state {
                RtState::Running => {
                    if kind != Kind::Ephemeral {
                        let (started, ready) = input.probes.map_or((true, true), |f| f(c, &r.id));
                        // Only sidecars are ready while running; init containers when done.
                        status.ready = ready && (kind == Kind::Regular || is_restartable_init(c));
                        status.started = Some(started);
                    }
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
            // Resources are reported for containers that can be resized in place.
            if kind == Kind::Regular || (kind == Kind::Init && is_restartable_init(c)) {
                status.resources = Some(status_resources(c, r.resources.as_ref()));
                status.allocated_resources = allocated_resources(c);
            }
        }
        // A completed init container is ready (upstream prober `UpdatePodStatus`).
        if kind == Kind::Init && !is_restartable_init(c) {
            status.ready = status
                .state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0);
        }
        // A container to be restarted with a recorded failure is Waiting for that reason.
        if kind != Kind::Ephemeral
            && should_container_be_restarted(c, input.pod, input.runtime)
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
    // Every status of a pod with init containers waits as PodInitializing.
    let default_reason = if inits.is_empty() {
        CONTAINER_CREATING
    } else {
        POD_INITIALIZING
    };
    let init_statuses = container_statuses(input, &inits, default_reason, Kind::Init);
    let statuses = container_statuses(input, &spec.containers, default_reason, Kind::Regular);
    let ephemeral: Vec<Container> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(ephemeral_as_container)
        .collect();
    let ephemeral_statuses = container_statuses(input, &ephemeral, default_reason, Kind::Ephemeral);
    let mut phase = get_phase(
        &spec,
        &init_statuses,
        &statuses,
        input.pod_is_terminal,
        is_static_pod(pod),
        has_any_regular_container_started(&spec, &statuses),
    );
    let (mut reason, mut message) = (previous.reason.clone(), previous.message.clone());
    if past_active_deadline(pod, input.now) {
        phase = "Failed";
        reason = Some(DEADLINE_EXCEEDED.into());
        message = Some(DEADLINE_EXCEEDED_MESSAGE.into());
    }
    // A terminal phase never goes back.
    if let Some(p @ ("Succeeded" | "Failed")) = previous.phase.as_deref() {
        phase = if p == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        };
    }

    let sandbox_ready = input
        .runtime
        .sandboxes
        .first()
        .is_some_and(|s| s.state == crate::cri::api::PodSandboxState::SandboxReady as i32);
    let running = inits
        .iter()
        .filter(|c| is_restartable_init(c))
        .chain(&spec.containers)
        .filter_map(|c| {
            input
                .runtime
                .find(&c.name)
                .filter(|r| r.state == RtState::Running)
                .map(|r| (c, r))
        });
    let conditions = pod_conditions(&ConditionInputs {
        spec: &spec,
        previous: &prev_conditions,
        generation: pod.metadata.generation,
        phase,
        sandbox_ready,
        init_statuses: &init_statuses,
        statuses: &statuses,
        resize_in_progress: resize_in_progress(pod, running, input.cpu_cfs_quota),
        now: input.now,
    });
    let pod_ips = status_pod_ips(input, &spec, &previous);
    PodStatus {
        phase: Some(phase.into()),
        reason,
        message,
        observed_generation: pod.metadata.generation,
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        init_container_statuses: (!inits.is_empty()).then_some(init_statuses),
        ephemeral_container_statuses: (!ephemeral.is_empty()).then_some(ephemeral_statuses),
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
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec};

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
            resources: None,
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
            cpu_cfs_quota: true,
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
            cpu_cfs_quota: true,
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

    fn inputs<'a>(
        p: &'a Pod,
        rt: &'a PodRuntimeStatus,
        reasons: &'a BTreeMap<String, StartFailure>,
        now: Timestamp,
    ) -> StatusInputs<'a> {
        StatusInputs {
            pod: p,
            runtime: rt,
            reasons,
            runtime_name: "containerd",
            host_ips: &[],
            pod_is_terminal: false,
            now,
            probes: None,
            cpu_cfs_quota: true,
        }
    }

    fn named(mut r: ContainerRecord, name: &str) -> ContainerRecord {
        r.name = name.into();
        r
    }

    #[test]
    fn init_containers_wait_as_pod_initializing_and_completed_ones_are_ready() {
        let mut p = pod();
        p.metadata.generation = Some(4);
        if let Some(spec) = p.spec.as_mut() {
            spec.init_containers = Some(vec![
                Container {
                    name: "init1".into(),
                    ..Default::default()
                },
                Container {
                    name: "init2".into(),
                    ..Default::default()
                },
            ]);
        }
        let rt = PodRuntimeStatus {
            sandboxes: vec![sandbox()],
            containers: vec![named(rec(RtState::Exited, 0, 10, 0), "init1")],
        };
        let reasons = BTreeMap::new();
        let s = generate_pod_status(&inputs(&p, &rt, &reasons, Timestamp::UNIX_EPOCH));
        let inits = s.init_container_statuses.clone().unwrap_or_default();
        assert!(inits[0].ready, "completed init container is ready");
        let w = |cs: &ContainerStatus| {
            cs.state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .and_then(|w| w.reason.clone())
        };
        assert_eq!(w(&inits[1]).as_deref(), Some("PodInitializing"));
        let app = &s.container_statuses.clone().unwrap_or_default()[0];
        assert_eq!(w(app).as_deref(), Some("PodInitializing"));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(s.observed_generation, Some(4));
        let conds = s.conditions.unwrap_or_default();
        let init = conds
            .iter()
            .find(|c| c.type_ == "Initialized")
            .expect("init");
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [init2]")
        );
        assert!(
            conds
                .iter()
                .filter(|c| c.type_ != "PodScheduled")
                .all(|c| c.observed_generation == Some(4))
        );
    }

    #[test]
    fn past_deadline_fails_the_pod() {
        let mut p = pod();
        if let Some(spec) = p.spec.as_mut() {
            spec.active_deadline_seconds = Some(5);
        }
        if let Some(st) = p.status.as_mut() {
            st.start_time = Some(Time(Timestamp::from_second(100).expect("ts")));
            st.phase = Some("Running".into());
        }
        let rt = PodRuntimeStatus {
            sandboxes: vec![sandbox()],
            containers: vec![rec(RtState::Running, 0, 10, 0)],
        };
        let reasons = BTreeMap::new();
        let before = Timestamp::from_second(104).expect("ts");
        let s = generate_pod_status(&inputs(&p, &rt, &reasons, before));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let after = Timestamp::from_second(105).expect("ts");
        let s = generate_pod_status(&inputs(&p, &rt, &reasons, after));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(
            s.message.as_deref(),
            Some("Pod was active on the node longer than the specified deadline")
        );
    }

    #[test]
    fn ephemeral_and_resource_statuses() {
        use crate::cri::api::LinuxContainerResources;
        use k8s_openapi::api::core::v1::{EphemeralContainer, ResourceRequirements};
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let mut p = pod();
        let list = BTreeMap::from([
            ("cpu".to_string(), Quantity("20m".into())),
            ("memory".to_string(), Quantity("20Mi".into())),
        ]);
        if let Some(spec) = p.spec.as_mut() {
            spec.containers[0].resources = Some(ResourceRequirements {
                requests: Some(list.clone()),
                limits: Some(list.clone()),
                claims: None,
            });
            spec.ephemeral_containers = Some(vec![EphemeralContainer {
                name: "debugger".into(),
                ..Default::default()
            }]);
        }
        let mut app = rec(RtState::Running, 0, 10, 0);
        app.resources = Some(LinuxContainerResources {
            cpu_shares: 20,
            cpu_quota: 2000,
            cpu_period: 100_000,
            memory_limit_in_bytes: 20 << 20,
            ..Default::default()
        });
        let rt = PodRuntimeStatus {
            sandboxes: vec![sandbox()],
            containers: vec![
                named(rec(RtState::Running, 0, 11, 0), "debugger"),
                app.clone(),
            ],
        };
        let reasons = BTreeMap::new();
        let s = generate_pod_status(&inputs(&p, &rt, &reasons, Timestamp::UNIX_EPOCH));
        let e = &s.ephemeral_container_statuses.clone().unwrap_or_default()[0];
        assert!(e.state.as_ref().is_some_and(|st| st.running.is_some()));
        assert_eq!(e.started, None);
        assert!(!e.ready);
        let cs = &s.container_statuses.clone().unwrap_or_default()[0];
        // 20m is 20 shares, which reads back as the allocated 20m, not 19m.
        assert_eq!(
            cs.resources,
            Some(ResourceRequirements {
                requests: Some(list.clone()),
                limits: Some(list.clone()),
                claims: None,
            })
        );
        assert_eq!(cs.allocated_resources, Some(list));
        let types: Vec<String> = s
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.type_)
            .collect();
        assert!(!types.contains(&"PodResizeInProgress".to_string()));

        // The runtime still runs the old limits: the resize is in progress.
        let mut old = app;
        old.resources = old.resources.map(|r| LinuxContainerResources {
            memory_limit_in_bytes: 10 << 20,
            ..r
        });
        let rt = PodRuntimeStatus {
            sandboxes: vec![sandbox()],
            containers: vec![old],
        };
        let s = generate_pod_status(&inputs(&p, &rt, &reasons, Timestamp::UNIX_EPOCH));
        let cs = &s.container_statuses.clone().unwrap_or_default()[0];
        assert_eq!(
            cs.resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get("memory")),
            Some(&Quantity((10i64 << 20).to_string()))
        );
        assert!(
            s.conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "PodResizeInProgress" && c.status == "True")
        );
    }
}
