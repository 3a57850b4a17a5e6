//! `getPhase`: the pod phase from its container statuses.

use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec};

fn find<'a>(info: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    info.iter().find(|s| s.name == name)
}

fn is_restartable_init(c: &k8s_openapi::api::core::v1::Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// `getPhase`. `pod_is_terminal`: the kubelet decided the pod will not run again;
/// `pod_has_initialized`: a regular container has run, so restarting sidecars do not
/// send the pod back to Pending.
pub fn get_phase(
    spec: &PodSpec,
    init_info: &[ContainerStatus],
    info: &[ContainerStatus],
    pod_is_terminal: bool,
    static_pod: bool,
    pod_has_initialized: bool,
) -> &'static str {
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut pending_init = 0;
    let mut pending_sidecars = 0;
    let mut failed_init = 0;
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in spec.init_containers.iter().flatten() {
        let Some(s) = find(init_info, &c.name) else {
            if is_restartable_init(c) {
                unknown += 1;
            } else {
                pending_init += 1;
            }
            continue;
        };
        let state = s.state.clone().unwrap_or_default();
        let last_terminated = s.last_state.as_ref().and_then(|l| l.terminated.as_ref());
        if is_restartable_init(c) {
            // Sidecars count as running or waiting; a terminated one counts as neither.
            if state.running.is_some() {
                if s.started != Some(true) {
                    pending_sidecars += 1;
                }
                running += 1;
            } else if state.terminated.is_some() {
            } else if state.waiting.is_some() {
                if last_terminated.is_none() {
                    pending_sidecars += 1;
                    waiting += 1;
                }
            } else {
                pending_sidecars += 1;
                unknown += 1;
            }
            continue;
        }
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match last_terminated {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    for c in &spec.containers {
        let Some(s) = find(info, &c.name) else {
            unknown += 1;
            continue;
        };
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if s.last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .is_some()
            {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || (pending_sidecars > 0 && !pod_has_initialized) || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal && !static_pod {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if restart_policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting,
    };

    fn running(name: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
    fn terminated(name: &str, code: i32) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
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
    fn waiting(name: &str, last_exit: Option<i32>) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting::default()),
                ..Default::default()
            }),
            last_state: last_exit.map(|c| ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: c,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
    fn spec(policy: &str, inits: &[&str], containers: &[&str]) -> PodSpec {
        let mk = |n: &&str| Container {
            name: n.to_string(),
            ..Default::default()
        };
        PodSpec {
            restart_policy: Some(policy.into()),
            init_containers: Some(inits.iter().map(mk).collect()),
            containers: containers.iter().map(mk).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn phases_like_upstream() {
        let s = spec("Always", &[], &["a", "b"]);
        assert_eq!(get_phase(&s, &[], &[], false, false, false), "Pending");
        assert_eq!(
            get_phase(&s, &[], &[running("a"), running("b")], false, false, false),
            "Running"
        );
        assert_eq!(
            get_phase(&s, &[], &[running("a")], false, false, false),
            "Pending"
        );
        assert_eq!(
            get_phase(
                &s,
                &[],
                &[running("a"), waiting("b", None)],
                false,
                false,
                false
            ),
            "Pending"
        );
        assert_eq!(
            get_phase(
                &s,
                &[],
                &[running("a"), waiting("b", Some(1))],
                false,
                false,
                false
            ),
            "Running"
        );
        assert_eq!(
            get_phase(
                &s,
                &[],
                &[terminated("a", 0), terminated("b", 1)],
                false,
                false,
                false
            ),
            "Running"
        );
        assert_eq!(
            get_phase(
                &s,
                &[],
                &[terminated("a", 0), terminated("b", 1)],
                true,
                false,
                false
            ),
            "Failed"
        );
        let never = spec("Never", &[], &["a", "b"]);
        assert_eq!(
            get_phase(
                &never,
                &[],
                &[terminated("a", 0), terminated("b", 0)],
                false,
                false,
                false
            ),
            "Succeeded"
        );
        assert_eq!(
            get_phase(
                &never,
                &[],
                &[terminated("a", 0), terminated("b", 1)],
                false,
                false,
                false
            ),
            "Failed"
        );
        let onf = spec("OnFailure", &[], &["a"]);
        assert_eq!(
            get_phase(&onf, &[], &[terminated("a", 1)], false, false, false),
            "Running"
        );
        assert_eq!(
            get_phase(&onf, &[], &[terminated("a", 0)], false, false, false),
            "Succeeded"
        );
        let init = spec("Never", &["i"], &["a"]);
        assert_eq!(
            get_phase(&init, &[running("i")], &[], false, false, false),
            "Pending"
        );
        assert_eq!(
            get_phase(&init, &[terminated("i", 1)], &[], false, false, false),
            "Failed"
        );
        let init_always = spec("Always", &["i"], &["a"]);
        assert_eq!(
            get_phase(
                &init_always,
                &[waiting("i", Some(1))],
                &[],
                false,
                false,
                false
            ),
            "Pending"
        );
    }

    #[test]
    fn sidecars_count_as_running_and_gate_pending() {
        let mut s = spec("Never", &["side"], &["a"]);
        if let Some(side) = s.init_containers.as_mut().and_then(|i| i.first_mut()) {
            side.restart_policy = Some("Always".into());
        }
        let mut not_started = running("side");
        not_started.started = Some(false);
        let mut started = running("side");
        started.started = Some(true);
        assert_eq!(
            get_phase(&s, &[not_started.clone()], &[], false, false, false),
            "Pending"
        );
        // Started sidecar, app not created yet: still Pending (app unknown).
        assert_eq!(
            get_phase(&s, &[started.clone()], &[], false, false, false),
            "Pending"
        );
        assert_eq!(
            get_phase(&s, &[started.clone()], &[running("a")], false, false, true),
            "Running"
        );
        // App done, sidecar still running: Running until the sidecar is stopped.
        assert_eq!(
            get_phase(&s, &[started], &[terminated("a", 0)], false, false, true),
            "Running"
        );
        // Sidecar stopped: a terminated sidecar counts for nothing.
        assert_eq!(
            get_phase(
                &s,
                &[terminated("side", 137)],
                &[terminated("a", 0)],
                false,
                false,
                true
            ),
            "Succeeded"
        );
        // A restarting sidecar does not send an initialized pod back to Pending.
        assert_eq!(
            get_phase(&s, &[not_started], &[running("a")], false, false, true),
            "Running"
        );
    }
}
