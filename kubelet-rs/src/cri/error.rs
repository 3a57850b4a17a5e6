//! Errors of CRI calls.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("invalid CRI endpoint {endpoint:?}: {message}")]
    Endpoint { endpoint: String, message: String },
    #[error("CRI {op} failed: {status}")]
    Status {
        op: &'static str,
        status: tonic::Status,
    },
    #[error("CRI {op} timed out after {timeout:?}")]
    Timeout { op: &'static str, timeout: Duration },
    #[error("CRI {op} returned an incomplete response: {what}")]
    Incomplete {
        op: &'static str,
        what: &'static str,
    },
}

impl CriError {
    /// The runtime said the object does not exist (treated as success by deletes).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CriError::Status { status, .. } if status.code() == tonic::Code::NotFound)
    }

    /// The runtime could not be reached (e.g. containerd restarting); callers retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            CriError::Status { status, .. } => status.code() == tonic::Code::Unavailable,
            CriError::Timeout { .. } => true,
            _ => false,
        }
    }
}
