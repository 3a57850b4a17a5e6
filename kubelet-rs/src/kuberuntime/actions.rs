//! `computePodActions`: what one sync must do to move a pod toward its spec. Init
//! containers and sidecars (restartable init containers) follow upstream's
//! `computeInitContainerActions`; ephemeral containers are started once and never
//! restarted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::labels::hash_container;
use super::resize::{ResizeAction, container_resize_action};
use super::runtime_status::{ContainerRecord, ContainerState, PodRuntimeStatus};
use crate::cri::api;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodActions {
    pub kill_pod: bool,
    pub create_sandbox: bool,
    pub sandbox_id: String,
    pub attempt: u32,
    /// Indexes into `spec.initContainers`, in spec order.
    pub init_containers_to_start: Vec<usize>,
    pub containers_to_start: Vec<usize>,
    /// Indexes into `spec.ephemeralContainers`.
    pub ephemeral_containers_to_start: Vec<usize>,
    /// container id → (name, message)
    pub containers_to_kill: BTreeMap<String, (String, String)>,
    /// Running containers whose resources change in place (in-place resize).
    pub containers_to_update: Vec<ResizeAction>,
}

/// The startup probe's verdict on a running container (upstream `startupManager.Get`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartupVerdict {
    /// No result yet (or Unknown): wait.
    Pending,
    Success,
    Failure,
}

/// Startup probe results by container id, for gating sidecars.
pub trait StartupResults: Send + Sync {
    fn startup(&self, container_id: &str) -> StartupVerdict;
}

/// What the decisions need besides the pod and its runtime state.
#[derive(Clone, Copy)]
pub struct ActionContext<'a> {
    pub startup: &'a dyn StartupResults,
    /// `--cpu-cfs-quota`: CPU limits are enforced (and resized) as CFS quota.
    pub cpu_cfs_quota: bool,
}

/// No prober: every startup probe counts as not yet run.
pub struct NoProbes;

