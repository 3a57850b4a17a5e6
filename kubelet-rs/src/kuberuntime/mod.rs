//! The kubelet's runtime manager (upstream `pkg/kubelet/kuberuntime`): turns pod specs
//! into CRI calls. [`manager::RuntimeManager`] is split by concern like upstream's files:
//! `sync` (SyncPod, over the pure `actions::compute_pod_actions`), `image` (pulls),
//! `sandbox`, `container_start` / `container_kill`; the `generate*` config builders
//! (`sandbox`, `container`, `env`, `dns`, `resources`, `labels`) are pure.

pub mod actions;
pub mod backoff;
pub mod container;
pub mod container_kill;
pub mod container_start;
pub mod dns;
pub mod env;
pub mod etc_hosts;
pub use crate::expansion;
pub mod hostname;
pub mod image;
pub mod labels;
pub mod manager;
pub mod mounts;
pub mod resize;
pub mod resources;
pub mod runtime_status;
pub mod sandbox;
pub mod sync;
pub mod sync_result;
pub mod termination_message;
