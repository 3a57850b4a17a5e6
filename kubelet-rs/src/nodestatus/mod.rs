//! Node registration and status (upstream `kubelet_node_status.go` + `nodestatus`).

pub mod machine;
pub mod netaddr;
pub mod register;
pub mod setters;
pub mod status_events;
pub mod updater;

/// The version this kubelet reports (`nodeInfo.kubeletVersion`), as decided for Ferrokube.
pub const KUBELET_VERSION: &str = "v1.36.0";
