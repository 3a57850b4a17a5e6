//! `ExecSync` for exec probes: the prober's only path into the runtime.

use std::time::Duration;

use super::client::RuntimeService;
use super::error::CriError;
use crate::prober::{ContainerExec, ExecError, ExecOutput};

#[async_trait::async_trait]
impl ContainerExec for RuntimeService {
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        match RuntimeService::exec_sync(self, container_id, cmd.to_vec(), timeout).await {
            Ok(resp) => {
                let mut output = resp.stdout;
                output.extend(resp.stderr);
                Ok(ExecOutput {
                    exit_code: resp.exit_code,
                    output,
                })
            }
            Err(CriError::Timeout { .. }) => Err(ExecError::TimedOut),
            Err(CriError::Status { status, .. })
                if status.code() == tonic::Code::DeadlineExceeded =>
            {
                Err(ExecError::TimedOut)
            }
            Err(e) => Err(ExecError::Runtime(e.to_string())),
        }
    }
}
