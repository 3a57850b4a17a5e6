//! `KubeletConfiguration` (`kubelet.config.k8s.io/v1beta1`) with upstream defaults,
//! plus the values that exist only as flags (`--hostname-override`, `--node-ip`, …).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use component_base::config::{ComponentConfig, duration_serde};
use k8s_openapi::api::core::v1::Taint;
use serde::{Deserialize, Serialize};

/// The kubelet's config file, field names and defaults as upstream v1beta1.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletConfiguration {
    pub api_version: String,
    pub kind: String,
    pub enable_server: bool,
    pub static_pod_path: String,
    #[serde(with = "duration_serde")]
    pub sync_frequency: Duration,
    #[serde(with = "duration_serde")]
    pub file_check_frequency: Duration,
    pub address: String,
    pub port: u16,
    pub read_only_port: u16,
    pub tls_cert_file: String,
    pub tls_private_key_file: String,
    pub authentication: KubeletAuthentication,
    pub authorization: KubeletAuthorization,
    pub registry_pull_qps: i32,
    pub registry_burst: i32,
    pub event_record_qps: i32,
    pub event_burst: i32,
    pub enable_debugging_handlers: bool,
    pub healthz_port: u16,
    pub healthz_bind_address: String,
    pub oom_score_adj: i32,
    pub cluster_domain: String,
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Vec<String>,
    #[serde(with = "duration_serde")]
    pub streaming_connection_idle_timeout: Duration,
    #[serde(with = "duration_serde")]
    pub node_status_update_frequency: Duration,
    #[serde(with = "duration_serde")]
    pub node_status_report_frequency: Duration,
    pub node_lease_duration_seconds: i32,
    #[serde(with = "duration_serde")]
    pub image_minimum_gc_age: Duration,
    #[serde(with = "duration_serde")]
    pub image_maximum_gc_age: Duration,
    pub image_gc_high_threshold_percent: i32,
    pub image_gc_low_threshold_percent: i32,
    #[serde(with = "duration_serde")]
    pub volume_stats_agg_period: Duration,
    pub cgroups_per_qos: bool,
    pub cgroup_driver: String,
    pub cgroup_root: String,
    pub cpu_manager_policy: String,
    #[serde(rename = "cpuCFSQuota")]
    pub cpu_cfs_quota: bool,
    #[serde(rename = "cpuCFSQuotaPeriod", with = "duration_serde")]
    pub cpu_cfs_quota_period: Duration,
    #[serde(with = "duration_serde")]
    pub runtime_request_timeout: Duration,
    pub hairpin_mode: String,
    pub max_pods: i32,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: String,
    pub pod_pids_limit: i64,
    pub resolv_conf: String,
    pub serialize_image_pulls: bool,
    pub max_parallel_image_pulls: Option<i32>,
    pub eviction_hard: BTreeMap<String, String>,
    pub eviction_soft: BTreeMap<String, String>,
    #[serde(with = "duration_serde")]
    pub eviction_pressure_transition_period: Duration,
    pub max_open_files: i64,
    pub content_type: String,
    #[serde(rename = "kubeAPIQPS")]
    pub kube_api_qps: i32,
    #[serde(rename = "kubeAPIBurst")]
    pub kube_api_burst: i32,
    pub system_reserved: BTreeMap<String, String>,
    pub kube_reserved: BTreeMap<String, String>,
    pub enforce_node_allocatable: Vec<String>,
    pub fail_swap_on: bool,
    pub fail_cgroup_v1: bool,
    pub container_log_max_size: String,
    pub container_log_max_files: i32,
    pub container_runtime_endpoint: String,
    pub image_service_endpoint: String,
    pub register_node: bool,
    pub register_with_taints: Vec<Taint>,
    pub feature_gates: BTreeMap<String, bool>,
    #[serde(with = "duration_serde")]
    pub shutdown_grace_period: Duration,
    pub local_storage_capacity_isolation: bool,
}

