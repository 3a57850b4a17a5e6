//! Conntrack sysctls kube-proxy sets at startup (upstream
//! `cmd/kube-proxy/app/conntrack.go` + `server_linux.go`): table size from
//! `conntrack.maxPerCore`/`min`, and TCP/UDP timeouts. Best effort: a
//! read-only /proc/sys (containers) is logged, not fatal.

use std::path::{Path, PathBuf};

use crate::config::ConntrackSettings;

/// One sysctl (or module parameter) write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Relative to the sysctl root, e.g. `net/netfilter/nf_conntrack_max`.
    pub path: &'static str,
    pub value: u64,
    /// Only raise the value, never lower it (the hash size).
    pub only_raise: bool,
}

const HASHSIZE: &str = "module/nf_conntrack/parameters/hashsize";

/// Writes implied by `settings` on a machine with `cpus` CPUs.
pub fn plan(settings: &ConntrackSettings, cpus: u64) -> Vec<Write> {
    let mut out = Vec::new();
    let per_core = u64::try_from(settings.max_per_core).unwrap_or(0);
    let min = u64::try_from(settings.min).unwrap_or(0);
    if per_core > 0 {
        let max = (per_core * cpus).max(min);
        // The kernel uses 4 entries per bucket; raise the hash table first.
        out.push(Write {
            path: HASHSIZE,
            value: max / 4,
            only_raise: true,
        });
        out.push(Write {
            path: "net/netfilter/nf_conntrack_max",
            value: max,
            only_raise: false,
        });
    }
    let secs = |d: std::time::Duration| d.as_secs();
    if secs(settings.tcp_established_timeout) > 0 {
        out.push(Write {
            path: "net/netfilter/nf_conntrack_tcp_timeout_established",
            value: secs(settings.tcp_established_timeout),
            only_raise: false,
        });
    }
    if secs(settings.tcp_close_wait_timeout) > 0 {
        out.push(Write {
            path: "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
            value: secs(settings.tcp_close_wait_timeout),
            only_raise: false,
        });
    }
    if settings.tcp_be_liberal {
        out.push(Write {
            path: "net/netfilter/nf_conntrack_tcp_be_liberal",
            value: 1,
            only_raise: false,
        });
    }
    if let Some(d) = settings.udp_timeout.filter(|d| secs(*d) > 0) {
        out.push(Write {
            path: "net/netfilter/nf_conntrack_udp_timeout",
            value: secs(d),
            only_raise: false,
        });
    }
    if let Some(d) = settings.udp_stream_timeout.filter(|d| secs(*d) > 0) {
        out.push(Write {
            path: "net/netfilter/nf_conntrack_udp_timeout_stream",
            value: secs(d),
            only_raise: false,
        });
    }
    out
}

/// Applies `writes`; sysctls live under `proc_sys`, module parameters
/// under `sys` (normally `/proc/sys` and `/sys`).
pub fn apply(writes: &[Write], proc_sys: &Path, sys: &Path) {
    for w in writes {
        let file: PathBuf = if w.path == HASHSIZE {
            sys.join(w.path)
        } else {
            proc_sys.join(w.path)
        };
        let current = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let needed = match current {
            Some(c) if w.only_raise => c < w.value,
            Some(c) => c != w.value,
            None => true,
        };
        if !needed {
            continue;
        }
        match std::fs::write(&file, w.value.to_string()) {
            Ok(()) => tracing::info!(sysctl = w.path, value = w.value, "Set conntrack sysctl"),
            Err(e) => {
                tracing::warn!(sysctl = w.path, value = w.value, error = %e, "Failed to set conntrack sysctl")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> ConntrackSettings {
        ConntrackSettings {
            max_per_core: 32768,
            min: 131072,
            tcp_established_timeout: Duration::from_secs(86400),
            tcp_close_wait_timeout: Duration::from_secs(3600),
            tcp_be_liberal: false,
            udp_timeout: None,
            udp_stream_timeout: None,
        }
    }

    #[test]
    fn max_is_per_core_times_cpus_but_at_least_min() {
        let two = plan(&settings(), 2);
        assert_eq!(
            two[1],
            Write {
                path: "net/netfilter/nf_conntrack_max",
                value: 131072,
                only_raise: false
            }
        );
        assert_eq!(two[0].value, 32768);
        let eight = plan(&settings(), 8);
        assert_eq!(eight[1].value, 262144);
        assert_eq!(two.len(), 4);
        let zero = plan(
            &ConntrackSettings {
                max_per_core: 0,
                ..settings()
            },
            8,
        );
        assert!(zero.iter().all(|w| !w.path.ends_with("nf_conntrack_max")));
    }

    #[test]
    fn apply_writes_only_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        let (proc_sys, sys) = (dir.path().join("proc"), dir.path().join("sys"));
        std::fs::create_dir_all(proc_sys.join("net/netfilter")).unwrap();
        std::fs::create_dir_all(sys.join("module/nf_conntrack/parameters")).unwrap();
        std::fs::write(sys.join(HASHSIZE), "65536\n").unwrap();
        std::fs::write(proc_sys.join("net/netfilter/nf_conntrack_max"), "1000\n").unwrap();
        apply(&plan(&settings(), 2), &proc_sys, &sys);
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(
            read(&sys.join(HASHSIZE)).trim(),
            "65536",
            "hash size is never lowered"
        );
        assert_eq!(
            read(&proc_sys.join("net/netfilter/nf_conntrack_max")),
            "131072"
        );
        assert_eq!(
            read(&proc_sys.join("net/netfilter/nf_conntrack_tcp_timeout_established")),
            "86400"
        );
    }
}
