//! What the controllers need from the command line, decoupled from clap so
//! tests and the binary build it the same way.

use crate::clientbuilder::ClientLimits;

/// `--concurrent-*-syncs`: workers per controller, upstream defaults. One
/// field per flag; a controller's descriptor names the one it reads
/// (controllers with a hard-coded count have none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcurrentSyncs {
    pub replicaset: usize,
    /// `--concurrent-rc-syncs`.
    pub replication_controller: usize,
    pub deployment: usize,
    pub endpointslice: usize,
    /// `--concurrent-endpoint-syncs`.
    pub endpoint: usize,
    /// `--mirroring-concurrent-service-endpoint-syncs`.
    pub endpointslice_mirroring: usize,
    pub namespace: usize,
    pub garbage_collector: usize,
    /// `--concurrent-job-syncs`.
    pub job: usize,
    /// `--concurrent-cron-job-syncs`.
    pub cron_job: usize,
    /// `--concurrent-ttl-after-finished-syncs`.
    pub ttl_after_finished: usize,
    /// `--concurrent-daemonset-syncs`.
    pub daemonset: usize,
    /// `--concurrent-statefulset-syncs`.
    pub statefulset: usize,
}

impl Default for ConcurrentSyncs {
    fn default() -> Self {
        Self {
            replicaset: 5,
            replication_controller: 5,
            deployment: 5,
            endpointslice: 5,
            endpoint: 5,
            endpointslice_mirroring: 5,
            namespace: 10,
            garbage_collector: 20,
            job: 5,
            cron_job: 5,
            ttl_after_finished: 5,
            daemonset: 2,
            statefulset: 5,
        }
    }
}

/// Everything [`crate::run`] needs.
#[derive(Clone, Debug)]
pub struct ControllerManagerConfig {
    /// `--controllers` as given (default `["*"]`); aliases are accepted.
    pub controllers: Vec<String>,
    pub concurrent: ConcurrentSyncs,
    /// Contents of `--root-ca-file`, or the client's CA bundle when unset.
    pub root_ca: Option<Vec<u8>>,
    /// `--mirroring-max-endpoints-per-subset` (default 1000).
    pub mirroring_max_endpoints_per_subset: usize,
    /// `--cluster-name` (default `kubernetes`).
    pub cluster_name: String,
    /// `--enable-garbage-collector` (default true).
    pub enable_garbage_collector: bool,
    /// Upstream `--min-resync-period` (12h); informers resync handlers within
    /// [min, 2*min). We only use it as the periodic full-resync interval.
    pub min_resync_period: std::time::Duration,
    /// `--use-service-account-credentials` (default false): each controller
    /// authenticates as ServiceAccount `kube-system/<client name>`.
    pub use_service_account_credentials: bool,
    /// The process's client configuration; with service-account credentials
    /// the controllers' clients reuse its server and CA (not its identity).
    /// Required when `use_service_account_credentials` is set.
    pub base_client_config: Option<kube::Config>,
    /// `--kube-api-qps` / `--kube-api-burst` (20 / 30): the token bucket
    /// each per-controller client gets under `use_service_account_credentials`.
    pub client_limits: ClientLimits,
}

impl Default for ControllerManagerConfig {
    fn default() -> Self {
        Self {
            controllers: vec!["*".to_string()],
            concurrent: ConcurrentSyncs::default(),
            root_ca: None,
            mirroring_max_endpoints_per_subset: 1000,
            cluster_name: "kubernetes".to_string(),
            enable_garbage_collector: true,
            min_resync_period: std::time::Duration::from_secs(12 * 3600),
            use_service_account_credentials: false,
            base_client_config: None,
            client_limits: ClientLimits {
                qps: 20.0,
                burst: 30,
            },
        }
    }
}
