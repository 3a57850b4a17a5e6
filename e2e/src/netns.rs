//! Requests from inside a network namespace made by `hack/local-up` (the
//! control-plane namespace is a vantage point outside every node).

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::E2eError;

/// The control-plane namespace of `hack/local-up` (override with
/// `FK_CP_NETNS`, a path).
pub fn control_plane_netns() -> PathBuf {
    std::env::var_os("FK_CP_NETNS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/run/netns/fk-control-plane"))
}

/// Why requests from `netns` cannot be made here, if they cannot.
pub fn netns_unusable(netns: &Path) -> Option<String> {
    if !netns.exists() {
        return Some(format!(
            "network namespace {} does not exist",
            netns.display()
        ));
    }
    // nsenter needs CAP_SYS_ADMIN; without root the attempt would only fail.
    if !running_as_root() {
        return Some("entering a network namespace needs root".into());
    }
    None
}

/// The effective uid from /proc/self/status ("Uid: real effective ...").
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// GETs `url` with curl from inside `netns` (3 s timeout); the body on 2xx.
pub async fn http_get_from(netns: &Path, url: &str) -> Result<String, E2eError> {
    let mut net_arg = std::ffi::OsString::from("--net=");
    net_arg.push(netns);
    let out = Command::new("nsenter")
        .arg(net_arg)
        .args(["--", "curl", "-sf", "--max-time", "3", url])
        .output()
        .await
        .map_err(|source| E2eError::Spawn {
            command: format!("nsenter curl {url}"),
            source,
        })?;
    if !out.status.success() {
        return Err(E2eError::Check(format!(
            "curl {url} from {} failed ({}): {}",
            netns.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
