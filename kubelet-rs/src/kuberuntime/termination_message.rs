//! Termination messages (upstream kuberuntime_container.go `makeMounts`' termination-log
//! file, `getTerminationMessage`, `readLastStringFromContainerLogs`).
//!
//! At each container start the kubelet creates an empty, world-writable file
//! `<pod dir>/containers/<name>/<8 hex>` and bind-mounts it at
//! `terminationMessagePath`. When the container has exited, the last 4 KiB of that file
//! (found through the CRI status' mounts) become its `terminated.message`; with
//! `FallbackToLogsOnError`, a failed container that wrote nothing gets the last 80 log
//! lines (at most 2 KiB) instead.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::labels;
use super::runtime_status::{ContainerRecord, ContainerState};
use crate::cri::api;
use crate::cri::log_format::{parse_cri_line, tail_start};

/// `MaxContainerTerminationMessageLength`: bytes read from the file.
pub const MAX_CONTAINER_TERMINATION_MESSAGE_LENGTH: u64 = 1024 * 4;
/// `MaxContainerTerminationMessageLogLength`: bytes kept from the logs.
pub const MAX_CONTAINER_TERMINATION_MESSAGE_LOG_LENGTH: usize = 1024 * 2;
/// `MaxContainerTerminationMessageLogLines`: lines read from the logs.
pub const MAX_CONTAINER_TERMINATION_MESSAGE_LOG_LINES: i64 = 80;
/// `MaxPodTerminationMessageLogLength`: all of a pod's messages together.
pub const MAX_POD_TERMINATION_MESSAGE_LOG_LENGTH: usize = 1024 * 12;

pub const POLICY_FALLBACK_TO_LOGS_ON_ERROR: &str = "FallbackToLogsOnError";
/// The runtime's reason for a container whose process could not even start.
const REASON_CONTAINER_CANNOT_RUN: &str = "ContainerCannotRun";

/// Whether logs stand in for an empty message: `FallbackToLogsOnError`, a non-zero exit,
/// and a container that ran (one that could not start has no logs).
pub fn fallback_to_logs(policy: &str, exit_code: i32, reason: &str) -> bool {
    policy == POLICY_FALLBACK_TO_LOGS_ON_ERROR
        && exit_code != 0
        && reason != REASON_CONTAINER_CANNOT_RUN
}

/// `tail.ReadAtMost`: the last `max` bytes of the file.
pub fn read_at_most(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > max {
        file.seek(SeekFrom::Start(len - max))?;
    }
    let mut data = Vec::new();
    file.take(max).read_to_end(&mut data)?;
    Ok(data)
}

