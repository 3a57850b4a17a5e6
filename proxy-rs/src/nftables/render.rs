//! Pure renderer: model maps in, one nftables transaction out (upstream
//! `syncProxyRules`). A full sync rewrites the fixed chains and every
//! service; a partial sync only flushes and refills the chains of Services
//! whose ports or endpoints changed, while keeping the dispatch maps exact.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::element_storage::ElementStorage;
use super::names::*;
use super::setup::setup;
use super::transaction::Transaction;
use crate::model::{
    Cidr, Endpoint, EndpointsMap, IpFamily, NamespacedName, ServiceInfo, ServicePortMap,
    ServicePortName, categorize_endpoints,
};
use crate::proxy_util::{LocalDetector, NodePortAddresses, nft_family_keyword};

/// Settings that stay fixed for the life of the proxier.
#[derive(Debug, Clone)]
pub struct NftConfig {
    pub family: IpFamily,
    pub masquerade_all: bool,
    /// `nftables.masqueradeBit`; the mark is `1 << bit`.
    pub masquerade_bit: u32,
    pub local_detector: LocalDetector,
    pub node_port_addresses: NodePortAddresses,
    /// Primary node IP (LoadBalancerSourceRanges may need to allow it).
    pub node_ip: Option<IpAddr>,
    /// ServiceCIDRs; traffic to unallocated ClusterIPs in them is dropped.
    pub service_cidrs: Vec<Cidr>,
}

impl NftConfig {
    /// Go's `%#08x`, e.g. `0x004000` for bit 14 (what upstream writes).
    pub fn masquerade_mark_string(&self) -> String {
        format!("{:#08x}", 1u32 << self.masquerade_bit.min(31))
    }
}

/// What the renderer remembers between syncs.
#[derive(Debug)]
pub struct RendererState {
    pub(super) flushed: bool,
    cluster_ips: ElementStorage,
    service_ips: ElementStorage,
    firewall_ips: ElementStorage,
    no_endpoint_services: ElementStorage,
    no_endpoint_nodeports: ElementStorage,
    service_nodeports: ElementStorage,
}

impl Default for RendererState {
    fn default() -> Self {
        Self {
            flushed: false,
            cluster_ips: ElementStorage::set(CLUSTER_IPS_SET),
            service_ips: ElementStorage::map(SERVICE_IPS_MAP),
            firewall_ips: ElementStorage::map(FIREWALL_IPS_MAP),
            no_endpoint_services: ElementStorage::map(NO_ENDPOINT_SERVICES_MAP),
            no_endpoint_nodeports: ElementStorage::map(NO_ENDPOINT_NODEPORTS_MAP),
            service_nodeports: ElementStorage::map(SERVICE_NODEPORTS_MAP),
        }
    }
}

impl RendererState {
    fn storages(&mut self) -> [&mut ElementStorage; 6] {
        [
            &mut self.cluster_ips,
            &mut self.service_ips,
            &mut self.firewall_ips,
            &mut self.no_endpoint_services,
            &mut self.no_endpoint_nodeports,
            &mut self.service_nodeports,
        ]
    }

    pub(super) fn reset_elements(&mut self, tx: &mut Transaction) {
        for s in self.storages() {
            s.reset(tx);
        }
    }

    /// After a failed transaction nothing we remember is reliable.
    pub fn invalidate(&mut self) {
        for s in self.storages() {
            s.invalidate();
        }
    }
}

/// One sync's inputs.
pub struct SyncInput<'a> {
    pub services: &'a ServicePortMap,
    pub endpoints: &'a EndpointsMap,
    pub node_name: &'a str,
    pub node_labels: &'a BTreeMap<String, String>,
    /// Full sync (rewrite everything) or partial (only `updated`).
    pub full: bool,
    /// Services whose ports or endpoints changed since the last sync.
    pub updated: &'a BTreeSet<NamespacedName>,
    /// Chains and sets currently in the kernel table.
    pub existing_chains: &'a BTreeSet<String>,
    pub existing_sets: &'a BTreeSet<String>,
}

