//! Chain and set names, identical to upstream's so `nft list` output reads
//! the same: `service-HASH-ns/name/proto/port`, `endpoint-HASH-...__ip/port`.

use data_encoding::BASE32;
use ring::digest::{SHA256, digest};

use crate::model::{Endpoint, ServicePortName};

pub const TABLE: &str = "kube-proxy";

pub const FILTER_PREROUTING: &str = "filter-prerouting";
pub const FILTER_INPUT: &str = "filter-input";
pub const FILTER_FORWARD: &str = "filter-forward";
pub const FILTER_OUTPUT: &str = "filter-output";
pub const FILTER_OUTPUT_POST_DNAT: &str = "filter-output-post-dnat";
pub const NAT_PREROUTING: &str = "nat-prerouting";
pub const NAT_OUTPUT: &str = "nat-output";
pub const NAT_POSTROUTING: &str = "nat-postrouting";

pub const SERVICES_CHAIN: &str = "services";
pub const SERVICE_IPS_MAP: &str = "service-ips";
pub const SERVICE_NODEPORTS_MAP: &str = "service-nodeports";
pub const NODEPORT_IPS_SET: &str = "nodeport-ips";
pub const CLUSTER_IPS_SET: &str = "cluster-ips";
pub const SERVICE_ENDPOINTS_CHECK_CHAIN: &str = "service-endpoints-check";
pub const NODEPORT_ENDPOINTS_CHECK_CHAIN: &str = "nodeport-endpoints-check";
pub const NO_ENDPOINT_SERVICES_MAP: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS_MAP: &str = "no-endpoint-nodeports";
pub const REJECT_CHAIN: &str = "reject-chain";
pub const CLUSTER_IPS_CHECK_CHAIN: &str = "cluster-ips-check";
pub const FIREWALL_IPS_MAP: &str = "firewall-ips";
pub const FIREWALL_CHECK_CHAIN: &str = "firewall-check";
pub const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";
pub const MASQUERADING_CHAIN: &str = "masquerading";

const CLUSTER_POLICY_PREFIX: &str = "service-";
const LOCAL_POLICY_PREFIX: &str = "local-";
const EXTERNAL_PREFIX: &str = "external-";
const ENDPOINT_PREFIX: &str = "endpoint-";
const AFFINITY_PREFIX: &str = "affinity-";
const FIREWALL_PREFIX: &str = "firewall-";

/// nftables' name limit (256) minus the longest prefix we add.
const NAME_BASE_MAX: usize = 256 - 16;

/// `HASH-name`, HASH being the first 8 base32 chars of SHA-256(name), so
/// names stay unique and visually distinct even when truncated.
fn hash_and_truncate(name: &str) -> String {
    let hash = BASE32.encode(digest(&SHA256, name.as_bytes()).as_ref());
    let mut out = format!("{}-{}", &hash[..8], name);
    if out.len() > NAME_BASE_MAX {
        // Names are ASCII ([a-z0-9-./_]), so byte truncation is safe.
        out.truncate(NAME_BASE_MAX - 3);
        out.push_str("...");
    }
    out
}

fn service_base(spn: &ServicePortName) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        spn.service.namespace,
        spn.service.name,
        spn.protocol.lower(),
        spn.port
    ))
}

fn endpoint_base(spn: &ServicePortName, ep: &Endpoint) -> String {
    // IPv6 colons are not valid in chain names.
    let ip = ep.ip.to_string().replace(':', ".");
    hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        spn.service.namespace,
        spn.service.name,
        spn.protocol.lower(),
        spn.port,
        ip,
        ep.port
    ))
}

/// Per-service-port chain names, computed once per sync.
#[derive(Debug, Clone)]
pub struct ServiceChains {
    pub cluster_policy: String,
    pub local_policy: String,
    pub external: String,
    pub firewall: String,
}

impl ServiceChains {
    pub fn new(spn: &ServicePortName) -> Self {
        let base = service_base(spn);
        Self {
            cluster_policy: format!("{CLUSTER_POLICY_PREFIX}{base}"),
            local_policy: format!("{LOCAL_POLICY_PREFIX}{base}"),
            external: format!("{EXTERNAL_PREFIX}{base}"),
            firewall: format!("{FIREWALL_PREFIX}{base}"),
        }
    }
}

pub fn endpoint_chain(spn: &ServicePortName, ep: &Endpoint) -> String {
    format!("{ENDPOINT_PREFIX}{}", endpoint_base(spn, ep))
}

pub fn affinity_set(spn: &ServicePortName, ep: &Endpoint) -> String {
    format!("{AFFINITY_PREFIX}{}", endpoint_base(spn, ep))
}

/// Service and endpoint chains always contain a `/`; our fixed chains never do.
pub fn is_service_chain(name: &str) -> bool {
    name.contains('/')
}

pub fn is_affinity_set(name: &str) -> bool {
    name.starts_with(AFFINITY_PREFIX)
}
