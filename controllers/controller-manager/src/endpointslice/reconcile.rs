//! The pure EndpointSlice reconciler (upstream
//! `staging/src/k8s.io/endpointslice/reconciler.go`): from a Service, its
//! selected pods and the slices it already has, decide which slices to
//! create, update and delete. Slices are grouped by address type and port
//! mapping; endpoints keep their slice when possible, new ones fill
//! partially full slices first, so a sync touches as few slices as it can.

use std::collections::{BTreeMap, BTreeSet};

use component_base::ownerref::new_controller_ref_for;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use kube::api::ObjectMeta;

use super::endpoint::{
    ADDRESS_TYPE_IPV4, ADDRESS_TYPE_IPV6, endpoint_ports, pod_to_endpoint,
    should_pod_be_in_endpoints,
};

/// `discovery.LabelServiceName`.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// `discovery.LabelManagedBy`.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// `v1.IsHeadlessService`.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// The controller name written into `LABEL_MANAGED_BY`.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// `v1.EndpointsLastChangeTriggerTime`.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// `--max-endpoints-per-slice` default.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// One write the runner must perform.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Create(EndpointSlice),
    Update(EndpointSlice),
    Delete(String),
}

/// Everything one sync looks at.
pub struct State<'a> {
    pub service: &'a Service,
    /// Pods in the service's namespace matching its selector.
    pub pods: Vec<&'a Pod>,
    /// Slices labelled with the service's name and managed by us.
    pub slices: Vec<&'a EndpointSlice>,
    pub node: &'a dyn Fn(&str) -> Option<Node>,
    pub max_endpoints: usize,
    /// RFC 3339 time of the change that triggered this sync, if known.
    pub trigger_time: Option<String>,
}

/// The decision plus pods skipped because their Node is not known yet
/// (upstream returns an error for them so the service is retried).
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub pods_missing_node: Vec<String>,
}

fn is_service_ip_set(service: &Service) -> bool {
    let ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    !matches!(ip, None | Some("") | Some("None"))
}

/// Upstream `getAddressTypesForService`.
pub fn address_types(service: &Service) -> BTreeSet<&'static str> {
    let spec = service.spec.as_ref();
    let mut types: BTreeSet<&'static str> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(ADDRESS_TYPE_IPV4),
            "IPv6" => Some(ADDRESS_TYPE_IPV6),
            _ => None,
        })
        .collect();
    if !types.is_empty() {
        return types;
    }
    if is_service_ip_set(service) {
        let v6 = spec
            .and_then(|s| s.cluster_ip.as_deref())
            .is_some_and(|ip| ip.contains(':'));
        types.insert(if v6 {
            ADDRESS_TYPE_IPV6
        } else {
            ADDRESS_TYPE_IPV4
        });
        return types;
    }
    // Headless without families yet: assume dual stack, as upstream.
    types.extend([ADDRESS_TYPE_IPV4, ADDRESS_TYPE_IPV6]);
    types
}

/// Upstream `setEndpointSliceLabels`: the service's labels minus reserved
/// keys, plus the reserved ones; `true` when the slice's copy differs.
pub fn slice_labels(
    slice: Option<&EndpointSlice>,
    service: &Service,
) -> (BTreeMap<String, String>, bool) {
    let reserved =
        |k: &str| k == LABEL_SERVICE_NAME || k == LABEL_MANAGED_BY || k == LABEL_HEADLESS;
    let unreserved = |m: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
        m.into_iter()
            .flatten()
            .filter(|(k, _)| !reserved(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut labels = unreserved(service.metadata.labels.as_ref());
    let changed = slice.is_some_and(|s| unreserved(s.metadata.labels.as_ref()) != labels);
    if !is_service_ip_set(service) {
        labels.insert(LABEL_HEADLESS.to_string(), String::new());
    }
    labels.insert(
        LABEL_SERVICE_NAME.to_string(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.to_string(), CONTROLLER_NAME.to_string());
    (labels, changed)
}

/// Upstream `NewPortMapKey`: slices with the same ports (in name order)
/// share a key.
fn port_map_key(ports: &[EndpointPort]) -> String {
    let mut sorted: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.name.as_deref().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.as_deref().unwrap_or_default(),
                p.app_protocol.as_deref().unwrap_or_default()
            )
        })
        .collect();
    sorted.sort();
    sorted.join(",")
}

/// Upstream `hashEndpoint`: addresses, hostname and the target's name.
fn endpoint_key(ep: &Endpoint) -> String {
    let mut addrs = ep.addresses.clone();
    addrs.sort();
    let target = ep.target_ref.as_ref();
    format!(
        "{}|{}|{}/{}",
        addrs.join(","),
        ep.hostname.as_deref().unwrap_or_default(),
        target
            .and_then(|t| t.namespace.as_deref())
            .unwrap_or_default(),
        target.and_then(|t| t.name.as_deref()).unwrap_or_default()
    )
}

/// Upstream `EndpointsEqualBeyondHash`.
fn endpoints_equal_beyond_hash(a: &Endpoint, b: &Endpoint) -> bool {
    let conds = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    let target = |e: &Endpoint| {
        e.target_ref.clone().map(|mut t| {
            t.resource_version = None;
            t
        })
    };
    a.node_name == b.node_name && a.zone == b.zone && conds(a) == conds(b) && target(a) == target(b)
}

fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.metadata.uid.as_deref();
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(o.uid.as_str()) == uid && o.kind == "Service" && o.api_version == "v1")
}

/// Upstream `newEndpointSlice` (without endpoints).
fn new_slice(service: &Service, ports: Vec<EndpointPort>, address_type: &str) -> EndpointSlice {
    let name = service.metadata.name.clone().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: service.metadata.namespace.clone(),
            owner_references: Some(vec![new_controller_ref_for(service)]),
            labels: Some(slice_labels(None, service).0),
            ..Default::default()
        },
        address_type: address_type.to_string(),
        endpoints: Some(Vec::new()),
        ports: Some(ports),
    }
}

/// The whole decision (upstream `Reconciler.Reconcile`).
pub fn reconcile(state: &State) -> Plan {
    let types = address_types(state.service);
    let mut plan = Plan::default();
    let mut by_type: BTreeMap<&str, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in &state.slices {
        if types.contains(slice.address_type.as_str()) {
            by_type
                .entry(slice.address_type.as_str())
                .or_default()
                .push(slice);
        } else {
            plan.actions.push(Action::Delete(
                slice.metadata.name.clone().unwrap_or_default(),
            ));
        }
    }
    for address_type in types {
        let existing = by_type.remove(address_type).unwrap_or_default();
        reconcile_address_type(state, address_type, existing, &mut plan);
    }
    plan.pods_missing_node.sort();
    plan.pods_missing_node.dedup();
    plan
}

struct Desired {
    ports: Vec<EndpointPort>,
    endpoints: BTreeMap<String, Endpoint>,
}

fn desired_by_port_map(
    state: &State,
    address_type: &str,
    plan: &mut Plan,
) -> BTreeMap<String, Desired> {
    let publish_not_ready = state
        .service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut desired: BTreeMap<String, Desired> = BTreeMap::new();
    for pod in &state.pods {
        if !should_pod_be_in_endpoints(pod) {
            continue;
        }
        let ports = endpoint_ports(state.service, pod);
        let entry = desired
            .entry(port_map_key(&ports))
            .or_insert_with(|| Desired {
                ports,
                endpoints: BTreeMap::new(),
            });
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        let node = (state.node)(node_name);
        if node.is_none() && !publish_not_ready {
            plan.pods_missing_node
                .push(pod.metadata.name.clone().unwrap_or_default());
            continue;
        }
        let ep = pod_to_endpoint(pod, node.as_ref(), state.service, address_type);
        if !ep.addresses.is_empty() {
            entry.endpoints.insert(endpoint_key(&ep), ep);
        }
    }
    desired
}

fn reconcile_address_type(
    state: &State,
    address_type: &str,
    existing: Vec<&EndpointSlice>,
    plan: &mut Plan,
) {
    let mut to_create = Vec::new();
    let mut to_update = Vec::new();
    let mut to_delete: Vec<EndpointSlice> = Vec::new();
    let mut existing_by_ports: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in &existing {
        if owned_by(slice, state.service) {
            let key = port_map_key(slice.ports.as_deref().unwrap_or_default());
            existing_by_ports.entry(key).or_default().push(slice);
        } else {
            to_delete.push((*slice).clone());
        }
    }
    let desired = desired_by_port_map(state, address_type, plan);
    for (key, want) in &desired {
        let slices = existing_by_ports.get(key).cloned().unwrap_or_default();
        let (c, u, d) = reconcile_port_mapping(state, slices, want, address_type);
        to_create.extend(c);
        to_update.extend(u);
        to_delete.extend(d);
    }
    for (key, slices) in &existing_by_ports {
        if !desired.contains_key(key) {
            to_delete.extend(slices.iter().map(|s| (*s).clone()));
        }
    }
    // Keep one placeholder slice when the service selects nothing.
    if existing.len() == to_delete.len() && to_create.is_empty() {
        let placeholder = new_slice(state.service, Vec::new(), address_type);
        if to_delete.len() == 1 && is_placeholder_equal(&to_delete[0], &placeholder) {
            to_delete.clear();
        } else {
            to_create.push(placeholder);
        }
    }
    finalize(state, to_create, to_update, to_delete, plan);
}

/// Upstream `placeholderSliceCompare`: same namespace, labels, owner
/// references, ports, address type and no endpoints.
fn is_placeholder_equal(existing: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    existing.metadata.namespace == placeholder.metadata.namespace
        && existing.metadata.labels.clone().unwrap_or_default()
            == placeholder.metadata.labels.clone().unwrap_or_default()
        && existing.metadata.owner_references == placeholder.metadata.owner_references
        && existing.address_type == placeholder.address_type
        && existing.endpoints.as_deref().unwrap_or_default().is_empty()
        && existing.ports.as_deref().unwrap_or_default().is_empty()
}

type Triple = (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<EndpointSlice>);

