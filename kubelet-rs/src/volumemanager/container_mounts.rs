//! A container's `volumeMounts` as host-path mounts for CRI (upstream `makeMounts`).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use super::paths::{PluginKind, pod_volume_dir};

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContainerMountError(pub String);

/// Where a volume lives on the host.
pub(crate) fn volume_host_path(root: &Path, pod_uid: &str, volume: &Volume) -> Option<PathBuf> {
    if let Some(host) = &volume.host_path {
        return Some(PathBuf::from(&host.path));
    }
    PluginKind::of(volume).map(|kind| pod_volume_dir(root, pod_uid, kind, &volume.name))
}

/// `$(VAR)` expansion of `subPathExpr` from the container's literal env values.
fn expand(expr: &str, env: &HashMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                let name = &after[..end];
                match env.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 3 + end]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn check_sub_path(sub_path: &str) -> Result<(), ContainerMountError> {
    let path = Path::new(sub_path);
    if path.is_absolute() {
        return Err(ContainerMountError(format!(
            "error SubPath `{sub_path}` must not be an absolute path"
        )));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(ContainerMountError(format!(
            "error SubPath `{sub_path}` must not contain '..'"
        )));
    }
    Ok(())
}

/// Resolves the container's volume mounts; creates missing subPath directories.
pub fn container_mounts(
    root: &Path,
    pod: &Pod,
    container: &Container,
) -> Result<Vec<Mount>, ContainerMountError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let volumes: HashMap<&str, &Volume> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .map(|v| (v.name.as_str(), v))
        .collect();
    let env: HashMap<&str, &str> = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.as_deref().map(|v| (e.name.as_str(), v)))
        .collect();
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let volume = volumes.get(vm.name.as_str()).ok_or_else(|| {
            ContainerMountError(format!(
                "cannot find volume \"{}\" to mount into container \"{}\"",
                vm.name, container.name
            ))
        })?;
        let base = volume_host_path(root, uid, volume).ok_or_else(|| {
            ContainerMountError(format!(
                "volume \"{}\" has a type kubelet-rs does not support",
                vm.name
            ))
        })?;
        let sub_path = match (&vm.sub_path, &vm.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => p.clone(),
            (_, Some(expr)) if !expr.is_empty() => expand(expr, &env),
            _ => String::new(),
        };
        let host_path = if sub_path.is_empty() {
            base
        } else {
            check_sub_path(&sub_path)?;
            let full = base.join(&sub_path);
            if std::fs::symlink_metadata(&full).is_err() {
                std::fs::create_dir_all(&full).map_err(|e| {
                    ContainerMountError(format!("failed to create subPath directory for volumeMount \"{}\" of container \"{}\": {e}", vm.name, container.name))
                })?;
            }
            // A symlink inside the volume must not lead the mount out of it.
            let resolved = full.canonicalize().map_err(|e| {
                ContainerMountError(format!("failed to resolve subPath {}: {e}", full.display()))
            })?;
            let base_resolved = base.canonicalize().map_err(|e| {
                ContainerMountError(format!("failed to resolve {}: {e}", base.display()))
            })?;
            if !resolved.starts_with(&base_resolved) {
                return Err(ContainerMountError(format!(
                    "subpath {:?} not within volume path {:?}",
                    resolved, base_resolved
                )));
            }
            resolved
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_sub_path_expr() {
        let env = HashMap::from([("POD", "web-0")]);
        assert_eq!(expand("logs/$(POD)/x", &env), "logs/web-0/x");
        assert_eq!(expand("$(MISSING)", &env), "$(MISSING)");
        assert!(check_sub_path("../etc").is_err());
        assert!(check_sub_path("/etc").is_err());
        assert!(check_sub_path("a/b").is_ok());
    }
}
