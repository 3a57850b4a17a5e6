//! Pod sources (upstream `pkg/kubelet/config`): the apiserver and static pod files.

pub mod apiserver;
pub mod sources;
