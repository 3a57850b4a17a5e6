//! The pure half of upstream `pkg/controller/endpoint` `syncService`: from a
//! Service, its selected pods and the current Endpoints, the Endpoints to
//! create or update, or nothing when it is already right.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use kube::api::ObjectMeta;

use super::repack::{MAX_CAPACITY, repack_subsets, truncate};
use crate::controller_utils::is_pod_ready;
use crate::endpointslice::endpoint::{
    ADDRESS_TYPE_IPV4, ADDRESS_TYPE_IPV6, endpoint_addresses, find_port,
    should_pod_be_in_endpoints, should_set_hostname,
};
use crate::endpointslice::reconcile::{LABEL_HEADLESS, LAST_CHANGE_TRIGGER_TIME};

/// `v1.EndpointsOverCapacity`.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The value upstream writes into [`OVER_CAPACITY`].
pub const TRUNCATED: &str = "truncated";

/// The one write a sync decides on.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Create(Endpoints),
    Update(Endpoints),
}

fn cluster_ip(service: &Service) -> Option<&str> {
    service.spec.as_ref()?.cluster_ip.as_deref()
}

/// Upstream `helper.IsServiceIPSet`.
fn is_service_ip_set(service: &Service) -> bool {
    !matches!(cluster_ip(service), None | Some("") | Some("None"))
}

fn publishes_not_ready(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// The address type upstream `podToEndpointAddressForService` picks: the
/// service's first IP family, else its cluster IP's, else the pod IP's.
fn address_type(service: &Service, pod: &Pod) -> &'static str {
    let first_family = service
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first());
    let ip = match first_family {
        Some(family) => {
            return if family == "IPv6" {
                ADDRESS_TYPE_IPV6
            } else {
                ADDRESS_TYPE_IPV4
            };
        }
        None if is_service_ip_set(service) => cluster_ip(service),
        None => pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()),
    };
    if ip.is_some_and(|ip| ip.contains(':')) {
        ADDRESS_TYPE_IPV6
    } else {
        ADDRESS_TYPE_IPV4
    }
}

/// Upstream `podToEndpointAddressForService` plus the hostname: `None`
/// when the pod has no IP of the service's family.
fn pod_address(service: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let ip = endpoint_addresses(pod, address_type(service, pod))
        .into_iter()
        .next()?;
    let spec = pod.spec.as_ref();
    Some(EndpointAddress {
        ip,
        node_name: spec.and_then(|s| s.node_name.clone()),
        hostname: should_set_hostname(pod, service)
            .then(|| spec.and_then(|s| s.hostname.clone()))
            .flatten(),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
    })
}

/// Upstream `endpointPortFromServicePort`.
fn endpoint_port(sp: &ServicePort, port: i32) -> EndpointPort {
    EndpointPort {
        name: sp.name.clone().filter(|n| !n.is_empty()),
        port,
        protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
        app_protocol: sp.app_protocol.clone(),
    }
}

/// Upstream `addEndpointSubset`: ready (or tolerated) → addresses,
/// otherwise notReadyAddresses.
fn subset(
    pod: &Pod,
    addr: EndpointAddress,
    port: Option<EndpointPort>,
    tolerate: bool,
) -> EndpointSubset {
    let (addresses, not_ready) = if tolerate || is_pod_ready(pod) {
        (Some(vec![addr]), None)
    } else {
        (None, Some(vec![addr]))
    };
    EndpointSubset {
        addresses,
        not_ready_addresses: not_ready,
        ports: port.map(|p| vec![p]),
    }
}

/// The repacked subsets for a service and the pods its selector matches
/// (upstream's loop over pods in `syncService`). Terminating pods count
/// only when the service publishes not-ready addresses.
pub fn desired_subsets(service: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let tolerate = publishes_not_ready(service);
    let ports: &[ServicePort] = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let headless = cluster_ip(service) == Some("None");
    let mut subsets = Vec::new();
    for pod in pods {
        let terminating = pod.metadata.deletion_timestamp.is_some();
        if !should_pod_be_in_endpoints(pod) || (terminating && !tolerate) {
            continue;
        }
        let Some(addr) = pod_address(service, pod) else {
            continue;
        };
        // A headless service need not have ports.
        if ports.is_empty() && headless {
            subsets.push(subset(pod, addr, None, tolerate));
            continue;
        }
        for sp in ports {
            if let Some(port) = find_port(pod, sp) {
                subsets.push(subset(
                    pod,
                    addr.clone(),
                    Some(endpoint_port(sp, port)),
                    tolerate,
                ));
            }
        }
    }
    repack_subsets(&subsets)
}

/// Subsets with target resourceVersions dropped (upstream
/// `endpointSubsetsEqualIgnoreResourceVersion`).
fn without_versions(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let mut out = subsets.to_vec();
    for s in &mut out {
        let lists = [s.addresses.as_mut(), s.not_ready_addresses.as_mut()];
        for addr in lists.into_iter().flatten().flatten() {
            if let Some(t) = addr.target_ref.as_mut() {
                t.resource_version = None;
            }
        }
    }
    out
}

/// Upstream `capacityAnnotationSetCorrectly`.
fn capacity_annotation_correct(current: &Endpoints) -> bool {
    let subsets = current.subsets.as_deref().unwrap_or_default();
    let n: usize = subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len)
                + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum();
    let annotated = current
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(OVER_CAPACITY));
    n <= MAX_CAPACITY && !annotated
}

fn unchanged(current: &Endpoints, subsets: &[EndpointSubset], service: &Service) -> bool {
    let mut labels = current.metadata.labels.clone().unwrap_or_default();
    labels.remove(LABEL_HEADLESS);
    let want_labels = service.metadata.labels.clone().unwrap_or_default();
    let have = without_versions(current.subsets.as_deref().unwrap_or_default());
    have == without_versions(subsets)
        && labels == want_labels
        && capacity_annotation_correct(current)
}

/// Upstream `syncService` from the subsets on: nothing when the current
/// Endpoints already holds them (and the service's labels), otherwise the
/// Endpoints to write with labels, trigger-time and capacity annotations.
pub fn reconcile(
    service: &Service,
    pods: &[&Pod],
    current: Option<&Endpoints>,
    trigger_time: Option<String>,
) -> Option<Write> {
    let subsets = desired_subsets(service, pods);
    if let Some(current) = current
        && unchanged(current, &subsets, service)
    {
        return None;
    }
    let mut ep = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            ..Default::default()
        },
        ..Default::default()
    });
    let mut subsets = subsets;
    let truncated = truncate(&mut subsets);
    ep.subsets = (!subsets.is_empty()).then_some(subsets);
    let annotations = ep.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match trigger_time {
        Some(t) => annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), t),
        None => annotations.remove(LAST_CHANGE_TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), TRUNCATED.into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if !is_service_ip_set(service) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    ep.metadata.labels = Some(labels);
    Some(match current {
        Some(_) => Write::Update(ep),
        None => Write::Create(ep),
    })
}
