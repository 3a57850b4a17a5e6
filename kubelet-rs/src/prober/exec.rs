//! Exec probes (upstream `pkg/probe/exec`), run through [`ContainerExec`].

use std::time::Duration;

use super::ProbeOutcome;
use super::error::ProbeError;
use super::target::{ContainerExec, ExecError};

/// Upstream keeps at most 10 KiB of a command's output.
pub const MAX_EXEC_OUTPUT: usize = 10 * 1024;

pub(crate) async fn probe_exec(
    exec: &dyn ContainerExec,
    container_id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<(ProbeOutcome, String), ProbeError> {
    // The runtime enforces the timeout too; this bounds a runtime that does not.
    let ran = tokio::time::timeout(timeout, exec.exec_sync(container_id, cmd, timeout)).await;
    match ran {
        Err(_) | Ok(Err(ExecError::TimedOut)) => {
            Ok((ProbeOutcome::Failure, ExecError::TimedOut.to_string()))
        }
        Ok(Err(e @ ExecError::Runtime(_))) => Err(ProbeError::Exec(e)),
        Ok(Ok(out)) => {
            let keep = out.output.len().min(MAX_EXEC_OUTPUT);
            let text = String::from_utf8_lossy(&out.output[..keep]).into_owned();
            let outcome = if out.exit_code == 0 {
                ProbeOutcome::Success
            } else {
                ProbeOutcome::Failure
            };
            Ok((outcome, text))
        }
    }
}
