//! What a probe needs to know about the pod and container it probes, and the exec hook
//! the CRI layer provides. These are the prober's only inputs from the rest of the kubelet.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Output of a command run inside a container (CRI `ExecSync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    /// stdout followed by stderr.
    pub output: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The runtime gave up after the probe timeout (upstream `ErrCommandTimedOut`).
    #[error("command timed out")]
    TimedOut,
    #[error("{0}")]
    Runtime(String),
}

/// Runs a command in a container; implemented by the CRI client (`ExecSync`).
#[async_trait::async_trait]
pub trait ContainerExec: Send + Sync {
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError>;
}

/// Network identity of a container for httpGet / tcpSocket / grpc probes.
#[derive(Clone)]
pub struct ProbeTarget {
    /// Default host of network probes (`status.podIP`).
    pub pod_ip: Option<String>,
    /// `containerPort` by port name, to resolve named probe ports.
    pub named_ports: HashMap<String, i32>,
    pub exec: Arc<dyn ContainerExec>,
}

/// Run state of one container as the runtime last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerRunState {
    Waiting,
    Running { started_at: jiff::Timestamp },
    Terminated { exit_code: i32 },
}

/// One container's status as the probe workers need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerProbeStatus {
    /// CRI container id; empty while the container does not exist.
    pub container_id: String,
    pub state: ContainerRunState,
    /// `containerStatuses[].started`: set by the kubelet from the startup probe result.
    pub started: Option<bool>,
}

/// The pod status snapshot the pod worker publishes to the prober after every sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodProbeStatus {
    /// Pod phase is Succeeded or Failed: workers exit.
    pub terminal: bool,
    /// Pod has a deletion timestamp: liveness/startup report Success and stop.
    pub deleting: bool,
    pub pod_ip: Option<String>,
    /// By container name (init and regular containers).
    pub containers: HashMap<String, ContainerProbeStatus>,
}
