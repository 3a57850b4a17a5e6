//! One service port's share of a sync (upstream `syncProxyRules`' loop
//! body): its dispatch-map elements, then — unless the Service is unchanged
//! in a partial sync — the rules of its own chains. The steps below run in
//! upstream's order; the transaction text depends on it.

use std::net::IpAddr;

use super::{Ctx, RendererState, SyncInput};
use crate::model::{Categorized, Endpoint, ServiceInfo, ServicePortName, categorize_endpoints};
use crate::nftables::names::*;

/// The decisions about one service port every step shares.
struct ServicePlan<'a> {
    spn: &'a ServicePortName,
    svc: &'a ServiceInfo,
    spn_string: String,
    proto: &'static str,
    chains: ServiceChains,
    cat: Categorized,
    uses_cluster_chain: bool,
    uses_local_chain: bool,
    uses_external_chain: bool,
    uses_firewall_chain: bool,
    /// Internal traffic has a usable endpoint under its policy.
    has_internal: bool,
    /// External traffic has a usable endpoint under its policy.
    has_external: bool,
    /// The verdict for traffic with no usable endpoint: reject when the
    /// Service has none at all, drop when only the policy rules them out.
    no_endpoint_verdict: String,
}

impl ServicePlan<'_> {
    fn internal_chain(&self) -> &str {
        if self.svc.internal_policy_local {
            &self.chains.local_policy
        } else {
            &self.chains.cluster_policy
        }
    }

    fn external_policy_chain(&self) -> &str {
        if self.svc.external_policy_local {
            &self.chains.local_policy
        } else {
            &self.chains.cluster_policy
        }
    }

    fn key(&self, addr: &IpAddr) -> String {
        format!("{addr} . {} . {}", self.proto, self.svc.port)
    }
}

fn plan<'a>(
    input: &SyncInput<'_>,
    spn: &'a ServicePortName,
    svc: &'a ServiceInfo,
    endpoints: &[Endpoint],
) -> ServicePlan<'a> {
    let cat = categorize_endpoints(endpoints, svc, input.node_name, input.node_labels);
    let has_local = !cat.local.is_empty();
    ServicePlan {
        spn_string: spn.to_string(),
        proto: svc.protocol.lower(),
        chains: ServiceChains::new(spn),
        uses_cluster_chain: !cat.cluster.is_empty() && svc.uses_cluster_endpoints(),
        uses_local_chain: has_local && svc.uses_local_endpoints(),
        // Needed even without externally usable endpoints, for the local
        // short-circuit rules.
        uses_external_chain: cat.has_any && svc.externally_accessible(),
        uses_firewall_chain: !svc.load_balancer_vips.is_empty()
            && !svc.load_balancer_source_ranges.is_empty(),
        has_internal: if svc.internal_policy_local {
            has_local
        } else {
            cat.has_any
        },
        has_external: if svc.external_policy_local {
            has_local
        } else {
            cat.has_any
        },
        no_endpoint_verdict: if cat.has_any {
            "drop".to_string()
        } else {
            format!("goto {REJECT_CHAIN}")
        },
        spn,
        svc,
        cat,
    }
}

/// Renders one service port. Returns (internal has no local endpoints,
/// external has no local endpoints) for the metric.
pub(super) fn render_service(
    ctx: &mut Ctx<'_>,
    state: &mut RendererState,
    input: &SyncInput<'_>,
    (spn, svc): (&ServicePortName, &ServiceInfo),
    endpoints: &[Endpoint],
    skip: bool,
) -> (bool, bool) {
    let p = plan(input, spn, svc, endpoints);
    declare_chains(ctx, &p, skip);
    cluster_ip_elements(ctx, state, &p);
    external_ip_elements(ctx, state, &p);
    load_balancer_elements(ctx, state, &p, skip);
    node_port_elements(ctx, state, &p);
    if !skip {
        internal_masquerade_rules(ctx, &p);
        external_chain_rules(ctx, &p);
        firewall_rules(ctx, &p);
        affinity_sets(ctx, &p);
        if p.uses_cluster_chain {
            service_to_endpoint_rules(ctx, &p, &p.chains.cluster_policy, &p.cat.cluster);
        }
        if p.uses_local_chain {
            service_to_endpoint_rules(ctx, &p, &p.chains.local_policy, &p.cat.local);
        }
        endpoint_chain_rules(ctx, &p);
    }
    let has_any = p.cat.has_any;
    (has_any && !p.has_internal, has_any && !p.has_external)
}