/// `getTerminationMessage`: the message from the file mounted at `message_path`, and
/// whether the logs must be read instead. `read` reads the host file.
pub fn message_from_file(
    mounts: &[api::Mount],
    message_path: &str,
    fallback: bool,
    read: impl Fn(&Path) -> io::Result<Vec<u8>>,
) -> (String, bool) {
    if message_path.is_empty() {
        return (String::new(), fallback);
    }
    let Some(mount) = mounts.iter().find(|m| m.container_path == message_path) else {
        return (String::new(), fallback);
    };
    let path = Path::new(&mount.host_path);
    match read(path) {
        Ok(data) => {
            let empty = data.is_empty();
            (
                String::from_utf8_lossy(&data).into_owned(),
                fallback && empty,
            )
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (String::new(), fallback),
        Err(e) => (
            format!("Error on reading termination log {}: {e}", path.display()),
            false,
        ),
    }
}

/// `readLastStringFromContainerLogs` on the bytes of a CRI log file: the content of its
/// last 80 lines (both streams, no timestamps), cut to its last 2 KiB.
pub fn last_string_from_logs(data: &[u8]) -> String {
    let start = tail_start(data, Some(MAX_CONTAINER_TERMINATION_MESSAGE_LOG_LINES));
    let mut out = Vec::new();
    for line in data[start..].split_inclusive(|b| *b == b'\n') {
        match parse_cri_line(line) {
            Ok(msg) => out.extend_from_slice(&msg.log),
            Err(e) => tracing::debug!(error = %e, "skipping unparsable container log line"),
        }
    }
    let keep = out
        .len()
        .saturating_sub(MAX_CONTAINER_TERMINATION_MESSAGE_LOG_LENGTH);
    String::from_utf8_lossy(&out[keep..]).into_owned()
}

/// The termination message of an exited container from its CRI status: the file, else
/// (when [`fallback_to_logs`]) the log tail. `policy` and `path` are the container's
/// `terminationMessagePolicy` / `terminationMessagePath` (from the container annotations).
pub fn exited_container_message(status: &api::ContainerStatus, policy: &str, path: &str) -> String {
    let fallback = fallback_to_logs(policy, status.exit_code, &status.reason);
    let (message, check_logs) = message_from_file(&status.mounts, path, fallback, |p| {
        read_at_most(p, MAX_CONTAINER_TERMINATION_MESSAGE_LENGTH)
    });
    if !check_logs {
        return message;
    }
    match std::fs::read(&status.log_path) {
        Ok(data) => last_string_from_logs(&data),
        Err(e) => format!(
            "Error on reading termination message from logs: failed to open log file {:?}: {e}",
            status.log_path
        ),
    }
}

/// `toKubeContainerStatus` plus `getPodContainerStatuses`' message: an exited
/// container's runtime message enriched with its termination message.
pub fn record_with_termination_message(status: &api::ContainerStatus) -> ContainerRecord {
    let mut record = ContainerRecord::from_cri(status);
    if record.state == ContainerState::Exited {
        let get = |key: &str| status.annotations.get(key).map_or("", String::as_str);
        let message = exited_container_message(
            status,
            get(labels::TERMINATION_MESSAGE_POLICY),
            get(labels::TERMINATION_MESSAGE_PATH),
        );
        record.message = join_messages(&record.message, &message);
    }
    record
}

/// Joins the runtime's own message and the termination message like upstream
/// (`<runtime message>: <termination message>`).
pub fn join_messages(runtime_message: &str, termination: &str) -> String {
    match (runtime_message.is_empty(), termination.is_empty()) {
        (_, true) => runtime_message.to_string(),
        (true, false) => termination.to_string(),
        (false, false) => format!("{runtime_message}: {termination}"),
    }
}

/// `getPodContainerDir`: `<pod dir>/containers/<name>`.
pub fn pod_container_dir(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("containers").join(container)
}

/// Creates the empty termination-log file of a new container instance (mode 0666, so a
/// non-root container can write it) in a 0750 `containers/<name>` directory.
pub fn create_termination_log_file(container_dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(container_dir)?;
    std::fs::set_permissions(container_dir, std::fs::Permissions::from_mode(0o750))?;
    // The container dir is unique per pod and container; the random id separates
    // instances of the same container (upstream `makeUID`).
    let path = container_dir.join(format!("{:08x}", rand::random::<u32>()));
    std::fs::File::create(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    Ok(path)
}

/// Cuts each terminated message of a pod status to the pod's per-container share of
/// 12 KiB (upstream status manager `normalizeStatus`), on a character boundary.
pub fn truncate_pod_messages(
    status: &mut k8s_openapi::api::core::v1::PodStatus,
    container_count: usize,
) {
    let per_container = MAX_POD_TERMINATION_MESSAGE_LOG_LENGTH / container_count.max(1);
    let cut = |state: Option<&mut k8s_openapi::api::core::v1::ContainerState>| {
        if let Some(message) = state
            .and_then(|s| s.terminated.as_mut())
            .and_then(|t| t.message.as_mut())
            && message.len() > per_container
        {
            let end = (0..=per_container)
                .rev()
                .find(|i| message.is_char_boundary(*i))
                .unwrap_or(0);
            message.truncate(end);
        }
    };
    for list in [
        status.init_container_statuses.as_mut(),
        status.container_statuses.as_mut(),
        status.ephemeral_container_statuses.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        for cs in list.iter_mut() {
            cut(cs.state.as_mut());
            cut(cs.last_state.as_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };

    fn mount(container: &str, host: &str) -> api::Mount {
        api::Mount {
            container_path: container.into(),
            host_path: host.into(),
            ..Default::default()
        }
    }

    #[test]
    fn falls_back_only_for_failures_that_ran() {
        let f = POLICY_FALLBACK_TO_LOGS_ON_ERROR;
        assert!(fallback_to_logs(f, 1, "Error"));
        assert!(!fallback_to_logs(f, 0, "Completed"));
        assert!(!fallback_to_logs(f, 128, "ContainerCannotRun"));
        assert!(!fallback_to_logs("File", 1, "Error"));
    }

    /// Upstream `TestGetTerminationMessage`-style cases: the mounted file wins; an empty
    /// file or none sends a fallback container to its logs.
    #[test]
    fn selects_file_or_logs() {
        let mounts = [mount("/dev/termination-log", "/host/abc")];
        let ok = |data: &'static str| move |_: &Path| Ok(data.as_bytes().to_vec());
        assert_eq!(
            message_from_file(&mounts, "/dev/termination-log", true, ok("OK")),
            ("OK".to_string(), false)
        );
        assert_eq!(
            message_from_file(&mounts, "/dev/termination-log", true, ok("")),
            (String::new(), true)
        );
        assert_eq!(
            message_from_file(&mounts, "/dev/termination-log", false, ok("")),
            (String::new(), false)
        );
        assert_eq!(
            message_from_file(&mounts, "/other", true, ok("x")),
            (String::new(), true)
        );
        assert_eq!(
            message_from_file(&mounts, "", false, ok("x")),
            (String::new(), false)
        );
        let missing =
            |_: &Path| -> io::Result<Vec<u8>> { Err(io::Error::from(io::ErrorKind::NotFound)) };
        assert_eq!(
            message_from_file(&mounts, "/dev/termination-log", true, missing),
            (String::new(), true)
        );
        let denied = |_: &Path| -> io::Result<Vec<u8>> {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        };
        let (msg, logs) = message_from_file(&mounts, "/dev/termination-log", true, denied);
        assert!(msg.starts_with("Error on reading termination log /host/abc: "));
        assert!(!logs);
    }

    #[test]
    fn reads_the_last_lines_of_the_log() {
        let log = "2024-01-01T00:00:00.000000000Z stdout P DO\n\
2024-01-01T00:00:00.000000001Z stdout F NE\n\
2024-01-01T00:00:00.000000002Z stderr F oops\n";
        assert_eq!(last_string_from_logs(log.as_bytes()), "DONE\noops\n");
        let no_newline = "2024-01-01T00:00:00.000000000Z stdout P DONE";
        assert_eq!(last_string_from_logs(no_newline.as_bytes()), "DONE");
        let mut many = String::new();
        for i in 0..100 {
            many.push_str(&format!(
                "2024-01-01T00:00:00.000000000Z stdout F line{i}\n"
            ));
        }
        let got = last_string_from_logs(many.as_bytes());
        assert!(got.starts_with("line20\n") && got.ends_with("line99\n"));
        let mut big = String::new();
        for _ in 0..10 {
            big.push_str(&format!(
                "2024-01-01T00:00:00.000000000Z stdout F {}\n",
                "x".repeat(500)
            ));
        }
        assert_eq!(
            last_string_from_logs(big.as_bytes()).len(),
            MAX_CONTAINER_TERMINATION_MESSAGE_LOG_LENGTH
        );
    }

    #[test]
    fn reads_at_most_the_tail_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("msg");
        std::fs::write(&path, format!("{}END", "a".repeat(5000))).unwrap();
        let data = read_at_most(&path, MAX_CONTAINER_TERMINATION_MESSAGE_LENGTH).unwrap();
        assert_eq!(data.len(), 4096);
        assert!(data.ends_with(b"aEND"));
        let created = create_termination_log_file(&dir.path().join("containers/c")).unwrap();
        let mode = std::fs::metadata(&created).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        assert_eq!(created.file_name().map(|n| n.len()), Some(8));
    }

    #[test]
    fn joins_and_truncates_like_upstream() {
        assert_eq!(join_messages("", "DONE"), "DONE");
        assert_eq!(join_messages("oom", "DONE"), "oom: DONE");
        assert_eq!(join_messages("oom", ""), "oom");
        let terminated = |n: usize| ContainerStatus {
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    message: Some("m".repeat(n)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut status = PodStatus {
            container_statuses: Some(vec![terminated(5000), terminated(10)]),
            init_container_statuses: Some(vec![terminated(4096)]),
            ..Default::default()
        };
        truncate_pod_messages(&mut status, 3);
        let len = |s: &ContainerStatus| {
            s.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.message.as_ref())
                .map_or(0, String::len)
        };
        let cs = status.container_statuses.unwrap_or_default();
        assert_eq!((len(&cs[0]), len(&cs[1])), (4096, 10));
    }
}
