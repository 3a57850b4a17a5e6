//! `ServicePortName` and `ServiceInfo`: one Service port as the proxy sees it
//! (upstream `pkg/proxy/serviceport.go`, `BaseServicePortInfo`).

use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort};

use super::IpFamily;
use super::cidr::Cidr;

/// Label that hands a Service to a different proxy implementation.
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Label the endpoints controllers put on headless Services' slices.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Default ClientIP affinity timeout (`v1.DefaultClientIPServiceAffinitySeconds`).
pub const DEFAULT_CLIENT_IP_AFFINITY_SECONDS: u32 = 10800;

/// Namespace/name of a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

impl NamespacedName {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Parses the API spelling; an absent protocol means TCP (API default).
    pub fn from_api(p: Option<&str>) -> Option<Self> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The lower-case name nftables and chain names use.
    pub fn lower(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// Identifies one port of one Service (`proxy.ServicePortName`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub service: NamespacedName,
    pub port: String,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    /// Same as upstream: `ns/name:port`, or `ns/name` for an unnamed port.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port.is_empty() {
            write!(f, "{}", self.service)
        } else {
            write!(f, "{}:{}", self.service, self.port)
        }
    }
}

/// Everything a renderer needs about one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub cluster_ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    /// 0 when the port has no NodePort.
    pub node_port: u16,
    /// `Some(timeout seconds)` for `sessionAffinity: ClientIP`.
    pub session_affinity_timeout: Option<u32>,
    pub external_ips: Vec<IpAddr>,
    pub load_balancer_vips: Vec<IpAddr>,
    pub load_balancer_source_ranges: Vec<Cidr>,
    pub external_policy_local: bool,
    pub internal_policy_local: bool,
    /// 0 unless the Service needs a health check node port.
    pub health_check_node_port: u16,
}

impl ServiceInfo {
    pub fn externally_accessible(&self) -> bool {
        self.node_port != 0 || !self.load_balancer_vips.is_empty() || !self.external_ips.is_empty()
    }

    /// Whether any traffic to this port uses "Cluster" traffic policy.
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_policy_local || (self.externally_accessible() && !self.external_policy_local)
    }

    /// Whether any traffic to this port uses "Local" traffic policy.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_policy_local || (self.external_policy_local && self.externally_accessible())
    }
}

/// Why a Service contributes no ports (logged at high verbosity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    ProxyName,
    Headless,
    ExternalName,
    NoClusterIpForFamily,
}

/// Upstream `ShouldSkipService` plus the informer label selector
/// (`service-proxy-name` absent, `headless` absent).
pub fn skip_reason(svc: &Service, family: IpFamily) -> Option<SkipReason> {
    let labels = svc.metadata.labels.as_ref();
    if labels.is_some_and(|l| l.contains_key(LABEL_SERVICE_PROXY_NAME)) {
        return Some(SkipReason::ProxyName);
    }
    if labels.is_some_and(|l| l.contains_key(LABEL_HEADLESS)) {
        return Some(SkipReason::Headless);
    }
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return Some(SkipReason::ExternalName);
    }
    match spec.cluster_ip.as_deref() {
        None | Some("") | Some("None") => return Some(SkipReason::Headless),
        _ => {}
    }
    if cluster_ip_for_family(svc, family).is_none() {
        return Some(SkipReason::NoClusterIpForFamily);
    }
    None
}

fn cluster_ip_for_family(svc: &Service, family: IpFamily) -> Option<IpAddr> {
    let spec = svc.spec.as_ref()?;
    let mut candidates: Vec<&str> = spec
        .cluster_ips
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if candidates.is_empty() {
        candidates.extend(spec.cluster_ip.as_deref());
    }
    candidates
        .into_iter()
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .find(|ip| family.matches(*ip))
}

fn parse_ips(raw: impl IntoIterator<Item = String>, family: IpFamily) -> Vec<IpAddr> {
    raw.into_iter()
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .filter(|ip| family.matches(*ip))
        .collect()
}

/// Converts a Service into its proxied ports (`ServiceChangeTracker.serviceToServiceMap`).
/// Returns an empty list for skipped Services; malformed fields are dropped, never fatal.
pub fn service_ports(svc: &Service, family: IpFamily) -> Vec<(ServicePortName, ServiceInfo)> {
    if skip_reason(svc, family).is_some() {
        return Vec::new();
    }
    let (Some(spec), Some(cluster_ip)) = (svc.spec.as_ref(), cluster_ip_for_family(svc, family))
    else {
        return Vec::new();
    };
    let service = NamespacedName::new(
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    let svc_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    let session_affinity_timeout =
        (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(DEFAULT_CLIENT_IP_AFFINITY_SECONDS)
        });
    let external_ips = parse_ips(spec.external_ips.clone().unwrap_or_default(), family);
    let load_balancer_vips = load_balancer_vips(svc, family);
    let load_balancer_source_ranges: Vec<Cidr> = spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .filter_map(|s| s.parse::<Cidr>().ok())
        .filter(|c| family.matches(c.addr))
        .collect();
    // apiservice.ExternallyAccessible: LoadBalancer, NodePort, or ClusterIP with externalIPs.
    let externally_accessible_type = svc_type == "LoadBalancer"
        || svc_type == "NodePort"
        || (svc_type == "ClusterIP"
            && !spec.external_ips.as_deref().unwrap_or_default().is_empty());
    let external_policy_local =
        externally_accessible_type && spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_policy_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    // apiservice.NeedsHealthCheck: LoadBalancer with Local external policy.
    let health_check_node_port = if svc_type == "LoadBalancer" && external_policy_local {
        spec.health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0)
    } else {
        0
    };

    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let info = port_info(p, cluster_ip)?;
            let name = ServicePortName {
                service: service.clone(),
                port: p.name.clone().unwrap_or_default(),
                protocol: info.0,
            };
            Some((
                name,
                ServiceInfo {
                    cluster_ip,
                    port: info.1,
                    protocol: info.0,
                    node_port: info.2,
                    session_affinity_timeout,
                    external_ips: external_ips.clone(),
                    load_balancer_vips: load_balancer_vips.clone(),
                    load_balancer_source_ranges: load_balancer_source_ranges.clone(),
                    external_policy_local,
                    internal_policy_local,
                    health_check_node_port,
                },
            ))
        })
        .collect()
}

fn port_info(p: &ServicePort, cluster_ip: IpAddr) -> Option<(Protocol, u16, u16)> {
    let Some(protocol) = Protocol::from_api(p.protocol.as_deref()) else {
        tracing::debug!(?p.protocol, %cluster_ip, "Skipping service port with unknown protocol");
        return None;
    };
    let port = u16::try_from(p.port).ok().filter(|p| *p != 0)?;
    let node_port = p.node_port.and_then(|n| u16::try_from(n).ok()).unwrap_or(0);
    Some((protocol, port, node_port))
}

/// LoadBalancer ingress IPs, except those with `ipMode: Proxy` (the load
/// balancer delivers to the node, so the proxy must not short-circuit them).
fn load_balancer_vips(svc: &Service, family: IpFamily) -> Vec<IpAddr> {
    if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
        return Vec::new();
    }
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref());
    parse_ips(
        ingress
            .into_iter()
            .flatten()
            .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
            .filter_map(|i| i.ip.clone()),
        family,
    )
}