#[derive(Debug)]
pub struct SyncOutput {
    pub tx: Transaction,
    /// Service/endpoint chains still in use.
    pub active_chains: BTreeSet<String>,
    /// Chains flushed now; delete them in a later transaction (a map element
    /// pointing at a chain may keep it referenced briefly on kernels < 6.2).
    pub stale_chains: BTreeSet<String>,
    pub no_local_endpoints_internal: usize,
    pub no_local_endpoints_external: usize,
}

struct Ctx<'a> {
    cfg: &'a NftConfig,
    ip: &'static str,
    addr_type: &'static str,
    tx: Transaction,
    active_chains: BTreeSet<String>,
    active_affinity_sets: BTreeSet<String>,
}

impl Ctx<'_> {
    /// Declares `chain` in use; unless skipped, (re)creates it empty.
    fn ensure_chain(&mut self, chain: &str, skip: bool) {
        if !self.active_chains.insert(chain.to_string()) || skip {
            return;
        }
        self.tx.add_chain(chain);
        self.tx.flush_chain(chain);
    }
}

pub fn render(cfg: &NftConfig, state: &mut RendererState, input: &SyncInput<'_>) -> SyncOutput {
    let mut ctx = Ctx {
        cfg,
        ip: nft_family_keyword(cfg.family),
        addr_type: if cfg.family == IpFamily::V4 {
            "ipv4_addr"
        } else {
            "ipv6_addr"
        },
        tx: Transaction::new(nft_family_keyword(cfg.family)),
        active_chains: BTreeSet::new(),
        active_affinity_sets: BTreeSet::new(),
    };
    if input.full {
        setup(cfg, state, &mut ctx.tx);
    }
    for s in state.storages() {
        s.begin();
    }
    let mut no_local = (0, 0);
    for (spn, svc) in input.services {
        let eps = input
            .endpoints
            .get(spn)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let skip = !input.full && !input.updated.contains(&spn.service);
        let (internal, external) = render_service(&mut ctx, state, input, spn, svc, eps, skip);
        no_local.0 += usize::from(internal);
        no_local.1 += usize::from(external);
    }

    let mut stale_chains = BTreeSet::new();
    for chain in input.existing_chains.iter().filter(|c| is_service_chain(c)) {
        if !ctx.active_chains.contains(chain) {
            ctx.tx.flush_chain(chain);
            stale_chains.insert(chain.clone());
        }
    }
    for set in input.existing_sets.iter().filter(|s| is_affinity_set(s)) {
        if !ctx.active_affinity_sets.contains(set) {
            ctx.tx.delete_container("set", set);
        }
    }
    for s in state.storages() {
        s.cleanup(&mut ctx.tx);
    }
    SyncOutput {
        tx: ctx.tx,
        active_chains: ctx.active_chains,
        stale_chains,
        no_local_endpoints_internal: no_local.0,
        no_local_endpoints_external: no_local.1,
    }
}