/// Upstream `reconcileByPortMapping`.
fn reconcile_port_mapping(
    state: &State,
    existing: Vec<&EndpointSlice>,
    want: &Desired,
    address_type: &str,
) -> Triple {
    let mut remaining = want.endpoints.clone();
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let (mut unchanged, mut to_update, mut to_delete) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let old = slice.endpoints.as_deref().unwrap_or_default();
        let mut kept = Vec::new();
        let mut endpoint_updated = false;
        for ep in old {
            if let Some(got) = remaining.remove(&endpoint_key(ep)) {
                endpoint_updated |= !endpoints_equal_beyond_hash(&got, ep);
                kept.push(got);
            }
        }
        let (labels, labels_changed) = slice_labels(Some(slice), state.service);
        let mut copy = slice.clone();
        if endpoint_updated || kept.len() != old.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
            } else {
                copy.endpoints = Some(kept);
                copy.metadata.labels = Some(labels);
                to_update.insert(name.clone());
            }
        } else if labels_changed {
            copy.metadata.labels = Some(labels);
            to_update.insert(name.clone());
        } else {
            unchanged.insert(name.clone());
        }
        by_name.insert(name, copy);
    }
    let max = state.max_endpoints.max(1);
    let pop = |slice: &mut EndpointSlice, remaining: &mut BTreeMap<String, Endpoint>| {
        let eps = slice.endpoints.get_or_insert_with(Vec::new);
        while eps.len() < max {
            let Some((_, ep)) = remaining.pop_first() else {
                break;
            };
            eps.push(ep);
        }
    };
    // Slices being updated anyway take new endpoints first, fullest first.
    if !remaining.is_empty() {
        let mut names: Vec<&String> = to_update.iter().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name.get(*n).map_or(0, slice_len)));
        for name in names {
            if let Some(slice) = by_name.get_mut(name) {
                pop(slice, &mut remaining);
            }
        }
    }
    let mut to_create = Vec::new();
    while !remaining.is_empty() {
        let fill = if remaining.len() < max {
            slice_to_fill(&by_name, &unchanged, remaining.len(), max)
        } else {
            None
        };
        match fill {
            Some(name) => {
                if let Some(slice) = by_name.get_mut(&name) {
                    pop(slice, &mut remaining);
                }
                unchanged.remove(&name);
                to_update.insert(name);
            }
            None => {
                let mut slice = new_slice(state.service, want.ports.clone(), address_type);
                pop(&mut slice, &mut remaining);
                to_create.push(slice);
            }
        }
    }
    let pick = |names: &BTreeSet<String>| {
        names
            .iter()
            .filter_map(|n| by_name.get(n).cloned())
            .collect()
    };
    (to_create, pick(&to_update), pick(&to_delete))
}

fn slice_len(slice: &EndpointSlice) -> usize {
    slice.endpoints.as_ref().map_or(0, Vec::len)
}

/// Upstream `getSliceToFill`: the unchanged slice that ends up closest to
/// full when `count` endpoints are added.
fn slice_to_fill(
    by_name: &BTreeMap<String, EndpointSlice>,
    unchanged: &BTreeSet<String>,
    count: usize,
    max: usize,
) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for name in unchanged {
        let Some(slice) = by_name.get(name) else {
            continue;
        };
        let used = count + slice_len(slice);
        if used > max {
            continue;
        }
        let diff = max - used;
        if diff < max && best.as_ref().is_none_or(|(d, _)| diff < *d) {
            best = Some((diff, name.clone()));
        }
    }
    best.map(|(_, n)| n)
}

/// Upstream `finalize`: recycle slices due for deletion as the names of
/// slices due for creation, stamp the trigger time, never create for a
/// service being deleted.
fn finalize(
    state: &State,
    mut to_create: Vec<EndpointSlice>,
    mut to_update: Vec<EndpointSlice>,
    mut to_delete: Vec<EndpointSlice>,
    plan: &mut Plan,
) {
    let mut i = 0;
    while i < to_delete.len() && !to_create.is_empty() {
        let same_type = to_create
            .last()
            .is_some_and(|c| c.address_type == to_delete[i].address_type);
        if same_type && owned_by(&to_delete[i], state.service) {
            let old = to_delete.remove(i);
            if let Some(mut slice) = to_create.pop() {
                slice.metadata.name = old.metadata.name;
                slice.metadata.resource_version = old.metadata.resource_version;
                to_update.push(slice);
            }
        } else {
            i += 1;
        }
    }
    let stamp = |mut slice: EndpointSlice| {
        let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
        match &state.trigger_time {
            Some(t) => {
                annotations.insert(LAST_CHANGE_TRIGGER_TIME.to_string(), t.clone());
            }
            None => {
                annotations.remove(LAST_CHANGE_TRIGGER_TIME);
            }
        }
        slice
    };
    if state.service.metadata.deletion_timestamp.is_none() {
        plan.actions
            .extend(to_create.into_iter().map(|s| Action::Create(stamp(s))));
    }
    plan.actions
        .extend(to_update.into_iter().map(|s| Action::Update(stamp(s))));
    plan.actions.extend(
        to_delete
            .into_iter()
            .map(|s| Action::Delete(s.metadata.name.unwrap_or_default())),
    );
}
