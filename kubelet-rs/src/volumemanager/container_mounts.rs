//! A container's `volumeMounts` as host-path mounts for CRI (upstream `makeMounts`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use super::paths::{PluginKind, pod_volume_dir};
use super::subpath::{self, SubPathError};

/// CRI `MountPropagation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountPropagation {
    /// `None` in the API (the default).
    Private,
    HostToContainer,
    Bidirectional,
}

/// One bind mount the runtime should set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub container_path: String,
    pub host_path: PathBuf,
    pub read_only: bool,
    pub propagation: MountPropagation,
}

/// Why a container's mounts cannot be made; `Display` is upstream's message, which
/// becomes the `CreateContainerConfigError` waiting message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerMountError {
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    NoVolume { volume: String, container: String },
    #[error("volume {0:?} has a type kubelet-rs does not support")]
    Unsupported(String),
    #[error(transparent)]
    SubPath(#[from] SubPathError),
}

/// Where a volume lives on the host.
pub(crate) fn volume_host_path(root: &Path, pod_uid: &str, volume: &Volume) -> Option<PathBuf> {
    if let Some(host) = &volume.host_path {
        return Some(PathBuf::from(&host.path));
    }
    PluginKind::of(volume).map(|kind| pod_volume_dir(root, pod_uid, kind, &volume.name))
}

/// Resolves the container's volume mounts; `env` is the container's final environment,
/// which `subPathExpr` expands from. Creates missing subPath directories.
pub fn container_mounts(
    root: &Path,
    pod: &Pod,
    container: &Container,
    env: &BTreeMap<String, String>,
) -> Result<Vec<Mount>, ContainerMountError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let volumes: HashMap<&str, &Volume> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .map(|v| (v.name.as_str(), v))
        .collect();
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let volume =
            volumes
                .get(vm.name.as_str())
                .ok_or_else(|| ContainerMountError::NoVolume {
                    volume: vm.name.clone(),
                    container: container.name.clone(),
                })?;
        let sub_path = subpath::sub_path(vm, env)?;
        let base = volume_host_path(root, uid, volume)
            .ok_or_else(|| ContainerMountError::Unsupported(vm.name.clone()))?;
        let host_path = if sub_path.is_empty() {
            base
        } else {
            subpath::prepare(&base, &sub_path, &vm.name, &container.name)?
        };
        let forced_read_only = matches!(
            PluginKind::of(volume),
            Some(
                PluginKind::ConfigMap
                    | PluginKind::Secret
                    | PluginKind::DownwardApi
                    | PluginKind::Projected
            )
        );
        let propagation = match vm.mount_propagation.as_deref() {
            Some("HostToContainer") => MountPropagation::HostToContainer,
            Some("Bidirectional") => MountPropagation::Bidirectional,
            _ => MountPropagation::Private,
        };
        mounts.push(Mount {
            container_path: vm.mount_path.clone(),
            host_path,
            read_only: vm.read_only == Some(true) || forced_read_only,
            propagation,
        });
    }
    Ok(mounts)
}
