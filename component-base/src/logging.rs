//! klog-compatible log setup on `tracing-subscriber`, writing to stderr.
//!
//! Verbosity mapping (klog `-v` → tracing level for our crates):
//!
//! | `-v`  | level | klog convention it stands for                      |
//! |-------|-------|----------------------------------------------------|
//! | 0–3   | INFO  | always-on / steady-state info (klog V(0)–V(3))     |
//! | 4–5   | DEBUG | debug detail (klog V(4), V(5))                     |
//! | ≥ 6   | TRACE | request-level tracing (klog V(6)+)                 |
//!
//! Dependencies (hyper, h2, rustls, tower, kube's HTTP internals) stay at
//! INFO until `-v=8`, the level at which klog starts dumping HTTP traffic.
//! `--vmodule=pattern=N` maps each pattern (a Rust module path here, since
//! there are no Go files) with the same table. `RUST_LOG`, when set, replaces
//! all of the above. Timestamps are RFC 3339 UTC (the fmt default). Upstream's default is `-v=0`; kubeadm manifests do not
//! set `-v`, so neither do we.

use tracing_subscriber::EnvFilter;

use crate::flags::{LogFormat, LoggingFlags};

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid --vmodule entry {0:?}: expected pattern=N")]
    InvalidVmodule(String),
    #[error("invalid log filter: {0}")]
    Filter(String),
    #[error("a global logger is already installed: {0}")]
    AlreadyInstalled(String),
}

/// The tracing level a klog verbosity maps to (see the module table).
pub fn level_for_verbosity(v: u8) -> &'static str {
    match v {
        0..=3 => "info",
        4..=5 => "debug",
        _ => "trace",
    }
}

const NOISY_DEPENDENCIES: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio_rustls",
    "tower",
    "kube_client::client::builder",
];

/// Builds the `EnvFilter` directive string for `-v` and `--vmodule`.
pub fn filter_directives(v: u8, vmodule: Option<&str>) -> Result<String, LoggingError> {
    let mut directives = vec![level_for_verbosity(v).to_string()];
    if v < 8 {
        directives.extend(NOISY_DEPENDENCIES.iter().map(|dep| format!("{dep}=info")));
    }
    for entry in vmodule.unwrap_or_default().split(',').map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        let (pattern, level) = entry
            .split_once('=')
            .ok_or_else(|| LoggingError::InvalidVmodule(entry.to_string()))?;
        let level: u8 = level
            .parse()
            .map_err(|_| LoggingError::InvalidVmodule(entry.to_string()))?;
        let pattern = pattern.trim_end_matches('*').replace('-', "_");
        if pattern.is_empty() {
            return Err(LoggingError::InvalidVmodule(entry.to_string()));
        }
        directives.push(format!("{pattern}={}", level_for_verbosity(level)));
    }
    Ok(directives.join(","))
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(flags: &LoggingFlags) -> Result<(), LoggingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(filter_directives(flags.v, flags.vmodule.as_deref())?),
    }
    .map_err(|e| LoggingError::Filter(e.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match flags.logging_format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|e| LoggingError::AlreadyInstalled(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_table() {
        let cases = [
            (0, "info"),
            (2, "info"),
            (3, "info"),
            (4, "debug"),
            (5, "debug"),
            (6, "trace"),
            (10, "trace"),
        ];
        for (v, want) in cases {
            assert_eq!(level_for_verbosity(v), want, "v={v}");
        }
    }

    #[test]
    fn directives_cap_dependencies_until_v8() {
        let d = filter_directives(4, None).expect("valid");
        assert!(d.starts_with("debug,"));
        assert!(d.contains("hyper=info"));
        let d = filter_directives(8, None).expect("valid");
        assert_eq!(d, "trace");
    }

    #[test]
    fn vmodule_maps_patterns() {
        let d = filter_directives(0, Some("kube_scheduler::queue=6, kubelet-rs*=4")).expect("ok");
        assert!(
            d.ends_with("kube_scheduler::queue=trace,kubelet_rs=debug"),
            "{d}"
        );
        EnvFilter::try_new(&d).expect("directives are valid for EnvFilter");
        assert!(filter_directives(0, Some("novalue")).is_err());
        assert!(filter_directives(0, Some("x=y")).is_err());
    }
}
