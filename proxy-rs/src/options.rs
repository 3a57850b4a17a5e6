//! kube-proxy's command line: upstream's flag names and defaults. Like
//! upstream, `--config` (KubeProxyConfiguration
//! kubeproxy.config.k8s.io/v1alpha1) replaces the flags, except
//! `--hostname-override` and the logging flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use component_base::args::{self, Normalized};
use component_base::config::{ComponentConfig, ConfigError};
use component_base::flags::{ClientDefaults, ClientFlags, LoggingFlags, duration_arg, go_bool_arg};
use kube_proxy::KubeProxyConfiguration;
use kube_proxy::config::{ConntrackConfiguration, DetectLocalConfiguration, ModeSyncConfiguration};

pub const COMPONENT: &str = "kube-proxy";
/// upstream v1alpha1 `clientConnection` defaults.
pub const CLIENT_DEFAULTS: ClientDefaults = ClientDefaults {
    qps: 5.0,
    burst: 10,
};

/// Upstream kube-proxy booleans we accept and ignore.
pub const UPSTREAM_BOOL_FLAGS: &[&str] = &[
    "bind-address-hard-fail",
    "cleanup",
    "init-only",
    "ipvs-strict-arp",
    "iptables-localhost-nodeports",
    "profiling",
];

/// kube-proxy flags. Unset optional flags take the config defaults shown.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kube-proxy",
    about = "The Kubernetes network proxy runs on each node."
)]
pub struct Options {
    /// The path to the configuration file.
    #[arg(long, value_name = "string")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientFlags,
    /// Which proxy mode to use: on Linux this can be 'iptables' (default), 'ipvs', or 'nftables'.
    #[arg(long = "proxy-mode", value_name = "ProxyMode")]
    pub proxy_mode: Option<String>,
    /// If non-empty, will be used as the name of the Node that kube-proxy is running on.
    #[arg(long = "hostname-override", value_name = "string")]
    pub hostname_override: Option<String>,
    /// The CIDR range of the pods in the cluster.
    #[arg(long = "cluster-cidr", value_name = "string")]
    pub cluster_cidr: Option<String>,
    /// Overrides kube-proxy's idea of what its node's primary IP is (default 0.0.0.0).
    #[arg(long = "bind-address", value_name = "ip")]
    pub bind_address: Option<String>,
    /// The IP address and port for the health check server to serve on (default 0.0.0.0:10256).
    #[arg(long = "healthz-bind-address", value_name = "ipport")]
    pub healthz_bind_address: Option<String>,
    /// The IP address and port for the metrics server to serve on (default 127.0.0.1:10249).
    #[arg(long = "metrics-bind-address", value_name = "ipport")]
    pub metrics_bind_address: Option<String>,
    /// A list of CIDR ranges that contain valid node IPs, or alternatively, the single string 'primary'.
    #[arg(
        long = "nodeport-addresses",
        value_delimiter = ',',
        value_name = "strings"
    )]
    pub nodeport_addresses: Vec<String>,
    /// SNAT all traffic sent via Service cluster IPs.
    #[arg(long = "masquerade-all", default_value_t = false, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool_arg, value_name = "bool")]
    pub masquerade_all: bool,
    /// Maximum number of NAT connections to track per CPU core (default 32768).
    #[arg(long = "conntrack-max-per-core", value_name = "int32")]
    pub conntrack_max_per_core: Option<i32>,
    /// Minimum number of conntrack entries to allocate (default 131072).
    #[arg(long = "conntrack-min", value_name = "int32")]
    pub conntrack_min: Option<i32>,
    /// Idle timeout for established TCP connections (default 24h0m0s).
    #[arg(long = "conntrack-tcp-timeout-established", value_parser = duration_arg, value_name = "duration")]
    pub conntrack_tcp_timeout_established: Option<Duration>,
    /// NAT timeout for TCP connections in the CLOSE_WAIT state (default 1h0m0s).
    #[arg(long = "conntrack-tcp-timeout-close-wait", value_parser = duration_arg, value_name = "duration")]
    pub conntrack_tcp_timeout_close_wait: Option<Duration>,
    /// Enable liberal mode for tracking TCP packets.
    #[arg(long = "conntrack-tcp-be-liberal", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool_arg, value_name = "bool")]
    pub conntrack_tcp_be_liberal: Option<bool>,
    /// Idle timeout for UNREPLIED UDP connections (0 to leave as-is).
    #[arg(long = "conntrack-udp-timeout", value_parser = duration_arg, value_name = "duration")]
    pub conntrack_udp_timeout: Option<Duration>,
    /// Idle timeout for ASSURED UDP connections (0 to leave as-is).
    #[arg(long = "conntrack-udp-timeout-stream", value_parser = duration_arg, value_name = "duration")]
    pub conntrack_udp_timeout_stream: Option<Duration>,
    /// How often config from the apiserver is refreshed (default 15m0s).
    #[arg(long = "config-sync-period", value_parser = duration_arg, value_name = "duration")]
    pub config_sync_period: Option<Duration>,
    /// The oom-score-adj value for kube-proxy process (default -999).
    #[arg(long = "oom-score-adj", value_name = "int32")]
    pub oom_score_adj: Option<i32>,
    /// Mode to use to detect local traffic.
    #[arg(long = "detect-local-mode", value_name = "LocalMode")]
    pub detect_local_mode: Option<String>,
    /// A bridge interface name (detect-local-mode BridgeInterface).
    #[arg(long = "pod-bridge-interface", value_name = "string")]
    pub pod_bridge_interface: Option<String>,
    /// An interface name prefix (detect-local-mode InterfaceNamePrefix).
    #[arg(long = "pod-interface-name-prefix", value_name = "string")]
    pub pod_interface_name_prefix: Option<String>,
    /// An interval how often rules are refreshed in iptables/nftables mode (default 30s).
    #[arg(long = "iptables-sync-period", value_parser = duration_arg, value_name = "duration")]
    pub iptables_sync_period: Option<Duration>,
    /// The minimum period between rule resyncs in iptables/nftables mode (default 1s).
    #[arg(long = "iptables-min-sync-period", value_parser = duration_arg, value_name = "duration")]
    pub iptables_min_sync_period: Option<Duration>,
    /// The bit of the fwmark space to mark packets requiring SNAT (default 14).
    #[arg(long = "iptables-masquerade-bit", value_name = "int32")]
    pub iptables_masquerade_bit: Option<i32>,
    /// An interval how often rules are refreshed in ipvs mode (default 30s).
    #[arg(long = "ipvs-sync-period", value_parser = duration_arg, value_name = "duration")]
    pub ipvs_sync_period: Option<Duration>,
    /// The minimum period between IPVS rule resyncs.
    #[arg(long = "ipvs-min-sync-period", value_parser = duration_arg, value_name = "duration")]
    pub ipvs_min_sync_period: Option<Duration>,
    /// The ipvs scheduler type when proxy mode is ipvs.
    #[arg(long = "ipvs-scheduler", value_name = "string")]
    pub ipvs_scheduler: Option<String>,
    #[command(flatten)]
    pub logs: LoggingFlags,
}

