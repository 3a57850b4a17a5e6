//! `getPhase`: the pod phase from its container statuses.

use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec};

fn find<'a>(info: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    info.iter().find(|s| s.name == name)
}

fn is_restartable_init(c: &k8s_openapi::api::core::v1::Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// `podIsTerminal`: the kubelet decided the pod will not run again.
pub fn get_phase(
    spec: &PodSpec,
    init_info: &[ContainerStatus],
    info: &[ContainerStatus],
    pod_is_terminal: bool,
    static_pod: bool,
) -> &'static str {
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in spec.init_containers.iter().flatten() {
        if is_restartable_init(c) {
            continue;
        }
        let Some(s) = find(init_info, &c.name) else {
            pending_init += 1;
            continue;
        };
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match s.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
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
    if pending_init > 0 || waiting > 0 {
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
        assert_eq!(get_phase(&s, &[], &[], false, false), "Pending");
        assert_eq!(
            get_phase(&s, &[], &[running("a"), running("b")], false, false),
            "Running"
        );
        assert_eq!(get_phase(&s, &[], &[running("a")], false, false), "Pending");
        assert_eq!(
            get_phase(&s, &[], &[running("a"), waiting("b", None)], false, false),
            "Pending"
        );
        assert_eq!(
            get_phase(
                &s,
                &[],
                &[running("a"), waiting("b", Some(1))],
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
                false
            ),
            "Failed"
        );
        let onf = spec("OnFailure", &[], &["a"]);
        assert_eq!(
            get_phase(&onf, &[], &[terminated("a", 1)], false, false),
            "Running"
        );
        assert_eq!(
            get_phase(&onf, &[], &[terminated("a", 0)], false, false),
            "Succeeded"
        );
        let init = spec("Never", &["i"], &["a"]);
        assert_eq!(
            get_phase(&init, &[running("i")], &[], false, false),
            "Pending"
        );
        assert_eq!(
            get_phase(&init, &[terminated("i", 1)], &[], false, false),
            "Failed"
        );
        let init_always = spec("Always", &["i"], &["a"]);
        assert_eq!(
            get_phase(&init_always, &[waiting("i", Some(1))], &[], false, false),
            "Pending"
        );
    }
}