/// Renders one service port. Returns (internal has no local endpoints,
/// external has no local endpoints) for the metric.
fn render_service(
    ctx: &mut Ctx<'_>,
    state: &mut RendererState,
    input: &SyncInput<'_>,
    spn: &ServicePortName,
    svc: &ServiceInfo,
    endpoints: &[Endpoint],
    skip: bool,
) -> (bool, bool) {
    let ip = ctx.ip;
    let proto = svc.protocol.lower();
    let chains = ServiceChains::new(spn);
    let cat = categorize_endpoints(endpoints, svc, input.node_name, input.node_labels);
    let spn_string = spn.to_string();

    for ep in &cat.all_reachable {
        ctx.ensure_chain(&endpoint_chain(spn, ep), skip);
        if svc.session_affinity_timeout.is_some() {
            ctx.active_affinity_sets.insert(affinity_set(spn, ep));
        }
    }
    let uses_cluster_chain = !cat.cluster.is_empty() && svc.uses_cluster_endpoints();
    if uses_cluster_chain {
        ctx.ensure_chain(&chains.cluster_policy, skip);
    }
    let uses_local_chain = !cat.local.is_empty() && svc.uses_local_endpoints();
    if uses_local_chain {
        ctx.ensure_chain(&chains.local_policy, skip);
    }

    let mut internal_chain = &chains.cluster_policy;
    let mut has_internal = cat.has_any;
    if svc.internal_policy_local {
        internal_chain = &chains.local_policy;
        has_internal = !cat.local.is_empty();
    }
    let mut external_policy_chain = &chains.cluster_policy;
    let mut has_external = cat.has_any;
    if svc.external_policy_local {
        external_policy_chain = &chains.local_policy;
        has_external = !cat.local.is_empty();
    }
    // Needed even without externally usable endpoints, for the local
    // short-circuit rules.
    let uses_external_chain = cat.has_any && svc.externally_accessible();
    if uses_external_chain {
        ctx.ensure_chain(&chains.external, skip);
    }

    let reject = format!("goto {REJECT_CHAIN}");
    let (internal_verdict, external_verdict) = if !cat.has_any {
        (reject.clone(), reject)
    } else {
        ("drop".to_string(), "drop".to_string())
    };
    let no_local_internal = cat.has_any && !has_internal;
    let no_local_external = cat.has_any && !has_external;

    let key = |addr: &IpAddr, port: u16| format!("{addr} . {proto} . {port}");
    state
        .cluster_ips
        .ensure(&mut ctx.tx, svc.cluster_ip.to_string(), None, None);
    if has_internal {
        state.service_ips.ensure(
            &mut ctx.tx,
            key(&svc.cluster_ip, svc.port),
            Some(format!("goto {internal_chain}")),
            None,
        );
    } else {
        state.no_endpoint_services.ensure(
            &mut ctx.tx,
            key(&svc.cluster_ip, svc.port),
            Some(internal_verdict),
            Some(spn_string.clone()),
        );
    }

    for ext_ip in &svc.external_ips {
        if cat.has_any {
            state.service_ips.ensure(
                &mut ctx.tx,
                key(ext_ip, svc.port),
                Some(format!("goto {}", chains.external)),
                None,
            );
        }
        if !has_external {
            state.no_endpoint_services.ensure(
                &mut ctx.tx,
                key(ext_ip, svc.port),
                Some(external_verdict.clone()),
                Some(spn_string.clone()),
            );
        }
    }

    let uses_fw_chain =
        !svc.load_balancer_vips.is_empty() && !svc.load_balancer_source_ranges.is_empty();
    if uses_fw_chain {
        ctx.ensure_chain(&chains.firewall, skip);
    }
    for lb_ip in &svc.load_balancer_vips {
        if cat.has_any {
            state.service_ips.ensure(
                &mut ctx.tx,
                key(lb_ip, svc.port),
                Some(format!("goto {}", chains.external)),
                None,
            );
        }
        if uses_fw_chain {
            state.firewall_ips.ensure(
                &mut ctx.tx,
                key(lb_ip, svc.port),
                Some(format!("goto {}", chains.firewall)),
                None,
            );
        }
    }
    if !has_external {
        for lb_ip in &svc.load_balancer_vips {
            state.no_endpoint_services.ensure(
                &mut ctx.tx,
                key(lb_ip, svc.port),
                Some(external_verdict.clone()),
                Some(spn_string.clone()),
            );
        }
    }

    if svc.node_port != 0 {
        let np_key = format!("{proto} . {}", svc.node_port);
        if cat.has_any {
            state.service_nodeports.ensure(
                &mut ctx.tx,
                np_key.clone(),
                Some(format!("goto {}", chains.external)),
                None,
            );
        }
        if !has_external {
            state.no_endpoint_nodeports.ensure(
                &mut ctx.tx,
                np_key,
                Some(external_verdict.clone()),
                Some(spn_string.clone()),
            );
        }
    }

    if skip {
        return (no_local_internal, no_local_external);
    }

    // Internal traffic: masquerade off-cluster sources reaching the VIP
    // (they may be bridged to another node).
    if has_internal {
        let base = format!("{ip} daddr {} {proto} dport {}", svc.cluster_ip, svc.port);
        if ctx.cfg.masquerade_all {
            ctx.tx
                .add_rule(internal_chain, &format!("{base} jump {MARK_MASQ_CHAIN}"));
        } else if ctx.cfg.local_detector.is_implemented() {
            let not_local = ctx.cfg.local_detector.if_not_local_nft(ctx.cfg.family);
            ctx.tx.add_rule(
                internal_chain,
                &format!("{base} {not_local} jump {MARK_MASQ_CHAIN}"),
            );
        }
    }

    if uses_external_chain {
        if !svc.external_policy_local {
            ctx.tx
                .add_rule(&chains.external, &format!("jump {MARK_MASQ_CHAIN}"));
        } else if uses_cluster_chain {
            // The short-circuit rules target the cluster-policy chain; when a
            // Service is Local for both policies that chain does not exist and
            // a rule referencing it would fail the whole transaction.
            if ctx.cfg.local_detector.is_implemented() {
                let local = ctx.cfg.local_detector.if_local_nft(ctx.cfg.family);
                ctx.tx.add_rule_with_comment(
                    &chains.external,
                    &format!("{local} goto {}", chains.cluster_policy),
                    "short-circuit pod traffic",
                );
            }
            ctx.tx.add_rule_with_comment(
                &chains.external,
                &format!("fib saddr type local jump {MARK_MASQ_CHAIN}"),
                "masquerade local traffic",
            );
            ctx.tx.add_rule_with_comment(
                &chains.external,
                &format!("fib saddr type local goto {}", chains.cluster_policy),
                "short-circuit local traffic",
            );
        }
        if has_external {
            ctx.tx
                .add_rule(&chains.external, &format!("goto {external_policy_chain}"));
        }
    }

    if uses_fw_chain {
        let mut sources: Vec<String> = svc
            .load_balancer_source_ranges
            .iter()
            .map(ToString::to_string)
            .collect();
        let allow_from_node = ctx.cfg.node_ip.is_some_and(|n| {
            svc.load_balancer_source_ranges
                .iter()
                .any(|c| c.contains(n))
        });
        if allow_from_node {
            sources.extend(svc.load_balancer_vips.iter().map(ToString::to_string));
        }
        ctx.tx.add_rule(
            &chains.firewall,
            &format!("{ip} saddr != {{ {} }} drop", sources.join(", ")),
        );
    }

    if let Some(timeout) = svc.session_affinity_timeout {
        for ep in &cat.all_reachable {
            // "dynamic" is added by the kernel anyway; declaring it keeps the
            // re-add idempotent.
            ctx.tx.add_container(
                "set",
                &affinity_set(spn, ep),
                &format!(
                    "type {} ; flags dynamic,timeout ; timeout {timeout}s",
                    ctx.addr_type
                ),
                None,
            );
        }
    }

    if uses_cluster_chain {
        write_service_to_endpoint_rules(ctx, spn, svc, &chains.cluster_policy, &cat.cluster);
    }
    if uses_local_chain {
        write_service_to_endpoint_rules(ctx, spn, svc, &chains.local_policy, &cat.local);
    }

    for ep in &cat.all_reachable {
        let chain = endpoint_chain(spn, ep);
        // Hairpin: a backend reaching itself through the Service needs SNAT.
        ctx.tx.add_rule(
            &chain,
            &format!("{ip} saddr {} jump {MARK_MASQ_CHAIN}", ep.ip),
        );
        if svc.session_affinity_timeout.is_some() {
            ctx.tx.add_rule(
                &chain,
                &format!("update @{} {{ {ip} saddr }}", affinity_set(spn, ep)),
            );
        }
        ctx.tx.add_rule(
            &chain,
            &format!("meta l4proto {proto} dnat to {}", ep.addr()),
        );
    }
    (no_local_internal, no_local_external)
}

fn write_service_to_endpoint_rules(
    ctx: &mut Ctx<'_>,
    spn: &ServicePortName,
    svc: &ServiceInfo,
    chain: &str,
    endpoints: &[Endpoint],
) {
    if svc.session_affinity_timeout.is_some() {
        for ep in endpoints {
            ctx.tx.add_rule(
                chain,
                &format!(
                    "{} saddr @{} goto {}",
                    ctx.ip,
                    affinity_set(spn, ep),
                    endpoint_chain(spn, ep)
                ),
            );
        }
    }
    let elements: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto {}", endpoint_chain(spn, ep)))
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
