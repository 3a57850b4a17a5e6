//! Volume errors, shaped like upstream's `FailedMount` events.

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
