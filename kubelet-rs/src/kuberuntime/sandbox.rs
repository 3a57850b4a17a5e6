//! `generatePodSandboxConfig`: the CRI sandbox for a pod.

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use super::labels;
use crate::cri::api;

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

/// Hostname and domain like upstream `GeneratePodHostNameAndDomain` (hostname truncated to 63).
pub fn pod_hostname(pod: &Pod, cluster_domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut host = spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    if host.len() > 63 {
        host.truncate(63);
        host = host.trim_end_matches(['-', '.']).to_string();
    }
    match spec.subdomain.filter(|s| !s.is_empty()) {
        Some(sub) if !cluster_domain.is_empty() => {
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            format!("{host}.{sub}.{ns}.svc.{cluster_domain}")
        }
        _ => host,
    }
}

/// Inputs that do not come from the pod.
pub struct SandboxParams<'a> {
    pub log_root: &'a Path,
    pub cluster_domain: &'a str,
    pub dns: api::DnsConfig,
    pub cgroup_parent: String,
    pub attempt: u32,
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
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt: p.attempt,
        }),
        // Host-network pods keep the node's UTS namespace, so no hostname.
        hostname: if host_network {
            String::new()
        } else {
            pod_hostname(pod, p.cluster_domain)
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
                supplemental_groups: sc.supplemental_groups.clone().unwrap_or_default(),
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
