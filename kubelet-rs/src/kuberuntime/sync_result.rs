//! What one `SyncPod` reports (upstream `pkg/kubelet/container/sync_result.go`): the
//! per-container start failures that become waiting reasons, and the pod-level error.

use std::collections::BTreeMap;

use crate::cri::CriError;
use crate::volumemanager::VolumeErrors;

pub const CRASH_LOOP_BACKOFF: &str = "CrashLoopBackOff";
pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
/// `ErrPostStartHook`: the postStart hook failed and the container was killed.
pub const POST_START_HOOK_ERROR: &str = "PostStartHookError";

/// Why a container could not be started this sync (becomes its waiting reason).
#[derive(Clone, Debug, PartialEq)]
pub struct StartFailure {
    pub reason: String,
    pub message: String,
}

/// Why a whole `SyncPod` stopped early. Every variant is retriable: the pod worker syncs
/// the pod again shortly.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Stopping containers or sandboxes the actions asked to kill.
    #[error(transparent)]
    Kill(CriError),
    #[error("Unable to attach or mount volumes: {0}")]
    Mount(VolumeErrors),
    #[error("create pod log directory: {0}")]
    LogDir(std::io::Error),
    #[error("Failed to create pod sandbox: {0}")]
    CreateSandbox(CriError),
    #[error("GeneratePodSandboxConfig for pod {pod:?} failed: {source}")]
    SandboxConfig {
        pod: String,
        source: super::hostname::HostnameError,
    },
    /// `UpdateContainerResources` refused an in-place resize.
    #[error("failed to resize container {container}: {source}")]
    Resize { container: String, source: CriError },
}

impl SyncError {
    /// The pod worker retries every sync error; kept explicit for callers that branch on it.
    pub fn is_retriable(&self) -> bool {
        true
    }
}

/// The outcome of one `SyncPod`.
#[derive(Debug, Default)]
pub struct SyncResult {
    pub failures: BTreeMap<String, StartFailure>,
    /// Containers started successfully this sync (their cached reasons are cleared).
    pub started: Vec<String>,
    pub error: Option<SyncError>,
}
