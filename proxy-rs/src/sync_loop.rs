//! The event loop every backend runs under (upstream `ProxyServer.Run`'s
//! informer wiring + `Proxier.SyncLoop`): shared informers feed the
//! [`Provider`], and a bounded-frequency runner paces its syncs.

use std::time::Duration;

use component_base::informers::{SharedInformerFactory, WatchScope};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::bounded_frequency_runner::RateLimiter;
use crate::event_handlers::{self, Feed};
use crate::{Error, Provider, ProxierHealth};

/// Upstream's label selector for Services and EndpointSlices.
const PROXY_LABEL_SELECTOR: &str =
    "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";
/// Upstream `burstSyncs`.
const BURST_SYNCS: u32 = 2;

/// How often syncs may and must run.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// `minSyncPeriod`: change-driven syncs run at most this often (after a burst).
    pub min_sync_period: Duration,
    /// `syncPeriod`: a full resync runs at least this often.
    pub sync_period: Duration,
}

/// The four watches kube-proxy needs, one subscription each.
pub struct Sources {
    services: Feed<Service>,
    slices: Feed<EndpointSlice>,
    node: Feed<Node>,
    service_cidrs: Feed<ServiceCIDR>,
}

impl Sources {
    /// Subscribes to the shared informers (starting their watches).
    pub fn new(factory: &SharedInformerFactory, node_name: &str) -> Self {
        let proxied = WatchScope::labels(PROXY_LABEL_SELECTOR);
        Self {
            services: Feed::new(factory.scoped::<Service>(proxied.clone())),
            slices: Feed::new(factory.scoped::<EndpointSlice>(proxied)),
            node: Feed::new(
                factory.scoped::<Node>(WatchScope::fields(format!("metadata.name={node_name}"))),
            ),
            service_cidrs: Feed::new(factory.informer::<ServiceCIDR>()),
        }
    }
}

/// Runs `provider` until `shutdown` fires (or an informer stops).
pub async fn run<P: Provider>(
    mut provider: P,
    mut sources: Sources,
    pacing: Pacing,
    health: ProxierHealth,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let mut limiter = RateLimiter::new(pacing.min_sync_period, BURST_SYNCS, Instant::now());
    let mut dirty = false;
    let mut next_periodic = Instant::now() + pacing.sync_period;
    loop {
        let next_sync = if dirty {
            limiter.next_allowed(Instant::now())
        } else {
            next_periodic
        };
        tokio::select! {
            _ = shutdown.cancelled() => {
                tracing::info!("Shutting down kube-proxy-rs");
                return Ok(());
            }
            batch = sources.services.next() => {
                let Some(batch) = batch else { return Ok(()) };
                dirty |= event_handlers::deliver_services(&mut provider, batch);
            }
            batch = sources.slices.next() => {
                let Some(batch) = batch else { return Ok(()) };
                dirty |= event_handlers::deliver_slices(&mut provider, batch);
            }
            batch = sources.node.next() => {
                let Some(batch) = batch else { return Ok(()) };
                dirty |= event_handlers::deliver_node(&mut provider, &health, batch);
            }
            batch = sources.service_cidrs.next() => {
                if batch.is_none() { return Ok(()) }
                let all = sources.service_cidrs.store_state();
                dirty |= event_handlers::deliver_service_cidrs(&mut provider, &all);
            }
            _ = sleep_until(next_sync) => {
                let now = Instant::now();
                if !dirty {
                    // Periodic resync: rewrite everything.
                    provider.request_full_sync();
                }
                limiter.take(now);
                dirty = false;
                next_periodic = now + pacing.sync_period;
                if let Err(e) = provider.sync().await {
                    tracing::error!(error = %e, retry_after = ?pacing.sync_period, "Sync failed");
                }
            }
        }
    }
}