/// `authentication` section of the config file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletAuthentication {
    pub x509: KubeletX509Authentication,
    pub webhook: KubeletWebhookAuthentication,
    pub anonymous: KubeletAnonymousAuthentication,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletX509Authentication {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletWebhookAuthentication {
    pub enabled: bool,
    #[serde(rename = "cacheTTL", with = "duration_serde")]
    pub cache_ttl: Duration,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletAnonymousAuthentication {
    pub enabled: bool,
}

/// `authorization` section of the config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletAuthorization {
    /// `AlwaysAllow` or `Webhook`.
    pub mode: String,
    pub webhook: KubeletWebhookAuthorization,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletWebhookAuthorization {
    #[serde(rename = "cacheAuthorizedTTL", with = "duration_serde")]
    pub cache_authorized_ttl: Duration,
    #[serde(rename = "cacheUnauthorizedTTL", with = "duration_serde")]
    pub cache_unauthorized_ttl: Duration,
}

impl Default for KubeletWebhookAuthentication {
    fn default() -> Self {
        Self {
            enabled: true,
            cache_ttl: Duration::from_secs(120),
        }
    }
}

impl Default for KubeletWebhookAuthorization {
    fn default() -> Self {
        Self {
            cache_authorized_ttl: Duration::from_secs(300),
            cache_unauthorized_ttl: Duration::from_secs(30),
        }
    }
}

impl Default for KubeletAuthorization {
    fn default() -> Self {
        Self {
            mode: "Webhook".into(),
            webhook: KubeletWebhookAuthorization::default(),
        }
    }
}

/// Upstream `SetDefaults_KubeletConfiguration` (v1beta1) values.
impl Default for KubeletConfiguration {
    fn default() -> Self {
        let eviction_hard = [
            ("memory.available", "100Mi"),
            ("nodefs.available", "10%"),
            ("nodefs.inodesFree", "5%"),
            ("imagefs.available", "15%"),
            ("imagefs.inodesFree", "5%"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self {
            api_version: "kubelet.config.k8s.io/v1beta1".into(),
            kind: "KubeletConfiguration".into(),
            enable_server: true,
            static_pod_path: String::new(),
            sync_frequency: Duration::from_secs(60),
            file_check_frequency: Duration::from_secs(20),
            address: "0.0.0.0".into(),
            port: 10250,
            read_only_port: 0,
            tls_cert_file: String::new(),
            tls_private_key_file: String::new(),
            authentication: KubeletAuthentication::default(),
            authorization: KubeletAuthorization::default(),
            registry_pull_qps: 5,
            registry_burst: 10,
            event_record_qps: 50,
            event_burst: 100,
            enable_debugging_handlers: true,
            healthz_port: 10248,
            healthz_bind_address: "127.0.0.1".into(),
            oom_score_adj: -999,
            cluster_domain: String::new(),
            cluster_dns: Vec::new(),
            streaming_connection_idle_timeout: Duration::from_secs(4 * 3600),
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(300),
            node_lease_duration_seconds: 40,
            image_minimum_gc_age: Duration::from_secs(120),
            image_maximum_gc_age: Duration::ZERO,
            image_gc_high_threshold_percent: 85,
            image_gc_low_threshold_percent: 80,
            volume_stats_agg_period: Duration::from_secs(60),
            cgroups_per_qos: true,
            cgroup_driver: "cgroupfs".into(),
            cgroup_root: String::new(),
            cpu_manager_policy: "none".into(),
            cpu_cfs_quota: true,
            cpu_cfs_quota_period: Duration::from_millis(100),
            runtime_request_timeout: Duration::from_secs(120),
            hairpin_mode: "promiscuous-bridge".into(),
            max_pods: 110,
            pod_cidr: String::new(),
            pod_pids_limit: -1,
            resolv_conf: "/etc/resolv.conf".into(),
            serialize_image_pulls: true,
            max_parallel_image_pulls: None,
            eviction_hard,
            eviction_soft: BTreeMap::new(),
            eviction_pressure_transition_period: Duration::from_secs(300),
            max_open_files: 1_000_000,
            content_type: "application/vnd.kubernetes.protobuf".into(),
            kube_api_qps: 50,
            kube_api_burst: 100,
            system_reserved: BTreeMap::new(),
            kube_reserved: BTreeMap::new(),
            enforce_node_allocatable: vec!["pods".into()],
            fail_swap_on: true,
            fail_cgroup_v1: true,
            container_log_max_size: "10Mi".into(),
            container_log_max_files: 5,
            container_runtime_endpoint: "unix:///run/containerd/containerd.sock".into(),
            image_service_endpoint: String::new(),
            register_node: true,
            register_with_taints: Vec::new(),
            feature_gates: BTreeMap::new(),
            shutdown_grace_period: Duration::ZERO,
            local_storage_capacity_isolation: true,
        }
    }
}

impl ComponentConfig for KubeletConfiguration {
    const KIND: &'static str = "KubeletConfiguration";
    const API_VERSIONS: &'static [&'static str] = &["kubelet.config.k8s.io/v1beta1"];
}

/// Values the kubelet only takes as flags (not part of `KubeletConfiguration`).
#[derive(Clone, Debug, PartialEq)]
pub struct KubeletFlags {
    pub hostname_override: Option<String>,
    /// `--node-ip`: comma-separated, at most one per family.
    pub node_ips: Vec<std::net::IpAddr>,
    pub node_labels: BTreeMap<String, String>,
    pub root_directory: PathBuf,
    pub pod_infra_container_image: String,
    pub pod_log_root: PathBuf,
}

impl Default for KubeletFlags {
    fn default() -> Self {
        Self {
            hostname_override: None,
            node_ips: Vec::new(),
            node_labels: BTreeMap::new(),
            root_directory: PathBuf::from("/var/lib/kubelet"),
            pod_infra_container_image: "registry.k8s.io/pause:3.10.2".into(),
            pod_log_root: PathBuf::from("/var/log/pods"),
        }
    }
}

/// Everything [`crate::run`] needs: the decoded config file plus the flag-only values,
/// with the node name resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct KubeletConfig {
    pub configuration: KubeletConfiguration,
    pub flags: KubeletFlags,
    /// Lower-cased `--hostname-override` or the machine's hostname (upstream `GetHostname`).
    pub node_name: String,
}

impl KubeletConfig {
    /// Combines a decoded `KubeletConfiguration` with the flag-only values.
    pub fn from_component_config(configuration: KubeletConfiguration, flags: KubeletFlags) -> Self {
        let node_name = resolve_node_name(flags.hostname_override.as_deref());
        Self {
            configuration,
            flags,
            node_name,
        }
    }

    /// Path of a CRI endpoint as a unix socket path (drops a `unix://` scheme).
    pub fn runtime_socket(&self) -> PathBuf {
        socket_path(&self.configuration.container_runtime_endpoint)
    }
}

/// Strips the `unix://` prefix of a CRI endpoint.
pub fn socket_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

/// Upstream `nodeutil.GetHostname`: the override or the kernel hostname,
/// trimmed and lower-cased.
pub fn resolve_node_name(hostname_override: Option<&str>) -> String {
    let raw = match hostname_override.map(str::trim).filter(|h| !h.is_empty()) {
        Some(h) => h.to_string(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
    };
    raw.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_with_upstream_defaults() {
        let text = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nclusterDNS: [10.96.0.10]\nclusterDomain: cluster.local\nsyncFrequency: 30s\n";
        let cfg: KubeletConfiguration =
            component_base::config::decode(text, "test").expect("valid config");
        assert_eq!(cfg.cluster_dns, vec!["10.96.0.10".to_string()]);
        assert_eq!(cfg.cluster_domain, "cluster.local");
        assert_eq!(cfg.sync_frequency, Duration::from_secs(30));
        assert_eq!(cfg.node_status_update_frequency, Duration::from_secs(10));
        assert_eq!(cfg.node_status_report_frequency, Duration::from_secs(300));
        assert_eq!(cfg.node_lease_duration_seconds, 40);
        assert_eq!(cfg.max_pods, 110);
        assert_eq!(cfg.cgroup_driver, "cgroupfs");
        assert!(cfg.cgroups_per_qos);
        assert_eq!(cfg.authorization.mode, "Webhook");
        assert_eq!(cfg.eviction_hard["memory.available"], "100Mi");
    }

    #[test]
    fn node_name_is_lowercased_override() {
        assert_eq!(resolve_node_name(Some(" Node-A ")), "node-a");
        assert!(!resolve_node_name(None).is_empty());
    }

    #[test]
    fn socket_path_strips_scheme() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock"),
            PathBuf::from("/run/containerd/containerd.sock")
        );
    }
}
