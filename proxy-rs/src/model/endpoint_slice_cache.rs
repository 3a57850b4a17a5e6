//! Merges the EndpointSlices of each Service into per-port endpoint lists
//! (upstream `pkg/proxy/endpointslicecache.go`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::{Endpoint as ApiEndpoint, EndpointSlice};

use super::IpFamily;
use super::endpoint::Endpoint;
use super::service_port::{
    LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME, NamespacedName, Protocol, ServicePortName,
};

/// Label linking a slice to its Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// What we keep from one slice: only the fields that influence the proxy, so
/// that status-only slice updates do not trigger syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SliceInfo {
    ports: Vec<(String, Protocol, u16)>,
    endpoints: Vec<Endpoint>,
}

#[derive(Debug)]
pub struct EndpointSliceCache {
    hostname: String,
    family: IpFamily,
    // service -> slice name -> info
    slices: BTreeMap<NamespacedName, BTreeMap<String, SliceInfo>>,
}

impl EndpointSliceCache {
    pub fn new(hostname: impl Into<String>, family: IpFamily) -> Self {
        Self {
            hostname: hostname.into(),
            family,
            slices: BTreeMap::new(),
        }
    }

    /// Records a slice add/update (`removed == false`) or delete. Returns the
    /// owning Service when its endpoints may have changed.
    pub fn update(&mut self, slice: &EndpointSlice, removed: bool) -> Option<NamespacedName> {
        let service = slice_service(slice)?;
        let slice_name = slice.metadata.name.clone().unwrap_or_default();
        let info = (!removed && self.family_matches(slice) && !skip_slice(slice))
            .then(|| self.slice_info(slice));
        let entry = self.slices.entry(service.clone()).or_default();
        let changed = if let Some(info) = info {
            let changed = entry.get(&slice_name) != Some(&info);
            entry.insert(slice_name, info);
            changed
        } else {
            entry.remove(&slice_name).is_some()
        };
        if entry.is_empty() {
            self.slices.remove(&service);
        }
        changed.then_some(service)
    }

    fn family_matches(&self, slice: &EndpointSlice) -> bool {
        slice.address_type == self.family.address_type()
    }

    fn slice_info(&self, slice: &EndpointSlice) -> SliceInfo {
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = p
                    .port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0)?;
                let protocol = Protocol::from_api(p.protocol.as_deref())?;
                Some((p.name.clone().unwrap_or_default(), protocol, port))
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .flatten()
            .filter_map(|ep| self.endpoint(ep, 0))
            .collect();
        SliceInfo { ports, endpoints }
    }

    /// Converts one API endpoint; the port is filled in per service port later.
    fn endpoint(&self, ep: &ApiEndpoint, port: u16) -> Option<Endpoint> {
        // Upstream only uses the first address (the API allows exactly one today).
        let ip: IpAddr = ep.addresses.first()?.parse().ok()?;
        if !self.family.matches(ip) {
            return None;
        }
        let cond = ep.conditions.as_ref();
        // Unknown readiness counts as ready; unknown serving follows ready.
        let ready = cond.and_then(|c| c.ready).unwrap_or(true);
        let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
        let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
        let hints = ep.hints.as_ref();
        let zone_hints = hints
            .and_then(|h| h.for_zones.as_ref())
            .into_iter()
            .flatten()
            .map(|z| z.name.clone())
            .collect();
        let node_hints = hints
            .and_then(|h| h.for_nodes.as_ref())
            .into_iter()
            .flatten()
            .map(|n| n.name.clone())
            .collect();
        Some(Endpoint {
            ip,
            port,
            ready,
            serving,
            terminating,
            is_local: ep.node_name.as_deref() == Some(self.hostname.as_str()),
            node_name: ep.node_name.clone(),
            zone_hints,
            node_hints,
        })
    }

    /// Endpoints of every port of `service`, merged across slices (sorted by
    /// slice name) and deduplicated by `ip:port`, preferring a ready copy.
    pub fn endpoints_for(
        &self,
        service: &NamespacedName,
    ) -> BTreeMap<ServicePortName, Vec<Endpoint>> {
        let mut out: BTreeMap<ServicePortName, Vec<Endpoint>> = BTreeMap::new();
        let Some(slices) = self.slices.get(service) else {
            return out;
        };
        for info in slices.values() {
            for (port_name, protocol, port) in &info.ports {
                let name = ServicePortName {
                    service: service.clone(),
                    port: port_name.clone(),
                    protocol: *protocol,
                };
                let list = out.entry(name).or_default();
                for ep in &info.endpoints {
                    let ep = Endpoint {
                        port: *port,
                        ..ep.clone()
                    };
                    match list.iter_mut().find(|e| e.ip == ep.ip && e.port == ep.port) {
                        Some(existing) if ep.ready && !existing.ready => *existing = ep,
                        Some(_) => {}
                        None => list.push(ep),
                    }
                }
            }
        }
        out.retain(|_, eps| !eps.is_empty());
        out
    }

    pub fn services(&self) -> BTreeSet<NamespacedName> {
        self.slices.keys().cloned().collect()
    }
}

fn slice_service(slice: &EndpointSlice) -> Option<NamespacedName> {
    let name = slice.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME)?;
    if name.is_empty() {
        return None;
    }
    Some(NamespacedName::new(
        slice.metadata.namespace.clone().unwrap_or_default(),
        name.clone(),
    ))
}

/// The informer label selector upstream uses for slices, applied in code.
fn skip_slice(slice: &EndpointSlice) -> bool {
    slice
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(LABEL_SERVICE_PROXY_NAME) || l.contains_key(LABEL_HEADLESS))
}