/// The endpoint, policy and external chains this port uses (the firewall
/// chain comes with the load-balancer elements).
fn declare_chains(ctx: &mut Ctx<'_>, p: &ServicePlan<'_>, skip: bool) {
    for ep in &p.cat.all_reachable {
        ctx.ensure_chain(&endpoint_chain(p.spn, ep), skip);
        if p.svc.session_affinity_timeout.is_some() {
            ctx.active_affinity_sets.insert(affinity_set(p.spn, ep));
        }
    }
    if p.uses_cluster_chain {
        ctx.ensure_chain(&p.chains.cluster_policy, skip);
    }
    if p.uses_local_chain {
        ctx.ensure_chain(&p.chains.local_policy, skip);
    }
    if p.uses_external_chain {
        ctx.ensure_chain(&p.chains.external, skip);
    }
}

fn cluster_ip_elements(ctx: &mut Ctx<'_>, state: &mut RendererState, p: &ServicePlan<'_>) {
    let cluster_ip = p.svc.cluster_ip;
    state
        .cluster_ips
        .ensure(&mut ctx.tx, cluster_ip.to_string(), None, None);
    if p.has_internal {
        let verdict = format!("goto {}", p.internal_chain());
        state
            .service_ips
            .ensure(&mut ctx.tx, p.key(&cluster_ip), Some(verdict), None);
    } else {
        state.no_endpoint_services.ensure(
            &mut ctx.tx,
            p.key(&cluster_ip),
            Some(p.no_endpoint_verdict.clone()),
            Some(p.spn_string.clone()),
        );
    }
}

fn external_ip_elements(ctx: &mut Ctx<'_>, state: &mut RendererState, p: &ServicePlan<'_>) {
    for ext_ip in &p.svc.external_ips {
        to_external_chain(ctx, state, p, ext_ip);
        if !p.has_external {
            no_endpoint_service(ctx, state, p, ext_ip);
        }
    }
}

fn load_balancer_elements(
    ctx: &mut Ctx<'_>,
    state: &mut RendererState,
    p: &ServicePlan<'_>,
    skip: bool,
) {
    if p.uses_firewall_chain {
        ctx.ensure_chain(&p.chains.firewall, skip);
    }
    for lb_ip in &p.svc.load_balancer_vips {
        to_external_chain(ctx, state, p, lb_ip);
        if p.uses_firewall_chain {
            let verdict = format!("goto {}", p.chains.firewall);
            state
                .firewall_ips
                .ensure(&mut ctx.tx, p.key(lb_ip), Some(verdict), None);
        }
    }
    if !p.has_external {
        for lb_ip in &p.svc.load_balancer_vips {
            no_endpoint_service(ctx, state, p, lb_ip);
        }
    }
}

/// An external address of a Service with endpoints goes to its external chain.
fn to_external_chain(
    ctx: &mut Ctx<'_>,
    state: &mut RendererState,
    p: &ServicePlan<'_>,
    addr: &IpAddr,
) {
    if p.cat.has_any {
        let verdict = format!("goto {}", p.chains.external);
        state
            .service_ips
            .ensure(&mut ctx.tx, p.key(addr), Some(verdict), None);
    }
}

/// An external address with no usable endpoint: drop or reject.
fn no_endpoint_service(
    ctx: &mut Ctx<'_>,
    state: &mut RendererState,
    p: &ServicePlan<'_>,
    addr: &IpAddr,
) {
    state.no_endpoint_services.ensure(
        &mut ctx.tx,
        p.key(addr),
        Some(p.no_endpoint_verdict.clone()),
        Some(p.spn_string.clone()),
    );
}

fn node_port_elements(ctx: &mut Ctx<'_>, state: &mut RendererState, p: &ServicePlan<'_>) {
    if p.svc.node_port == 0 {
        return;
    }
    let np_key = format!("{} . {}", p.proto, p.svc.node_port);
    if p.cat.has_any {
        let verdict = format!("goto {}", p.chains.external);
        state
            .service_nodeports
            .ensure(&mut ctx.tx, np_key.clone(), Some(verdict), None);
    }
    if !p.has_external {
        state.no_endpoint_nodeports.ensure(
            &mut ctx.tx,
            np_key,
            Some(p.no_endpoint_verdict.clone()),
            Some(p.spn_string.clone()),
        );
    }
}

/// Internal traffic: masquerade off-cluster sources reaching the VIP (they
/// may be bridged to another node).
fn internal_masquerade_rules(ctx: &mut Ctx<'_>, p: &ServicePlan<'_>) {
    if !p.has_internal {
        return;
    }
    let (ip, svc) = (ctx.ip, p.svc);
    let base = format!(
        "{ip} daddr {} {} dport {}",
        svc.cluster_ip, p.proto, svc.port
    );
    if ctx.cfg.masquerade_all {
        ctx.tx.add_rule(
            p.internal_chain(),
            &format!("{base} jump {MARK_MASQ_CHAIN}"),
        );
    } else if ctx.cfg.local_detector.is_implemented() {
        let not_local = ctx.cfg.local_detector.if_not_local_nft(ctx.cfg.family);
        ctx.tx.add_rule(
            p.internal_chain(),
            &format!("{base} {not_local} jump {MARK_MASQ_CHAIN}"),
        );
    }
}

