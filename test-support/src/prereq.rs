//! What the integration and e2e tests need from the machine, found one way
//! everywhere, and what a test does when something is missing.
//!
//! * Stock Kubernetes binaries come from `hack/kube-bin/path NAME`, the
//!   resolver `hack/local-up` uses too, so tests and the local cluster run
//!   the same pinned release. It may download or build the binary (minutes;
//!   its progress goes to our stderr), hence the per-process cache.
//! * etcd is taken from `PATH` when there (Debian's etcd is fine and saves
//!   a build), else from the same resolver.
//! * A missing prerequisite fails the test, naming it and how to get it: a
//!   green run must mean the real thing ran. `FK_ALLOW_SKIP=1` opts out; the
//!   test then prints `SKIP: <reason>` and passes.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};

/// The opt-out: set to `1`, a missing prerequisite skips instead of failing.
pub const ALLOW_SKIP_ENV: &str = "FK_ALLOW_SKIP";

/// The resolver script, relative to the workspace root.
const RESOLVER: &str = "hack/kube-bin/path";

/// True when `FK_ALLOW_SKIP=1`.
pub fn skip_allowed() -> bool {
    std::env::var_os(ALLOW_SKIP_ENV).is_some_and(|v| v == "1")
}

/// Fails the calling test because `reason` (a missing prerequisite, and how
/// to get it) — unless `FK_ALLOW_SKIP=1`, when it prints `SKIP: <reason>`
/// and returns so the caller can return early.
pub fn skip_or_fail(reason: &str) {
    if let Err(message) = skip_or_err(reason) {
        panic!("{message}");
    }
}

/// [`skip_or_fail`] as a value, for a test that must clean up before it
/// fails: `Err(message)`, or `Ok(())` after printing `SKIP: <reason>` under
/// `FK_ALLOW_SKIP=1`.
pub fn skip_or_err(reason: &str) -> Result<(), String> {
    let line = skip_verdict(skip_allowed(), reason)?;
    // Straight to the process's stderr: libtest captures print!/eprint! of
    // passing tests, and a skip must be visible in CI logs.
    let _ = writeln!(std::io::stderr().lock(), "{line}");
    Ok(())
}

/// The decision alone, with the opt-out given (testable without touching
/// the process environment): `Ok(the SKIP line)` or `Err(the failure)`.
pub fn skip_verdict(allowed: bool, reason: &str) -> Result<String, String> {
    if allowed {
        Ok(format!("SKIP: {reason}"))
    } else {
        Err(format!(
            "missing test prerequisite: {reason}\n(set {ALLOW_SKIP_ENV}=1 to skip instead)"
        ))
    }
}

/// `Some(value)`, or `None` after [`skip_or_fail`] with the error (so the
/// test returns early when skipping is allowed).
pub fn or_skip<T>(found: Result<T, String>) -> Option<T> {
    match found {
        Ok(value) => Some(value),
        Err(reason) => {
            skip_or_fail(&reason);
            None
        }
    }
}

/// The workspace root: the nearest ancestor of the including crate's
/// manifest directory that holds the resolver (crates sit one or two levels
/// below it).
pub fn workspace_root() -> Result<PathBuf, String> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join(RESOLVER).is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            format!(
                "no {RESOLVER} in any parent of {} (tests must run from a Ferrokube checkout)",
                manifest_dir.display()
            )
        })
}

/// The stock binary `name` (kube-apiserver, kubectl, kube-scheduler, ...)
/// from `hack/kube-bin/path`; asked once per process and name, failures
/// included, since many tests in one binary ask and a failed build would
/// only fail again.
pub fn stock_bin(name: &str) -> Result<PathBuf, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    // Held across the lookup on purpose: concurrent tests asking for the
    // same binary wait for one build instead of starting their own, and
    // builds of different binaries do not compete for the CPUs.
    let mut cache = CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    cache
        .entry(name.to_string())
        .or_insert_with(|| resolve_stock_bin(name))
        .clone()
}

fn resolve_stock_bin(name: &str) -> Result<PathBuf, String> {
    let how = format!(
        "run `{RESOLVER} {name}` (or `hack/kube-bin/build {name}`) in the workspace, \
         or set KUBE_BIN_DIR to a directory holding {name}"
    );
    let root = workspace_root()?;
    let script = root.join(RESOLVER);
    let out = Command::new(&script)
        .arg(name)
        .current_dir(&root)
        .stdin(Stdio::null())
        // Download/build progress and the reason for a failure: let the
        // user see them as they happen.
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("stock {name}: cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        let status = out
            .status
            .code()
            .map_or_else(|| out.status.to_string(), |code| format!("status {code}"));
        return Err(format!(
            "stock {name} is not available: `{RESOLVER} {name}` exited with {status} \
             (its reason is on stderr above); {how}"
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| format!("stock {name}: `{RESOLVER} {name}` printed no path; {how}"))?;
    if !path.is_absolute() || !is_executable(&path) {
        return Err(format!(
            "stock {name}: `{RESOLVER} {name}` printed {}, which is not an executable file; {how}",
            path.display()
        ));
    }
    Ok(path)
}

/// etcd from `PATH` if there, else the stock build from the resolver (only
/// then: building etcd takes minutes).
pub fn etcd_bin() -> Result<PathBuf, String> {
    if let Some(path) = on_path("etcd") {
        return Ok(path);
    }
    stock_bin("etcd").map_err(|e| {
        format!("etcd is not on PATH (install it, e.g. `apt-get install etcd-server`) and {e}")
    })
}

/// The first executable `name` in a `PATH` directory.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
