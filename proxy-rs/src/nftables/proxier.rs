//! Stateful nftables proxier: owns the change trackers and renderer state,
//! runs each sync as one `nft -f` transaction, deletes stale chains later,
//! clears UDP conntrack, and reports health and metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::time::Instant;

use super::exec::NftCli;
use super::render::{NftConfig, RendererState, SyncInput, render};
use super::transaction::Transaction;
use crate::Error;
use crate::conntrack::{self, Conntrack};
use crate::healthcheck::ProxierHealth;
use crate::healthcheck::service_health::{self, ServiceHealthServer};
use crate::metrics::{ProxyMetrics, TrafficPolicyLabel, unix_now};
use crate::model::{EndpointsChangeTracker, EndpointsMap, ServiceChangeTracker, ServicePortMap};
use crate::proxy_util::{NodePortAddresses, nft_family_keyword};

/// How long a flushed chain must stay unreferenced before we delete it.
const STALE_CHAIN_DELAY: Duration = Duration::from_secs(1);

/// What one sync did (for logs and tests).
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub full: bool,
    pub script: String,
    pub conntrack_deletions: BTreeSet<conntrack::Deletion>,
}

pub struct Proxier {
    cfg: NftConfig,
    nft: NftCli,
    conntrack: Conntrack,
    hostname: String,
    services: ServiceChangeTracker,
    endpoints: EndpointsChangeTracker,
    node_labels: BTreeMap<String, String>,
    svc_map: ServicePortMap,
    ep_map: EndpointsMap,
    renderer: RendererState,
    need_full_sync: bool,
    stale_chains: BTreeMap<String, Instant>,
    services_synced: bool,
    slices_synced: bool,
    health: ProxierHealth,
    metrics: ProxyMetrics,
    service_health: Option<ServiceHealthServer>,
    node_port_resolver: Option<NodePortResolver>,
}

/// Re-reads which addresses accept NodePorts (interfaces change at runtime).
pub type NodePortResolver = Box<dyn Fn() -> NodePortAddresses + Send + Sync>;

impl Proxier {
    pub fn new(
        cfg: NftConfig,
        nft: NftCli,
        conntrack: Conntrack,
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
    fn queued(&self) {
        if !self.is_initialized() {
            return;
        }
        self.health.queued_update();
        self.metrics
            .sync_proxy_rules_last_queued_timestamp
            .set(unix_now());
    }

    /// Returns true when a sync is needed.
    pub fn on_service_update(&mut self, svc: &Service) -> bool {
        let changed = self.services.update(svc);
        if changed {
            self.queued();
        }
        changed && self.is_initialized()
    }

    pub fn on_service_delete(&mut self, svc: &Service) -> bool {
        let changed = self.services.delete(svc);
        if changed {
            self.queued();
        }
        changed && self.is_initialized()
    }

    pub fn on_endpoint_slice(&mut self, slice: &EndpointSlice, removed: bool) -> bool {
        let changed = self.endpoints.update(slice, removed);
        if changed {
            self.queued();
        }
        changed && self.is_initialized()
    }

    /// Node labels drive topology; a change needs a full sync.
    pub fn on_node_labels(&mut self, labels: BTreeMap<String, String>) -> bool {
        if labels == self.node_labels {
            return false;
        }
        tracing::debug!(?labels, "Updated proxier node labels");
        self.node_labels = labels;
        self.need_full_sync = true;
        self.queued();
        true
    }

    pub fn set_services_synced(&mut self) {
        self.services_synced = true;
    }

    pub fn set_slices_synced(&mut self) {
        self.slices_synced = true;
    }

    /// Rules are only written once both caches have their initial list, so a
    /// restart never programs a partial view.
    pub fn is_initialized(&self) -> bool {
        self.services_synced && self.slices_synced
    }

    /// ServiceCIDRs of our family changed (traffic to unallocated ClusterIPs
    /// in them is dropped); part of the fixed rules, so a full sync follows.
    pub fn on_service_cidrs(&mut self, cidrs: Vec<crate::model::Cidr>) -> bool {
        let cidrs: Vec<_> = cidrs
            .into_iter()
            .filter(|c| self.cfg.family.matches(c.addr))
            .collect();
        if cidrs == self.cfg.service_cidrs {
            return false;
        }
        tracing::debug!(?cidrs, "Updated ServiceCIDRs");
        self.cfg.service_cidrs = cidrs;
        self.need_full_sync = true;
        self.queued();
        self.is_initialized()
    }

    pub fn request_full_sync(&mut self) {
        self.need_full_sync = true;
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// One sync. Errors leave the proxier needing a full sync.
    pub async fn sync(&mut self) -> Result<Option<SyncReport>, Error> {
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

    async fn sync_inner(&mut self, full: bool) -> Result<SyncReport, Error> {
        let new_svcs = self.services.port_map();
        let new_eps = self.endpoints.endpoints_map();
        let mut updated = self.services.take_updated();
        let ep_update = self.endpoints.take_updated();
        updated.extend(ep_update.updated_services.iter().cloned());

        self.delete_stale_chains().await;
        if full && let Some(resolve) = &self.node_port_resolver {
            self.cfg.node_port_addresses = resolve();
        }

        let existing_chains = self.nft.list("chains").await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "Failed to list nftables chains: stale chains will not be deleted");
            BTreeSet::new()
        });
        let existing_sets = self.nft.list("sets").await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "Failed to list nftables sets: stale affinity sets will not be deleted");
            BTreeSet::new()
        });
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
        if let Err(e) = self.nft.run(&script).await {
            tracing::error!(error = %e, "nftables sync failed");
            return Err(e);
        }
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
        self.metrics
            .no_local_endpoints
            .get_or_create(&TrafficPolicyLabel {
                traffic_policy: "internal".into(),
            })
            .set(i64::try_from(out.no_local_endpoints_internal).unwrap_or(i64::MAX));
        self.metrics
            .no_local_endpoints
            .get_or_create(&TrafficPolicyLabel {
                traffic_policy: "external".into(),
            })
            .set(i64::try_from(out.no_local_endpoints_external).unwrap_or(i64::MAX));
        self.health.updated();
        self.metrics.sync_proxy_rules_last_timestamp.set(unix_now());

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
        if let Err(e) = self.nft.run(&tx.to_script()).await {
            // Still-existing chains are rediscovered (and re-queued) on the next sync.
            tracing::error!(error = %e, "Unable to delete stale chains; will retry later");
            self.metrics.nftables_cleanup_failures.inc();
        }
    }

    /// Removes our table (upstream `CleanupLeftovers`).
    pub async fn cleanup(nft: &NftCli) -> Result<(), Error> {
        let mut tx = Transaction::new("ip");
        tx.add_table("rules for kube-proxy");
        tx.delete_table();
        nft.run(&tx.to_script()).await
    }
}
