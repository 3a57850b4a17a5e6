//! Running a command in a pod (kube's websocket exec) and collecting its
//! stdout, stderr and exit code.

use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Status};
use kube::{Api, api::AttachParams};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::E2eError;

/// What a command run by [`exec`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// The process's exit code; -1 when the kubelet reported a failure
    /// without one (e.g. the executable was not found).
    pub exit_code: i32,
}

/// Runs `command` in `pod` (its first container unless `container` is set)
/// and waits for it to finish.
pub async fn exec(
    pods: &Api<Pod>,
    pod: &str,
    container: Option<&str>,
    command: &[&str],
) -> Result<ExecOutput, E2eError> {
    let exec_err = |message: String| E2eError::Exec {
        pod: pod.to_string(),
        command: command.iter().map(|s| s.to_string()).collect(),
        message,
    };
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let mut attached = pods.exec(pod, command.to_vec(), &params).await?;
    let stdout = attached.stdout();
    let stderr = attached.stderr();
    let status = attached.take_status();
    let (stdout, stderr) = tokio::join!(read_to_string(stdout), read_to_string(stderr));
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    attached.join().await.map_err(|e| exec_err(e.to_string()))?;
    Ok(ExecOutput {
        stdout: stdout.map_err(|e| exec_err(format!("reading stdout: {e}")))?,
        stderr: stderr.map_err(|e| exec_err(format!("reading stderr: {e}")))?,
        exit_code: exit_code(status.as_ref()),
    })
}

async fn read_to_string(stream: Option<impl AsyncRead + Unpin>) -> std::io::Result<String> {
    let mut buf = Vec::new();
    if let Some(mut s) = stream {
        s.read_to_end(&mut buf).await?;
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The exit code the kubelet reports in the exec Status: Success is 0, a
/// NonZeroExitCode failure carries it as the "ExitCode" cause, anything else
/// (or no status at all) is -1.
pub fn exit_code(status: Option<&Status>) -> i32 {
    let Some(status) = status else { return -1 };
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref())
                .and_then(|m| m.trim().parse().ok())
        })
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    fn failure(causes: Vec<(&str, &str)>) -> Status {
        Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            details: Some(StatusDetails {
                causes: Some(
                    causes
                        .into_iter()
                        .map(|(r, m)| StatusCause {
                            reason: Some(r.into()),
                            message: Some(m.into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn exit_codes_from_exec_status() {
        let success = Status {
            status: Some("Success".into()),
            ..Default::default()
        };
        let cases: Vec<(Option<Status>, i32)> = vec![
            (None, -1),
            (Some(success), 0),
            (Some(failure(vec![("ExitCode", "3")])), 3),
            (
                Some(failure(vec![("Other", "x"), ("ExitCode", "137")])),
                137,
            ),
            (Some(failure(vec![("ExitCode", "not-a-number")])), -1),
            (Some(failure(vec![])), -1),
        ];
        for (status, want) in cases {
            assert_eq!(exit_code(status.as_ref()), want, "{status:?}");
        }
    }
}
