//! kube-controller-manager's command line: upstream's flag names and
//! defaults (it has no `--config` file).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser};
use component_base::args::{self, Normalized};
use component_base::flags::{
    AuthenticationFlags, AuthorizationFlags, ClientDefaults, ClientFlags, LeaderElectionFlags,
    LoggingFlags, SecureServingFlags, duration_arg, go_bool_arg,
};

pub const COMPONENT: &str = "kube-controller-manager";
/// upstream `KubeControllerManagerPort`.
pub const DEFAULT_SECURE_PORT: u16 = 10257;
/// upstream defaults for the generic `ClientConnection` of the KCM.
pub const CLIENT_DEFAULTS: ClientDefaults = ClientDefaults {
    qps: 20.0,
    burst: 30,
};

/// Upstream kube-controller-manager booleans we accept and ignore.
pub const UPSTREAM_BOOL_FLAGS: &[&str] = &[
    "profiling",
    "contention-profiling",
    "configure-cloud-routes",
    "enable-dynamic-provisioning",
    "enable-hostpath-provisioner",
    "enable-leader-migration",
    "disable-attach-detach-reconcile-sync",
    "disable-force-detach-on-timeout",
    "external-cloud-volume-plugin",
    "show-hidden-metrics-for-version",
];

/// kube-controller-manager flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kube-controller-manager",
    about = "The Kubernetes controller manager is a daemon that embeds the core control loops shipped with Kubernetes."
)]
pub struct Options {
    #[command(flatten)]
    pub client: ClientFlags,
    #[command(flatten)]
    pub serving: SecureServingFlags,
    #[command(flatten)]
    pub authn: AuthenticationFlags,
    #[command(flatten)]
    pub authz: AuthorizationFlags,
    #[command(flatten)]
    pub leader_election: LeaderElectionFlags,
    #[command(flatten)]
    pub logs: LoggingFlags,
    #[command(flatten)]
    pub generic: GenericControllerFlags,
    #[command(flatten)]
    pub concurrency: ConcurrencyFlags,
    #[command(flatten)]
    pub node: NodeLifecycleFlags,
}

/// Generic and controller-specific settings.
#[derive(Debug, Clone, Args)]
pub struct GenericControllerFlags {
    /// A list of controllers to enable. '*' enables all on-by-default controllers, 'foo' enables the controller named 'foo', '-foo' disables the controller named 'foo'.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "*",
        value_name = "strings"
    )]
    pub controllers: Vec<String>,
    /// CIDR Range for Pods in cluster. Requires --allocate-node-cidrs to be true.
    #[arg(long = "cluster-cidr", value_name = "string")]
    pub cluster_cidr: Option<String>,
    /// Should CIDRs for Pods be allocated and set on the cloud provider.
    #[arg(long = "allocate-node-cidrs", default_value_t = false, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool_arg, value_name = "bool")]
    pub allocate_node_cidrs: bool,
    /// The instance prefix for the cluster.
    #[arg(
        long = "cluster-name",
        default_value = "kubernetes",
        value_name = "string"
    )]
    pub cluster_name: String,
    /// CIDR Range for Services in cluster.
    #[arg(long = "service-cluster-ip-range", value_name = "string")]
    pub service_cluster_ip_range: Option<String>,
    /// Mask size for node cidr in cluster. Default is 24 for IPv4 and 64 for IPv6.
    #[arg(
        long = "node-cidr-mask-size",
        default_value_t = 0,
        value_name = "int32"
    )]
    pub node_cidr_mask_size: i32,
    /// Mask size for IPv4 node cidr in dual-stack cluster. Default is 24.
    #[arg(
        long = "node-cidr-mask-size-ipv4",
        default_value_t = 0,
        value_name = "int32"
    )]
    pub node_cidr_mask_size_ipv4: i32,
    /// Mask size for IPv6 node cidr in dual-stack cluster. Default is 64.
    #[arg(
        long = "node-cidr-mask-size-ipv6",
        default_value_t = 0,
        value_name = "int32"
    )]
    pub node_cidr_mask_size_ipv6: i32,
    /// If set, this root certificate authority will be included in service account's token secret.
    #[arg(long = "root-ca-file", value_name = "string")]
    pub root_ca_file: Option<PathBuf>,
    /// Filename containing a PEM-encoded private RSA or ECDSA key used to sign service account tokens.
    #[arg(long = "service-account-private-key-file", value_name = "string")]
    pub service_account_private_key_file: Option<PathBuf>,
    /// If true, use individual service account credentials for each controller.
    #[arg(long = "use-service-account-credentials", default_value_t = false, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", action = ArgAction::Set,
          value_parser = go_bool_arg, value_name = "bool")]
    pub use_service_account_credentials: bool,
    /// Filename containing a PEM-encoded X509 CA certificate used to issue cluster-scoped certificates.
    #[arg(long = "cluster-signing-cert-file", value_name = "string")]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// Filename containing a PEM-encoded RSA or ECDSA private key used to sign cluster-scoped certificates.
    #[arg(long = "cluster-signing-key-file", value_name = "string")]
    pub cluster_signing_key_file: Option<PathBuf>,
    /// The max length of duration signed certificates will be given.
    #[arg(long = "cluster-signing-duration", default_value = "8760h", value_parser = duration_arg, value_name = "duration")]
    pub cluster_signing_duration: Duration,
    /// Enables the generic garbage collector. MUST be synced with the corresponding flag of the kube-apiserver.
    #[arg(long = "enable-garbage-collector", default_value_t = true, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", action = ArgAction::Set,
          value_parser = go_bool_arg, value_name = "bool")]
    pub enable_garbage_collector: bool,
    /// Number of terminated pods that can exist before the terminated pod garbage collector starts deleting terminated pods. If <= 0, the terminated pod garbage collector is disabled.
    #[arg(
        long = "terminated-pod-gc-threshold",
        default_value_t = 12500,
        value_name = "int32"
    )]
    pub terminated_pod_gc_threshold: i32,
    /// The resync period in reflectors will be random between MinResyncPeriod and 2*MinResyncPeriod.
    #[arg(long = "min-resync-period", default_value = "12h", value_parser = duration_arg, value_name = "duration")]
    pub min_resync_period: Duration,
    /// The period for syncing quota usage status in the system.
    #[arg(long = "resource-quota-sync-period", default_value = "5m", value_parser = duration_arg, value_name = "duration")]
    pub resource_quota_sync_period: Duration,
    /// The period for syncing namespace life-cycle updates.
    #[arg(long = "namespace-sync-period", default_value = "5m", value_parser = duration_arg, value_name = "duration")]
    pub namespace_sync_period: Duration,
    /// The period for syncing the number of pods in horizontal pod autoscaler.
    #[arg(long = "horizontal-pod-autoscaler-sync-period", default_value = "15s", value_parser = duration_arg, value_name = "duration")]
    pub horizontal_pod_autoscaler_sync_period: Duration,
}

