//! What kube-proxy learns about its own Node and host at start-up (upstream
//! `cmd/kube-proxy/app/server.go`: `getNodeIPs`, the hostname override, and
//! `server_linux.go`'s local-traffic detector).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::DetectLocalMode;
use crate::model::Cidr;
use crate::proxy_util::LocalDetector;
use crate::{Error, ProxyConfig};

/// What the proxy learns about its own Node at start-up.
pub(crate) struct NodeInfo {
    pub name: String,
    /// `None` when the Node object did not show up in time.
    pub object: Option<Node>,
    /// InternalIPs first, then ExternalIPs.
    pub ips: Vec<IpAddr>,
}

impl NodeInfo {
    /// `None` when shutdown came first.
    pub async fn discover(
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

    pub fn ipv4(&self) -> Option<IpAddr> {
        self.ips.iter().copied().find(IpAddr::is_ipv4)
    }
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

pub(crate) fn labels(node: &Node) -> BTreeMap<String, String> {
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

pub(crate) fn local_addresses() -> Vec<IpAddr> {
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

pub(crate) fn local_detector(config: &ProxyConfig, node: Option<&Node>) -> LocalDetector {
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
