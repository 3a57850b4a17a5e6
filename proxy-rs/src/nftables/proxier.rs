//! Stateful nftables proxier (upstream `pkg/proxy/nftables/proxier.go`):
//! owns the change trackers and renderer state, runs each sync as one
//! `nft -f` transaction, deletes stale chains later, clears UDP conntrack,
//! and reports health and metrics. Its [`Provider`] half is in
//! `provider_impl.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::exec::{Listing, NftCli, NftError, NftExecutor};
use super::render::{NftConfig, RendererState, SyncInput, SyncOutput, render};
use super::transaction::Transaction;
use crate::conntrack::{self, Cleaner, Conntrack};
use crate::healthcheck::ProxierHealth;
use crate::healthcheck::service_health::{self, ServiceHealthServer};
use crate::metrics::{ProxyMetrics, TrafficPolicyLabel, unix_now};
use crate::model::{
    EndpointsChangeTracker, EndpointsMap, EndpointsUpdate, ServiceChangeTracker, ServicePortMap,
};
use crate::proxy_util::{NodePortAddresses, nft_family_keyword};

#[cfg(doc)]
use crate::Provider;

/// How long a flushed chain must stay unreferenced before we delete it.
const STALE_CHAIN_DELAY: Duration = Duration::from_secs(1);

/// What one sync did (for logs and tests).
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub full: bool,
    pub script: String,
    pub conntrack_deletions: BTreeSet<conntrack::Deletion>,
}

/// The nftables backend. `N` runs nft and `C` clears conntrack: the real
/// tools by default, fakes in unit tests.
pub struct Proxier<N = NftCli, C = Conntrack> {
    pub(super) cfg: NftConfig,
    nft: N,
    conntrack: C,
    hostname: String,
    pub(super) services: ServiceChangeTracker,
    pub(super) endpoints: EndpointsChangeTracker,
    pub(super) node_labels: BTreeMap<String, String>,
    svc_map: ServicePortMap,
    ep_map: EndpointsMap,
    renderer: RendererState,
    pub(super) need_full_sync: bool,
    stale_chains: BTreeMap<String, Instant>,
    pub(super) services_synced: bool,
    pub(super) slices_synced: bool,
    health: ProxierHealth,
    metrics: ProxyMetrics,
    service_health: Option<ServiceHealthServer>,
    node_port_resolver: Option<NodePortResolver>,
}

/// Re-reads which addresses accept NodePorts (interfaces change at runtime).
pub type NodePortResolver = Box<dyn Fn() -> NodePortAddresses + Send + Sync>;

impl<N: NftExecutor, C: Cleaner> Proxier<N, C> {
    pub fn new(
        cfg: NftConfig,
        nft: N,
        conntrack: C,
        hostname: impl Into<String>,
        health: ProxierHealth,
        metrics: ProxyMetrics,
    ) -> Self {
        let hostname = hostname.into();
        tracing::info!(mark = %cfg.masquerade_mark_string(), family = ?cfg.family, "Using nftables mark for masquerade");
        Self {
            services: ServiceChangeTracker::new(cfg.family),
            endpoints: EndpointsChangeTracker::new(hostname.clone(), cfg.family),
            cfg,
            nft,
            conntrack,
            hostname,
            node_labels: BTreeMap::new(),
            svc_map: ServicePortMap::new(),
            ep_map: EndpointsMap::new(),
            renderer: RendererState::default(),
            need_full_sync: true,
            stale_chains: BTreeMap::new(),
            services_synced: false,
            slices_synced: false,
            health,
            metrics,
            service_health: None,
            node_port_resolver: None,
        }
    }

    /// Re-resolves `nodePortAddresses` on every full sync, as upstream does.
    pub fn with_node_port_resolver(mut self, resolver: NodePortResolver) -> Self {
        self.node_port_resolver = Some(resolver);
        self
    }

    /// Serves health check node ports for Local-policy LoadBalancers.
    pub fn with_service_health(mut self, server: ServiceHealthServer) -> Self {
        self.service_health = Some(server);
        self
    }

    /// Like upstream, a change only counts against health once the proxier
    /// is initialized (before that, nothing is being synced yet).
    pub(super) fn queued(&self) {
        if !self.is_initialized() {
            return;
        }
        self.health.queued_update();
        self.metrics
            .sync_proxy_rules_last_queued_timestamp
            .set(unix_now());
    }

