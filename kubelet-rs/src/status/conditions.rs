//! The kubelet's pod conditions (upstream `pkg/kubelet/status/generate.go` and the
//! resize conditions of `generateAPIPodStatus`): `PodReadyToStartContainers`,
//! `Initialized`, `Ready`, `ContainersReady`, `PodResizePending` / `PodResizeInProgress`,
//! each stamped with the pod generation it describes (`observedGeneration`).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, PodCondition, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::kuberuntime::actions::is_restartable_init;

pub const POD_COMPLETED: &str = "PodCompleted";
pub const POD_FAILED: &str = "PodFailed";
pub const CONTAINERS_NOT_READY: &str = "ContainersNotReady";
pub const CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
pub const READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";
pub const POD_RESIZE_IN_PROGRESS: &str = "PodResizeInProgress";
pub const POD_RESIZE_PENDING: &str = "PodResizePending";
/// Conditions the kubelet owns; every other one is kept as found.
pub const KUBELET_CONDITIONS: [&str; 6] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    POD_RESIZE_IN_PROGRESS,
    POD_RESIZE_PENDING,
];

/// What the conditions are computed from.
pub struct ConditionInputs<'a> {
    pub spec: &'a PodSpec,
    pub previous: &'a [PodCondition],
    pub generation: Option<i64>,
    pub phase: &'a str,
    pub sandbox_ready: bool,
    pub init_statuses: &'a [ContainerStatus],
    pub statuses: &'a [ContainerStatus],
    /// A running container still runs with other resources than allocated.
    pub resize_in_progress: bool,
    pub now: Timestamp,
}

/// A condition with upstream's shape; the transition time carries over while the
/// status stays the same.
fn condition(
    input: &ConditionInputs<'_>,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let prev = input.previous.iter().find(|c| c.type_ == type_);
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: match prev {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(Time(input.now)),
        },
        last_probe_time: None,
        observed_generation: input.generation,
    }
}

/// Go's `fmt.Sprintf("%s", []string{...})`.
fn names_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

/// `HasAnyRegularContainerStarted`: a regular container is running or has terminated.
pub fn has_any_regular_container_started(spec: &PodSpec, statuses: &[ContainerStatus]) -> bool {
    spec.containers.iter().any(|c| {
        find(statuses, &c.name)
            .and_then(|s| s.state.as_ref())
            .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
    })
}

/// `isInitContainerInitialized`: a sidecar once started, a regular init container once
/// ready (completed with exit code 0).
fn is_init_container_initialized(c: &Container, s: &ContainerStatus) -> bool {
    if is_restartable_init(c) {
        s.started == Some(true)
    } else {
        s.ready
    }
}

fn unready_message(unknown: &[String], unready: &[String], unready_word: &str) -> String {
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        parts.push(format!(
            "containers with unknown status: {}",
            names_list(unknown)
        ));
    }
    if !unready.is_empty() {
        parts.push(format!(
            "containers with {unready_word} status: {}",
            names_list(unready)
        ));
    }
    parts.join(", ")
}

/// `GeneratePodInitializedCondition`.
fn initialized(input: &ConditionInputs<'_>) -> PodCondition {
    let (mut unknown, mut incomplete) = (Vec::new(), Vec::new());
    for c in input.spec.init_containers.iter().flatten() {
        match find(input.init_statuses, &c.name) {
            None => unknown.push(c.name.clone()),
            Some(s) if !is_init_container_initialized(c, s) => incomplete.push(c.name.clone()),
            Some(_) => {}
        }
    }
    if input.phase == "Succeeded" && unknown.is_empty() {
        return condition(input, "Initialized", true, Some(POD_COMPLETED), None);
    }
    if has_any_regular_container_started(input.spec, input.statuses) {
        return condition(input, "Initialized", true, None, None);
    }
    let message = unready_message(&unknown, &incomplete, "incomplete");
    if message.is_empty() {
        condition(input, "Initialized", true, None, None)
    } else {
        condition(
            input,
            "Initialized",
            false,
            Some(CONTAINERS_NOT_INITIALIZED),
            Some(message),
        )
    }
}

/// `GenerateContainersReadyCondition`: sidecars and regular containers all ready.
fn containers_ready(input: &ConditionInputs<'_>, type_: &str) -> PodCondition {
    let (mut unknown, mut unready) = (Vec::new(), Vec::new());
    let sidecars = input
        .spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_restartable_init(c))
        .map(|c| (c, input.init_statuses));
    let regular = input.spec.containers.iter().map(|c| (c, input.statuses));
    for (c, statuses) in sidecars.chain(regular) {
        match find(statuses, &c.name) {
            None => unknown.push(c.name.clone()),
            Some(s) if !s.ready => unready.push(c.name.clone()),
            Some(_) => {}
        }
    }
    if input.phase == "Succeeded" && unknown.is_empty() {
        return condition(input, type_, false, Some(POD_COMPLETED), None);
    }
    if input.phase == "Failed" {
        return condition(input, type_, false, Some(POD_FAILED), None);
    }
    let message = unready_message(&unknown, &unready, "unready");
    if message.is_empty() {
        condition(input, type_, true, None, None)
    } else {
        condition(
            input,
            type_,
            false,
            Some(CONTAINERS_NOT_READY),
            Some(message),
        )
    }
}

