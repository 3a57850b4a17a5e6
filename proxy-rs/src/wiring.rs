//! The wiring (upstream `cmd/kube-proxy/app/server.go` + `ProxyServer.Run`):
//! picks the backend for `mode`, builds it, and runs the event loop.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::bounded_frequency_runner::RateLimiter;
use crate::conntrack::Conntrack;
use crate::healthcheck::ServiceHealthServer;
use crate::informers::{Change, Store};
use crate::model::{Cidr, IpFamily};
use crate::nftables::exec::NftCli;
use crate::nftables::{NftConfig, Proxier};
use crate::proxy_util::{LocalDetector, NodePortAddresses};
use crate::{Error, ProxierHealth, ProxyConfig, ProxyMetrics, ProxyMode, config::DetectLocalMode};

/// Upstream's label selector for Services and EndpointSlices.
const PROXY_LABEL_SELECTOR: &str =
    "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";
/// Upstream `burstSyncs`.
const BURST_SYNCS: u32 = 2;

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
    if config.mode != ProxyMode::Nftables {
        return Err(Error::ModeNotImplemented(config.mode));
    }
    let hostname = node_name(&config)?;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        n = wait_for_node(&nodes, &hostname) => n,
    };
    let node_ips = node.as_ref().map(node_addresses).unwrap_or_default();
    let node_ip = node_ips.iter().copied().find(IpAddr::is_ipv4);
    tracing::info!(node = %hostname, ?node_ip, "Starting kube-proxy-rs in nftables mode (IPv4)");

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
    let cfg = NftConfig {
        family: IpFamily::V4,
        masquerade_all: config.masquerade_all,
        masquerade_bit: config.masquerade_bit,
        local_detector: local_detector(&config, node.as_ref()),
        node_port_addresses: NodePortAddresses::resolve(
            &config.node_port_addresses,
            IpFamily::V4,
            &node_ips,
            &local_addresses(),
        ),
        node_ip,
        service_cidrs: Vec::new(),
    };
    let service_health_ips = match &cfg.node_port_addresses {
        NodePortAddresses::MatchAll => Vec::new(),
        NodePortAddresses::Ips(ips) => ips.clone(),
    };
    let mut proxier = Proxier::new(
        cfg,
        match &netns {
            Some(ns) => NftCli::new("ip").in_netns(ns),
            None => NftCli::new("ip"),
        },
        netns.as_ref().map(Conntrack::in_netns).unwrap_or_default(),
        hostname.clone(),
        handles.health.clone(),
        handles.metrics.clone(),
    );
    // Health check node ports are node-level listeners; a proxier confined
    // to another namespace (tests) does not open them in ours.
    if netns.is_none() {
        proxier = proxier.with_service_health(ServiceHealthServer::new(
            service_health_ips,
            handles.health.clone(),
        ));
        let (setting, ips) = (config.node_port_addresses.clone(), node_ips.clone());
        proxier = proxier.with_node_port_resolver(Box::new(move || {
            NodePortAddresses::resolve(&setting, IpFamily::V4, &ips, &local_addresses())
        }));
    }
    if let Some(n) = &node {
        handles.health.sync_node(n);
        proxier.on_node_labels(labels(n));
    }
    // Healthy while the first sync is pending.
    handles.health.updated();
    event_loop(client, config, shutdown, handles, proxier, hostname).await
}