    /// Rules are only written once both caches have their initial list, so a
    /// restart never programs a partial view.
    pub fn is_initialized(&self) -> bool {
        self.services_synced && self.slices_synced
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// One sync. Errors leave the proxier needing a full sync.
    pub async fn sync(&mut self) -> Result<Option<SyncReport>, NftError> {
        if !self.is_initialized() {
            tracing::debug!(
                "Not syncing nftables until Services and Endpoints have been received from master"
            );
            return Ok(None);
        }
        let start = std::time::Instant::now();
        let full = self.need_full_sync;
        let result = self.sync_inner(full).await;
        let elapsed = start.elapsed().as_secs_f64();
        self.metrics.sync_proxy_rules_duration.observe(elapsed);
        if full {
            self.metrics.sync_full_proxy_rules_duration.observe(elapsed);
        } else {
            self.metrics
                .sync_partial_proxy_rules_duration
                .observe(elapsed);
        }
        tracing::debug!(elapsed_seconds = elapsed, full, "SyncProxyRules complete");
        if result.is_err() {
            // The trackers' change sets are consumed, so only a full sync can
            // bring the kernel back in line.
            self.need_full_sync = true;
            self.renderer.invalidate();
            self.stale_chains.clear();
            self.metrics.nftables_sync_failures.inc();
        }
        result.map(Some)
    }

    async fn sync_inner(&mut self, full: bool) -> Result<SyncReport, NftError> {
        let new_svcs = self.services.port_map();
        let new_eps = self.endpoints.endpoints_map();
        let mut updated = self.services.take_updated();
        let ep_update = self.endpoints.take_updated();
        updated.extend(ep_update.updated_services.iter().cloned());

        self.delete_stale_chains().await;
        if full && let Some(resolve) = &self.node_port_resolver {
            self.cfg.node_port_addresses = resolve();
        }
        let (existing_chains, existing_sets) = self.list_existing().await;
        let input = SyncInput {
            services: &new_svcs,
            endpoints: &new_eps,
            node_name: &self.hostname,
            node_labels: &self.node_labels,
            full,
            updated: &updated,
            existing_chains: &existing_chains,
            existing_sets: &existing_sets,
        };
        let out = render(&self.cfg, &mut self.renderer, &input);
        let script = out.tx.to_script();
        tracing::trace!(transaction = %script, "Running nftables transaction");
        tracing::debug!(
            services = new_svcs.len(),
            endpoints = new_eps.values().map(Vec::len).sum::<usize>(),
            full,
            "Reloading service nftables data"
        );
        if let Err(e) = self.nft.apply(&script).await {
            tracing::error!(error = %e, "nftables sync failed");
            return Err(e);
        }
        self.note_applied(&out, &ep_update);
        if let Some(server) = &self.service_health {
            server.sync_services(&service_health::health_check_node_ports(&new_svcs));
            server.sync_endpoints(&service_health::local_ready_endpoints(&new_eps));
        }
        let deletions = conntrack::plan(&self.svc_map, &self.ep_map, &new_svcs, &new_eps);
        self.conntrack.execute(&deletions).await;
        self.svc_map = new_svcs;
        self.ep_map = new_eps;
        Ok(SyncReport {
            full,
            script,
            conntrack_deletions: deletions,
        })
    }

    /// The chains and sets our table holds now; a listing failure only
    /// means stale objects survive until a later sync.
    async fn list_existing(&mut self) -> (BTreeSet<String>, BTreeSet<String>) {
        let chains = self.nft.list(Listing::Chains).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "Failed to list nftables chains: stale chains will not be deleted");
            BTreeSet::new()
        });
        let sets = self.nft.list(Listing::Sets).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "Failed to list nftables sets: stale affinity sets will not be deleted");
            BTreeSet::new()
        });
        (chains, sets)
    }

    /// Bookkeeping after a transaction went in: stale chains, health, metrics.
    fn note_applied(&mut self, out: &SyncOutput, ep_update: &EndpointsUpdate) {
        let now = Instant::now();
        for chain in &out.stale_chains {
            self.stale_chains.entry(chain.clone()).or_insert(now);
        }
        self.stale_chains
            .retain(|c, _| !out.active_chains.contains(c));
        self.need_full_sync = false;

        for times in ep_update.last_change_trigger_times.values() {
            for t in times {
                let latency = jiff::Timestamp::now().duration_since(*t).as_secs_f64();
                self.metrics
                    .network_programming_duration
                    .observe(latency.max(0.0));
            }
        }
        let no_local = [
            ("internal", out.no_local_endpoints_internal),
            ("external", out.no_local_endpoints_external),
        ];
        for (policy, count) in no_local {
            self.metrics
                .no_local_endpoints
                .get_or_create(&TrafficPolicyLabel {
                    traffic_policy: policy.into(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.health.updated();
        self.metrics.sync_proxy_rules_last_timestamp.set(unix_now());
    }

    /// Deletes chains flushed at least a second ago, in their own transaction.
    async fn delete_stale_chains(&mut self) {
        let cutoff = Instant::now().checked_sub(STALE_CHAIN_DELAY);
        let due: Vec<String> = self
            .stale_chains
            .iter()
            .filter(|(_, t)| cutoff.is_some_and(|c| **t <= c))
            .map(|(c, _)| c.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let mut tx = Transaction::new(nft_family_keyword(self.cfg.family));
        for chain in &due {
            tx.delete_chain(chain);
            self.stale_chains.remove(chain);
        }
        tracing::info!(num_chains = due.len(), "Deleting stale nftables chains");
        if let Err(e) = self.nft.apply(&tx.to_script()).await {
            // Still-existing chains are rediscovered (and re-queued) on the next sync.
            tracing::error!(error = %e, "Unable to delete stale chains; will retry later");
            self.metrics.nftables_cleanup_failures.inc();
        }
    }
}

impl Proxier {
    /// Removes our table (upstream `CleanupLeftovers`).
    pub async fn cleanup(nft: &NftCli) -> Result<(), NftError> {
        let mut tx = Transaction::new("ip");
        tx.add_table("rules for kube-proxy");
        tx.delete_table();
        nft.run(&tx.to_script()).await
    }
}
