//! Pod sandboxes (upstream `kuberuntime_sandbox.go`): `generatePodSandboxConfig` and
//! `createPodSandbox`.

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, PodSpec, SecurityContext};

use super::dns::pod_dns;
use super::hostname::{HostnameError, kernel_hostname};
use super::labels;
use super::manager::{RuntimeManager, RuntimeSettings};
use super::runtime_status::PodRuntimeStatus;
use super::sync_result::SyncError;
use crate::cri::api;
use crate::events::{pod_ref, reasons};
use component_base::events::EventType;

/// `/var/log/pods/<ns>_<name>_<uid>`.
pub fn pod_log_dir(root: &Path, pod: &Pod) -> std::path::PathBuf {
    let m = &pod.metadata;
    root.join(format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    ))
}

/// Inputs that do not come from the pod.
pub struct SandboxParams<'a> {
    pub log_root: &'a Path,
    /// The pod's kernel hostname ([`super::hostname::kernel_hostname`]).
    pub hostname: String,
    pub dns: api::DnsConfig,
    pub cgroup_parent: String,
    pub attempt: u32,
}

/// Upstream `kubecontainer.HasPrivilegedContainer`: any init, regular or
/// ephemeral container with `securityContext.privileged`.
pub fn has_privileged_container(spec: &PodSpec) -> bool {
    let privileged = |sc: Option<&SecurityContext>| sc.and_then(|sc| sc.privileged) == Some(true);
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .any(|c| privileged(c.security_context.as_ref()))
        || spec
            .ephemeral_containers
            .iter()
            .flatten()
            .any(|c| privileged(c.security_context.as_ref()))
}

pub fn generate_pod_sandbox_config(pod: &Pod, p: &SandboxParams<'_>) -> api::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let mode = |on: Option<bool>| {
        if on.unwrap_or(false) {
            api::NamespaceMode::Node as i32
        } else {
            api::NamespaceMode::Pod as i32
        }
    };
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|port| port.host_port.unwrap_or(0) > 0 || !host_network)
        .map(|port| api::PortMapping {
            protocol: match port.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp as i32,
                Some("SCTP") => api::Protocol::Sctp as i32,
                _ => api::Protocol::Tcp as i32,
            },
            container_port: port.container_port,
            host_port: port.host_port.unwrap_or(0),
            host_ip: port.host_ip.clone().unwrap_or_default(),
        })
        .filter(|pm| pm.host_port > 0)
        .collect();
    let sc = spec.security_context.clone().unwrap_or_default();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: crate::types::pod_uid(pod),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt: p.attempt,
        }),
        // Host-network pods keep the node's UTS namespace, so no hostname.
        hostname: if host_network {
            String::new()
        } else {
            p.hostname.clone()
        },
        log_directory: pod_log_dir(p.log_root, pod).display().to_string(),
        dns_config: (!host_network || !p.dns.servers.is_empty()).then(|| p.dns.clone()),
        port_mappings,
        labels: labels::sandbox_labels(pod),
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect::<HashMap<_, _>>(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: p.cgroup_parent.clone(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: mode(spec.host_network),
                    pid: if spec.host_pid.unwrap_or(false) {
                        api::NamespaceMode::Node as i32
                    } else if spec.share_process_namespace.unwrap_or(false) {
                        api::NamespaceMode::Pod as i32
                    } else {
                        api::NamespaceMode::Container as i32
                    },
                    ipc: mode(spec.host_ipc),
                    ..Default::default()
                }),
                run_as_user: sc.run_as_user.map(|v| api::Int64Value { value: v }),
                run_as_group: sc.run_as_group.map(|v| api::Int64Value { value: v }),
                // fsGroup first, as upstream's generatePodSandboxLinuxConfig.
                supplemental_groups: sc
                    .fs_group
                    .into_iter()
                    .chain(sc.supplemental_groups.clone().unwrap_or_default())
                    .collect(),
                // The runtime refuses a privileged container in an
                // unprivileged sandbox.
                privileged: has_privileged_container(&spec),
                ..Default::default()
            }),
            sysctls: sc
                .sysctls
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|s| (s.name, s.value))
                .collect(),
            ..Default::default()
        }),
        windows: None,
    }
}

