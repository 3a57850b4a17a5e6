//! `computePodActions`: what one sync must do to move a pod toward its spec.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::labels::hash_container;
use super::runtime_status::{ContainerRecord, ContainerState, PodRuntimeStatus};
use crate::cri::api;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodActions {
    pub kill_pod: bool,
    pub create_sandbox: bool,
    pub sandbox_id: String,
    pub attempt: u32,
    pub next_init_container_to_start: Option<usize>,
    pub containers_to_start: Vec<usize>,
    /// container id → (name, message)
    pub containers_to_kill: BTreeMap<String, (String, String)>,
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
fn pod_sandbox_changed(pod: &Pod, status: &PodRuntimeStatus) -> (bool, u32, String) {
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

/// `findNextInitContainerToRun`: (last failed status, next index, done).
pub fn find_next_init_container_to_run<'a>(
    pod: &Pod,
    status: &'a PodRuntimeStatus,
) -> (Option<&'a ContainerRecord>, Option<usize>, bool) {
    let spec = pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.unwrap_or_default();
    if inits.is_empty() {
        return (None, None, true);
    }
    if spec.containers.iter().any(|c| {
        status
            .find(&c.name)
            .is_some_and(|s| s.state == ContainerState::Running)
    }) {
        return (None, None, true);
    }
    for (i, c) in inits.iter().enumerate().rev() {
        if let Some(s) = status.find(&c.name)
            && is_init_container_failed(s)
        {
            return (Some(s), Some(i), false);
        }
    }
    for (i, c) in inits.iter().enumerate().rev() {
        let Some(s) = status.find(&c.name) else {
            continue;
        };
        match s.state {
            ContainerState::Running => return (None, None, false),
            ContainerState::Exited if i == inits.len() - 1 => return (None, None, true),
            ContainerState::Exited => return (None, Some(i + 1), false),
            _ => {}
        }
    }
    (None, Some(0), false)
}

pub fn compute_pod_actions(pod: &Pod, status: &PodRuntimeStatus) -> PodActions {
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
        if to_start.is_empty() && find_next_init_container_to_run(pod, status).2 {
            changes.create_sandbox = false;
            return changes;
        }
        if spec.init_containers.as_ref().is_some_and(|i| !i.is_empty()) {
            changes.next_init_container_to_start = Some(0);
            return changes;
        }
        changes.containers_to_start = to_start;
        return changes;
    }

    let (last_init, next_init, init_done) = find_next_init_container_to_run(pod, status);
    if !init_done {
        if let Some(next) = next_init {
            let failed = last_init.is_some_and(is_init_container_failed);
            if failed && !should_restart_on_failure(pod) {
                changes.kill_pod = true;
            } else {
                changes.next_init_container_to_start = Some(next);
            }
        }
        return changes;
    }

    let mut keep = 0;
    for (idx, c) in spec.containers.iter().enumerate() {
        let cs = status.find(&c.name);
        if cs.is_none_or(|s| s.state != ContainerState::Running) {
            if should_container_be_restarted(c, pod, status) {
                changes.containers_to_start.push(idx);
            }
            continue;
        }
        let Some(cs) = cs else { continue };
        if !cs.hash.is_empty() && cs.hash != hash_container(c) {
            changes.containers_to_start.push(idx);
            changes.containers_to_kill.insert(
                cs.id.clone(),
                (
                    c.name.clone(),
                    format!("Container {} definition changed, will be restarted", c.name),
                ),
            );
            continue;
        }
        keep += 1;
    }
    if keep == 0 && changes.containers_to_start.is_empty() {
        changes.kill_pod = true;
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

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
        }
    }

    #[test]
    fn decisions() {
        use ContainerState::*;
        let p = pod("Always", &[], &["a", "b"]);
        // No sandbox: create one and start everything.
        let a = compute_pod_actions(&p, &PodRuntimeStatus::default());
        assert!(a.create_sandbox && a.kill_pod);
        assert_eq!(a.containers_to_start, vec![0, 1]);

        // Ready sandbox, a running, b exited: restart b (Always).
        let st = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "a", Running, 0, 1), rec(&p, "b", Exited, 1, 1)],
        };
        let a = compute_pod_actions(&p, &st);
        assert!(!a.create_sandbox && !a.kill_pod);
        assert_eq!(a.containers_to_start, vec![1]);

        // OnFailure: succeeded container stays down, failed restarts.
        let p2 = pod("OnFailure", &[], &["a", "b"]);
        let st2 = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p2, "a", Exited, 0, 1), rec(&p2, "b", Exited, 2, 1)],
        };
        assert_eq!(compute_pod_actions(&p2, &st2).containers_to_start, vec![1]);

        // Never, all exited: nothing to start, kill the pod (sandbox).
        let p3 = pod("Never", &[], &["a"]);
        let st3 = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p3, "a", Exited, 1, 1)],
        };
        let a = compute_pod_actions(&p3, &st3);
        assert!(a.kill_pod && a.containers_to_start.is_empty());

        // Never, sandbox died after containers ran: no new sandbox.
        let st3b = PodRuntimeStatus {
            sandboxes: vec![sandbox(false)],
            containers: vec![rec(&p3, "a", Exited, 0, 1)],
        };
        let a = compute_pod_actions(&p3, &st3b);
        assert!(!a.create_sandbox && a.kill_pod);

        // Sandbox not ready under Always: new sandbox with attempt+1.
        let st4 = PodRuntimeStatus {
            sandboxes: vec![sandbox(false)],
            containers: vec![],
        };
        let a = compute_pod_actions(&p, &st4);
        assert!(a.create_sandbox);
        assert_eq!(a.attempt, 1);

        // Spec change of a running container: kill and restart it.
        let mut changed = rec(&p, "a", Running, 0, 1);
        changed.hash = "deadbeef".into();
        let st5 = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![changed, rec(&p, "b", Running, 0, 1)],
        };
        let a = compute_pod_actions(&p, &st5);
        assert_eq!(a.containers_to_start, vec![0]);
        assert!(a.containers_to_kill.contains_key("a-1"));
    }

    #[test]
    fn init_containers_run_in_order() {
        use ContainerState::*;
        let p = pod("Always", &["i1", "i2"], &["a"]);
        let fresh = compute_pod_actions(&p, &PodRuntimeStatus::default());
        assert_eq!(fresh.next_init_container_to_start, Some(0));
        assert!(fresh.containers_to_start.is_empty());

        let st = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "i1", Exited, 0, 1)],
        };
        assert_eq!(
            compute_pod_actions(&p, &st).next_init_container_to_start,
            Some(1)
        );

        let running = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "i1", Running, 0, 1)],
        };
        let a = compute_pod_actions(&p, &running);
        assert_eq!(a.next_init_container_to_start, None);
        assert!(a.containers_to_start.is_empty());

        let done = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "i2", Exited, 0, 2), rec(&p, "i1", Exited, 0, 1)],
        };
        assert_eq!(compute_pod_actions(&p, &done).containers_to_start, vec![0]);

        // Failed init under Never kills the pod; under Always retries it.
        let failed = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&p, "i1", Exited, 1, 1)],
        };
        assert_eq!(
            compute_pod_actions(&p, &failed).next_init_container_to_start,
            Some(0)
        );
        let pn = pod("Never", &["i1", "i2"], &["a"]);
        let failed_n = PodRuntimeStatus {
            sandboxes: vec![sandbox(true)],
            containers: vec![rec(&pn, "i1", Exited, 1, 1)],
        };
        assert!(compute_pod_actions(&pn, &failed_n).kill_pod);
    }
}
