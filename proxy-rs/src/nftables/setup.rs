//! The fixed part of the table, written on every full sync (upstream
//! `setupNFTables`): base chains hooked into netfilter, the dispatch chains
//! they jump to, and the sets/maps the per-service part fills.

use std::collections::BTreeSet;

use super::names::*;
use super::render::{NftConfig, RendererState};
use super::transaction::{Element, Transaction};
use crate::model::IpFamily;
use crate::proxy_util::{NodePortAddresses, nft_family_keyword};

/// (name, type, hook, priority). Filter chains run before DNAT so they see
/// the original destination. Upstream writes `dstnat - 10` etc.; nft 1.0.x
/// only accepts the symbolic names on some hooks, so we write the numbers
/// they stand for (dstnat = -100, srcnat = 100).
const BASE_CHAINS: [(&str, &str, &str, &str); 8] = [
    (FILTER_PREROUTING, "filter", "prerouting", "-110"),
    (FILTER_INPUT, "filter", "input", "-110"),
    (FILTER_FORWARD, "filter", "forward", "-110"),
    (FILTER_OUTPUT, "filter", "output", "-110"),
    (FILTER_OUTPUT_POST_DNAT, "filter", "output", "-90"),
    (NAT_PREROUTING, "nat", "prerouting", "-100"),
    (NAT_OUTPUT, "nat", "output", "-100"),
    (NAT_POSTROUTING, "nat", "postrouting", "100"),
];

/// (destination chain, source base chain, match prefix).
const JUMP_CHAINS: [(&str, &str, &str); 11] = [
    // reject is only valid in input/forward/output hooks on older kernels.
    (NODEPORT_ENDPOINTS_CHECK_CHAIN, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK_CHAIN, FILTER_INPUT, "ct state new"),
    (
        SERVICE_ENDPOINTS_CHECK_CHAIN,
        FILTER_FORWARD,
        "ct state new",
    ),
    (SERVICE_ENDPOINTS_CHECK_CHAIN, FILTER_OUTPUT, "ct state new"),
    (FIREWALL_CHECK_CHAIN, FILTER_PREROUTING, "ct state new"),
    (FIREWALL_CHECK_CHAIN, FILTER_OUTPUT, "ct state new"),
    (SERVICES_CHAIN, NAT_OUTPUT, ""),
    (SERVICES_CHAIN, NAT_PREROUTING, ""),
    (MASQUERADING_CHAIN, NAT_POSTROUTING, ""),
    (CLUSTER_IPS_CHECK_CHAIN, FILTER_FORWARD, "ct state new"),
    (
        CLUSTER_IPS_CHECK_CHAIN,
        FILTER_OUTPUT_POST_DNAT,
        "ct state new",
    ),
];

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What every step of the setup writes with.
struct Setup<'a> {
    cfg: &'a NftConfig,
    tx: &'a mut Transaction,
    /// `ip` or `ip6`.
    ip: &'static str,
    addr_type: &'static str,
    /// Regular chains created so far, each created once.
    created: BTreeSet<String>,
}

impl Setup<'_> {
    fn ensure_chain(&mut self, chain: &str) {
        if self.created.insert(chain.to_string()) {
            self.tx.add_chain(chain);
            self.tx.flush_chain(chain);
        }
    }

    /// The match that keeps NodePorts off localhost, or to the listed IPs.
    fn no_localhost(&self) -> &'static str {
        match self.cfg.family {
            IpFamily::V4 => "ip daddr != 127.0.0.0/8",
            IpFamily::V6 => "ip6 daddr != ::1",
        }
    }
}

