//! Container probes, after upstream `pkg/kubelet/prober`.
//!
//! The [`ProbeManager`] runs one worker per (pod, container, probe type). Workers read the
//! latest container states the pod worker publishes with [`ProbeManager::update_pod_status`],
//! probe on their period, apply the success/failure thresholds and publish results through a
//! [`ResultsManager`] per probe type (liveness, readiness, startup). Side effects the kubelet
//! must act on — `Unhealthy`/`ProbeWarning` events and container restarts after a failed
//! liveness or startup probe — arrive on the [`ProberEvent`] channel.
//!
//! The prober never talks to the runtime directly: exec probes go through the
//! [`ContainerExec`] trait the CRI layer implements.

mod error;
mod events;
mod exec;
mod grpc;
mod http;
mod manager;
pub mod metrics;
mod probe;
mod results;
mod target;
mod tcp;
mod worker;

pub use error::ProbeError;
pub use events::ProberEvent;
pub use exec::MAX_EXEC_OUTPUT;
pub use http::{
    HttpGetError, HttpProbeRequest, MAX_RESPONSE_BODY, http_get, probe_http, user_agent,
};
pub use manager::ProbeManager;
pub use probe::{ProbeOutcome, ProbeType, kill_message, run_probe};
pub use results::{ProbeResult, ResultUpdate, ResultsManager};
pub use target::{
    ContainerExec, ContainerProbeStatus, ContainerRunState, ExecError, ExecOutput, PodProbeStatus,
    ProbeTarget,
};
pub use tcp::probe_tcp;
pub use worker::{ProbeSettings, ThresholdTracker};