async fn event_loop(
    client: kube::Client,
    config: ProxyConfig,
    shutdown: CancellationToken,
    handles: Handles,
    mut proxier: Proxier,
    hostname: String,
) -> Result<(), Error> {
    let proxied = watcher::Config::default().labels(PROXY_LABEL_SELECTOR);
    let mut services = watcher(Api::<Service>::all(client.clone()), proxied.clone())
        .default_backoff()
        .boxed();
    let mut slices = watcher(Api::<EndpointSlice>::all(client.clone()), proxied)
        .default_backoff()
        .boxed();
    let node_cfg = watcher::Config::default().fields(&format!("metadata.name={hostname}"));
    let mut nodes = watcher(Api::<Node>::all(client.clone()), node_cfg)
        .default_backoff()
        .boxed();
    let mut service_cidrs = watcher(Api::<ServiceCIDR>::all(client), watcher::Config::default())
        .default_backoff()
        .boxed();
    let (mut svc_store, mut slice_store, mut node_store) =
        (Store::default(), Store::default(), Store::default());
    let mut cidr_store = Store::default();
    let mut cidrs_by_object: BTreeMap<String, Vec<Cidr>> = BTreeMap::new();

    let mut limiter = RateLimiter::new(config.min_sync_period, BURST_SYNCS, Instant::now());
    let mut dirty = false;
    let mut next_periodic = Instant::now() + config.sync_period;
    loop {
        let next_sync = if dirty {
            limiter.next_allowed(Instant::now())
        } else {
            next_periodic
        };
        tokio::select! {
            _ = shutdown.cancelled() => {
                tracing::info!("Shutting down kube-proxy-rs");
                return Ok(());
            }
            ev = services.try_next() => match ev {
                Ok(Some(ev)) => for change in svc_store.apply(ev) {
                    dirty |= match change {
                        Change::Upsert(s) => proxier.on_service_update(&s),
                        Change::Delete(s) => proxier.on_service_delete(&s),
                        Change::Synced => { proxier.set_services_synced(); true }
                    };
                },
                Ok(None) => return Ok(()),
                Err(e) => tracing::warn!(error = %e, "Service watch failed; retrying with backoff"),
            },
            ev = slices.try_next() => match ev {
                Ok(Some(ev)) => for change in slice_store.apply(ev) {
                    dirty |= match change {
                        Change::Upsert(s) => proxier.on_endpoint_slice(&s, false),
                        Change::Delete(s) => proxier.on_endpoint_slice(&s, true),
                        Change::Synced => { proxier.set_slices_synced(); true }
                    };
                },
                Ok(None) => return Ok(()),
                Err(e) => tracing::warn!(error = %e, "EndpointSlice watch failed; retrying with backoff"),
            },
            ev = nodes.try_next() => match ev {
                Ok(Some(ev)) => for change in node_store.apply(ev) {
                    dirty |= match change {
                        Change::Upsert(n) => { handles.health.sync_node(&n); proxier.on_node_labels(labels(&n)) }
                        Change::Delete(_) => proxier.on_node_labels(BTreeMap::new()),
                        Change::Synced => false,
                    };
                },
                Ok(None) => return Ok(()),
                Err(e) => tracing::warn!(error = %e, "Node watch failed; retrying with backoff"),
            },
            ev = service_cidrs.try_next() => match ev {
                Ok(Some(ev)) => {
                    let changes = cidr_store.apply(ev);
                    if !changes.is_empty() {
                        for change in changes {
                            match change {
                                Change::Upsert(c) => { cidrs_by_object.insert(object_name(&c), service_cidr_ranges(&c)); }
                                Change::Delete(c) => { cidrs_by_object.remove(&object_name(&c)); }
                                Change::Synced => {}
                            }
                        }
                        let mut all: Vec<Cidr> = cidrs_by_object.values().flatten().copied().collect();
                        all.sort();
                        all.dedup();
                        dirty |= proxier.on_service_cidrs(all);
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => tracing::warn!(error = %e, "ServiceCIDR watch failed; retrying with backoff"),
            },
            _ = sleep_until(next_sync) => {
                let now = Instant::now();
                if !dirty {
                    // Periodic resync: rewrite everything.
                    proxier.request_full_sync();
                }
                limiter.take(now);
                dirty = false;
                next_periodic = now + config.sync_period;
                if let Err(e) = proxier.sync().await {
                    tracing::error!(error = %e, retry_after = ?config.sync_period, "Sync failed");
                }
            }
        }
    }
}

fn object_name(c: &ServiceCIDR) -> String {
    c.metadata.name.clone().unwrap_or_default()
}

fn service_cidr_ranges(c: &ServiceCIDR) -> Vec<Cidr> {
    c.spec
        .as_ref()
        .and_then(|s| s.cidrs.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|s| s.parse::<Cidr>().ok())
        .collect()
}

fn node_name(config: &ProxyConfig) -> Result<String, Error> {
    if !config.hostname_override.is_empty() {
        return Ok(config.hostname_override.clone());
    }
    let name = nix::unistd::gethostname().map_err(|e| Error::Hostname(e.to_string()))?;
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