/// `GeneratePodReadyCondition`: containers ready, then every readiness gate True.
fn pod_ready(input: &ConditionInputs<'_>, containers: &PodCondition) -> PodCondition {
    if containers.status != "True" {
        return condition(
            input,
            "Ready",
            false,
            containers.reason.as_deref(),
            containers.message.clone(),
        );
    }
    let mut unready = Vec::new();
    for gate in input.spec.readiness_gates.iter().flatten() {
        match input
            .previous
            .iter()
            .find(|c| c.type_ == gate.condition_type)
        {
            None => unready.push(format!(
                "corresponding condition of pod readiness gate \"{}\" does not exist.",
                gate.condition_type
            )),
            Some(c) if c.status != "True" => unready.push(format!(
                "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                gate.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    if unready.is_empty() {
        condition(input, "Ready", true, None, None)
    } else {
        condition(
            input,
            "Ready",
            false,
            Some(READINESS_GATES_NOT_READY),
            Some(unready.join(", ")),
        )
    }
}

/// The kubelet's conditions in upstream's order, then the ones others own, unchanged.
pub fn pod_conditions(input: &ConditionInputs<'_>) -> Vec<PodCondition> {
    let mut conditions = vec![condition(
        input,
        "PodReadyToStartContainers",
        input.sandbox_ready,
        None,
        None,
    )];
    if input.resize_in_progress {
        conditions.push(condition(input, POD_RESIZE_IN_PROGRESS, true, None, None));
    }
    conditions.push(initialized(input));
    let containers = containers_ready(input, "ContainersReady");
    conditions.push(pod_ready(input, &containers));
    conditions.push(containers);
    conditions.extend(
        input
            .previous
            .iter()
            .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
            .cloned(),
    );
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, PodReadinessGate,
    };

    fn container(name: &str, sidecar: bool) -> Container {
        Container {
            name: name.into(),
            restart_policy: sidecar.then(|| "Always".to_string()),
            ..Default::default()
        }
    }

    fn running(name: &str, started: bool, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            started: Some(started),
            ready,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn exited(name: &str, code: i32) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready: code == 0,
            started: Some(false),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn get<'a>(cs: &'a [PodCondition], t: &str) -> &'a PodCondition {
        cs.iter().find(|c| c.type_ == t).expect(t)
    }

    fn inputs<'a>(
        spec: &'a PodSpec,
        phase: &'a str,
        inits: &'a [ContainerStatus],
        statuses: &'a [ContainerStatus],
        previous: &'a [PodCondition],
    ) -> ConditionInputs<'a> {
        ConditionInputs {
            spec,
            previous,
            generation: Some(3),
            phase,
            sandbox_ready: true,
            init_statuses: inits,
            statuses,
            resize_in_progress: false,
            now: Timestamp::from_second(10).expect("ts"),
        }
    }

    #[test]
    fn init_failure_under_never_reports_incomplete_init() {
        let spec = PodSpec {
            init_containers: Some(vec![container("init1", false), container("init2", false)]),
            containers: vec![container("run1", false)],
            ..Default::default()
        };
        let inits = [exited("init1", 0), exited("init2", 1)];
        let cs = pod_conditions(&inputs(&spec, "Failed", &inits, &[], &[]));
        let init = get(&cs, "Initialized");
        assert_eq!(init.status, "False");
        assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [init2]")
        );
        assert_eq!(init.observed_generation, Some(3));
        let ready = get(&cs, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("PodFailed"))
        );
    }

    #[test]
    fn sidecar_counts_once_started_and_for_readiness() {
        let spec = PodSpec {
            init_containers: Some(vec![container("side", true)]),
            containers: vec![container("app", false)],
            ..Default::default()
        };
        let pending = [running("side", false, false)];
        let cs = pod_conditions(&inputs(&spec, "Pending", &pending, &[], &[]));
        assert_eq!(
            get(&cs, "Initialized").message.as_deref(),
            Some("containers with incomplete status: [side]")
        );
        let ok = [running("side", true, true)];
        let app = [running("app", true, true)];
        let cs = pod_conditions(&inputs(&spec, "Running", &ok, &app, &[]));
        assert_eq!(get(&cs, "Initialized").status, "True");
        assert_eq!(get(&cs, "ContainersReady").status, "True");
        let unready_side = [running("side", true, false)];
        let cs = pod_conditions(&inputs(&spec, "Running", &unready_side, &app, &[]));
        assert_eq!(
            get(&cs, "Ready").message.as_deref(),
            Some("containers with unready status: [side]")
        );
    }

    #[test]
    fn succeeded_pod_is_completed_and_gates_are_checked() {
        let spec = PodSpec {
            init_containers: Some(vec![container("i", false)]),
            containers: vec![container("a", false)],
            readiness_gates: Some(vec![PodReadinessGate {
                condition_type: "example.com/gate".into(),
            }]),
            ..Default::default()
        };
        let cs = pod_conditions(&inputs(
            &spec,
            "Succeeded",
            &[exited("i", 0)],
            &[exited("a", 0)],
            &[],
        ));
        let init = get(&cs, "Initialized");
        assert_eq!(
            (init.status.as_str(), init.reason.as_deref()),
            ("True", Some("PodCompleted"))
        );
        assert_eq!(get(&cs, "Ready").reason.as_deref(), Some("PodCompleted"));

        let app = [running("a", true, true)];
        let cs = pod_conditions(&inputs(&spec, "Running", &[exited("i", 0)], &app, &[]));
        let ready = get(&cs, "Ready");
        assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some(
                "corresponding condition of pod readiness gate \"example.com/gate\" does not exist."
            )
        );
        assert_eq!(get(&cs, "ContainersReady").status, "True");
    }
}
