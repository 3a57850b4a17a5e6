//! The fixed part of the table, written on every full sync (upstream
//! `setupNFTables`): base chains hooked into netfilter, the dispatch chains
//! they jump to, and the sets/maps the per-service part fills.

use super::names::*;
use super::render::{NftConfig, RendererState};
use super::transaction::Transaction;
use crate::proxy_util::nft_family_keyword;

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

pub fn setup(cfg: &NftConfig, state: &mut RendererState, tx: &mut Transaction) {
    let ip = nft_family_keyword(cfg.family);
    let addr_type = match cfg.family {
        crate::model::IpFamily::V4 => "ipv4_addr",
        crate::model::IpFamily::V6 => "ipv6_addr",
    };
    let no_localhost = match cfg.family {
        crate::model::IpFamily::V4 => "ip daddr != 127.0.0.0/8",
        crate::model::IpFamily::V6 => "ip6 daddr != ::1",
    };
    let mark = cfg.masquerade_mark_string();

    tx.add_table("rules for kube-proxy");
    // Once per process: recreate base chains so changed properties (e.g.
    // priority) from an older kube-proxy cannot fail the transaction.
    if !state.flushed {
        for (name, ..) in BASE_CHAINS {
            tx.add_chain(name);
            tx.delete_chain(name);
        }
        state.flushed = true;
    }
    for (name, kind, hook, prio) in BASE_CHAINS {
        tx.add_base_chain(name, kind, hook, prio);
        tx.flush_chain(name);
    }

    let mut created = std::collections::BTreeSet::new();
    let mut ensure = |tx: &mut Transaction, chain: &str| {
        if created.insert(chain.to_string()) {
            tx.add_chain(chain);
            tx.flush_chain(chain);
        }
    };
    for (dst, src, prefix) in JUMP_CHAINS {
        ensure(tx, dst);
        tx.add_rule(src, &join(&[prefix, "jump", dst]));
    }
    for chain in [
        SERVICES_CHAIN,
        CLUSTER_IPS_CHECK_CHAIN,
        MASQUERADING_CHAIN,
        MARK_MASQ_CHAIN,
    ] {
        ensure(tx, chain);
    }

    tx.add_rule(MARK_MASQ_CHAIN, &format!("mark set mark or {mark}"));
    tx.add_rule(MASQUERADING_CHAIN, &format!("mark and {mark} == 0 return"));
    tx.add_rule(MASQUERADING_CHAIN, &format!("mark set mark xor {mark}"));
    tx.add_rule(MASQUERADING_CHAIN, "masquerade fully-random");

    tx.add_container(
        "set",
        CLUSTER_IPS_SET,
        &format!("type {addr_type}"),
        Some("Active ClusterIPs"),
    );
    tx.add_rule_with_comment(
        CLUSTER_IPS_CHECK_CHAIN,
        &format!("{ip} daddr @{CLUSTER_IPS_SET} reject"),
        "Reject traffic to invalid ports of ClusterIPs",
    );
    if !cfg.service_cidrs.is_empty() {
        let cidrs: Vec<String> = cfg.service_cidrs.iter().map(ToString::to_string).collect();
        tx.add_rule_with_comment(
            CLUSTER_IPS_CHECK_CHAIN,
            &format!("{ip} daddr {{ {} }} drop", cidrs.join(", ")),
            "Drop traffic to unallocated ClusterIPs",
        );
    }

    // add+delete so the delete cannot fail when the set does not exist.
    tx.add_container(
        "set",
        NODEPORT_IPS_SET,
        &format!("type {addr_type}"),
        Some("IPs that accept NodePort traffic"),
    );
    match &cfg.node_port_addresses {
        crate::proxy_util::NodePortAddresses::MatchAll => {
            tx.delete_container("set", NODEPORT_IPS_SET)
        }
        crate::proxy_util::NodePortAddresses::Ips(ips) => {
            tx.flush_container("set", NODEPORT_IPS_SET);
            for node_ip in ips {
                if node_ip.is_loopback() {
                    tracing::error!(address = %node_ip, "--nodeport-addresses includes localhost but localhost NodePorts are not supported");
                    continue;
                }
                tx.add_element(&super::transaction::Element {
                    container: NODEPORT_IPS_SET.to_string(),
                    key: node_ip.to_string(),
                    value: None,
                    comment: None,
                });
            }
        }
    }

    tx.add_container(
        "map",
        NO_ENDPOINT_SERVICES_MAP,
        &format!("type {addr_type} . inet_proto . inet_service : verdict"),
        Some("vmap to drop or reject packets to services with no endpoints"),
    );
    tx.add_container(
        "map",
        NO_ENDPOINT_NODEPORTS_MAP,
        "type inet_proto . inet_service : verdict",
        Some("vmap to drop or reject packets to service nodeports with no endpoints"),
    );
    tx.add_chain_with_comment(
        REJECT_CHAIN,
        "helper for @no-endpoint-services / @no-endpoint-nodeports",
    );
    tx.flush_chain(REJECT_CHAIN);
    tx.add_rule(REJECT_CHAIN, "reject");
    tx.add_rule(
        SERVICE_ENDPOINTS_CHECK_CHAIN,
        &format!("{ip} daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES_MAP}"),
    );
    let nodeport_match = if cfg.node_port_addresses.match_all() {
        no_localhost.to_string()
    } else {
        format!("{ip} daddr @{NODEPORT_IPS_SET}")
    };
    tx.add_rule(
        NODEPORT_ENDPOINTS_CHECK_CHAIN,
        &format!("{nodeport_match} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS_MAP}"),
    );

    tx.add_container(
        "map",
        FIREWALL_IPS_MAP,
        &format!("type {addr_type} . inet_proto . inet_service : verdict"),
        Some("destinations that are subject to LoadBalancerSourceRanges"),
    );
    ensure(tx, FIREWALL_CHECK_CHAIN);
    tx.add_rule(
        FIREWALL_CHECK_CHAIN,
        &format!("{ip} daddr . meta l4proto . th dport vmap @{FIREWALL_IPS_MAP}"),
    );

    tx.add_container(
        "map",
        SERVICE_IPS_MAP,
        &format!("type {addr_type} . inet_proto . inet_service : verdict"),
        Some("ClusterIP, ExternalIP and LoadBalancer IP traffic"),
    );
    tx.add_container(
        "map",
        SERVICE_NODEPORTS_MAP,
        "type inet_proto . inet_service : verdict",
        Some("NodePort traffic"),
    );
    tx.add_rule(
        SERVICES_CHAIN,
        &format!("{ip} daddr . meta l4proto . th dport vmap @{SERVICE_IPS_MAP}"),
    );
    let services_nodeport_match = if cfg.node_port_addresses.match_all() {
        format!("fib daddr type local {no_localhost}")
    } else {
        format!("{ip} daddr @{NODEPORT_IPS_SET}")
    };
    tx.add_rule(
        SERVICES_CHAIN,
        &format!("{services_nodeport_match} meta l4proto . th dport vmap @{SERVICE_NODEPORTS_MAP}"),
    );

    state.reset_elements(tx);
}
