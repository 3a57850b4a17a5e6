//! Pod sources (upstream `pkg/kubelet/config`): the apiserver and static pod files.

pub mod apiserver;
pub mod file;
pub mod sources;
pub mod static_pods;