fn external_chain_rules(ctx: &mut Ctx<'_>, p: &ServicePlan<'_>) {
    if !p.uses_external_chain {
        return;
    }
    let external = &p.chains.external;
    if !p.svc.external_policy_local {
        ctx.tx
            .add_rule(external, &format!("jump {MARK_MASQ_CHAIN}"));
    } else if p.uses_cluster_chain {
        // The short-circuit rules target the cluster-policy chain; when a
        // Service is Local for both policies that chain does not exist and
        // a rule referencing it would fail the whole transaction.
        let cluster = &p.chains.cluster_policy;
        if ctx.cfg.local_detector.is_implemented() {
            let local = ctx.cfg.local_detector.if_local_nft(ctx.cfg.family);
            ctx.tx.add_rule_with_comment(
                external,
                &format!("{local} goto {cluster}"),
                "short-circuit pod traffic",
            );
        }
        ctx.tx.add_rule_with_comment(
            external,
            &format!("fib saddr type local jump {MARK_MASQ_CHAIN}"),
            "masquerade local traffic",
        );
        ctx.tx.add_rule_with_comment(
            external,
            &format!("fib saddr type local goto {cluster}"),
            "short-circuit local traffic",
        );
    }
    if p.has_external {
        ctx.tx
            .add_rule(external, &format!("goto {}", p.external_policy_chain()));
    }
}

/// `loadBalancerSourceRanges`: drop everything else (the node itself too,
/// unless a range covers it, in which case the VIPs are allowed as well).
fn firewall_rules(ctx: &mut Ctx<'_>, p: &ServicePlan<'_>) {
    if !p.uses_firewall_chain {
        return;
    }
    let ranges = &p.svc.load_balancer_source_ranges;
    let mut sources: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    let allow_from_node = ctx
        .cfg
        .node_ip
        .is_some_and(|n| ranges.iter().any(|c| c.contains(n)));
    if allow_from_node {
        sources.extend(p.svc.load_balancer_vips.iter().map(ToString::to_string));
    }
    ctx.tx.add_rule(
        &p.chains.firewall,
        &format!("{} saddr != {{ {} }} drop", ctx.ip, sources.join(", ")),
    );
}

fn affinity_sets(ctx: &mut Ctx<'_>, p: &ServicePlan<'_>) {
    let Some(timeout) = p.svc.session_affinity_timeout else {
        return;
    };
    for ep in &p.cat.all_reachable {
        // "dynamic" is added by the kernel anyway; declaring it keeps the
        // re-add idempotent.
        ctx.tx.add_container(
            "set",
            &affinity_set(p.spn, ep),
            &format!(
                "type {} ; flags dynamic,timeout ; timeout {timeout}s",
                ctx.addr_type
            ),
            None,
        );
    }
}

/// A policy chain: sticky endpoints first, then a random pick.
fn service_to_endpoint_rules(
    ctx: &mut Ctx<'_>,
    p: &ServicePlan<'_>,
    chain: &str,
    endpoints: &[Endpoint],
) {
    if p.svc.session_affinity_timeout.is_some() {
        for ep in endpoints {
            ctx.tx.add_rule(
                chain,
                &format!(
                    "{} saddr @{} goto {}",
                    ctx.ip,
                    affinity_set(p.spn, ep),
                    endpoint_chain(p.spn, ep)
                ),
            );
        }
    }
    let elements: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto {}", endpoint_chain(p.spn, ep)))
        .collect();
    ctx.tx.add_rule(
        chain,
        &format!(
            "numgen random mod {} vmap {{ {} }}",
            endpoints.len(),
            elements.join(" , ")
        ),
    );
}

/// Each endpoint chain: hairpin SNAT, affinity bookkeeping, then DNAT.
fn endpoint_chain_rules(ctx: &mut Ctx<'_>, p: &ServicePlan<'_>) {
    let ip = ctx.ip;
    for ep in &p.cat.all_reachable {
        let chain = endpoint_chain(p.spn, ep);
        // Hairpin: a backend reaching itself through the Service needs SNAT.
        ctx.tx.add_rule(
            &chain,
            &format!("{ip} saddr {} jump {MARK_MASQ_CHAIN}", ep.ip),
        );
        if p.svc.session_affinity_timeout.is_some() {
            ctx.tx.add_rule(
                &chain,
                &format!("update @{} {{ {ip} saddr }}", affinity_set(p.spn, ep)),
            );
        }
        ctx.tx.add_rule(
            &chain,
            &format!("meta l4proto {} dnat to {}", p.proto, ep.addr()),
        );
    }
}
