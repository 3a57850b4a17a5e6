//! Sets up, refreshes and tears down a pod's volumes (upstream volume manager +
//! `kubelet_volumes.go` orphan cleanup).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, HostPathVolumeSource, Pod, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::atomic_writer::{AtomicWriter, Payload};
use super::container_mounts::{ContainerMountError, Mount, container_mounts};
use super::emptydir::{Medium, memory_size, setup_dir};
use super::error::{SetupError, VolumeError, VolumeErrors};
use super::mount::{mount_points, unmount};
use super::ownership::{fs_group, set_volume_ownership};
use super::paths::{PluginKind, pod_dir, pod_volume_dir, pods_dir};
use super::projected::{self, ProjectionContext};
use super::source::ObjectSource;
use super::token::TokenManager;
use super::{DEFAULT_MODE, configmap, downwardapi, secret};

#[derive(Debug, Clone)]
pub struct VolumeManagerConfig {
    /// `--root-dir` (default `/var/lib/kubelet`).
    pub root_dir: PathBuf,
    /// Node allocatable, for tmpfs sizes and downward-API limits without a container limit.
    pub node_allocatable: BTreeMap<String, Quantity>,
}

/// Host directories of a pod's volumes, by volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    pub volumes: BTreeMap<String, PathBuf>,
}

pub struct VolumeManager {
    config: VolumeManagerConfig,
    objects: Arc<dyn ObjectSource>,
    tokens: TokenManager,
}

fn pod_ref(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

impl VolumeManager {
    pub fn new(config: VolumeManagerConfig, objects: Arc<dyn ObjectSource>) -> Self {
        VolumeManager {
            config,
            objects,
            tokens: TokenManager::default(),
        }
    }

    pub fn root_dir(&self) -> &Path {
        &self.config.root_dir
    }

    /// Mounts and (re)writes every volume of the pod. Idempotent: call it on every pod
    /// sync and configMap/secret changes and token refreshes reach the files.
    pub async fn setup_pod(&self, pod: &Pod) -> Result<PodVolumes, VolumeErrors> {
        let mut result = PodVolumes::default();
        let mut errors = Vec::new();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            match self.setup_volume(pod, volume).await {
                Ok(path) => {
                    result.volumes.insert(volume.name.clone(), path);
                }
                Err(e) => {
                    let error = VolumeError::new(&volume.name, e.to_string());
                    tracing::warn!(pod = %pod_ref(pod), %error, "volume setup failed");
                    errors.push(error);
                }
            }
        }
        if errors.is_empty() {
            Ok(result)
        } else {
            Err(VolumeErrors(errors))
        }
    }

    /// Mounts for CRI `CreateContainer`; call after a successful [`Self::setup_pod`].
    pub fn container_mounts(
        &self,
        pod: &Pod,
        container: &Container,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<Mount>, ContainerMountError> {
        container_mounts(&self.config.root_dir, pod, container, env)
    }

    async fn setup_volume(&self, pod: &Pod, volume: &Volume) -> Result<PathBuf, SetupError> {
        if let Some(host) = &volume.host_path {
            return setup_host_path(host);
        }
        let uid = pod.metadata.uid.as_deref().ok_or(SetupError::NoPodUid)?;
        let kind = PluginKind::of(volume).ok_or(SetupError::UnsupportedVolumeType)?;
        let dir = pod_volume_dir(&self.config.root_dir, uid, kind, &volume.name);
        let alloc = &self.config.node_allocatable;
        let tmpfs = Medium::Memory(memory_size(pod, None, alloc));
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let payload = match kind {
            PluginKind::EmptyDir => {
                let spec = volume
                    .empty_dir
                    .as_ref()
                    .ok_or(SetupError::MissingSource("emptyDir"))?;
                let medium = match spec.medium.as_deref().unwrap_or_default() {
                    "" => Medium::Disk,
                    "Memory" => Medium::Memory(memory_size(pod, spec.size_limit.as_ref(), alloc)),
                    other => {
                        return Err(SetupError::UnsupportedMedium(other.to_string()));
                    }
                };
                let fresh = std::fs::symlink_metadata(&dir).is_err();
                setup_dir(&dir, medium)?;
                // Upstream re-owns an emptyDir when it mounts it, i.e. once.
                if fresh && let Some(group) = fs_group(pod) {
                    set_volume_ownership(&dir, group, false)
                        .map_err(|e| SetupError::fs("set ownership of", &dir, e))?;
                }
                return Ok(dir);
            }
            PluginKind::ConfigMap => {
                let spec = volume
                    .config_map
                    .as_ref()
                    .ok_or(SetupError::MissingSource("configMap"))?;
                configmap::set_up(self.objects.as_ref(), namespace, spec, &dir).await?
            }
            PluginKind::Secret => {
                let spec = volume
                    .secret
                    .as_ref()
                    .ok_or(SetupError::MissingSource("secret"))?;
                secret::set_up(self.objects.as_ref(), namespace, spec, &dir, tmpfs).await?
            }
            PluginKind::DownwardApi => {
                let spec = volume
                    .downward_api
                    .as_ref()
                    .ok_or(SetupError::MissingSource("downwardAPI"))?;
                setup_dir(&dir, tmpfs)?;
                let mode = spec.default_mode.unwrap_or(DEFAULT_MODE as i32);
                downwardapi::collect(spec.items.as_deref().unwrap_or_default(), pod, mode, alloc)?
            }
            PluginKind::Projected => {
                let spec = volume
                    .projected
                    .as_ref()
                    .ok_or(SetupError::MissingSource("projected"))?;
                let ctx = ProjectionContext {
                    pod,
                    objects: self.objects.as_ref(),
                    tokens: &self.tokens,
                    node_allocatable: alloc,
                };
                // Collect first so a failing source leaves no half-made volume behind.
                let payload = projected::collect(spec, &ctx).await?;
                setup_dir(&dir, tmpfs)?;
                payload
            }
        };
        let wrote = write_payload(
            &dir,
            &payload,
            &format!("pod {} volume {}", pod_ref(pod), volume.name),
        )?;
        // New data (and the first write) is re-owned for fsGroup; these volumes are
        // read-only.
        if wrote && let Some(group) = fs_group(pod) {
            set_volume_ownership(&dir, group, true)
                .map_err(|e| SetupError::fs("set ownership of", &dir, e))?;
        }
        Ok(dir)
    }

    /// Unmounts everything below the pod's directory and removes it, forgetting its tokens.
    pub fn teardown_pod(&self, pod_uid: &str) -> Result<(), VolumeError> {
        let dir = pod_dir(&self.config.root_dir, pod_uid);
        self.tokens.forget_pod(pod_uid);
        let fail = |msg: String| VolumeError {
            volume: pod_uid.to_string(),
            message: msg,
        };
        let mut mounted: Vec<PathBuf> = mount_points()
            .map_err(|e| fail(format!("cannot read mount table: {e}")))?
            .into_iter()
            .filter(|p| p.starts_with(&dir))
            .collect();
        // Deepest first, so nested mounts go before their parents.
        mounted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for path in &mounted {
            unmount(path).map_err(|e| {
                fail(format!(
                    "UnmountVolume.TearDown failed for {}: {e}",
                    path.display()
                ))
            })?;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(fail(format!("failed to remove {}: {e}", dir.display()))),
        }
    }

    /// Tears down pod directories of pods that are no longer known (upstream
    /// `cleanupOrphanedPodDirs`). Returns the failures; the rest were removed.
    pub fn cleanup_orphaned_pods(&self, active_pod_uids: &HashSet<String>) -> Vec<VolumeError> {
        let entries = match std::fs::read_dir(pods_dir(&self.config.root_dir)) {
            Ok(e) => e,
            Err(_) => return Vec::new(), // nothing was ever set up
        };
        let mut errors = Vec::new();
        for entry in entries.flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if active_pod_uids.contains(&uid) {
                continue;
            }
            tracing::info!(pod_uid = %uid, "cleaning up orphaned pod directory");
            if let Err(e) = self.teardown_pod(&uid) {
                errors.push(e);
            }
        }
        errors
    }
}

