//! Node, pod and container resource usage for `/stats/summary` and the
//! `/metrics/{resource,cadvisor}` endpoints (upstream `pkg/kubelet/stats`
//! and `pkg/kubelet/metrics/collectors`).
//!
//! The node, the kubelet, the `kubepods` hierarchy and each pod are read
//! from their cgroups ([`cgroup`], v1 and v2); containers come from the CRI
//! (`ListContainerStats`, as upstream's CRI stats provider), pod networks
//! from `ListPodSandboxStats`; filesystems from `statvfs` and `du`-style
//! walks ([`host`]). `usageNanoCores` is the rate since the previous sample
//! of the same cgroup or container ([`cpu_rate`]).

pub mod cadvisor_metrics;
pub mod cgroup;
pub mod cpu_rate;
pub mod host;
pub mod prom;
pub mod provider;
pub mod resource_metrics;
pub mod types;

pub use provider::{
    Collected, ContainerMeta, ProviderConfig, StatsProvider, StatsRuntime, SummaryProvider,
};
pub use types::Summary;

/// Why stats could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cgroup {cgroup}: unparsable {what}")]
    Parse { cgroup: String, what: String },
    #[error("container runtime: {0}")]
    Runtime(#[from] crate::cri::CriError),
}
