//! The wiring (upstream `cmd/kube-proxy/app/server.go` + `ProxyServer.Run`):
//! picks the backend for `mode`, builds it, and runs the event loop.

use std::path::{Path, PathBuf};

use component_base::informers::SharedInformerFactory;
use tokio_util::sync::CancellationToken;

use crate::conntrack::Conntrack;
use crate::healthcheck::ServiceHealthServer;
use crate::model::IpFamily;
use crate::nftables::exec::NftCli;
use crate::nftables::{NftConfig, Proxier};
use crate::node_info::{NodeInfo, labels, local_addresses, local_detector};
use crate::proxy_util::NodePortAddresses;
use crate::sync_loop::{self, Pacing, Sources};
use crate::{Error, Provider, ProxierHealth, ProxyConfig, ProxyMetrics, ProxyMode};

/// State shared with the binary: health for `:10256`, metrics for `:10249`.
#[derive(Debug, Clone)]
pub struct Handles {
    pub health: ProxierHealth,
    pub metrics: ProxyMetrics,
}

impl Handles {
    pub fn new(config: &ProxyConfig) -> Self {
        Self {
            health: ProxierHealth::new(config.health_timeout()),
            metrics: ProxyMetrics::global(),
        }
    }
}

/// Runs the proxy until `shutdown` is cancelled, with fresh handles.
pub async fn run(
    client: kube::Client,
    config: ProxyConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let handles = Handles::new(&config);
    run_with(client, config, shutdown, handles).await
}

/// Runs the proxy with handles the caller also serves (healthz, metrics).
pub async fn run_with(
    client: kube::Client,
    config: ProxyConfig,
    shutdown: CancellationToken,
    handles: Handles,
) -> Result<(), Error> {
    run_in_netns(client, config, shutdown, handles, None).await
}

/// Like [`run_with`], but programs nftables and conntrack inside the network
/// namespace at `netns` (e.g. `/var/run/netns/NAME`) instead of our own.
pub async fn run_in_netns(
    client: kube::Client,
    config: ProxyConfig,
    shutdown: CancellationToken,
    handles: Handles,
    netns: Option<PathBuf>,
) -> Result<(), Error> {
    match config.mode {
        ProxyMode::Nftables => {}
        // A new backend is one more arm: build its `Provider` from the same
        // `NodeInfo` (as `nftables_proxier` does) and hand it to `run_provider`.
        ProxyMode::Ipvs => return Err(Error::ModeNotImplemented(config.mode)),
    }
    let Some(node) = NodeInfo::discover(client.clone(), &config, &shutdown).await? else {
        return Ok(());
    };
    tracing::info!(node = %node.name, node_ip = ?node.ipv4(), "Starting kube-proxy-rs in nftables mode (IPv4)");
    // Only the host's own namespace gets the node-wide conntrack settings.
    if netns.is_none() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let writes = crate::conntrack_sysctl::plan(&config.conntrack, cpus);
        crate::conntrack_sysctl::apply(
            &writes,
            std::path::Path::new("/proc/sys"),
            std::path::Path::new("/sys"),
        );
    }
    let proxier = nftables_proxier(&config, &node, &handles, netns.as_deref());
    run_provider(proxier, client, &config, &node, handles, shutdown).await
}

/// The nftables backend for this node (IPv4), optionally confined to `netns`.
fn nftables_proxier(
    config: &ProxyConfig,
    node: &NodeInfo,
    handles: &Handles,
    netns: Option<&Path>,
) -> Proxier {
    let cfg = NftConfig {
        family: IpFamily::V4,
        masquerade_all: config.masquerade_all,
        masquerade_bit: config.masquerade_bit,
        local_detector: local_detector(config, node.object.as_ref()),
        node_port_addresses: NodePortAddresses::resolve(
            &config.node_port_addresses,
            IpFamily::V4,
            &node.ips,
            &local_addresses(),
        ),
        node_ip: node.ipv4(),
        service_cidrs: Vec::new(),
    };
    let service_health_ips = match &cfg.node_port_addresses {
        NodePortAddresses::MatchAll => Vec::new(),
        NodePortAddresses::Ips(ips) => ips.clone(),
    };
    let (nft, conntrack) = match netns {
        Some(ns) => (NftCli::new("ip").in_netns(ns), Conntrack::in_netns(ns)),
        None => (NftCli::new("ip"), Conntrack::default()),
    };
    let proxier = Proxier::new(
        cfg,
        nft,
        conntrack,
        node.name.clone(),
        handles.health.clone(),
        handles.metrics.clone(),
    );
    // Health check node ports are node-level listeners; a proxier confined
    // to another namespace (tests) does not open them in ours.
    if netns.is_some() {
        return proxier;
    }
    let (setting, ips) = (config.node_port_addresses.clone(), node.ips.clone());
    proxier
        .with_service_health(ServiceHealthServer::new(
            service_health_ips,
            handles.health.clone(),
        ))
        .with_node_port_resolver(Box::new(move || {
            NodePortAddresses::resolve(&setting, IpFamily::V4, &ips, &local_addresses())
        }))
}

/// Runs any backend: seeds it with the Node's labels, then drives it from
/// the shared informers until shutdown.
async fn run_provider<P: Provider>(
    mut provider: P,
    client: kube::Client,
    config: &ProxyConfig,
    node: &NodeInfo,
    handles: Handles,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    if let Some(n) = &node.object {
        handles.health.sync_node(n);
        provider.on_topology_change(labels(n));
    }
    // Healthy while the first sync is pending.
    handles.health.updated();
    let factory = SharedInformerFactory::new(client, shutdown.clone());
    let sources = Sources::new(&factory, &node.name);
    let pacing = Pacing {
        min_sync_period: config.min_sync_period,
        sync_period: config.sync_period,
    };
    sync_loop::run(provider, sources, pacing, handles.health, shutdown).await
}
