//! Container manager, cgroup part (upstream `pkg/kubelet/cm`): the QoS hierarchy
//! `kubepods`, `kubepods/burstable`, `kubepods/besteffort` under `--cgroup-root`, written
//! directly to cgroupfs (cgroupfs driver). Per-pod `pod<uid>` cgroups are created by the
//! runtime from the sandbox's cgroup parent.

use std::path::{Path, PathBuf};

pub const CGROUP_MOUNT: &str = "/sys/fs/cgroup";
/// v1 controllers the kubelet manages a hierarchy in.
pub const V1_CONTROLLERS: [&str; 6] = ["cpu", "cpuacct", "cpuset", "memory", "pids", "hugetlb"];

#[derive(Clone, Debug, PartialEq)]
pub enum CgroupLayout {
    /// cgroup v1 (legacy or hybrid): one directory per controller.
    V1 { mount: PathBuf },
    /// cgroup v2 unified hierarchy.
    V2 { mount: PathBuf },
}

#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {source}")]
pub struct CgroupError {
    pub path: String,
    pub source: std::io::Error,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError {
        path: path.display().to_string(),
        source,
    }
}

impl CgroupLayout {
    /// v2 when `cgroup.controllers` exists at the mount root.
    pub fn detect() -> Self {
        let mount = PathBuf::from(CGROUP_MOUNT);
        if mount.join("cgroup.controllers").exists() {
            CgroupLayout::V2 { mount }
        } else {
            CgroupLayout::V1 { mount }
        }
    }
}

/// The QoS cgroup names relative to the cgroup root.
pub fn qos_cgroup_names(cgroup_root: &str) -> [String; 3] {
    let root = cgroup_root.trim_matches('/');
    let base = if root.is_empty() {
        "kubepods".to_string()
    } else {
        format!("{root}/kubepods")
    };
    [
        base.clone(),
        format!("{base}/burstable"),
        format!("{base}/besteffort"),
    ]
}

/// cpuset children start empty; copy the parent's cpus/mems so tasks can join.
fn init_cpuset(dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let target = dir.join(file);
        let current = std::fs::read_to_string(&target).unwrap_or_default();
        if !current.trim().is_empty() {
            continue;
        }
        if let Some(parent) = dir.parent() {
            let value = std::fs::read_to_string(parent.join(file)).map_err(io_err(&target))?;
            std::fs::write(&target, value.trim()).map_err(io_err(&target))?;
        }
    }
    Ok(())
}

fn create(dir: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))
}

/// Creates the QoS hierarchy and sets best-effort cpu shares to the minimum (2).
pub fn ensure_qos_cgroups(
    layout: &CgroupLayout,
    cgroup_root: &str,
    cgroups_per_qos: bool,
) -> Result<(), CgroupError> {
    if !cgroups_per_qos {
        return Ok(());
    }
    let names = qos_cgroup_names(cgroup_root);
    match layout {
        CgroupLayout::V1 { mount } => {
            for controller in V1_CONTROLLERS {
                let base = mount.join(controller);
                if !base.is_dir() {
                    continue;
                }
                for name in &names {
                    let dir = base.join(name);
                    create(&dir)?;
                    if controller == "cpuset" {
                        init_cpuset(&dir)?;
                    }
                }
                if controller == "cpu" {
                    let shares = base.join(&names[2]).join("cpu.shares");
                    std::fs::write(&shares, "2").map_err(io_err(&shares))?;
                }
            }
        }
        CgroupLayout::V2 { mount } => {
            for name in &names {
                let dir = mount.join(name);
                create(&dir)?;
                if let Some(parent) = dir.parent() {
                    let control = parent.join("cgroup.subtree_control");
                    // Enabling may fail for controllers not available here; that is fine.
                    for c in ["+cpu", "+memory", "+pids", "+cpuset", "+hugetlb"] {
                        let _ = std::fs::write(&control, c);
                    }
                }
            }
            let weight = mount.join(&names[2]).join("cpu.weight");
            // v2 weight equivalent of 2 shares.
            let _ = std::fs::write(&weight, "1");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_root() {
        assert_eq!(
            qos_cgroup_names(""),
            ["kubepods", "kubepods/burstable", "kubepods/besteffort"]
        );
        assert_eq!(
            qos_cgroup_names("/"),
            ["kubepods", "kubepods/burstable", "kubepods/besteffort"]
        );
        assert_eq!(
            qos_cgroup_names("/ferro"),
            [
                "ferro/kubepods",
                "ferro/kubepods/burstable",
                "ferro/kubepods/besteffort"
            ]
        );
    }

    #[test]
    fn creates_v1_hierarchy_in_a_fake_mount() {
        let dir = tempfile::tempdir().expect("tempdir");
        for c in ["cpu", "memory", "cpuset"] {
            std::fs::create_dir_all(dir.path().join(c)).expect("mkdir");
        }
        std::fs::write(dir.path().join("cpuset/cpuset.cpus"), "0-1\n").expect("write");
        std::fs::write(dir.path().join("cpuset/cpuset.mems"), "0\n").expect("write");
        // A fake cgroupfs has no pre-created files in new dirs; emulate the kernel's empty cpuset files.
        let layout = CgroupLayout::V1 {
            mount: dir.path().to_path_buf(),
        };
        ensure_qos_cgroups(&layout, "", true).expect("created");
        assert!(dir.path().join("memory/kubepods/besteffort").is_dir());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cpu/kubepods/besteffort/cpu.shares"))
                .expect("shares"),
            "2"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cpuset/kubepods/cpuset.cpus")).expect("cpus"),
            "0-1"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cpuset/kubepods/burstable/cpuset.mems"))
                .expect("mems"),
            "0"
        );
    }
}
