//! Volume directories: plain (disk) or tmpfs-backed (upstream emptyDir and the emptyDir
//! wrapper that configMap/secret/downwardAPI/projected volumes are built on).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::error::SetupError;
use super::mount::{is_mount_point, mount_tmpfs};
use crate::resources::value;

/// Backing store of a volume directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Medium {
    Disk,
    /// tmpfs with an optional size in bytes.
    Memory(Option<u64>),
}

/// Upstream `calculateEmptyDirMemorySize`: node allocatable memory, lowered to the pod's
/// memory limit (when every container has one), lowered to `sizeLimit`.
pub(crate) fn memory_size(
    pod: &Pod,
    size_limit: Option<&Quantity>,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Option<u64> {
    let positive = |q: Option<&Quantity>| u64::try_from(value(q)).ok().filter(|v| *v > 0);
    let mut size = positive(node_allocatable.get("memory"));
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    let limits: Option<Vec<u64>> = containers
        .map(|c| {
            positive(
                c.resources
                    .as_ref()
                    .and_then(|r| r.limits.as_ref())
                    .and_then(|l| l.get("memory")),
            )
        })
        .collect();
    let pod_limit = limits.map(|l| l.iter().sum::<u64>()).filter(|s| *s > 0);
    for candidate in [pod_limit, positive(size_limit)].into_iter().flatten() {
        if size.is_none_or(|s| candidate <= s) {
            size = Some(candidate);
        }
    }
    size
}

/// Creates the directory (mode 0777, like upstream emptyDir) and mounts tmpfs on it for
/// `Medium::Memory`. A failed tmpfs mount falls back to disk with a warning.
pub(crate) fn setup_dir(dir: &Path, medium: Medium) -> Result<(), SetupError> {
    std::fs::create_dir_all(dir).map_err(|e| SetupError::fs("create", dir, e))?;
    if let Medium::Memory(size) = medium {
        match is_mount_point(dir) {
            Ok(true) => {}
            Ok(false) => {
                if let Err(e) = mount_tmpfs(dir, size) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot mount tmpfs, using a directory on disk");
                }
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read mount table, using a directory on disk");
            }
        }
    }
    let perms = std::fs::metadata(dir)
        .map_err(|e| SetupError::fs("stat", dir, e))?
        .permissions();
    // Compare permission bits only so tmpfs keeps its sticky bit (as upstream does).
    if perms.mode() & 0o777 != 0o777 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| SetupError::fs("chmod", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};

    fn pod(limits: &[Option<&str>]) -> Pod {
        let containers = limits
            .iter()
            .map(|l| Container {
                resources: l.map(|l| ResourceRequirements {
                    limits: Some(BTreeMap::from([("memory".to_string(), Quantity(l.into()))])),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        Pod {
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sizes_memory_volumes_like_upstream() {
        let alloc = BTreeMap::from([("memory".to_string(), Quantity("1Gi".into()))]);
        let none = BTreeMap::new();
        let q = |s: &str| Quantity(s.into());
        let mi = 1024 * 1024;
        let cases = [
            (pod(&[None]), None, &alloc, Some(1024 * mi)),
            (
                pod(&[Some("64Mi"), Some("64Mi")]),
                None,
                &alloc,
                Some(128 * mi),
            ),
            (
                pod(&[Some("64Mi"), None]),
                Some(q("16Mi")),
                &alloc,
                Some(16 * mi),
            ),
            (pod(&[Some("64Mi")]), Some(q("2Gi")), &alloc, Some(64 * mi)),
            (pod(&[None]), Some(q("8Mi")), &none, Some(8 * mi)),
            (pod(&[None]), None, &none, None),
        ];
        for (i, (p, limit, alloc, want)) in cases.into_iter().enumerate() {
            assert_eq!(memory_size(&p, limit.as_ref(), alloc), want, "case {i}");
        }
    }
}
