//! A container's CRI mounts (upstream kubelet_pods.go `makeMounts` and
//! kuberuntime_container.go `makeMounts`): its volume mounts (with subPath), the
//! kubelet-managed `/etc/hosts`, and the termination-log file.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::env::CREATE_CONTAINER_CONFIG_ERROR;
use super::etc_hosts::{
    ETC_HOSTS_PATH, HostsFileInputs, ensure_hosts_file, etc_hosts_path, should_mount_hosts_file,
};
use super::hostname::pod_hostname_and_domain;
use super::manager::{RuntimeManager, format_pod};
use super::sync_result::StartFailure;
use super::termination_message::{create_termination_log_file, pod_container_dir};
use crate::cri::api;
use crate::volumemanager::{MountPropagation, pod_dir};

/// Volume mounts → CRI mounts.
fn cri_mounts(mounts: Vec<crate::volumemanager::Mount>) -> Vec<api::Mount> {
    mounts
        .into_iter()
        .map(|m| api::Mount {
            container_path: m.container_path,
            host_path: m.host_path.display().to_string(),
            readonly: m.read_only,
            propagation: match m.propagation {
                MountPropagation::Private => api::MountPropagation::PropagationPrivate,
                MountPropagation::HostToContainer => {
                    api::MountPropagation::PropagationHostToContainer
                }
                MountPropagation::Bidirectional => api::MountPropagation::PropagationBidirectional,
            } as i32,
            ..Default::default()
        })
        .collect()
}

fn config_error(message: String) -> StartFailure {
    StartFailure {
        reason: CREATE_CONTAINER_CONFIG_ERROR.into(),
        message,
    }
}

impl RuntimeManager {
    /// All mounts of one container start. `env` is its final environment (for
    /// `subPathExpr`), `pod_ips` the sandbox's IPs (for `/etc/hosts`). Without a volume
    /// manager (tests without a root dir) the container gets no mounts.
    pub(super) fn make_mounts(
        &self,
        pod: &Pod,
        c: &Container,
        env: &BTreeMap<String, String>,
        pod_ips: &[String],
    ) -> Result<Vec<api::Mount>, StartFailure> {
        let Some(volumes) = &self.volumes else {
            return Ok(Vec::new());
        };
        let mut mounts = cri_mounts(
            volumes
                .container_mounts(pod, c, env)
                .map_err(|e| config_error(e.to_string()))?,
        );
        let dir = pod_dir(volumes.root_dir(), &crate::types::pod_uid(pod));
        if should_mount_hosts_file(pod, c, pod_ips) {
            mounts.push(self.hosts_mount(pod, &dir, pod_ips)?);
        }
        if let Some(path) = c
            .termination_message_path
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            // Upstream logs a failure here and starts the container without the file.
            match create_termination_log_file(&pod_container_dir(&dir, &c.name)) {
                Ok(host) => mounts.push(api::Mount {
                    container_path: path.to_string(),
                    host_path: host.display().to_string(),
                    ..Default::default()
                }),
                Err(e) => tracing::error!(
                    pod = %format_pod(pod), container = %c.name, error = %e,
                    "error on creating termination-log file"
                ),
            }
        }
        Ok(mounts)
    }

    /// `makeHostsMount`: (re)writes `<pod dir>/etc-hosts` and mounts it read-write.
    fn hosts_mount(
        &self,
        pod: &Pod,
        dir: &Path,
        pod_ips: &[String],
    ) -> Result<api::Mount, StartFailure> {
        let (hostname, domain) = pod_hostname_and_domain(pod, &self.settings.cluster_dns.domain)
            .map_err(|e| config_error(e.to_string()))?;
        let spec = pod.spec.as_ref();
        let inputs = HostsFileInputs {
            pod_ips,
            hostname: &hostname,
            domain: &domain,
            aliases: spec
                .and_then(|s| s.host_aliases.as_deref())
                .unwrap_or_default(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            node_hosts: Path::new(ETC_HOSTS_PATH),
        };
        let path = etc_hosts_path(dir);
        std::fs::create_dir_all(dir)
            .and_then(|()| ensure_hosts_file(&path, &inputs))
            .map_err(|e| config_error(format!("failed to write {}: {e}", path.display())))?;
        Ok(api::Mount {
            container_path: ETC_HOSTS_PATH.to_string(),
            host_path: path.display().to_string(),
            readonly: false,
            selinux_relabel: true,
            ..Default::default()
        })
    }
}
