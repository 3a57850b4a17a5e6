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
use crate::model::{Cidr, EndpointsMap, IpFamily, NamespacedName, ServicePortMap};

mod service;

use crate::proxy_util::{LocalDetector, NodePortAddresses, nft_family_keyword};
use service::render_service;

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
        let (internal, external) = render_service(&mut ctx, state, input, (spn, svc), eps, skip);
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
