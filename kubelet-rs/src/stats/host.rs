//! Node-level figures outside cgroups: filesystem capacity (`statvfs`),
//! directory usage (as upstream's `du`-based volume metrics), interface
//! counters (`/proc/net/dev`) and process limits (`pid_max`, `/proc/loadavg`).

use std::path::Path;

use super::types::{FsStats, InterfaceStats, RlimitStats, Time};

/// Interfaces cAdvisor leaves out of a network namespace's figures.
const IGNORED_PREFIXES: [&str; 4] = ["lo", "veth", "docker", "nerdctl"];

/// Upstream's default interface (`network.DefaultInterfaceName`).
pub const DEFAULT_INTERFACE: &str = "eth0";

/// Interfaces and their counters from `/proc/net/dev`, ignored devices left out.
pub fn parse_net_dev(text: &str) -> Vec<InterfaceStats> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if IGNORED_PREFIXES.iter().any(|p| name.starts_with(p)) {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if f.len() < 16 {
                return None;
            }
            Some(InterfaceStats {
                name: name.to_string(),
                rx_bytes: Some(f[0]),
                rx_errors: Some(f[2]),
                tx_bytes: Some(f[8]),
                tx_errors: Some(f[10]),
            })
        })
        .collect()
}

/// The default interface's counters (an unnamed entry when there is none).
pub fn default_interface(interfaces: &[InterfaceStats]) -> InterfaceStats {
    interfaces
        .iter()
        .find(|i| i.name == DEFAULT_INTERFACE)
        .cloned()
        .unwrap_or_default()
}

/// The thread count from `/proc/loadavg` (`running/total`), what `sysinfo`'s
/// `procs` reports to upstream.
pub fn parse_loadavg_procs(text: &str) -> Option<i64> {
    text.split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

/// upstream `rlimit`: `pid_max` and the current process count.
pub fn rlimit(now: Time) -> RlimitStats {
    let max_pid = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let procs = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| parse_loadavg_procs(&s));
    RlimitStats {
        time: now,
        max_pid,
        num_of_running_processes: procs,
    }
}

/// Capacity, availability and inodes of the filesystem holding `path`.
pub fn fs_stats(path: &Path, now: Time) -> Option<FsStats> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let frsize = s.fragment_size();
    let capacity = s.blocks() * frsize;
    let available = s.blocks_available() * frsize;
    let free = s.blocks_free() * frsize;
    let inodes = s.files();
    let inodes_free = s.files_free();
    Some(FsStats {
        time: now,
        available_bytes: Some(available),
        capacity_bytes: Some(capacity),
        used_bytes: Some(capacity.saturating_sub(free)),
        inodes_free: Some(inodes_free),
        inodes: Some(inodes),
        inodes_used: Some(inodes.saturating_sub(inodes_free)),
    })
}

/// Bytes (allocated blocks, as `du`) and inodes under `dir`, not following
/// symlinks or crossing into other filesystems.
pub fn disk_usage(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::symlink_metadata(dir).ok()?;
    let dev = root.dev();
    let mut bytes = 0u64;
    let mut inodes = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    let mut seen_root = false;
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.dev() != dev {
            continue;
        }
        bytes += md.blocks() * 512;
        inodes += 1;
        if md.is_dir()
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
        seen_root = true;
    }
    seen_root.then_some((bytes, inodes))
}

/// `disk_usage` as `FsStats` on the filesystem holding `dir`.
pub fn dir_stats(dir: &Path, now: Time) -> Option<FsStats> {
    let (used, inodes_used) = disk_usage(dir)?;
    let fs = fs_stats(dir, now);
    Some(FsStats {
        time: now,
        available_bytes: fs.as_ref().and_then(|f| f.available_bytes),
        capacity_bytes: fs.as_ref().and_then(|f| f.capacity_bytes),
        used_bytes: Some(used),
        inodes_free: fs.as_ref().and_then(|f| f.inodes_free),
        inodes: fs.as_ref().and_then(|f| f.inodes),
        inodes_used: Some(inodes_used),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 5000      50    1    0    0     0          0         0     7000      70    2    0    0     0       0          0
vethab12: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0
  cni0: 300 3 0 0 0 0 0 0 400 4 0 0 0 0 0 0
";

    #[test]
    fn net_dev_without_ignored_devices() {
        let ifs = parse_net_dev(NET_DEV);
        assert_eq!(ifs.len(), 2);
        assert_eq!(
            ifs[0],
            InterfaceStats {
                name: "eth0".into(),
                rx_bytes: Some(5000),
                rx_errors: Some(1),
                tx_bytes: Some(7000),
                tx_errors: Some(2),
            }
        );
        assert_eq!(default_interface(&ifs).name, "eth0");
        assert_eq!(default_interface(&ifs[1..]).name, "");
    }

    #[test]
    fn loadavg() {
        assert_eq!(parse_loadavg_procs("0.5 0.4 0.3 2/812 12345\n"), Some(812));
        assert_eq!(parse_loadavg_procs("garbage"), None);
    }

    #[test]
    fn usage_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![7u8; 10_000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), b"x").unwrap();
        let (bytes, inodes) = disk_usage(dir.path()).unwrap();
        assert_eq!(inodes, 4);
        assert!(bytes >= 10_000, "{bytes}");
        let s = dir_stats(dir.path(), Time::default()).unwrap();
        assert!(s.capacity_bytes.unwrap() > 0);
        assert!(disk_usage(&dir.path().join("missing")).is_none());
    }
}
