//! What the runtime knows about one pod (upstream `kubecontainer.PodStatus`).

use crate::cri::api;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

impl ContainerState {
    pub fn from_cri(state: i32) -> Self {
        match api::ContainerState::try_from(state) {
            Ok(api::ContainerState::ContainerCreated) => Self::Created,
            Ok(api::ContainerState::ContainerRunning) => Self::Running,
            Ok(api::ContainerState::ContainerExited) => Self::Exited,
            _ => Self::Unknown,
        }
    }
}

/// One container instance as the runtime reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
    pub restart_count: i32,
    pub hash: String,
    pub init: bool,
    /// What the runtime reports it applied (in-place resize compares against it).
    pub resources: Option<api::LinuxContainerResources>,
}

impl ContainerRecord {
    pub fn from_cri(status: &api::ContainerStatus) -> Self {
        let ann = &status.annotations;
        let labels = &status.labels;
        Self {
            id: status.id.clone(),
            name: status
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            state: ContainerState::from_cri(status.state),
            created_at: status.created_at,
            started_at: status.started_at,
            finished_at: status.finished_at,
            exit_code: status.exit_code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            image: status
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            image_ref: status.image_ref.clone(),
            restart_count: ann
                .get(super::labels::CONTAINER_RESTART_COUNT)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            hash: ann
                .get(super::labels::CONTAINER_HASH)
                .cloned()
                .unwrap_or_default(),
            init: labels
                .get(super::labels::CONTAINER_TYPE)
                .map(String::as_str)
                == Some(super::labels::CONTAINER_TYPE_INIT),
            resources: status.resources.as_ref().and_then(|r| r.linux.clone()),
        }
    }
}

/// Sandboxes and containers of a pod, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodRuntimeStatus {
    pub sandboxes: Vec<api::PodSandboxStatus>,
    pub containers: Vec<ContainerRecord>,
}

impl PodRuntimeStatus {
    /// Sorts newest first, the order every lookup relies on.
    pub fn normalise(mut self) -> Self {
        self.sandboxes
            .sort_by_key(|s| std::cmp::Reverse(s.created_at));
        self.containers
            .sort_by_key(|c| std::cmp::Reverse(c.created_at));
        self
    }

    /// The latest instance of a container by name.
    pub fn find(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The instance before the latest (for `lastState`).
    pub fn previous(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.iter().filter(|c| c.name == name).nth(1)
    }

    pub fn running(&self) -> impl Iterator<Item = &ContainerRecord> {
        self.containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
    }

    /// IPs of the newest ready sandbox.
    pub fn pod_ips(&self) -> Vec<String> {
        let Some(sb) = self.sandboxes.first() else {
            return Vec::new();
        };
        let Some(net) = sb.network.as_ref() else {
            return Vec::new();
        };
        std::iter::once(net.ip.clone())
            .chain(net.additional_ips.iter().map(|ip| ip.ip.clone()))
            .filter(|ip| !ip.is_empty())
            .collect()
    }
}
