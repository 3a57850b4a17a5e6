//! CPU and memory of one cgroup, read as cAdvisor reads them (upstream's
//! cadvisor stats provider): v1 `cpuacct.usage` and `memory.{usage_in_bytes,
//! limit_in_bytes,stat}`, v2 `cpu.stat` and `memory.{current,max,stat}`.
//! Working set is usage minus inactive file pages (v1 `total_inactive_file`,
//! v2 `inactive_file`), RSS is v1 `total_rss` / v2 `anon`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cm::CgroupLayout;

use super::StatsError;

/// Limits at or above this are "unlimited" (v1 reports `PAGE_COUNTER_MAX` pages).
const UNLIMITED: u64 = 1 << 62;

/// One cgroup's CPU and memory figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupSample {
    pub cpu_usage_ns: u64,
    pub memory_usage: u64,
    pub working_set: u64,
    pub rss: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// `None` when unlimited.
    pub memory_limit: Option<u64>,
}

/// `key value` lines (`memory.stat`, `cpu.stat`).
pub fn parse_flat_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k, v))
        })
        .collect()
}

/// A single number; v2's `max` is unlimited (`None`).
pub fn parse_single(text: &str) -> Option<Option<u64>> {
    let t = text.trim();
    if t == "max" {
        return Some(None);
    }
    t.parse().ok().map(Some)
}

fn working_set(usage: u64, inactive_file: u64) -> u64 {
    usage.saturating_sub(inactive_file)
}

fn limit(v: Option<u64>) -> Option<u64> {
    v.filter(|l| *l < UNLIMITED)
}

/// A v1 sample from `cpuacct.usage`, `memory.usage_in_bytes`,
/// `memory.limit_in_bytes` and `memory.stat`.
pub fn sample_v1(
    cpuacct_usage: &str,
    usage: &str,
    limit_in_bytes: &str,
    stat: &str,
) -> Option<CgroupSample> {
    let cpu = parse_single(cpuacct_usage)??;
    let usage = parse_single(usage)??;
    let stat = parse_flat_keyed(stat);
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    Some(CgroupSample {
        cpu_usage_ns: cpu,
        memory_usage: usage,
        working_set: working_set(usage, get("total_inactive_file")),
        rss: get("total_rss"),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        memory_limit: limit(parse_single(limit_in_bytes).flatten()),
    })
}

/// A v2 sample from `cpu.stat`, `memory.current`, `memory.max` and
/// `memory.stat`.
pub fn sample_v2(cpu_stat: &str, current: &str, max: &str, stat: &str) -> Option<CgroupSample> {
    let cpu = parse_flat_keyed(cpu_stat).get("usage_usec").copied()?;
    let usage = parse_single(current)??;
    let stat = parse_flat_keyed(stat);
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    Some(CgroupSample {
        cpu_usage_ns: cpu.saturating_mul(1000),
        memory_usage: usage,
        working_set: working_set(usage, get("inactive_file")),
        rss: get("anon"),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        memory_limit: limit(parse_single(max).flatten()),
    })
}

/// `MemTotal - MemFree` from `/proc/meminfo` (bytes): the v2 root cgroup has
/// no `memory.current`, so the machine's usage stands in (as runc does).
pub fn meminfo_usage(meminfo: &str) -> Option<u64> {
    let field = |name: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(field("MemTotal")?.saturating_sub(field("MemFree")?) * 1024)
}

/// Reads cgroups of the kubelet's layout; `name` is relative to the
/// hierarchy root (`kubepods/burstable/pod<uid>`, `""` for the root).
#[derive(Clone, Debug)]
pub struct CgroupReader {
    layout: CgroupLayout,
}

