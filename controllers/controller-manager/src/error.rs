//! The crate's one error type.

/// Errors surfaced by the controller manager and its controllers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--controllers` named something upstream does not know.
    #[error("{0}")]
    UnknownControllers(String),
    #[error("kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// An object is malformed in a way the controller cannot act on.
    #[error("invalid object {object}: {reason}")]
    InvalidObject { object: String, reason: String },
    #[error("serializing patch: {0}")]
    Serialize(#[from] serde_json::Error),
    /// Several per-item operations failed; the first message is kept.
    #[error("{count} operation(s) failed, first: {first}")]
    Multiple { count: usize, first: String },
    #[error("controller {name} failed: {reason}")]
    Controller { name: &'static str, reason: String },
}

impl Error {
    /// HTTP status of an API error, if this is one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Error::Kube(kube::Error::Api(status)) => Some(status.code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }

    /// Whether trying again later may succeed: API conflicts, throttling,
    /// server-side and transport failures are; a malformed object, a bad
    /// flag or a patch we cannot serialize are not. The work queue retries
    /// every failed key regardless (rate-limited), as upstream does.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(status)) => {
                matches!(status.code, 404 | 409 | 429) || status.code >= 500
            }
            Error::Kube(_) | Error::Multiple { .. } | Error::Controller { .. } => true,
            Error::UnknownControllers(_) | Error::InvalidObject { .. } | Error::Serialize(_) => {
                false
            }
        }
    }

    /// The apiserver's message for an API error (what upstream's `%v`
    /// prints), otherwise the error itself.
    pub fn api_message(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(status)) => status.message.clone(),
            other => other.to_string(),
        }
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists")
    }

    /// Upstream `apierrors.HasStatusCause(err, NamespaceTerminatingCause)`.
    pub fn is_namespace_terminating(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(status)) => status
                .details
                .as_ref()
                .map(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
                .unwrap_or(false),
            _ => false,
        }
    }
}