pub fn setup(cfg: &NftConfig, state: &mut RendererState, tx: &mut Transaction) {
    let mut s = Setup {
        cfg,
        tx,
        ip: nft_family_keyword(cfg.family),
        addr_type: match cfg.family {
            IpFamily::V4 => "ipv4_addr",
            IpFamily::V6 => "ipv6_addr",
        },
        created: BTreeSet::new(),
    };
    s.tx.add_table("rules for kube-proxy");
    base_chains(&mut s, state);
    jump_chains(&mut s);
    masquerading(&mut s);
    cluster_ips_check(&mut s);
    node_port_ips(&mut s);
    no_endpoint_maps(&mut s);
    firewall_map(&mut s);
    service_maps(&mut s);
    state.reset_elements(s.tx);
}

fn base_chains(s: &mut Setup<'_>, state: &mut RendererState) {
    // Once per process: recreate base chains so changed properties (e.g.
    // priority) from an older kube-proxy cannot fail the transaction.
    if !state.flushed {
        for (name, ..) in BASE_CHAINS {
            s.tx.add_chain(name);
            s.tx.delete_chain(name);
        }
        state.flushed = true;
    }
    for (name, kind, hook, prio) in BASE_CHAINS {
        s.tx.add_base_chain(name, kind, hook, prio);
        s.tx.flush_chain(name);
    }
}

/// The dispatch chains and the base-chain rules that jump to them.
fn jump_chains(s: &mut Setup<'_>) {
    for (dst, src, prefix) in JUMP_CHAINS {
        s.ensure_chain(dst);
        s.tx.add_rule(src, &join(&[prefix, "jump", dst]));
    }
    for chain in [
        SERVICES_CHAIN,
        CLUSTER_IPS_CHECK_CHAIN,
        MASQUERADING_CHAIN,
        MARK_MASQ_CHAIN,
    ] {
        s.ensure_chain(chain);
    }
}

fn masquerading(s: &mut Setup<'_>) {
    let mark = s.cfg.masquerade_mark_string();
    let tx = &mut *s.tx;
    tx.add_rule(MARK_MASQ_CHAIN, &format!("mark set mark or {mark}"));
    tx.add_rule(MASQUERADING_CHAIN, &format!("mark and {mark} == 0 return"));
    tx.add_rule(MASQUERADING_CHAIN, &format!("mark set mark xor {mark}"));
    tx.add_rule(MASQUERADING_CHAIN, "masquerade fully-random");
}

/// Reject traffic to unused ports of ClusterIPs; drop traffic to unallocated
/// ClusterIPs in the ServiceCIDRs.
fn cluster_ips_check(s: &mut Setup<'_>) {
    let ip = s.ip;
    s.tx.add_container(
        "set",
        CLUSTER_IPS_SET,
        &format!("type {}", s.addr_type),
        Some("Active ClusterIPs"),
    );
    s.tx.add_rule_with_comment(
        CLUSTER_IPS_CHECK_CHAIN,
        &format!("{ip} daddr @{CLUSTER_IPS_SET} reject"),
        "Reject traffic to invalid ports of ClusterIPs",
    );
    if !s.cfg.service_cidrs.is_empty() {
        let cidrs: Vec<String> = s
            .cfg
            .service_cidrs
            .iter()
            .map(ToString::to_string)
            .collect();
        s.tx.add_rule_with_comment(
            CLUSTER_IPS_CHECK_CHAIN,
            &format!("{ip} daddr {{ {} }} drop", cidrs.join(", ")),
            "Drop traffic to unallocated ClusterIPs",
        );
    }
}

/// `nodePortAddresses`: the set of IPs that accept NodePorts (none when all do).
fn node_port_ips(s: &mut Setup<'_>) {
    // add+delete so the delete cannot fail when the set does not exist.
    s.tx.add_container(
        "set",
        NODEPORT_IPS_SET,
        &format!("type {}", s.addr_type),
        Some("IPs that accept NodePort traffic"),
    );
    let ips = match &s.cfg.node_port_addresses {
        NodePortAddresses::MatchAll => {
            s.tx.delete_container("set", NODEPORT_IPS_SET);
            return;
        }
        NodePortAddresses::Ips(ips) => ips,
    };
    s.tx.flush_container("set", NODEPORT_IPS_SET);
    for node_ip in ips {
        if node_ip.is_loopback() {
            tracing::error!(address = %node_ip, "--nodeport-addresses includes localhost but localhost NodePorts are not supported");
            continue;
        }
        s.tx.add_element(&Element {
            container: NODEPORT_IPS_SET.to_string(),
            key: node_ip.to_string(),
            value: None,
            comment: None,
        });
    }
}

