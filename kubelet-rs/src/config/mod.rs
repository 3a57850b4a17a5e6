//! Pod sources (upstream `pkg/kubelet/config`): the apiserver and static pod files. Each
//! reports [`crate::types::PodUpdate`]s; it knows nothing of who consumes them.

pub mod apiserver;
pub mod file;
pub mod static_pods;