/// Flags and config resolved into what the binary runs with.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Defaulted configuration, from `--config` or built from the flags.
    pub configuration: KubeProxyConfiguration,
    pub client: ClientFlags,
    pub healthz_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
}

/// Parses argv (normalised first; see `component_base::args`).
pub fn parse(argv: impl IntoIterator<Item = String>) -> (Options, Normalized) {
    let (opts, _, normalized) = args::parse::<Options>(argv, UPSTREAM_BOOL_FLAGS);
    (opts, normalized)
}

/// The configuration the flags describe (before defaulting).
pub fn config_from_flags(o: &Options) -> KubeProxyConfiguration {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    // --iptables-* flags configure the nftables mode too, as upstream.
    let rule_sync = ModeSyncConfiguration {
        sync_period: o.iptables_sync_period,
        min_sync_period: o.iptables_min_sync_period,
        masquerade_bit: o.iptables_masquerade_bit,
        masquerade_all: Some(o.masquerade_all),
        ..ModeSyncConfiguration::default()
    };
    let mut ipvs = ModeSyncConfiguration {
        sync_period: o.ipvs_sync_period,
        min_sync_period: o.ipvs_min_sync_period,
        ..ModeSyncConfiguration::default()
    };
    if let Some(scheduler) = &o.ipvs_scheduler {
        ipvs.other.insert(
            "scheduler".into(),
            serde_json::Value::String(scheduler.clone()),
        );
    }
    KubeProxyConfiguration {
        bind_address: text(&o.bind_address),
        healthz_bind_address: text(&o.healthz_bind_address),
        metrics_bind_address: text(&o.metrics_bind_address),
        cluster_cidr: text(&o.cluster_cidr),
        hostname_override: text(&o.hostname_override),
        mode: text(&o.proxy_mode),
        node_port_addresses: o.nodeport_addresses.clone(),
        iptables: rule_sync.clone(),
        nftables: rule_sync,
        ipvs,
        conntrack: ConntrackConfiguration {
            max_per_core: o.conntrack_max_per_core,
            min: o.conntrack_min,
            tcp_established_timeout: o.conntrack_tcp_timeout_established,
            tcp_close_wait_timeout: o.conntrack_tcp_timeout_close_wait,
            tcp_be_liberal: o.conntrack_tcp_be_liberal,
            udp_timeout: o.conntrack_udp_timeout,
            udp_stream_timeout: o.conntrack_udp_timeout_stream,
        },
        config_sync_period: o.config_sync_period,
        oom_score_adj: o.oom_score_adj,
        detect_local_mode: text(&o.detect_local_mode),
        detect_local: DetectLocalConfiguration {
            bridge_interface: text(&o.pod_bridge_interface),
            interface_name_prefix: text(&o.pod_interface_name_prefix),
        },
        ..KubeProxyConfiguration::default()
    }
}

