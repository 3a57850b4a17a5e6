//! The crate's error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Cri(#[from] crate::cri::CriError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("this KubeletHandle already serves a running kubelet")]
    HandleInUse,
    #[error("serialising {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether the same call may succeed later: apiserver conflicts, throttling, server
    /// errors and transport failures, an unreachable runtime. The pod worker and status
    /// manager retry on their next sync either way; this tells a log reader which it was.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(s)) => s.code == 409 || s.code == 429 || s.code >= 500,
            Error::Kube(_) => true,
            Error::Cri(e) => e.is_unavailable(),
            Error::Io { .. } => true,
            Error::HandleInUse | Error::Json { .. } => false,
        }
    }
}

/// The apiserver answered with `code`.
pub fn is_api_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == code)
}
