//! `KubeProxyConfiguration` (`kubeproxy.config.k8s.io/v1alpha1`) with
//! upstream defaults, and the resolved [`ProxyConfig`] `run` consumes.

use std::collections::BTreeMap;
use std::time::Duration;

use component_base::config::{ComponentConfig, opt_duration_serde};
use serde::{Deserialize, Serialize};

use crate::model::Cidr;

fn default_30s() -> Duration {
    Duration::from_secs(30)
}
fn default_1s() -> Duration {
    Duration::from_secs(1)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeSyncConfiguration {
    #[serde(
        with = "opt_duration_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sync_period: Option<Duration>,
    #[serde(
        with = "opt_duration_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub min_sync_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masquerade_bit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masquerade_all: Option<bool>,
    /// Fields of other modes we accept but do not use (localhostNodePorts, scheduler, …).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConntrackConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_core: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i32>,
    #[serde(
        with = "opt_duration_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_established_timeout: Option<Duration>,
    #[serde(
        with = "opt_duration_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_close_wait_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_be_liberal: Option<bool>,
    #[serde(
        with = "opt_duration_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub udp_timeout: Option<Duration>,
    #[serde(
        with = "opt_duration_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub udp_stream_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectLocalConfiguration {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bridge_interface: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface_name_prefix: String,
}

/// The on-disk config. Fields kube-proxy-rs does not act on are still
/// accepted (as raw JSON) so stock config files load without warnings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyConfiguration {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub bind_address: String,
    #[serde(default)]
    pub healthz_bind_address: String,
    #[serde(default)]
    pub metrics_bind_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_address_hard_fail: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_profiling: Option<bool>,
    #[serde(default, rename = "clusterCIDR")]
    pub cluster_cidr: String,
    #[serde(default)]
    pub hostname_override: String,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub iptables: ModeSyncConfiguration,
    #[serde(default)]
    pub ipvs: ModeSyncConfiguration,
    #[serde(default)]
    pub nftables: ModeSyncConfiguration,
    #[serde(default)]
    pub conntrack: ConntrackConfiguration,
    #[serde(default)]
    pub node_port_addresses: Vec<String>,
    #[serde(default)]
    pub detect_local_mode: String,
    #[serde(default)]
    pub detect_local: DetectLocalConfiguration,
    #[serde(
        with = "opt_duration_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub config_sync_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_connection: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winkernel: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_hidden_metrics_for_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<String>,
}

impl ComponentConfig for KubeProxyConfiguration {
    const KIND: &'static str = "KubeProxyConfiguration";
    const API_VERSIONS: &'static [&'static str] = &["kubeproxy.config.k8s.io/v1alpha1"];

    /// Upstream `SetDefaults_KubeProxyConfiguration` for what we use.
    fn set_defaults(&mut self) {
        if self.bind_address.is_empty() {
            self.bind_address = "0.0.0.0".into();
        }
        let v4 = !self.bind_address.contains(':');
        let (healthz_host, metrics_host) = if v4 {
            ("0.0.0.0", "127.0.0.1")
        } else {
            ("[::]", "[::1]")
        };
        self.healthz_bind_address = with_port(&self.healthz_bind_address, healthz_host, 10256);
        self.metrics_bind_address = with_port(&self.metrics_bind_address, metrics_host, 10249);
        for mode in [&mut self.iptables, &mut self.nftables] {
            mode.sync_period.get_or_insert(default_30s());
            mode.min_sync_period.get_or_insert(default_1s());
            mode.masquerade_bit.get_or_insert(14);
            mode.masquerade_all.get_or_insert(false);
        }
        self.ipvs.sync_period.get_or_insert(default_30s());
        let c = &mut self.conntrack;
        c.max_per_core.get_or_insert(32 * 1024);
        c.min.get_or_insert(128 * 1024);
        c.tcp_established_timeout
            .get_or_insert(Duration::from_secs(24 * 3600));
        c.tcp_close_wait_timeout
            .get_or_insert(Duration::from_secs(3600));
        self.config_sync_period
            .get_or_insert(Duration::from_secs(15 * 60));
        self.oom_score_adj.get_or_insert(-999);
        if self.detect_local_mode.is_empty() {
            self.detect_local_mode = "ClusterCIDR".into();
        }
    }
}

