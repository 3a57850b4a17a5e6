//! The wiring (upstream `cmd/kube-proxy/app/server.go` + `ProxyServer.Run`):
//! picks the backend for `mode`, builds it, and runs the event loop.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use component_base::informers::SharedInformerFactory;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::conntrack::Conntrack;
use crate::healthcheck::ServiceHealthServer;
use crate::model::{Cidr, IpFamily};
use crate::nftables::exec::NftCli;
use crate::nftables::{NftConfig, Proxier};
use crate::proxy_util::{LocalDetector, NodePortAddresses};
use crate::sync_loop::{self, Pacing, Sources};
use crate::{
    Error, Provider, ProxierHealth, ProxyConfig, ProxyMetrics, ProxyMode, config::DetectLocalMode,
};

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

/// What the proxy learns about its own Node at start-up.
struct NodeInfo {
    name: String,
    /// `None` when the Node object did not show up in time.
    object: Option<Node>,
    /// InternalIPs first, then ExternalIPs.
    ips: Vec<IpAddr>,
}

impl NodeInfo {
    /// `None` when shutdown came first.
    async fn discover(
        client: kube::Client,
        config: &ProxyConfig,
        shutdown: &CancellationToken,
    ) -> Result<Option<Self>, Error> {
        let name = node_name(config)?;
        let nodes: Api<Node> = Api::all(client);
        let object = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            n = wait_for_node(&nodes, &name) => n,
        };
        let ips = object.as_ref().map(node_addresses).unwrap_or_default();
        Ok(Some(Self { name, object, ips }))
    }

    fn ipv4(&self) -> Option<IpAddr> {
        self.ips.iter().copied().find(IpAddr::is_ipv4)
    }
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

fn node_name(config: &ProxyConfig) -> Result<String, Error> {
    if !config.hostname_override.is_empty() {
        return Ok(config.hostname_override.clone());
    }
    let name = nix::unistd::gethostname().map_err(Error::Hostname)?;
    Ok(name.to_string_lossy().trim().to_lowercase())
}

/// Upstream waits up to ~30 s for its Node object to learn its IPs; without
/// it NodePorts still work on every local address.
async fn wait_for_node(nodes: &Api<Node>, name: &str) -> Option<Node> {
    let mut delay = Duration::from_millis(500);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match nodes.get_opt(name).await {
            Ok(Some(n)) => return Some(n),
            Ok(None) => tracing::info!(node = name, "Waiting for Node object"),
            Err(e) => tracing::warn!(node = name, error = %e, "Failed to get Node"),
        }
        if Instant::now() + delay > deadline {
            tracing::warn!(
                node = name,
                "Could not get Node; continuing without node IPs"
            );
            return None;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn labels(node: &Node) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

/// InternalIPs first, then ExternalIPs (upstream `GetNodeHostIPs`).
fn node_addresses(node: &Node) -> Vec<IpAddr> {
    let addrs = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    let of_type = |t: &str| -> Vec<IpAddr> {
        addrs
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == t)
            .filter_map(|a| a.address.parse().ok())
            .collect()
    };
    let mut out = of_type("InternalIP");
    out.extend(of_type("ExternalIP"));
    out
}

fn local_addresses() -> Vec<IpAddr> {
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => addrs
            .filter_map(|a| a.address)
            .filter_map(|s| {
                s.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "Failed to list local addresses");
            Vec::new()
        }
    }
}

fn local_detector(config: &ProxyConfig, node: Option<&Node>) -> LocalDetector {
    let v4 = |cidrs: Vec<Cidr>| cidrs.into_iter().filter(Cidr::is_ipv4).collect::<Vec<_>>();
    match &config.detect_local_mode {
        DetectLocalMode::ClusterCidr => {
            let c = v4(config.cluster_cidrs.clone());
            if c.is_empty() {
                tracing::info!(
                    "Detect-local-mode set to ClusterCIDR, but no cluster CIDR specified for primary IP family"
                );
                LocalDetector::NoOp
            } else {
                LocalDetector::Cidrs(c)
            }
        }
        DetectLocalMode::NodeCidr => {
            let cidrs = node
                .and_then(|n| n.spec.as_ref())
                .and_then(|s| s.pod_cidrs.clone())
                .unwrap_or_default()
                .iter()
                .filter_map(|s| s.parse::<Cidr>().ok())
                .collect();
            let c = v4(cidrs);
            if c.is_empty() {
                tracing::warn!(
                    "Detect-local-mode set to NodeCIDR, but the Node has no IPv4 podCIDR"
                );
                LocalDetector::NoOp
            } else {
                LocalDetector::Cidrs(c)
            }
        }
        DetectLocalMode::BridgeInterface(i) if !i.is_empty() => LocalDetector::Interface(i.clone()),
        DetectLocalMode::InterfaceNamePrefix(p) if !p.is_empty() => {
            LocalDetector::InterfacePrefix(p.clone())
        }
        _ => LocalDetector::NoOp,
    }
}