/// The cgroup parent for the pod sandbox under the QoS hierarchy.
pub fn cgroup_parent(settings: &RuntimeSettings, pod: &Pod) -> String {
    if !settings.cgroups_per_qos {
        return String::new();
    }
    let root = settings.cgroup_root.trim_end_matches('/');
    let qos = match crate::qos::pod_qos(pod) {
        crate::qos::GUARANTEED => String::new(),
        crate::qos::BURSTABLE => "/burstable".into(),
        _ => "/besteffort".into(),
    };
    format!("{root}/kubepods{qos}/pod{}", crate::types::pod_uid(pod))
}

impl RuntimeManager {
    /// `generatePodSandboxConfig`; fails only on a hostname the kernel cannot take.
    pub(super) fn sandbox_config(
        &self,
        pod: &Pod,
        attempt: u32,
    ) -> Result<api::PodSandboxConfig, HostnameError> {
        let params = SandboxParams {
            log_root: &self.settings.log_root,
            hostname: kernel_hostname(pod, &self.settings.cluster_dns.domain)?,
            dns: pod_dns(pod, &self.settings.cluster_dns, &self.settings.host_resolv),
            cgroup_parent: cgroup_parent(&self.settings, pod),
            attempt,
        };
        Ok(generate_pod_sandbox_config(pod, &params))
    }

    /// `createPodSandbox`: (re)creates the sandbox; returns its id and the pod IPs it got.
    pub(super) async fn create_sandbox(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        config: &api::PodSandboxConfig,
    ) -> Result<(String, Vec<String>), SyncError> {
        if !status.sandboxes.is_empty() {
            self.events.record(
                &pod_ref(pod),
                EventType::Normal,
                reasons::SANDBOX_CHANGED,
                "Pod sandbox changed, it will be killed and re-created.",
            );
        }
        std::fs::create_dir_all(pod_log_dir(&self.settings.log_root, pod))
            .map_err(SyncError::LogDir)?;
        let id = match self
            .runtime
            .run_pod_sandbox(config.clone(), String::new())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let err = SyncError::CreateSandbox(e);
                self.events.record(
                    &pod_ref(pod),
                    EventType::Warning,
                    reasons::FAILED_CREATE_POD_SANDBOX,
                    &err.to_string(),
                );
                return Err(err);
            }
        };
        let pod_ips = match self.runtime.pod_sandbox_status(&id).await {
            Ok(s) => PodRuntimeStatus {
                sandboxes: vec![s],
                containers: vec![],
            }
            .pod_ips(),
            Err(_) => Vec::new(),
        };
        Ok((id, pod_ips))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, EphemeralContainer};

    use super::*;

    fn with_privileged(privileged: Option<bool>) -> Option<SecurityContext> {
        Some(SecurityContext {
            privileged,
            ..SecurityContext::default()
        })
    }

    #[test]
    fn a_privileged_container_of_any_kind_makes_the_sandbox_privileged() {
        let plain = Container::default();
        let privileged = Container {
            security_context: with_privileged(Some(true)),
            ..Container::default()
        };
        let unprivileged = Container {
            security_context: with_privileged(Some(false)),
            ..Container::default()
        };
        let spec = |init: Vec<Container>, app: Vec<Container>| PodSpec {
            init_containers: Some(init),
            containers: app,
            ..PodSpec::default()
        };
        assert!(!has_privileged_container(&spec(
            vec![],
            vec![plain.clone()]
        )));
        assert!(!has_privileged_container(&spec(
            vec![unprivileged.clone()],
            vec![plain.clone()]
        )));
        assert!(has_privileged_container(&spec(
            vec![],
            vec![plain.clone(), privileged.clone()]
        )));
        assert!(has_privileged_container(&spec(
            vec![privileged],
            vec![plain.clone()]
        )));
        let debug = PodSpec {
            containers: vec![plain],
            ephemeral_containers: Some(vec![EphemeralContainer {
                security_context: with_privileged(Some(true)),
                ..EphemeralContainer::default()
            }]),
            ..PodSpec::default()
        };
        assert!(has_privileged_container(&debug));
    }
}
