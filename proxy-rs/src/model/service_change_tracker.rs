//! Accumulates Service watch events into the current `ServicePortName ->
//! ServiceInfo` state plus the set of Services touched since the last sync
//! (upstream `ServiceChangeTracker`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;

use super::service_port::{NamespacedName, ServiceInfo, ServicePortName, service_ports};
use super::{IpFamily, ServicePortMap};

#[derive(Debug)]
pub struct ServiceChangeTracker {
    family: IpFamily,
    services: BTreeMap<NamespacedName, BTreeMap<ServicePortName, ServiceInfo>>,
    pending: BTreeSet<NamespacedName>,
}

impl ServiceChangeTracker {
    pub fn new(family: IpFamily) -> Self {
        Self {
            family,
            services: BTreeMap::new(),
            pending: BTreeSet::new(),
        }
    }

    /// Records an add/update. Returns true when the proxied ports changed.
    pub fn update(&mut self, svc: &Service) -> bool {
        let Some(key) = service_key(svc) else {
            tracing::warn!("Ignoring Service without namespace/name");
            return false;
        };
        let ports: BTreeMap<_, _> = service_ports(svc, self.family).into_iter().collect();
        self.set(key, ports)
    }

    /// Records a delete. Returns true when the Service had proxied ports.
    pub fn delete(&mut self, svc: &Service) -> bool {
        match service_key(svc) {
            Some(key) => self.set(key, BTreeMap::new()),
            None => false,
        }
    }

    fn set(&mut self, key: NamespacedName, ports: BTreeMap<ServicePortName, ServiceInfo>) -> bool {
        let previous = self.services.get(&key);
        let changed = match previous {
            Some(prev) => *prev != ports,
            None => !ports.is_empty(),
        };
        if changed {
            tracing::debug!(service = %key, ports = ports.len(), "Service changed");
            self.pending.insert(key.clone());
        }
        if ports.is_empty() {
            self.services.remove(&key);
        } else {
            self.services.insert(key, ports);
        }
        changed
    }

    /// Services changed since the previous call.
    pub fn take_updated(&mut self) -> BTreeSet<NamespacedName> {
        std::mem::take(&mut self.pending)
    }

    pub fn port_map(&self) -> ServicePortMap {
        self.services
            .values()
            .flat_map(|ports| ports.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }
}

pub(super) fn service_key(svc: &Service) -> Option<NamespacedName> {
    Some(NamespacedName::new(
        svc.metadata.namespace.clone()?,
        svc.metadata.name.clone()?,
    ))
}
