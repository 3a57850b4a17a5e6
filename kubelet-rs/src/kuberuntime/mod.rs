//! The kubelet's runtime manager (upstream `pkg/kubelet/kuberuntime`): turns pod specs
//! into CRI calls.

pub mod actions;
pub mod backoff;
pub mod container;
pub mod container_kill;
pub mod container_start;
pub mod dns;
pub mod env;
pub mod expansion;
pub mod image;
pub mod labels;
pub mod manager;
pub mod resources;
pub mod runtime_status;
pub mod sandbox;
pub mod sync;
pub mod sync_result;