/// `--concurrent-*-syncs`: workers per controller (upstream defaults).
#[derive(Debug, Clone, Args)]
pub struct ConcurrencyFlags {
    #[arg(
        long = "concurrent-deployment-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_deployment_syncs: i32,
    #[arg(
        long = "concurrent-replicaset-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_replicaset_syncs: i32,
    #[arg(
        long = "concurrent-rc-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_rc_syncs: i32,
    #[arg(
        long = "concurrent-statefulset-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_statefulset_syncs: i32,
    #[arg(
        long = "concurrent-daemonset-syncs",
        default_value_t = 2,
        value_name = "int32"
    )]
    pub concurrent_daemonset_syncs: i32,
    #[arg(
        long = "concurrent-job-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_job_syncs: i32,
    #[arg(
        long = "concurrent-cron-job-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_cron_job_syncs: i32,
    #[arg(
        long = "concurrent-endpoint-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_endpoint_syncs: i32,
    /// EndpointSlice controller workers.
    #[arg(
        long = "concurrent-service-endpoint-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_service_endpoint_syncs: i32,
    #[arg(
        long = "mirroring-concurrent-service-endpoint-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub mirroring_concurrent_service_endpoint_syncs: i32,
    /// EndpointSlice mirroring: addresses mirrored per Endpoints subset.
    #[arg(
        long = "mirroring-max-endpoints-per-subset",
        default_value_t = 1000,
        value_name = "int32"
    )]
    pub mirroring_max_endpoints_per_subset: i32,
    #[arg(
        long = "concurrent-namespace-syncs",
        default_value_t = 10,
        value_name = "int32"
    )]
    pub concurrent_namespace_syncs: i32,
    #[arg(
        long = "concurrent-gc-syncs",
        default_value_t = 20,
        value_name = "int32"
    )]
    pub concurrent_gc_syncs: i32,
    #[arg(
        long = "concurrent-serviceaccount-token-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_serviceaccount_token_syncs: i32,
    #[arg(
        long = "concurrent-resource-quota-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_resource_quota_syncs: i32,
    #[arg(
        long = "concurrent-ttl-after-finished-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_ttl_after_finished_syncs: i32,
    #[arg(
        long = "concurrent-horizontal-pod-autoscaler-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_horizontal_pod_autoscaler_syncs: i32,
    #[arg(
        long = "concurrent-ephemeralvolume-syncs",
        default_value_t = 5,
        value_name = "int32"
    )]
    pub concurrent_ephemeralvolume_syncs: i32,
    #[arg(
        long = "concurrent-service-syncs",
        default_value_t = 1,
        value_name = "int32"
    )]
    pub concurrent_service_syncs: i32,
}

