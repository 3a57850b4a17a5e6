//! Facts about this machine (what cAdvisor's `MachineInfo` and `VersionInfo` give upstream).

use std::collections::BTreeMap;
use std::path::Path;

/// What the node status setters need to know about the host.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MachineInfo {
    pub num_cores: i64,
    pub memory_capacity: i64,
    /// Page size name (`2Mi`, `1Gi`) → total bytes reserved as huge pages.
    pub hugepages: BTreeMap<String, i64>,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
    /// Capacity of the filesystem holding the kubelet root dir, in bytes.
    pub root_fs_capacity: i64,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `MemTotal` of `/proc/meminfo` in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<i64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `PRETTY_NAME` of os-release, or "Linux" like upstream when absent.
pub fn parse_os_release(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

/// `hugepages-2048kB` → `2Mi`, `hugepages-1048576kB` → `1Gi`.
pub fn hugepage_size_name(dir_name: &str) -> Option<(String, i64)> {
    let kb: i64 = dir_name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    Some((
        component_base::quantity::ParsedQuantity::new(
            kb * 1024,
            component_base::quantity::Format::BinarySI,
        )
        .to_string(),
        kb * 1024,
    ))
}

fn hugepages() -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some((size_name, size)) = hugepage_size_name(&name) else {
            continue;
        };
        let count: i64 = read_trim(&format!("/sys/kernel/mm/hugepages/{name}/nr_hugepages"))
            .parse()
            .unwrap_or(0);
        out.insert(size_name, count * size);
    }
    out
}

fn fs_capacity(path: &Path) -> i64 {
    let mut probe = path.to_path_buf();
    // The root dir may not exist yet on first start: measure its closest ancestor.
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    nix::sys::statvfs::statvfs(&probe)
        .map(|s| (s.blocks() as i64) * (s.fragment_size() as i64))
        .unwrap_or(0)
}

impl MachineInfo {
    /// Reads the host's facts; missing files give empty values, like cAdvisor.
    pub fn read(root_dir: &Path) -> Self {
        let machine_id = [
            read_trim("/etc/machine-id"),
            read_trim("/var/lib/dbus/machine-id"),
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
        let kernel_version = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().to_string())
            .unwrap_or_default();
        Self {
            num_cores: std::thread::available_parallelism().map_or(1, |n| n.get() as i64),
            memory_capacity: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|t| parse_meminfo_total(&t))
                .unwrap_or(0),
            hugepages: hugepages(),
            machine_id,
            system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            kernel_version,
            os_image: parse_os_release(
                &std::fs::read_to_string("/etc/os-release").unwrap_or_default(),
            ),
            root_fs_capacity: fs_capacity(root_dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let meminfo = "MemTotal:        8043636 kB\nMemFree:          123 kB\n";
        assert_eq!(parse_meminfo_total(meminfo), Some(8043636 * 1024));
        assert_eq!(parse_meminfo_total("junk"), None);
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(parse_os_release(os), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(parse_os_release(""), "Linux");
        assert_eq!(
            hugepage_size_name("hugepages-2048kB"),
            Some(("2Mi".into(), 2 * 1024 * 1024))
        );
        assert_eq!(
            hugepage_size_name("hugepages-1048576kB"),
            Some(("1Gi".into(), 1024 * 1024 * 1024))
        );
    }

    #[test]
    fn reads_this_host() {
        let info = MachineInfo::read(Path::new("/tmp/does-not-exist/kubelet"));
        assert!(info.num_cores >= 1);
        assert!(info.memory_capacity > 0);
        assert!(info.root_fs_capacity > 0);
    }
}