impl StartupResults for NoProbes {
    fn startup(&self, _container_id: &str) -> StartupVerdict {
        StartupVerdict::Pending
    }
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn should_restart_on_failure(pod: &Pod) -> bool {
    restart_policy(pod) != "Never"
}

/// `IsRestartableInitContainer`: an init container with `restartPolicy: Always` (a sidecar).
pub fn is_restartable_init(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// `ShouldContainerBeRestarted`.
pub fn should_container_be_restarted(
    container: &Container,
    pod: &Pod,
    status: &PodRuntimeStatus,
) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(s) = status.find(&container.name) else {
        return true;
    };
    match s.state {
        ContainerState::Running => false,
        ContainerState::Unknown | ContainerState::Created => true,
        ContainerState::Exited => match restart_policy(pod) {
            "Never" => false,
            "OnFailure" => s.exit_code != 0,
            _ => true,
        },
    }
}

/// Whether a new sandbox is needed, and its attempt number (`podSandboxChanged`).
pub fn pod_sandbox_changed(pod: &Pod, status: &PodRuntimeStatus) -> (bool, u32, String) {
    let Some(latest) = status.sandboxes.first() else {
        return (true, 0, String::new());
    };
    let attempt = latest.metadata.as_ref().map_or(0, |m| m.attempt);
    let ready = status
        .sandboxes
        .iter()
        .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
        .count();
    if ready > 1 || latest.state != api::PodSandboxState::SandboxReady as i32 {
        return (true, attempt + 1, latest.id.clone());
    }
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let sandbox_host_net = latest
        .linux
        .as_ref()
        .and_then(|l| l.namespaces.as_ref())
        .and_then(|n| n.options.as_ref())
        .is_some_and(|o| o.network == api::NamespaceMode::Node as i32);
    if latest.linux.is_some() && host_network != sandbox_host_net {
        return (true, attempt + 1, latest.id.clone());
    }
    if !host_network && status.pod_ips().is_empty() {
        return (true, attempt + 1, latest.id.clone());
    }
    (false, attempt, latest.id.clone())
}

fn container_succeeded(c: &Container, status: &PodRuntimeStatus) -> bool {
    status
        .find(&c.name)
        .is_some_and(|s| s.state == ContainerState::Exited && s.exit_code == 0)
}

fn is_init_container_failed(s: &ContainerRecord) -> bool {
    match s.state {
        ContainerState::Exited => s.exit_code != 0,
        ContainerState::Unknown => true,
        _ => false,
    }
}

/// `hasAnyRegularContainerCreated`: a regular container exists, so initialization ran.
fn has_any_regular_container_created(pod: &Pod, status: &PodRuntimeStatus) -> bool {
    pod.spec.iter().flat_map(|s| &s.containers).any(|c| {
        status.find(&c.name).is_some_and(|s| {
            matches!(
                s.state,
                ContainerState::Created | ContainerState::Running | ContainerState::Exited
            )
        })
    })
}

fn kill_entry(changes: &mut PodActions, s: &ContainerRecord, message: String) {
    changes
        .containers_to_kill
        .insert(s.id.clone(), (s.name.clone(), message));
}

fn unknown_state_message(prefix: &str) -> String {
    format!("{prefix} is in \"unknown\" state, try killing it before restart")
}

/// `computeInitContainerActions`: fills the init containers to start (and sidecars to
/// restart) and returns whether the pod has been initialized.
///
/// Init containers are walked from the last one back, because completed ones may have
/// been removed from the runtime: the latest with a status tells how far the pod got.
pub fn compute_init_container_actions(
    pod: &Pod,
    status: &PodRuntimeStatus,
    ctx: ActionContext<'_>,
    changes: &mut PodActions,
) -> bool {
    let spec = pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.unwrap_or_default();
    if inits.is_empty() {
        return true;
    }
    // A created or running regular container means initialization finished before.
    let mut pod_has_initialized = spec.containers.iter().any(|c| {
        status
            .find(&c.name)
            .is_some_and(|s| matches!(s.state, ContainerState::Created | ContainerState::Running))
    });
    let mut previously_initialized = pod_has_initialized;
    let restart_on_failure = should_restart_on_failure(pod);
    let last = inits.len() - 1;
    let mut to_start: Vec<usize> = Vec::new();

    for (i, c) in inits.iter().enumerate().rev() {
        let restartable = is_restartable_init(c);
        let Some(s) = status.find(&c.name) else {
            // Its record is gone: a sidecar of an initialized pod is started again.
            if previously_initialized && restartable {
                to_start.push(i);
            }
            continue;
        };
        if previously_initialized && !restartable {
            // After initialization only sidecars are kept running.
            continue;
        }
        match s.state {
            // Created but never started: start it again rather than leave it stuck.
            ContainerState::Created => to_start.push(i),
            ContainerState::Running if restartable => {
                let startup_ok = match c.startup_probe {
                    None => true,
                    Some(_) => match ctx.startup.startup(&s.id) {
                        StartupVerdict::Success => true,
                        StartupVerdict::Pending => false,
                        StartupVerdict::Failure => {
                            kill_entry(
                                changes,
                                s,
                                format!("Init container {} failed startup probe", c.name),
                            );
                            to_start.push(i);
                            false
                        }
                    },
                };
                if startup_ok {
                    if i == last {
                        pod_has_initialized = true;
                    } else if !previously_initialized {
                        // Started for the first time: the next init container may go.
                        to_start.push(i + 1);
                    }
                    if !s.hash.is_empty() && s.hash != hash_container(c) {
                        kill_entry(
                            changes,
                            s,
                            format!("Init container {} definition changed", c.name),
                        );
                        to_start.push(i);
                    } else if let Some(update) =
                        container_resize_action(pod, c, s, ctx.cpu_cfs_quota)
                    {
                        apply_resize(changes, &mut to_start, i, s, update);
                    }
                }
            }
            // A regular init container still running: wait for it.
            ContainerState::Running => {}
            ContainerState::Exited if restartable => to_start.push(i),
            ContainerState::Exited => {
                if is_init_container_failed(s) {
                    if !restart_on_failure {
                        changes.kill_pod = true;
                        changes.init_containers_to_start.clear();
                        return false;
                    }
                    to_start.push(i);
                } else if i == last {
                    pod_has_initialized = true;
                } else {
                    to_start.push(i + 1);
                }
            }
            ContainerState::Unknown => {
                if !restartable && !restart_on_failure {
                    changes.kill_pod = true;
                    changes.init_containers_to_start.clear();
                    return false;
                }
                kill_entry(changes, s, unknown_state_message("Init container"));
                to_start.push(i);
            }
        }
        previously_initialized = true;
    }
    if !previously_initialized {
        // Nothing has run yet: start with the first.
        to_start.push(0);
    }
    to_start.reverse();
    changes.init_containers_to_start = to_start;
    pod_has_initialized
}

/// Records the resize decision for a running container: an in-place update, or a
/// restart when its resize policy asks for one.
fn apply_resize(
    changes: &mut PodActions,
    to_start: &mut Vec<usize>,
    idx: usize,
    s: &ContainerRecord,
    action: ResizeAction,
) {
    if action.restart {
        kill_entry(
            changes,
            s,
            format!("Container {} resize requires restart", s.name),
        );
        to_start.push(idx);
    } else {
        changes.containers_to_update.push(action);
    }
}

pub fn compute_pod_actions(
    pod: &Pod,
    status: &PodRuntimeStatus,
    ctx: ActionContext<'_>,
) -> PodActions {
    let spec = pod.spec.clone().unwrap_or_default();
    let (create_sandbox, attempt, sandbox_id) = pod_sandbox_changed(pod, status);
    let mut changes = PodActions {
        kill_pod: create_sandbox,
        create_sandbox,
        sandbox_id,
        attempt,
        ..Default::default()
    };

    if create_sandbox {
        if !should_restart_on_failure(pod) && attempt != 0 && !status.containers.is_empty() {
            // The pod already ran under restartPolicy Never: do not start it again.
            changes.create_sandbox = false;
            return changes;
        }
        let to_start: Vec<usize> = spec
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                !(restart_policy(pod) == "OnFailure" && container_succeeded(c, status))
            })
            .map(|(i, _)| i)
            .collect();
        if to_start.is_empty() && has_any_regular_container_created(pod, status) {
            changes.create_sandbox = false;
            return changes;
        }
        if spec.init_containers.as_ref().is_some_and(|i| !i.is_empty()) {
            changes.init_containers_to_start = vec![0];
            return changes;
        }
        changes.containers_to_start = to_start;
        return changes;
    }

    // Ephemeral containers start even before initialization completes, and only once.
    for (i, e) in spec.ephemeral_containers.iter().flatten().enumerate() {
        if status.find(&e.name).is_none() {
            changes.ephemeral_containers_to_start.push(i);
        }
    }

    let initialized = compute_init_container_actions(pod, status, ctx, &mut changes);
    if changes.kill_pod || !initialized {
        return changes;
    }

    let mut keep = 0;
    let mut to_start = Vec::new();
    for (idx, c) in spec.containers.iter().enumerate() {
        let cs = status.find(&c.name);
        let Some(cs) = cs.filter(|s| s.state == ContainerState::Running) else {
            if should_container_be_restarted(c, pod, status) {
                to_start.push(idx);
                if let Some(s) = cs.filter(|s| s.state == ContainerState::Unknown) {
                    kill_entry(&mut changes, s, unknown_state_message("Container"));
                }
            }
            continue;
        };
        if !cs.hash.is_empty() && cs.hash != hash_container(c) {
            to_start.push(idx);
            kill_entry(
                &mut changes,
                cs,
                format!("Container {} definition changed, will be restarted", c.name),
            );
            continue;
        }
        if let Some(action) = container_resize_action(pod, c, cs, ctx.cpu_cfs_quota) {
            let restart = action.restart;
            apply_resize(&mut changes, &mut to_start, idx, cs, action);
            if restart {
                continue;
            }
        }
        keep += 1;
    }
    changes.containers_to_start = to_start;
    if keep == 0 && changes.containers_to_start.is_empty() {
        changes.kill_pod = true;
        // Sidecars must not keep a finished pod alive.
        changes.init_containers_to_start.clear();
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, Probe};

    fn ctx() -> ActionContext<'static> {
        ActionContext {
            startup: &NoProbes,
            cpu_cfs_quota: true,
        }
    }

    struct Startup(StartupVerdict);
    impl StartupResults for Startup {
        fn startup(&self, _id: &str) -> StartupVerdict {
            self.0
        }
    }

    fn pod(policy: &str, inits: &[&str], containers: &[&str]) -> Pod {
        let mk = |n: &&str| Container {
            name: n.to_string(),
            image: Some("img".into()),
            ..Default::default()
        };
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("p".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                init_containers: (!inits.is_empty()).then(|| inits.iter().map(mk).collect()),
                containers: containers.iter().map(mk).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sandbox(ready: bool) -> api::PodSandboxStatus {
        api::PodSandboxStatus {
            id: "sb".into(),
            metadata: Some(api::PodSandboxMetadata {
                attempt: 0,
                ..Default::default()
            }),
            state: if ready {
                api::PodSandboxState::SandboxReady
            } else {
                api::PodSandboxState::SandboxNotready
            } as i32,
            network: Some(api::PodSandboxNetworkStatus {
                ip: "10.0.0.2".into(),
                additional_ips: vec![],
            }),
            ..Default::default()
        }
    }

    fn rec(
        pod: &Pod,
        name: &str,
        state: ContainerState,
        exit: i32,
        created: i64,
    ) -> ContainerRecord {
        let spec = pod.spec.clone().unwrap_or_default();
        let c = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_default();
        ContainerRecord {
            id: format!("{name}-{created}"),
            name: name.into(),
            state,
            created_at: created,
            started_at: created,
            finished_at: created,
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            image: "img".into(),
            image_ref: "sha256:1".into(),
            restart_count: 0,
            hash: hash_container(&c),
            init: false,
            resources: None,
        }
    }

    #[test]
    fn decisions() {
        use ContainerState::*;
        let p = pod("Always", &[], &["a", "b"]);
        // No sandbox: create one and start everything.
        let a = compute_pod_actions(&p, &PodRuntimeStatus::default(), ctx());
        assert!(a.create_sandbox && a.kill_pod);
        assert_eq!(a.containers_to_start, vec![0, 1]);

        // Ready sandbox, a running, b exited: restart b (Always).
        let st = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "a", Running, 0, 1), rec(&p, "b", Exited, 1, 1)],
        };
        let a = compute_pod_actions(&p, &st, ctx());
        assert!(!a.create_sandbox && !a.kill_pod);
        assert_eq!(a.containers_to_start, vec![1]);

        // OnFailure: succeeded container stays down, failed restarts.
        let p2 = pod("OnFailure", &[], &["a", "b"]);
        let st2 = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p2, "a", Exited, 0, 1), rec(&p2, "b", Exited, 2, 1)],
        };
        assert_eq!(
            compute_pod_actions(&p2, &st2, ctx()).containers_to_start,
            vec![1]
        );

        // Never, all exited: nothing to start, kill the pod (sandbox).
        let p3 = pod("Never", &[], &["a"]);
        let st3 = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p3, "a", Exited, 1, 1)],
        };
        let a = compute_pod_actions(&p3, &st3, ctx());
        assert!(a.kill_pod && a.containers_to_start.is_empty());

        // Never, sandbox died after containers ran: no new sandbox.
        let st3b = PodRuntimeStatus {
            sandboxes: vec![sandbox(false)],
            containers: vec![rec(&p3, "a", Exited, 0, 1)],
        };
        let a = compute_pod_actions(&p3, &st3b, ctx());
        assert!(!a.create_sandbox && a.kill_pod);

        // Sandbox not ready under Always: new sandbox with attempt+1.
        let st4 = PodRuntimeStatus {
            sandboxes: vec![sandbox(false)],
            containers: vec![],
        };
        let a = compute_pod_actions(&p, &st4, ctx());
        assert!(a.create_sandbox);
        assert_eq!(a.attempt, 1);

        // Spec change of a running container: kill and restart it.
        let mut changed = rec(&p, "a", Running, 0, 1);
        changed.hash = "deadbeef".into();
        let st5 = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![changed, rec(&p, "b", Running, 0, 1)],
        };
        let a = compute_pod_actions(&p, &st5, ctx());
        assert_eq!(a.containers_to_start, vec![0]);
        assert!(a.containers_to_kill.contains_key("a-1"));
    }

    #[test]
    fn init_containers_run_in_order() {
        use ContainerState::*;
        let p = pod("Always", &["i1", "i2"], &["a"]);
        let fresh = compute_pod_actions(&p, &PodRuntimeStatus::default(), ctx());
        assert_eq!(fresh.init_containers_to_start, vec![0]);
        assert!(fresh.containers_to_start.is_empty());

        let st = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "i1", Exited, 0, 1)],
        };
        assert_eq!(
            compute_pod_actions(&p, &st, ctx()).init_containers_to_start,
            vec![1]
        );

        let running = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "i1", Running, 0, 1)],
        };
        let a = compute_pod_actions(&p, &running, ctx());
        assert!(a.init_containers_to_start.is_empty());
        assert!(a.containers_to_start.is_empty());

        let done = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "i2", Exited, 0, 2), rec(&p, "i1", Exited, 0, 1)],
        };
        assert_eq!(
            compute_pod_actions(&p, &done, ctx()).containers_to_start,
            vec![0]
        );

        // Failed init under Never kills the pod; under Always retries it.
        let failed = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "i1", Exited, 1, 1)],
        };
        assert_eq!(
            compute_pod_actions(&p, &failed, ctx()).init_containers_to_start,
            vec![0]
        );
        let pn = pod("Never", &["i1", "i2"], &["a"]);
        let failed_n = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&pn, "i1", Exited, 1, 1)],
        };
        assert!(compute_pod_actions(&pn, &failed_n, ctx()).kill_pod);
    }

    fn with_sidecar(policy: &str, startup_probe: bool) -> Pod {
        let mut p = pod(policy, &["i1", "side", "i3"], &["a"]);
        if let Some(spec) = p.spec.as_mut()
            && let Some(side) = spec.init_containers.as_mut().and_then(|i| i.get_mut(1))
        {
            side.restart_policy = Some("Always".into());
            side.startup_probe = startup_probe.then(Probe::default);
        }
        p
    }

    #[test]
    fn sidecar_started_lets_the_next_init_container_run() {
        use ContainerState::*;
        let p = with_sidecar("Never", false);
        let st = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "side", Running, 0, 2), rec(&p, "i1", Exited, 0, 1)],
        };
        let a = compute_pod_actions(&p, &st, ctx());
        assert_eq!(a.init_containers_to_start, vec![2]);
        assert!(a.containers_to_start.is_empty() && !a.kill_pod);

        // All init containers done, sidecar running: the app container starts.
        let done = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![
                rec(&p, "i3", Exited, 0, 3),
                rec(&p, "side", Running, 0, 2),
                rec(&p, "i1", Exited, 0, 1),
            ],
        };
        let a = compute_pod_actions(&p, &done, ctx());
        assert!(a.init_containers_to_start.is_empty());
        assert_eq!(a.containers_to_start, vec![0]);

        // App running, sidecar exited: only the sidecar restarts (even under Never).
        let side_died = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![
                rec(&p, "a", Running, 0, 4),
                rec(&p, "i3", Exited, 0, 3),
                rec(&p, "side", Exited, 1, 2),
                rec(&p, "i1", Exited, 0, 1),
            ],
        };
        let a = compute_pod_actions(&p, &side_died, ctx());
        assert_eq!(a.init_containers_to_start, vec![1]);
        assert!(a.containers_to_start.is_empty() && !a.kill_pod);

        // App finished under Never: the pod is killed and the sidecar not restarted.
        let app_done = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![
                rec(&p, "a", Exited, 0, 4),
                rec(&p, "i3", Exited, 0, 3),
                rec(&p, "side", Running, 0, 2),
                rec(&p, "i1", Exited, 0, 1),
            ],
        };
        let a = compute_pod_actions(&p, &app_done, ctx());
        assert!(a.kill_pod);
        assert!(a.init_containers_to_start.is_empty());
    }

    #[test]
    fn sidecar_startup_probe_gates_the_next_init_container() {
        use ContainerState::*;
        let p = with_sidecar("Always", true);
        let st = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "side", Running, 0, 2), rec(&p, "i1", Exited, 0, 1)],
        };
        let pending = ActionContext {
            startup: &Startup(StartupVerdict::Pending),
            cpu_cfs_quota: true,
        };
        assert!(
            compute_pod_actions(&p, &st, pending)
                .init_containers_to_start
                .is_empty()
        );
        let ok = ActionContext {
            startup: &Startup(StartupVerdict::Success),
            cpu_cfs_quota: true,
        };
        assert_eq!(
            compute_pod_actions(&p, &st, ok).init_containers_to_start,
            vec![2]
        );
        let failed = ActionContext {
            startup: &Startup(StartupVerdict::Failure),
            cpu_cfs_quota: true,
        };
        let a = compute_pod_actions(&p, &st, failed);
        assert_eq!(a.init_containers_to_start, vec![1]);
        assert_eq!(
            a.containers_to_kill.get("side-2").map(|(_, m)| m.as_str()),
            Some("Init container side failed startup probe")
        );
    }

    #[test]
    fn ephemeral_containers_start_once() {
        use ContainerState::*;
        use k8s_openapi::api::core::v1::EphemeralContainer;
        let mut p = pod("Always", &[], &["a"]);
        if let Some(spec) = p.spec.as_mut() {
            spec.ephemeral_containers = Some(vec![
                EphemeralContainer {
                    name: "debugger".into(),
                    ..Default::default()
                },
                EphemeralContainer {
                    name: "done".into(),
                    ..Default::default()
                },
            ]);
        }
        let st = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "a", Running, 0, 1), rec(&p, "done", Exited, 0, 1)],
        };
        let a = compute_pod_actions(&p, &st, ctx());
        assert_eq!(a.ephemeral_containers_to_start, vec![0]);
        assert!(a.containers_to_start.is_empty() && !a.kill_pod);
    }

    #[test]
    fn resize_updates_in_place_or_restarts_by_policy() {
        use crate::cri::api::LinuxContainerResources;
        use ContainerState::*;
        use k8s_openapi::api::core::v1::{ContainerResizePolicy, ResourceRequirements};
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let resources = |cpu: &str, mem: &str| {
            let list = std::collections::BTreeMap::from([
                ("cpu".to_string(), Quantity(cpu.into())),
                ("memory".to_string(), Quantity(mem.into())),
            ]);
            Some(ResourceRequirements {
                requests: Some(list.clone()),
                limits: Some(list),
                claims: None,
            })
        };
        let mut p = pod("Always", &[], &["a"]);
        if let Some(c) = p.spec.as_mut().map(|s| &mut s.containers[0]) {
            c.resources = resources("25m", "25Mi");
        }
        let applied = LinuxContainerResources {
            cpu_shares: 20,
            cpu_quota: 2000,
            cpu_period: 100_000,
            memory_limit_in_bytes: 20 << 20,
            ..Default::default()
        };
        let mut running = rec(&p, "a", Running, 0, 1);
        running.resources = Some(applied.clone());
        let st = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![running.clone()],
        };
        let a = compute_pod_actions(&p, &st, ctx());
        assert!(a.containers_to_start.is_empty() && !a.kill_pod);
        let update = &a.containers_to_update[0];
        assert!(!update.restart);
        assert_eq!(update.resources.cpu_shares, 25);
        assert_eq!(update.resources.cpu_quota, 2500);
        assert_eq!(update.resources.memory_limit_in_bytes, 25 << 20);

        // Memory with RestartContainer: kill and start again.
        if let Some(c) = p.spec.as_mut().map(|s| &mut s.containers[0]) {
            c.resize_policy = Some(vec![ContainerResizePolicy {
                resource_name: "memory".into(),
                restart_policy: "RestartContainer".into(),
            }]);
        }
        let mut restarting = rec(&p, "a", Running, 0, 1);
        restarting.resources = Some(applied.clone());
        let st = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![restarting.clone()],
        };
        let a = compute_pod_actions(&p, &st, ctx());
        assert_eq!(a.containers_to_start, vec![0]);
        assert_eq!(
            a.containers_to_kill.get("a-1").map(|(_, m)| m.as_str()),
            Some("Container a resize requires restart")
        );

        // Applied already: nothing to do.
        let mut same = restarting;
        same.resources = Some(LinuxContainerResources {
            cpu_shares: 25,
            cpu_quota: 2500,
            memory_limit_in_bytes: 25 << 20,
            ..applied
        });
        let st = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![same],
        };
        let a = compute_pod_actions(&p, &st, ctx());
        assert!(a.containers_to_update.is_empty() && a.containers_to_kill.is_empty());
    }
}