/// Upstream `AppendPortIfNeeded`: empty → default host:port; host without
/// a port gets the default port.
fn with_port(addr: &str, default_host: &str, port: u16) -> String {
    if addr.is_empty() {
        return format!("{default_host}:{port}");
    }
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return addr.to_string();
    }
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Ok(ip) => format!("{ip}:{port}"),
        Err(_) => addr.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Nftables,
    Ipvs,
}

impl std::fmt::Display for ProxyMode {
    /// The names upstream's `--proxy-mode` and `/proxyMode` use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxyMode::Nftables => "nftables",
            ProxyMode::Ipvs => "ipvs",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectLocalMode {
    ClusterCidr,
    NodeCidr,
    BridgeInterface(String),
    InterfaceNamePrefix(String),
}

/// Conntrack sysctls kube-proxy sets at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConntrackSettings {
    pub max_per_core: i32,
    pub min: i32,
    pub tcp_established_timeout: Duration,
    pub tcp_close_wait_timeout: Duration,
    pub tcp_be_liberal: bool,
    pub udp_timeout: Option<Duration>,
    pub udp_stream_timeout: Option<Duration>,
}

/// Resolved settings for [`crate::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub mode: ProxyMode,
    pub cluster_cidrs: Vec<Cidr>,
    /// Node name; empty means the OS hostname.
    pub hostname_override: String,
    pub node_port_addresses: Vec<String>,
    pub masquerade_all: bool,
    pub masquerade_bit: u32,
    pub sync_period: Duration,
    pub min_sync_period: Duration,
    pub conntrack: ConntrackSettings,
    pub detect_local_mode: DetectLocalMode,
    pub healthz_bind_address: String,
    pub metrics_bind_address: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigValidationError {
    #[error(
        "unsupported proxy mode {0:?} (supported: \"nftables\", \"ipvs\", \"iptables\" served by nftables)"
    )]
    UnsupportedMode(String),
    #[error("invalid clusterCIDR {0:?}")]
    ClusterCidr(String),
    #[error("masqueradeBit {0} must be in [0, 31]")]
    MasqueradeBit(i32),
    #[error("unknown detectLocalMode {0:?}")]
    DetectLocalMode(String),
}

impl Default for ProxyConfig {
    fn default() -> Self {
        let mut c = KubeProxyConfiguration {
            mode: "nftables".into(),
            ..Default::default()
        };
        c.set_defaults();
        // Defaulted config always validates.
        Self::from_component_config(&c)
            .unwrap_or_else(|_| unreachable!("defaulted config is valid"))
    }
}

