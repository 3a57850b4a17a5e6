//! What the kubelet derives from its configuration and the machine before the rooms
//! start (upstream `NewMainKubelet` / `registerWithAPIServer`): node IPs, allocatable,
//! the runtime manager's settings, and node registration.

use std::time::Duration;

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::kubeletconfig::KubeletConfig;
use crate::kuberuntime::dns::{ClusterDns, parse_resolv_conf};
use crate::kuberuntime::manager::RuntimeSettings;
use crate::nodestatus::machine::MachineInfo;
use crate::nodestatus::{netaddr, register, setters};

/// `--node-ip`, or the detected address when unset.
pub(super) fn host_ips(config: &KubeletConfig) -> Vec<String> {
    if config.flags.node_ips.is_empty() {
        netaddr::detect_node_ip()
            .into_iter()
            .map(|ip| ip.to_string())
            .collect()
    } else {
        config
            .flags
            .node_ips
            .iter()
            .map(|ip| ip.to_string())
            .collect()
    }
}

pub(super) fn allocatable(config: &KubeletConfig, machine: &MachineInfo) -> setters::ResourceMilli {
    let cfg = &config.configuration;
    let capacity = setters::capacity(machine, cfg.max_pods);
    setters::allocatable(
        &capacity,
        &cfg.kube_reserved,
        &cfg.system_reserved,
        &cfg.eviction_hard,
    )
}

pub(super) fn runtime_settings(
    config: &KubeletConfig,
    machine: &MachineInfo,
    host_ips: &[String],
) -> RuntimeSettings {
    let cfg = &config.configuration;
    let allocatable = allocatable(config, machine);
    RuntimeSettings {
        log_root: config.flags.pod_log_root.clone(),
        cluster_dns: ClusterDns {
            servers: cfg.cluster_dns.clone(),
            domain: cfg.cluster_domain.clone(),
        },
        host_resolv: parse_resolv_conf(
            &std::fs::read_to_string(&cfg.resolv_conf).unwrap_or_default(),
        ),
        memory_capacity: machine.memory_capacity,
        cpu_cfs_quota: cfg.cpu_cfs_quota,
        host_ips: host_ips.to_vec(),
        node_allocatable: setters::to_quantities(&allocatable)
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect(),
        cgroups_per_qos: cfg.cgroups_per_qos,
        cgroup_root: cfg.cgroup_root.clone(),
    }
}

/// `registerWithAPIServer`: retries with back-off (capped at 7s) until registered or cancelled.
pub(super) async fn register_until_done(
    client: &Client,
    config: &KubeletConfig,
    shutdown: &CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match register::register_node(client, config).await {
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, node = %config.node_name, "Unable to register node with API server")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(7));
    }
}