fn parse_addr(what: &str, addr: &str) -> Result<SocketAddr, ConfigError> {
    addr.parse().map_err(|_| ConfigError::Parse {
        path: what.to_string(),
        message: format!("invalid address {addr:?}, expected ip:port"),
    })
}

/// Loads `--config` or builds the configuration from flags, then defaults it.
pub fn resolve(options: Options) -> Result<Resolved, ConfigError> {
    let mut configuration = match &options.config {
        Some(path) => {
            let mut c: KubeProxyConfiguration = component_base::config::load_file(path)?;
            if let Some(h) = &options.hostname_override {
                c.hostname_override = h.clone();
            }
            c
        }
        None => {
            let mut c = config_from_flags(&options);
            c.set_defaults();
            c
        }
    };
    configuration.set_defaults();
    let client = client_flags(&options, &configuration);
    let healthz_addr = parse_addr("healthzBindAddress", &configuration.healthz_bind_address)?;
    let metrics_addr = parse_addr("metricsBindAddress", &configuration.metrics_bind_address)?;
    Ok(Resolved {
        configuration,
        client,
        healthz_addr,
        metrics_addr,
    })
}

/// With `--config` the file's `clientConnection` rules (`--master` still
/// applies); without it the flags do.
fn client_flags(o: &Options, c: &KubeProxyConfiguration) -> ClientFlags {
    if o.config.is_none() {
        return o.client.clone();
    }
    let cc = c.client_connection.clone().unwrap_or_default();
    let text = |key: &str| {
        cc.get(key)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let number = |key: &str| cc.get(key).and_then(|v| v.as_f64()).filter(|n| *n > 0.0);
    ClientFlags {
        kubeconfig: text("kubeconfig").map(PathBuf::from),
        master: o.client.master.clone(),
        kube_api_qps: number("qps").map(|q| q as f32),
        kube_api_burst: number("burst").map(|b| b as u32),
        kube_api_content_type: text("contentType"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> (Options, Normalized) {
        parse(
            std::iter::once("kube-proxy")
                .chain(args.iter().copied())
                .map(String::from),
        )
    }

    #[test]
    fn flags_build_a_defaulted_config() {
        let (o, n) = parse_args(&[
            "--proxy-mode=nftables",
            "--cluster-cidr=10.244.0.0/16",
            "--masquerade-all",
            "--conntrack-max-per-core=0",
            "--healthz-bind-address=127.0.0.1:20256",
            "--cleanup",
        ]);
        assert_eq!(n.dropped, ["--cleanup"]);
        let r = resolve(o).expect("valid");
        assert_eq!(r.configuration.mode, "nftables");
        assert_eq!(r.configuration.nftables.masquerade_all, Some(true));
        assert_eq!(r.configuration.conntrack.max_per_core, Some(0));
        assert_eq!(r.configuration.conntrack.min, Some(128 * 1024));
        assert_eq!(r.healthz_addr.to_string(), "127.0.0.1:20256");
        assert_eq!(r.metrics_addr.to_string(), "127.0.0.1:10249");
    }

    #[test]
    fn defaults_match_upstream() {
        let (o, _) = parse_args(&[]);
        let r = resolve(o).expect("valid");
        assert_eq!(r.healthz_addr.to_string(), "0.0.0.0:10256");
        assert_eq!(r.metrics_addr.to_string(), "127.0.0.1:10249");
        assert_eq!(
            r.configuration.config_sync_period,
            Some(Duration::from_secs(900))
        );
    }

    #[test]
    fn config_file_replaces_flags() {
        let dir = test_support::serving::TestDir::new("kube-proxy-options").expect("dir");
        let path = dir.path().join("config.conf");
        std::fs::write(
            &path,
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\nclientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n  qps: 7\nmetricsBindAddress: 0.0.0.0:10249\n",
        )
        .expect("write");
        let config = format!("--config={}", path.display());
        let (o, _) = parse_args(&[
            &config,
            "--cluster-cidr=1.2.3.0/24",
            "--hostname-override=node-a",
        ]);
        let r = resolve(o).expect("valid");
        assert_eq!(
            r.configuration.cluster_cidr, "",
            "flag ignored with --config"
        );
        assert_eq!(r.configuration.hostname_override, "node-a");
        assert_eq!(r.metrics_addr.to_string(), "0.0.0.0:10249");
        assert_eq!(
            r.client.kubeconfig,
            Some(PathBuf::from("/var/lib/kube-proxy/kubeconfig.conf"))
        );
        assert_eq!(r.client.kube_api_qps, Some(7.0));
    }
}