/// Drop or reject traffic to Services and NodePorts without endpoints.
fn no_endpoint_maps(s: &mut Setup<'_>) {
    let ip = s.ip;
    s.tx.add_container(
        "map",
        NO_ENDPOINT_SERVICES_MAP,
        &format!("type {} . inet_proto . inet_service : verdict", s.addr_type),
        Some("vmap to drop or reject packets to services with no endpoints"),
    );
    s.tx.add_container(
        "map",
        NO_ENDPOINT_NODEPORTS_MAP,
        "type inet_proto . inet_service : verdict",
        Some("vmap to drop or reject packets to service nodeports with no endpoints"),
    );
    s.tx.add_chain_with_comment(
        REJECT_CHAIN,
        "helper for @no-endpoint-services / @no-endpoint-nodeports",
    );
    s.tx.flush_chain(REJECT_CHAIN);
    s.tx.add_rule(REJECT_CHAIN, "reject");
    s.tx.add_rule(
        SERVICE_ENDPOINTS_CHECK_CHAIN,
        &format!("{ip} daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES_MAP}"),
    );
    let nodeport_match = if s.cfg.node_port_addresses.match_all() {
        s.no_localhost().to_string()
    } else {
        format!("{ip} daddr @{NODEPORT_IPS_SET}")
    };
    s.tx.add_rule(
        NODEPORT_ENDPOINTS_CHECK_CHAIN,
        &format!("{nodeport_match} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS_MAP}"),
    );
}

/// LoadBalancer destinations subject to `loadBalancerSourceRanges`.
fn firewall_map(s: &mut Setup<'_>) {
    s.tx.add_container(
        "map",
        FIREWALL_IPS_MAP,
        &format!("type {} . inet_proto . inet_service : verdict", s.addr_type),
        Some("destinations that are subject to LoadBalancerSourceRanges"),
    );
    s.ensure_chain(FIREWALL_CHECK_CHAIN);
    s.tx.add_rule(
        FIREWALL_CHECK_CHAIN,
        &format!(
            "{} daddr . meta l4proto . th dport vmap @{FIREWALL_IPS_MAP}",
            s.ip
        ),
    );
}

/// The maps `services` dispatches ClusterIP/ExternalIP/LB and NodePort
/// traffic through.
fn service_maps(s: &mut Setup<'_>) {
    let ip = s.ip;
    s.tx.add_container(
        "map",
        SERVICE_IPS_MAP,
        &format!("type {} . inet_proto . inet_service : verdict", s.addr_type),
        Some("ClusterIP, ExternalIP and LoadBalancer IP traffic"),
    );
    s.tx.add_container(
        "map",
        SERVICE_NODEPORTS_MAP,
        "type inet_proto . inet_service : verdict",
        Some("NodePort traffic"),
    );
    s.tx.add_rule(
        SERVICES_CHAIN,
        &format!("{ip} daddr . meta l4proto . th dport vmap @{SERVICE_IPS_MAP}"),
    );
    let services_nodeport_match = if s.cfg.node_port_addresses.match_all() {
        format!("fib daddr type local {}", s.no_localhost())
    } else {
        format!("{ip} daddr @{NODEPORT_IPS_SET}")
    };
    s.tx.add_rule(
        SERVICES_CHAIN,
        &format!("{services_nodeport_match} meta l4proto . th dport vmap @{SERVICE_NODEPORTS_MAP}"),
    );
}
