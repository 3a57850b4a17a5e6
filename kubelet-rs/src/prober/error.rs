//! Probe errors (upstream: a probe that could not run yields result `Unknown`, and the
//! worker retries it; every variant here is retriable).

use super::target::ExecError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("port {0} not found")]
    PortNotFound(String),
    #[error("invalid port number: {0}")]
    InvalidPort(i32),
    #[error("pod has no IP address yet")]
    NoPodIp,
    #[error("missing probe handler")]
    MissingHandler,
    /// The runtime could not run the exec probe's command.
    #[error(transparent)]
    Exec(ExecError),
}
