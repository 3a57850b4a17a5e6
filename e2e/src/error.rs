//! The one error type of the e2e helpers.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("exec {command:?} in pod {pod}: {message}")]
    Exec {
        pod: String,
        command: Vec<String>,
        message: String,
    },
    #[error("running {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Check(String),
}
