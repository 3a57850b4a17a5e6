//! The nftables proxier as a [`Provider`] (upstream `Proxier.OnServiceAdd`
//! and friends): notifications go into the change trackers; a sync renders
//! what changed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::exec::NftExecutor;
use super::proxier::Proxier;
use crate::conntrack::Cleaner;
use crate::model::Cidr;
use crate::{Error, Provider};

impl<N: NftExecutor, C: Cleaner> Proxier<N, C> {
    /// A tracker reported `changed`: count it against health, and ask for a
    /// sync once initialized.
    fn changed(&self, changed: bool) -> bool {
        if changed {
            self.queued();
        }
        changed && self.is_initialized()
    }
}

impl<N: NftExecutor, C: Cleaner> Provider for Proxier<N, C> {
    fn on_service_add(&mut self, service: &Service) -> bool {
        let changed = self.services.update(service);
        self.changed(changed)
    }

    fn on_service_update(&mut self, _old: &Service, new: &Service) -> bool {
        let changed = self.services.update(new);
        self.changed(changed)
    }

    fn on_service_delete(&mut self, service: &Service) -> bool {
        let changed = self.services.delete(service);
        self.changed(changed)
    }

    fn on_service_synced(&mut self) {
        self.services_synced = true;
    }

    fn on_endpoint_slice_add(&mut self, slice: &EndpointSlice) -> bool {
        let changed = self.endpoints.update(slice, false);
        self.changed(changed)
    }

    fn on_endpoint_slice_update(&mut self, _old: &EndpointSlice, new: &EndpointSlice) -> bool {
        let changed = self.endpoints.update(new, false);
        self.changed(changed)
    }

    fn on_endpoint_slice_delete(&mut self, slice: &EndpointSlice) -> bool {
        let changed = self.endpoints.update(slice, true);
        self.changed(changed)
    }

    fn on_endpoint_slices_synced(&mut self) {
        self.slices_synced = true;
    }

    /// Node labels drive topology; a change needs a full sync.
    fn on_topology_change(&mut self, node_labels: BTreeMap<String, String>) -> bool {
        if node_labels == self.node_labels {
            return false;
        }
        tracing::debug!(labels = ?node_labels, "Updated proxier node labels");
        self.node_labels = node_labels;
        self.need_full_sync = true;
        self.queued();
        true
    }

    /// ServiceCIDRs of our family changed (traffic to unallocated ClusterIPs
    /// in them is dropped); part of the fixed rules, so a full sync follows.
    fn on_service_cidrs_changed(&mut self, cidrs: Vec<Cidr>) -> bool {
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

    fn request_full_sync(&mut self) {
        self.need_full_sync = true;
    }

    async fn sync(&mut self) -> Result<(), Error> {
        Ok(Proxier::sync(self).await.map(drop)?)
    }
}