impl ProxyConfig {
    /// Resolves a defaulted `KubeProxyConfiguration`. Modes `""` and
    /// `iptables` (upstream's Linux default, and what kubeadm clusters run)
    /// map to nftables with a warning: it implements the same Service
    /// semantics and is the backend we have, so swapping our binary into an
    /// existing cluster keeps Services working instead of crash-looping.
    pub fn from_component_config(
        c: &KubeProxyConfiguration,
    ) -> Result<Self, ConfigValidationError> {
        let mode = match c.mode.as_str() {
            "" | "nftables" | "iptables" => ProxyMode::Nftables,
            "ipvs" => ProxyMode::Ipvs,
            other => return Err(ConfigValidationError::UnsupportedMode(other.into())),
        };
        match c.mode.as_str() {
            "" => tracing::info!("No proxy mode configured; using nftables"),
            "iptables" => tracing::warn!(
                "Proxy mode \"iptables\" is served by the nftables backend in kube-proxy-rs"
            ),
            _ => {}
        }
        let cluster_cidrs = c
            .cluster_cidr
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Cidr>()
                    .map_err(|_| ConfigValidationError::ClusterCidr(s.into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sync = match mode {
            ProxyMode::Nftables => &c.nftables,
            ProxyMode::Ipvs => &c.ipvs,
        };
        let bit = sync
            .masquerade_bit
            .or(c.iptables.masquerade_bit)
            .unwrap_or(14);
        let masquerade_bit = u32::try_from(bit)
            .ok()
            .filter(|b| *b <= 31)
            .ok_or(ConfigValidationError::MasqueradeBit(bit))?;
        let detect_local_mode = match c.detect_local_mode.as_str() {
            "" | "ClusterCIDR" => DetectLocalMode::ClusterCidr,
            "NodeCIDR" => DetectLocalMode::NodeCidr,
            "BridgeInterface" => {
                DetectLocalMode::BridgeInterface(c.detect_local.bridge_interface.clone())
            }
            "InterfaceNamePrefix" => {
                DetectLocalMode::InterfaceNamePrefix(c.detect_local.interface_name_prefix.clone())
            }
            other => return Err(ConfigValidationError::DetectLocalMode(other.into())),
        };
        Ok(Self {
            mode,
            cluster_cidrs,
            hostname_override: c.hostname_override.trim().to_lowercase(),
            node_port_addresses: c.node_port_addresses.clone(),
            masquerade_all: sync
                .masquerade_all
                .or(c.iptables.masquerade_all)
                .unwrap_or(false),
            masquerade_bit,
            sync_period: sync.sync_period.unwrap_or_else(default_30s),
            min_sync_period: sync.min_sync_period.unwrap_or_else(default_1s),
            conntrack: ConntrackSettings {
                max_per_core: c.conntrack.max_per_core.unwrap_or(32 * 1024),
                min: c.conntrack.min.unwrap_or(128 * 1024),
                tcp_established_timeout: c
                    .conntrack
                    .tcp_established_timeout
                    .unwrap_or(Duration::from_secs(86400)),
                tcp_close_wait_timeout: c
                    .conntrack
                    .tcp_close_wait_timeout
                    .unwrap_or(Duration::from_secs(3600)),
                tcp_be_liberal: c.conntrack.tcp_be_liberal.unwrap_or(false),
                udp_timeout: c.conntrack.udp_timeout.filter(|d| !d.is_zero()),
                udp_stream_timeout: c.conntrack.udp_stream_timeout.filter(|d| !d.is_zero()),
            },
            detect_local_mode,
            healthz_bind_address: c.healthz_bind_address.clone(),
            metrics_bind_address: c.metrics_bind_address.clone(),
        })
    }

    /// Upstream: a queued change must be synced within 2 × syncPeriod.
    pub fn health_timeout(&self) -> Duration {
        self.sync_period * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_upstream() {
        let text = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\nclusterCIDR: 10.244.0.0/16\n";
        let c: KubeProxyConfiguration = component_base::config::decode(text, "test").unwrap();
        assert_eq!(c.healthz_bind_address, "0.0.0.0:10256");
        assert_eq!(c.metrics_bind_address, "127.0.0.1:10249");
        let p = ProxyConfig::from_component_config(&c).unwrap();
        assert_eq!(p.mode, ProxyMode::Nftables);
        assert_eq!(p.sync_period, Duration::from_secs(30));
        assert_eq!(p.min_sync_period, Duration::from_secs(1));
        assert_eq!(p.masquerade_bit, 14);
        assert_eq!(
            p.cluster_cidrs,
            vec!["10.244.0.0/16".parse::<Cidr>().unwrap()]
        );
        assert_eq!(p.detect_local_mode, DetectLocalMode::ClusterCidr);
        assert_eq!(p.conntrack.max_per_core, 32768);
        assert_eq!(
            p.conntrack.tcp_established_timeout,
            Duration::from_secs(86400)
        );
        assert_eq!(p.health_timeout(), Duration::from_secs(60));
    }

    #[test]
    fn explicit_values_win() {
        let text = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\nhealthzBindAddress: 127.0.0.1\nnftables:\n  syncPeriod: 1m0s\n  minSyncPeriod: 0s\n  masqueradeBit: 12\n  masqueradeAll: true\ndetectLocalMode: InterfaceNamePrefix\ndetectLocal:\n  interfaceNamePrefix: veth\n";
        let c: KubeProxyConfiguration = component_base::config::decode(text, "test").unwrap();
        assert_eq!(c.healthz_bind_address, "127.0.0.1:10256");
        let p = ProxyConfig::from_component_config(&c).unwrap();
        assert_eq!(p.sync_period, Duration::from_secs(60));
        assert_eq!(p.min_sync_period, Duration::ZERO);
        assert_eq!(p.masquerade_bit, 12);
        assert!(p.masquerade_all);
        assert_eq!(
            p.detect_local_mode,
            DetectLocalMode::InterfaceNamePrefix("veth".into())
        );
    }

    #[test]
    fn rejects_bad_values() {
        let mut c = KubeProxyConfiguration {
            mode: "userspace".into(),
            ..Default::default()
        };
        c.set_defaults();
        assert!(ProxyConfig::from_component_config(&c).is_err());
        c.mode = "iptables".into();
        let p = ProxyConfig::from_component_config(&c).expect("iptables is served by nftables");
        assert_eq!(p.mode, ProxyMode::Nftables);
        c.mode = "nftables".into();
        c.cluster_cidr = "nope".into();
        assert!(ProxyConfig::from_component_config(&c).is_err());
    }
}