/// Writes the payload; `true` when new data was written.
fn write_payload(dir: &Path, payload: &Payload, context: &str) -> Result<bool, SetupError> {
    AtomicWriter::new(dir, context)
        .write(payload)
        .map_err(|source| SetupError::Write {
            path: dir.display().to_string(),
            source,
        })
}

/// hostPath `type` checks (upstream `pkg/volume/hostpath`).
fn setup_host_path(source: &HostPathVolumeSource) -> Result<PathBuf, SetupError> {
    use std::os::unix::fs::FileTypeExt;
    let path = PathBuf::from(&source.path);
    let kind = source.type_.as_deref().unwrap_or_default();
    let meta = std::fs::metadata(&path);
    let fail = |what: &'static str| {
        Err(SetupError::HostPathType {
            path: source.path.clone(),
            what,
        })
    };
    match kind {
        "" => {}
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(&path).map_err(|e| SetupError::fs("create", &path, e))?;
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .map_err(SetupError::Io)?;
            } else if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                return fail("directory");
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(SetupError::Io)?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| SetupError::fs("create", &path, e))?;
            } else if !meta.as_ref().is_ok_and(|m| m.is_file()) {
                return fail("file");
            }
        }
        "Directory" if !meta.as_ref().is_ok_and(|m| m.is_dir()) => return fail("directory"),
        "File" if !meta.as_ref().is_ok_and(|m| m.is_file()) => return fail("file"),
        "Socket" if !meta.as_ref().is_ok_and(|m| m.file_type().is_socket()) => {
            return fail("socket file");
        }
        "CharDevice" if !meta.as_ref().is_ok_and(|m| m.file_type().is_char_device()) => {
            return fail("character device");
        }
        "BlockDevice" if !meta.as_ref().is_ok_and(|m| m.file_type().is_block_device()) => {
            return fail("block device");
        }
        _ => {}
    }
    Ok(path)
}
