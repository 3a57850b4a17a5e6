//! Which container a log request reads (upstream `validateContainerLogStatus`).

use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};

/// Why a container has no log to read; `Display` is upstream's 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogStatusError {
    #[error("container {container:?} in pod {pod:?} is not available")]
    NotAvailable { container: String, pod: String },
    #[error("container {container:?} in pod {pod:?} is terminated")]
    Terminated { container: String, pod: String },
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious { container: String, pod: String },
    #[error("container {container:?} in pod {pod:?} is waiting to start: {why}")]
    Waiting {
        container: String,
        pod: String,
        why: String,
    },
    #[error("container {container:?} in pod {pod:?} is waiting to start - no logs yet")]
    NoLogsYet { container: String, pod: String },
}

/// Finds `container` among the pod's container, init and ephemeral statuses.
pub fn find_status<'a>(status: &'a PodStatus, container: &str) -> Option<&'a ContainerStatus> {
    [
        status.container_statuses.as_deref(),
        status.init_container_statuses.as_deref(),
        status.ephemeral_container_statuses.as_deref(),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|s| s.name == container)
}

/// The runtime ID (without the `containerd://` scheme) whose log to read, or
/// upstream's error message.
pub fn log_container_id(
    pod: &str,
    status: &PodStatus,
    container: &str,
    previous: bool,
) -> Result<String, LogStatusError> {
    let names = || (container.to_string(), pod.to_string());
    let Some(cs) = find_status(status, container) else {
        let (container, pod) = names();
        return Err(LogStatusError::NotAvailable { container, pod });
    };
    let last_terminated = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let last_id = last_terminated
        .and_then(|t| t.container_id.as_deref())
        .filter(|id| !id.is_empty());
    let state = cs.state.clone().unwrap_or_default();
    let terminated_msg = || {
        let (container, pod) = names();
        LogStatusError::Terminated { container, pod }
    };
    let id = if previous {
        last_id.ok_or_else(|| {
            let (container, pod) = names();
            LogStatusError::NoPrevious { container, pod }
        })?
    } else if state.running.is_some() {
        cs.container_id.as_deref().unwrap_or_default()
    } else if let Some(t) = &state.terminated {
        match t.container_id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => last_id.ok_or_else(terminated_msg)?,
        }
    } else if last_terminated.is_some() {
        last_id.ok_or_else(terminated_msg)?
    } else if let Some(w) = &state.waiting {
        let reason = w.reason.as_deref().unwrap_or_default();
        let why = match reason {
            "ErrImagePull" => "image can't be pulled",
            "ImagePullBackOff" => "trying and failing to pull image",
            other => other,
        };
        let (container, pod) = names();
        return Err(LogStatusError::Waiting {
            container,
            pod,
            why: why.to_string(),
        });
    } else {
        let (container, pod) = names();
        return Err(LogStatusError::NoLogsYet { container, pod });
    };
    Ok(strip_scheme(id).to_string())
}

/// `containerd://abc` → `abc` (upstream `ParseContainerID`).
pub fn strip_scheme(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`log_container_id`] with its error as the response body text.
    fn id(
        pod: &str,
        status: &PodStatus,
        container: &str,
        previous: bool,
    ) -> Result<String, String> {
        log_container_id(pod, status, container, previous).map_err(|e| e.to_string())
    }
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    };

    fn status(cs: ContainerStatus) -> PodStatus {
        PodStatus {
            container_statuses: Some(vec![cs]),
            ..PodStatus::default()
        }
    }

    fn terminated(id: &str) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(id.into()),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }
    }

    #[test]
    fn picks_the_container_like_upstream() {
        let running = ContainerStatus {
            name: "c".into(),
            container_id: Some("containerd://run".into()),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            }),
            last_state: Some(terminated("containerd://old")),
            ..ContainerStatus::default()
        };
        let st = status(running.clone());
        assert_eq!(id("p", &st, "c", false), Ok("run".into()));
        assert_eq!(id("p", &st, "c", true), Ok("old".into()));
        assert_eq!(
            id("p", &st, "x", false),
            Err(r#"container "x" in pod "p" is not available"#.into())
        );
        let waiting = |reason: &str| {
            status(ContainerStatus {
                name: "c".into(),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.into()),
                        ..ContainerStateWaiting::default()
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            })
        };
        assert_eq!(
            id("p", &waiting("ContainerCreating"), "c", false),
            Err(r#"container "c" in pod "p" is waiting to start: ContainerCreating"#.into())
        );
        assert_eq!(
            id("p", &waiting("ErrImagePull"), "c", false),
            Err(r#"container "c" in pod "p" is waiting to start: image can't be pulled"#.into())
        );
        assert_eq!(
            id("p", &waiting("x"), "c", true),
            Err(r#"previous terminated container "c" in pod "p" not found"#.into())
        );
        let dead = status(ContainerStatus {
            name: "c".into(),
            state: Some(terminated("")),
            last_state: Some(terminated("containerd://prev")),
            ..ContainerStatus::default()
        });
        assert_eq!(id("p", &dead, "c", false), Ok("prev".into()));
        let none = status(ContainerStatus {
            name: "c".into(),
            ..ContainerStatus::default()
        });
        assert_eq!(
            id("p", &none, "c", false),
            Err(r#"container "c" in pod "p" is waiting to start - no logs yet"#.into())
        );
    }
}