/// Node lifecycle controller settings.
#[derive(Debug, Clone, Args)]
pub struct NodeLifecycleFlags {
    /// The period for syncing NodeStatus in cloud-node-lifecycle-controller.
    #[arg(long = "node-monitor-period", default_value = "5s", value_parser = duration_arg, value_name = "duration")]
    pub node_monitor_period: Duration,
    /// Amount of time which we allow running Node to be unresponsive before marking it unhealthy.
    #[arg(long = "node-monitor-grace-period", default_value = "50s", value_parser = duration_arg, value_name = "duration")]
    pub node_monitor_grace_period: Duration,
    /// Amount of time which we allow starting Node to be unresponsive before marking it unhealthy.
    #[arg(long = "node-startup-grace-period", default_value = "1m", value_parser = duration_arg, value_name = "duration")]
    pub node_startup_grace_period: Duration,
    /// Number of nodes per second on which pods are deleted in case of node failure when a zone is healthy.
    #[arg(
        long = "node-eviction-rate",
        default_value_t = 0.1,
        value_name = "float32"
    )]
    pub node_eviction_rate: f32,
    /// Number of nodes per second on which pods are deleted in case of node failure when a zone is unhealthy.
    #[arg(
        long = "secondary-node-eviction-rate",
        default_value_t = 0.01,
        value_name = "float32"
    )]
    pub secondary_node_eviction_rate: f32,
    /// Number of nodes from which node-lifecycle-controller treats the cluster as large for the eviction logic purposes.
    #[arg(
        long = "large-cluster-size-threshold",
        default_value_t = 50,
        value_name = "int32"
    )]
    pub large_cluster_size_threshold: i32,
    /// Fraction of Nodes in a zone which needs to be not Ready (minimum 3) for zone to be treated as unhealthy.
    #[arg(
        long = "unhealthy-zone-threshold",
        default_value_t = 0.55,
        value_name = "float32"
    )]
    pub unhealthy_zone_threshold: f32,
}

/// Parses argv (normalised first; see `component_base::args`).
pub fn parse(argv: impl IntoIterator<Item = String>) -> (Options, Normalized) {
    let (opts, _, normalized) = args::parse::<Options>(argv, UPSTREAM_BOOL_FLAGS);
    (opts, normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> (Options, Normalized) {
        parse(
            std::iter::once("kube-controller-manager")
                .chain(args.iter().copied())
                .map(String::from),
        )
    }

    #[test]
    fn defaults_match_upstream() {
        let (o, _) = parse_args(&[]);
        assert_eq!(o.generic.controllers, ["*"]);
        assert_eq!(o.generic.cluster_name, "kubernetes");
        assert!(!o.generic.allocate_node_cidrs);
        assert!(o.generic.enable_garbage_collector);
        assert_eq!(
            o.generic.cluster_signing_duration,
            Duration::from_secs(8760 * 3600)
        );
        assert_eq!(o.concurrency.concurrent_daemonset_syncs, 2);
        assert_eq!(o.concurrency.concurrent_gc_syncs, 20);
        assert_eq!(o.concurrency.concurrent_namespace_syncs, 10);
        assert_eq!(o.concurrency.concurrent_deployment_syncs, 5);
        assert_eq!(o.node.node_monitor_grace_period, Duration::from_secs(50));
        assert!(o.leader_election.leader_elect);
        assert_eq!(o.serving.secure_port, None);
    }

    #[test]
    fn kubeadm_command_line() {
        let (o, n) = parse_args(&[
            "--allocate-node-cidrs=true",
            "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
            "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
            "--bind-address=127.0.0.1",
            "--client-ca-file=/etc/kubernetes/pki/ca.crt",
            "--cluster-cidr=10.244.0.0/16",
            "--cluster-name=kubernetes",
            "--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt",
            "--cluster-signing-key-file=/etc/kubernetes/pki/ca.key",
            "--controllers=*,bootstrapsigner,tokencleaner",
            "--kubeconfig=/etc/kubernetes/controller-manager.conf",
            "--leader-elect=true",
            "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
            "--root-ca-file=/etc/kubernetes/pki/ca.crt",
            "--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
            "--service-cluster-ip-range=10.96.0.0/12",
            "--use-service-account-credentials=true",
            "--profiling",
        ]);
        assert!(o.generic.allocate_node_cidrs);
        assert!(o.generic.use_service_account_credentials);
        assert_eq!(
            o.generic.controllers,
            ["*", "bootstrapsigner", "tokencleaner"]
        );
        assert_eq!(o.generic.cluster_cidr.as_deref(), Some("10.244.0.0/16"));
        assert_eq!(
            o.generic.service_cluster_ip_range.as_deref(),
            Some("10.96.0.0/12")
        );
        assert_eq!(n.dropped, ["--profiling"]);
    }
}
