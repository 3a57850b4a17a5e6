//! Annotations the pod sources stamp on pods (upstream `kubetypes`).

/// Which source a pod came from: `api`, `file`, `http`.
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// Set on mirror pods of static pods.
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
pub const API_SOURCE: &str = "api";
pub const FILE_SOURCE: &str = "file";
