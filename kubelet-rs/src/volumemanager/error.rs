//! Volume errors, shaped like upstream's `FailedMount` events.

use super::source::SourceError;

/// One volume that could not be set up. `Display` is the `FailedMount` event message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
pub struct VolumeError {
    pub volume: String,
    pub message: String,
}

impl VolumeError {
    /// Event reason upstream records for setup failures.
    pub const REASON: &'static str = "FailedMount";

    pub fn new(volume: &str, message: impl Into<String>) -> Self {
        VolumeError {
            volume: volume.to_string(),
            message: message.into(),
        }
    }
}

/// All volumes of a pod that failed; the pod stays `ContainerCreating`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} volume(s) failed to mount: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct VolumeErrors(pub Vec<VolumeError>);

/// Why one volume could not be set up; `Display` is the text upstream puts after the
/// volume name in `FailedMount`. All are retried on the pod's next sync (an object may
/// appear, a disk may drain); the `Unsupported*` ones will fail the same way again.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: &'static str, name: String },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("configmap references non-existent config key: {0}")]
    MissingConfigMapKey(String),
    #[error("references non-existent secret key: {0}")]
    MissingSecretKey(String),
    #[error("pod has no uid")]
    NoPodUid,
    /// The volume's spec names a kind but lacks its source (`missing emptyDir`).
    #[error("missing {0}")]
    MissingSource(&'static str),
    #[error("volume type is not supported by kubelet-rs")]
    UnsupportedVolumeType,
    #[error("emptyDir medium {0:?} is not supported by kubelet-rs")]
    UnsupportedMedium(String),
    #[error("{0} projections are not supported by kubelet-rs")]
    UnsupportedProjection(&'static str),
    #[error("token request returned no token")]
    NoToken,
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    #[error("Unable to extract field {path}: {source}")]
    ExtractField {
        path: String,
        source: Box<SetupError>,
    },
    #[error("hostPath type check failed: {path} is not a {what}")]
    HostPathType { path: String, what: &'static str },
    /// A filesystem step on `path` (`failed to create /x: ...`).
    #[error("failed to {op} {path}: {source}")]
    Fs {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("failed to write volume data in {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(std::io::Error),
    /// Several projection sources failed (Go's `utilerrors.NewAggregate`).
    #[error("{}", aggregate(.0))]
    Aggregate(Vec<SetupError>),
}

impl SetupError {
    pub(crate) fn fs(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        SetupError::Fs {
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Joins errors like Go's `utilerrors.NewAggregate`.
pub(crate) fn aggregate<E: std::fmt::Display>(errors: &[E]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_failed_mount_message() {
        let e = VolumeError::new("x", "configmap \"y\" not found");
        assert_eq!(
            e.to_string(),
            "MountVolume.SetUp failed for volume \"x\" : configmap \"y\" not found"
        );
    }
}