fn read(path: PathBuf) -> Result<String, StatsError> {
    std::fs::read_to_string(&path).map_err(|source| StatsError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl CgroupReader {
    pub fn new(layout: CgroupLayout) -> Self {
        CgroupReader { layout }
    }

    /// Whether the cgroup exists (in the memory hierarchy on v1).
    pub fn exists(&self, name: &str) -> bool {
        self.memory_dir(name).is_dir()
    }

    fn memory_dir(&self, name: &str) -> PathBuf {
        let name = name.trim_matches('/');
        match &self.layout {
            CgroupLayout::V1 { mount } => mount.join("memory").join(name),
            CgroupLayout::V2 { mount } => mount.join(name),
        }
    }

    pub fn sample(&self, name: &str) -> Result<CgroupSample, StatsError> {
        let name = name.trim_matches('/');
        let bad = |what: &str| StatsError::Parse {
            cgroup: format!("/{name}"),
            what: what.to_string(),
        };
        match &self.layout {
            CgroupLayout::V1 { mount } => {
                let mem = mount.join("memory").join(name);
                let cpu = v1_cpuacct_dir(mount).join(name);
                sample_v1(
                    &read(cpu.join("cpuacct.usage"))?,
                    &read(mem.join("memory.usage_in_bytes"))?,
                    &read(mem.join("memory.limit_in_bytes"))?,
                    &read(mem.join("memory.stat"))?,
                )
                .ok_or_else(|| bad("cpuacct.usage or memory.usage_in_bytes"))
            }
            CgroupLayout::V2 { mount } => {
                let dir = mount.join(name);
                let stat = read(dir.join("memory.stat"))?;
                let (current, max) = if name.is_empty() {
                    let usage = meminfo_usage(&read(PathBuf::from("/proc/meminfo"))?)
                        .ok_or_else(|| bad("/proc/meminfo"))?;
                    (usage.to_string(), "max".to_string())
                } else {
                    (
                        read(dir.join("memory.current"))?,
                        read(dir.join("memory.max"))?,
                    )
                };
                sample_v2(&read(dir.join("cpu.stat"))?, &current, &max, &stat)
                    .ok_or_else(|| bad("cpu.stat or memory.current"))
            }
        }
    }
}

/// `cpuacct` is mounted alone or co-mounted as `cpu,cpuacct`.
fn v1_cpuacct_dir(mount: &Path) -> PathBuf {
    let alone = mount.join("cpuacct");
    if alone.is_dir() {
        alone
    } else {
        mount.join("cpu,cpuacct")
    }
}

/// The kubelet's own cgroup from `/proc/self/cgroup` (the memory line on v1,
/// the `0::` line on v2).
pub fn own_cgroup(proc_self_cgroup: &str, layout: &CgroupLayout) -> Option<String> {
    proc_self_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let wanted = match layout {
            CgroupLayout::V1 { .. } => controllers.split(',').any(|c| c == "memory"),
            CgroupLayout::V2 { .. } => controllers.is_empty(),
        };
        wanted.then(|| path.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_STAT: &str = "cache 4096\nrss 8192\npgfault 10\npgmajfault 1\n\
        total_cache 40960\ntotal_rss 81920\ntotal_inactive_file 20480\ntotal_pgfault 100\n";

    #[test]
    fn v1_sample() {
        let s = sample_v1("123456789\n", "204800\n", "9223372036854771712\n", V1_STAT).unwrap();
        assert_eq!(
            s,
            CgroupSample {
                cpu_usage_ns: 123_456_789,
                memory_usage: 204_800,
                working_set: 204_800 - 20_480,
                rss: 81_920,
                page_faults: 10,
                major_page_faults: 1,
                memory_limit: None,
            }
        );
        let limited = sample_v1("1", "100", "1048576", "total_inactive_file 200\n").unwrap();
        assert_eq!(limited.memory_limit, Some(1_048_576));
        // Inactive file larger than usage (racy reads) never underflows.
        assert_eq!(limited.working_set, 0);
        assert!(sample_v1("", "1", "1", "").is_none());
    }

    #[test]
    fn v2_sample() {
        let cpu = "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n";
        let stat = "anon 65536\nfile 32768\ninactive_file 16384\npgfault 42\npgmajfault 3\n";
        let s = sample_v2(cpu, "131072\n", "max\n", stat).unwrap();
        assert_eq!(
            s,
            CgroupSample {
                cpu_usage_ns: 2_500_000,
                memory_usage: 131_072,
                working_set: 131_072 - 16_384,
                rss: 65_536,
                page_faults: 42,
                major_page_faults: 3,
                memory_limit: None,
            }
        );
        assert_eq!(
            sample_v2(cpu, "1", "4096", stat).unwrap().memory_limit,
            Some(4096)
        );
        assert!(sample_v2("user_usec 1\n", "1", "max", "").is_none());
    }

    #[test]
    fn meminfo() {
        let m = "MemTotal:       16000 kB\nMemFree:         6000 kB\nMemAvailable:   9000 kB\n";
        assert_eq!(meminfo_usage(m), Some(10_000 * 1024));
        assert_eq!(meminfo_usage("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn own_cgroup_v1_and_v2() {
        let v1 = "12:pids:/system.slice/kubelet.service\n\
            4:memory:/system.slice/kubelet.service\n3:cpu,cpuacct:/x\n0::/system.slice/kubelet.service\n";
        let layout = CgroupLayout::V1 {
            mount: "/sys/fs/cgroup".into(),
        };
        assert_eq!(
            own_cgroup(v1, &layout).as_deref(),
            Some("/system.slice/kubelet.service")
        );
        let v2 = "0::/kubelet.slice\n";
        let layout = CgroupLayout::V2 {
            mount: "/sys/fs/cgroup".into(),
        };
        assert_eq!(own_cgroup(v2, &layout).as_deref(), Some("/kubelet.slice"));
    }

    #[test]
    fn reader_on_fake_v1_and_v2_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let mem = dir.path().join("memory/kubepods/podu");
        let cpu = dir.path().join("cpu,cpuacct/kubepods/podu");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "77\n").unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(mem.join("memory.limit_in_bytes"), "2000\n").unwrap();
        std::fs::write(
            mem.join("memory.stat"),
            "total_inactive_file 100\ntotal_rss 300\n",
        )
        .unwrap();
        let r = CgroupReader::new(CgroupLayout::V1 {
            mount: dir.path().into(),
        });
        assert!(r.exists("/kubepods/podu"));
        assert!(!r.exists("kubepods/podv"));
        let s = r.sample("/kubepods/podu").unwrap();
        assert_eq!(
            (s.cpu_usage_ns, s.working_set, s.rss, s.memory_limit),
            (77, 900, 300, Some(2000))
        );
        assert!(matches!(
            r.sample("kubepods/podv"),
            Err(StatsError::Read { .. })
        ));

        let dir2 = tempfile::tempdir().unwrap();
        let pod = dir2.path().join("kubepods/podu");
        std::fs::create_dir_all(&pod).unwrap();
        std::fs::write(pod.join("cpu.stat"), "usage_usec 5\n").unwrap();
        std::fs::write(pod.join("memory.current"), "500\n").unwrap();
        std::fs::write(pod.join("memory.max"), "max\n").unwrap();
        std::fs::write(pod.join("memory.stat"), "inactive_file 50\nanon 20\n").unwrap();
        let r = CgroupReader::new(CgroupLayout::V2 {
            mount: dir2.path().into(),
        });
        let s = r.sample("kubepods/podu").unwrap();
        assert_eq!(
            (s.cpu_usage_ns, s.working_set, s.rss, s.memory_limit),
            (5000, 450, 20, None)
        );
    }
}
