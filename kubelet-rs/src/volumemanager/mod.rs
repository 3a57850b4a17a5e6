//! Pod volumes, after upstream `pkg/kubelet/volumemanager` and the in-tree plugins in
//! `pkg/volume/{emptydir,configmap,secret,projected,downwardapi}`.
//!
//! Layout is upstream's: `<root-dir>/pods/<uid>/volumes/kubernetes.io~<plugin>/<volume>`.
//! configMap, secret, downwardAPI and projected volumes are written with upstream's atomic
//! writer (timestamped `..<ts>` directory, `..data` symlink swapped by rename, user-visible
//! symlinks into `..data`); secret, downwardAPI, projected and `medium: Memory` emptyDir
//! volumes live on tmpfs.
//!
//! The pod worker calls [`VolumeManager::setup_pod`] on every sync (which also refreshes
//! configMap/secret content and service-account tokens), passes
//! [`VolumeManager::container_mounts`] to CRI, and [`VolumeManager::teardown_pod`] once
//! the pod's containers are gone. Failures are [`VolumeError`]s whose `Display` is the
//! upstream `FailedMount` event message.

mod atomic_writer;
mod configmap;
mod container_mounts;
mod downwardapi;
mod emptydir;
mod error;
mod key_to_path;
mod manager;
mod mount;
mod ownership;
mod paths;
mod projected;
mod secret;
mod source;
mod subpath;
mod token;

pub use atomic_writer::{AtomicWriter, FileProjection, Payload};
pub use container_mounts::{ContainerMountError, Mount, MountPropagation, container_mounts};
pub use error::{VolumeError, VolumeErrors};
pub use manager::{PodVolumes, VolumeManager, VolumeManagerConfig};
pub use mount::{is_mount_point, mount_tmpfs, unmount};
pub use paths::{PluginKind, pod_dir, pod_volume_dir, pods_dir};
pub use source::{KubeObjectSource, ObjectSource, SourceError};
pub use subpath::SubPathError;
pub use token::{TokenManager, requires_refresh};

/// Upstream `defaultMode` of configMap, secret, downwardAPI and projected volumes.
pub const DEFAULT_MODE: u32 = 0o644;
