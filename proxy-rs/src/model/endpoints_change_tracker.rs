//! Accumulates EndpointSlice watch events (upstream `EndpointsChangeTracker`):
//! the merged endpoints per Service port, which Services changed since the
//! last sync, and when (for the network-programming latency metric).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::endpoint_slice_cache::EndpointSliceCache;
use super::service_port::NamespacedName;
use super::{EndpointsMap, IpFamily};

/// Annotation the EndpointSlice controller sets to when the change that
/// produced the slice happened.
pub const ANNOTATION_LAST_CHANGE_TRIGGER_TIME: &str =
    "endpoints.kubernetes.io/last-change-trigger-time";

#[derive(Debug)]
pub struct EndpointsChangeTracker {
    cache: EndpointSliceCache,
    pending: BTreeSet<NamespacedName>,
    trigger_times: BTreeMap<NamespacedName, Vec<jiff::Timestamp>>,
}

/// What changed since the previous sync.
#[derive(Debug, Default)]
pub struct EndpointsUpdate {
    pub updated_services: BTreeSet<NamespacedName>,
    pub last_change_trigger_times: BTreeMap<NamespacedName, Vec<jiff::Timestamp>>,
}

impl EndpointsChangeTracker {
    pub fn new(hostname: impl Into<String>, family: IpFamily) -> Self {
        Self {
            cache: EndpointSliceCache::new(hostname, family),
            pending: BTreeSet::new(),
            trigger_times: BTreeMap::new(),
        }
    }

    /// Records a slice add/update or delete. Returns true when the merged
    /// endpoints of its Service may have changed.
    pub fn update(&mut self, slice: &EndpointSlice, removed: bool) -> bool {
        let Some(service) = self.cache.update(slice, removed) else {
            return false;
        };
        if !removed && let Some(t) = trigger_time(slice) {
            self.trigger_times
                .entry(service.clone())
                .or_default()
                .push(t);
        }
        self.pending.insert(service);
        true
    }

    pub fn take_updated(&mut self) -> EndpointsUpdate {
        EndpointsUpdate {
            updated_services: std::mem::take(&mut self.pending),
            last_change_trigger_times: std::mem::take(&mut self.trigger_times),
        }
    }

    pub fn endpoints_map(&self) -> EndpointsMap {
        self.cache
            .services()
            .iter()
            .flat_map(|svc| self.cache.endpoints_for(svc))
            .collect()
    }
}

fn trigger_time(slice: &EndpointSlice) -> Option<jiff::Timestamp> {
    let raw = slice
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_LAST_CHANGE_TRIGGER_TIME)?;
    raw.parse().ok()
}
