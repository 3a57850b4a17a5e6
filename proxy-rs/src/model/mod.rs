//! The backend-neutral proxy model: Service and EndpointSlice watch events
//! become a consistent `ServicePortName -> ServiceInfo` map and
//! `ServicePortName -> [Endpoint]` map that each renderer (nftables today,
//! IPVS later) turns into kernel state.

pub mod cidr;
pub mod endpoint;
pub mod endpoint_slice_cache;
pub mod endpoints_change_tracker;
pub mod service_change_tracker;
pub mod service_port;
pub mod topology;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;

pub use cidr::Cidr;
pub use endpoint::Endpoint;
pub use endpoints_change_tracker::{EndpointsChangeTracker, EndpointsUpdate};
pub use service_change_tracker::ServiceChangeTracker;
pub use service_port::{NamespacedName, Protocol, ServiceInfo, ServicePortName};
pub use topology::{Categorized, categorize_endpoints};

pub type ServicePortMap = BTreeMap<ServicePortName, ServiceInfo>;
pub type EndpointsMap = BTreeMap<ServicePortName, Vec<Endpoint>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn matches(self, ip: IpAddr) -> bool {
        matches!(
            (self, ip),
            (IpFamily::V4, IpAddr::V4(_)) | (IpFamily::V6, IpAddr::V6(_))
        )
    }

    /// The EndpointSlice `addressType` for this family.
    pub fn address_type(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }
}
