//! What the prober asks of the kubelet (upstream's prober → kubelet channels: events
//! recorded on the container, containers killed by a failed liveness/startup probe).

use super::probe::ProbeType;

/// Something the kubelet must do because of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProberEvent {
    /// Record an event on the container (`Unhealthy`, `ProbeWarning`; type `Warning`).
    ContainerEvent {
        pod_uid: String,
        container_name: String,
        event_type: &'static str,
        reason: &'static str,
        message: String,
    },
    /// A liveness or startup probe failed past its threshold: kill the container with a
    /// `Killing` event carrying `message`, using the probe's grace period if set.
    RestartContainer {
        pod_uid: String,
        container_name: String,
        container_id: String,
        probe_type: ProbeType,
        message: String,
        termination_grace_period_seconds: Option<i64>,
    },
}
