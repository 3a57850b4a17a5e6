//! The backend-neutral proxier interface (upstream `pkg/proxy.Provider`):
//! the event loop feeds every backend (nftables today, IPVS next) the same
//! Service, EndpointSlice, Node and ServiceCIDR notifications and asks it to
//! sync; how a backend turns the model into kernel state is its own affair.

use std::collections::BTreeMap;
use std::future::Future;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::Error;
use crate::model::Cidr;

/// A proxy backend. Every `on_*` handler returns true when the change needs
/// a sync (upstream's handlers call `syncRunner.Run()` instead; here the
/// event loop owns the bounded-frequency runner).
pub trait Provider: Send {
    /// upstream `OnServiceAdd`.
    fn on_service_add(&mut self, service: &Service) -> bool;
    /// upstream `OnServiceUpdate`.
    fn on_service_update(&mut self, old: &Service, new: &Service) -> bool;
    /// upstream `OnServiceDelete`.
    fn on_service_delete(&mut self, service: &Service) -> bool;
    /// upstream `OnServiceSynced`: the initial Service list is in.
    fn on_service_synced(&mut self);

    /// upstream `OnEndpointSliceAdd`.
    fn on_endpoint_slice_add(&mut self, slice: &EndpointSlice) -> bool;
    /// upstream `OnEndpointSliceUpdate`.
    fn on_endpoint_slice_update(&mut self, old: &EndpointSlice, new: &EndpointSlice) -> bool;
    /// upstream `OnEndpointSliceDelete`.
    fn on_endpoint_slice_delete(&mut self, slice: &EndpointSlice) -> bool;
    /// upstream `OnEndpointSlicesSynced`: the initial EndpointSlice list is in.
    fn on_endpoint_slices_synced(&mut self);

    /// upstream `OnTopologyChange`: our Node's labels (empty once it is gone).
    fn on_topology_change(&mut self, node_labels: BTreeMap<String, String>) -> bool;
    /// upstream `OnServiceCIDRsChanged`: every ServiceCIDR range, any family.
    fn on_service_cidrs_changed(&mut self, cidrs: Vec<Cidr>) -> bool;

    /// The next sync rewrites everything (the periodic resync).
    fn request_full_sync(&mut self);
    /// upstream `Sync`: one sync now. An error is logged by the caller and
    /// retried by the next sync, which the backend makes a full one.
    fn sync(&mut self) -> impl Future<Output = Result<(), Error>> + Send;
}
