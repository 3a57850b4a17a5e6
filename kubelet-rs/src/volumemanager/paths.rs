//! Where pod volumes live on disk (upstream `kubelet_getters.go` + plugin names).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Volume;

/// The in-tree plugins this kubelet implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    EmptyDir,
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
}

impl PluginKind {
    /// Upstream plugin name (`kubernetes.io/empty-dir`).
    pub fn plugin_name(self) -> &'static str {
        match self {
            PluginKind::EmptyDir => "kubernetes.io/empty-dir",
            PluginKind::ConfigMap => "kubernetes.io/configmap",
            PluginKind::Secret => "kubernetes.io/secret",
            PluginKind::DownwardApi => "kubernetes.io/downward-api",
            PluginKind::Projected => "kubernetes.io/projected",
        }
    }

    /// Directory name: the plugin name with `/` escaped to `~` (upstream `EscapeQualifiedName`).
    pub fn dir_name(self) -> String {
        self.plugin_name().replace('/', "~")
    }

    /// The plugin that serves `volume` (upstream `FindPluginBySpec`); `None` for hostPath
    /// (no pod directory) and for types this kubelet does not implement.
    pub fn of(volume: &Volume) -> Option<PluginKind> {
        if volume.empty_dir.is_some() {
            Some(PluginKind::EmptyDir)
        } else if volume.config_map.is_some() {
            Some(PluginKind::ConfigMap)
        } else if volume.secret.is_some() {
            Some(PluginKind::Secret)
        } else if volume.downward_api.is_some() {
            Some(PluginKind::DownwardApi)
        } else if volume.projected.is_some() {
            Some(PluginKind::Projected)
        } else {
            None
        }
    }

    /// Every directory name, for orphan cleanup.
    pub const ALL: [PluginKind; 5] = [
        PluginKind::EmptyDir,
        PluginKind::ConfigMap,
        PluginKind::Secret,
        PluginKind::DownwardApi,
        PluginKind::Projected,
    ];
}

pub fn pods_dir(root: &Path) -> PathBuf {
    root.join("pods")
}

pub fn pod_dir(root: &Path, pod_uid: &str) -> PathBuf {
    pods_dir(root).join(pod_uid)
}

pub fn pod_volume_dir(root: &Path, pod_uid: &str, kind: PluginKind, volume: &str) -> PathBuf {
    pod_dir(root, pod_uid)
        .join("volumes")
        .join(kind.dir_name())
        .join(volume)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_like_upstream() {
        let root = Path::new("/var/lib/kubelet");
        let cases = [
            (
                PluginKind::EmptyDir,
                "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/v",
            ),
            (
                PluginKind::ConfigMap,
                "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~configmap/v",
            ),
            (
                PluginKind::Secret,
                "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~secret/v",
            ),
            (
                PluginKind::DownwardApi,
                "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~downward-api/v",
            ),
            (
                PluginKind::Projected,
                "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~projected/v",
            ),
        ];
        for (kind, want) in cases {
            assert_eq!(pod_volume_dir(root, "u1", kind, "v"), PathBuf::from(want));
        }
    }
}
