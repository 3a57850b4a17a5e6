//! The pure EndpointSlice mirroring reconciler (upstream
//! `pkg/controller/endpointslicemirroring/reconciler.go` and `utils.go`):
//! from a custom Endpoints and the slices already mirrored from it, the
//! slices to create, update and delete — one slice per address type and
//! port set of each subset, at most `max_endpoints_per_subset` endpoints.

use std::collections::BTreeMap;

use component_base::ownerref::new_controller_ref_for;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort as CorePort, Endpoints};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::ObjectMeta;

use crate::endpointslice::endpoint::{ADDRESS_TYPE_IPV4, ADDRESS_TYPE_IPV6, parse_ip_sloppy};
use crate::endpointslice::reconcile::{
    LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LAST_CHANGE_TRIGGER_TIME,
};

/// Upstream `ControllerName`, written into `LABEL_MANAGED_BY`.
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// `discovery.LabelSkipMirror`.
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// `v1.LastAppliedConfigAnnotation`: not copied onto slices.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Upstream `resourcelock.LeaderElectionRecordAnnotationKey`.
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// `--mirroring-max-endpoints-per-subset` default.
pub const DEFAULT_MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
/// Event reasons (upstream `InvalidIPAddress`, `TooManyAddressesToMirror`).
pub const INVALID_IP_ADDRESS: &str = "InvalidIPAddress";
pub const TOO_MANY_ADDRESSES: &str = "TooManyAddressesToMirror";

/// One write the runner must perform.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Create(EndpointSlice),
    Update(EndpointSlice),
    Delete(String),
}

/// The writes plus what upstream reports as events.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub invalid_addresses: usize,
    pub skipped_addresses: usize,
}

/// Upstream `shouldMirror`: not labelled skip-mirror, not a leader lock.
pub fn should_mirror(endpoints: &Endpoints) -> bool {
    let skip = endpoints
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_SKIP_MIRROR))
        .is_some_and(|v| v == "true");
    let leader = endpoints
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
    !skip && !leader
}

/// Upstream `addrTypePortMapKey`: address type plus the sorted port set.
type GroupKey = (&'static str, Vec<(String, i32, String, Option<String>)>);
/// Upstream endpoint hash: addresses, hostname and target.
type EndpointKey = (Vec<String>, Option<String>, Option<String>, Option<String>);

fn group_key(address_type: &str, ports: &[EndpointPort]) -> Option<GroupKey> {
    let address_type = match address_type {
        ADDRESS_TYPE_IPV4 => ADDRESS_TYPE_IPV4,
        ADDRESS_TYPE_IPV6 => ADDRESS_TYPE_IPV6,
        _ => return None,
    };
    let mut ports: Vec<_> = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    ports.sort();
    Some((address_type, ports))
}

fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let target = ep.target_ref.as_ref();
    (
        ep.addresses.clone(),
        ep.hostname.clone(),
        target.and_then(|t| t.namespace.clone()),
        target.and_then(|t| t.name.clone()),
    )
}

/// Upstream `epPortsToEpsPorts`.
fn slice_ports(ports: &[CorePort]) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|p| EndpointPort {
            name: Some(p.name.clone().unwrap_or_default()),
            port: Some(p.port),
            protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

/// Upstream `addressToEndpoint`: `None` for an unparsable IP.
fn address_to_endpoint(address: &EndpointAddress, ready: bool) -> Option<(&'static str, Endpoint)> {
    let ip = parse_ip_sloppy(&address.ip)?;
    let address_type = if ip.is_ipv4() {
        ADDRESS_TYPE_IPV4
    } else {
        ADDRESS_TYPE_IPV6
    };
    let endpoint = Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..Default::default()
        }),
        target_ref: address.target_ref.clone(),
        node_name: address.node_name.clone(),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        ..Default::default()
    };
    Some((address_type, endpoint))
}

/// Desired endpoints and ports per group (upstream `desiredCalc`).
#[derive(Default)]
struct Desired {
    groups: BTreeMap<GroupKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)>,
    invalid: usize,
    skipped: usize,
}

fn desired(endpoints: &Endpoints, max_per_subset: usize) -> Desired {
    let mut d = Desired::default();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = slice_ports(subset.ports.as_deref().unwrap_or_default());
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        let total = ready.clone().count() + not_ready.clone().count();
        let mut added = 0;
        for (address, is_ready) in ready.chain(not_ready) {
            if added >= max_per_subset {
                break;
            }
            let Some((address_type, ep)) = address_to_endpoint(address, is_ready) else {
                d.invalid += 1;
                continue;
            };
            let Some(key) = group_key(address_type, &ports) else {
                continue;
            };
            let group = d
                .groups
                .entry(key)
                .or_insert_with(|| (ports.clone(), BTreeMap::new()));
            group.1.insert(endpoint_key(&ep), ep);
            added += 1;
        }
        d.skipped += total - added;
    }
    d
}

/// Upstream `getEndpointSlicePrefix`: `<name>-` unless that is too long.
fn generate_name(name: &str) -> String {
    if name.len() < 253 {
        format!("{name}-")
    } else {
        name.to_string()
    }
}

/// Upstream `newEndpointSlice`: the Endpoints' labels (plus service-name and
/// managed-by), its annotations but the trigger time and last-applied, and
/// a controller reference to the Endpoints.
pub fn new_slice(
    endpoints: &Endpoints,
    ports: Vec<EndpointPort>,
    address_type: &str,
    name: Option<String>,
) -> EndpointSlice {
    let ep_name = endpoints.metadata.name.clone().unwrap_or_default();
    let mut labels = endpoints.metadata.labels.clone().unwrap_or_default();
    labels.insert(LABEL_SERVICE_NAME.into(), ep_name.clone());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    let mut annotations = endpoints.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_CHANGE_TRIGGER_TIME);
    annotations.remove(LAST_APPLIED);
    let generate_name = name.is_none().then(|| generate_name(&ep_name));
    EndpointSlice {
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: endpoints.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![new_controller_ref_for(endpoints)]),
            ..Default::default()
        },
        address_type: address_type.to_string(),
        endpoints: Some(Vec::new()),
        ports: Some(ports),
    }
}

/// Whether a slice already holds exactly the desired endpoints and the
/// Endpoints' labels and annotations (upstream `totalChanges` plus the
/// label/annotation comparison).
fn up_to_date(
    existing: &EndpointSlice,
    want: &BTreeMap<EndpointKey, Endpoint>,
    endpoints: &Endpoints,
) -> bool {
    let existing_eps = existing.endpoints.as_deref().unwrap_or_default();
    let have: BTreeMap<EndpointKey, &Endpoint> =
        existing_eps.iter().map(|e| (endpoint_key(e), e)).collect();
    let same_endpoints = have.len() == existing_eps.len()
        && have.len() == want.len()
        && want
            .iter()
            .all(|(k, e)| have.get(k).is_some_and(|h| endpoint_equal(h, e)));
    let mut labels = existing.metadata.labels.clone().unwrap_or_default();
    labels.remove(LABEL_MANAGED_BY);
    labels.remove(LABEL_SERVICE_NAME);
    let mut annotations = endpoints.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_CHANGE_TRIGGER_TIME);
    annotations.remove(LAST_APPLIED);
    same_endpoints
        && labels == endpoints.metadata.labels.clone().unwrap_or_default()
        && annotations == existing.metadata.annotations.clone().unwrap_or_default()
}

/// Upstream `EndpointsEqualBeyondHash` for what mirroring sets.
fn endpoint_equal(a: &Endpoint, b: &Endpoint) -> bool {
    let ready = |e: &Endpoint| e.conditions.as_ref().and_then(|c| c.ready);
    let target = |e: &Endpoint| {
        e.target_ref
            .as_ref()
            .map(|t| (t.kind.clone(), t.uid.clone()))
    };
    ready(a) == ready(b) && a.node_name == b.node_name && target(a) == target(b)
}

/// Upstream `reconcile` + `reconcileByPortMapping` + `recycleSlices`:
/// `existing` are the slices labelled as mirrored from `endpoints` (not
/// being deleted).
pub fn reconcile(
    endpoints: &Endpoints,
    existing: &[&EndpointSlice],
    max_per_subset: usize,
) -> Plan {
    let d = desired(endpoints, max_per_subset.max(1));
    let mut by_key: BTreeMap<GroupKey, Vec<&EndpointSlice>> = BTreeMap::new();
    let mut delete: Vec<String> = Vec::new();
    for slice in existing {
        match group_key(
            &slice.address_type,
            slice.ports.as_deref().unwrap_or_default(),
        ) {
            Some(key) if d.groups.contains_key(&key) => by_key.entry(key).or_default().push(slice),
            _ => delete.extend(slice.metadata.name.clone()),
        }
    }
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    for (key, (ports, want)) in d.groups {
        let slices = by_key.remove(&key).unwrap_or_default();
        delete.extend(
            slices
                .iter()
                .skip(1)
                .filter_map(|s| s.metadata.name.clone()),
        );
        let first = slices.first();
        if first.is_some_and(|s| up_to_date(s, &want, endpoints)) {
            continue;
        }
        let name = first.and_then(|s| s.metadata.name.clone());
        let mut slice = new_slice(endpoints, ports, key.0, name);
        slice.endpoints = Some(want.into_values().take(max_per_subset.max(1)).collect());
        match slice.metadata.name {
            Some(_) => updates.push(slice),
            None => creates.push(slice),
        }
    }
    // Recycle slices due for deletion instead of creating new ones.
    for slice in &mut creates {
        let Some(name) = delete.pop() else { break };
        slice.metadata.generate_name = None;
        slice.metadata.name = Some(name);
    }
    let (recycled, creates): (Vec<_>, Vec<_>) =
        creates.into_iter().partition(|s| s.metadata.name.is_some());
    let actions = creates
        .into_iter()
        .map(Action::Create)
        .chain(updates.into_iter().chain(recycled).map(Action::Update))
        .chain(delete.into_iter().map(Action::Delete))
        .collect();
    Plan {
        actions,
        invalid_addresses: d.invalid,
        skipped_addresses: d.skipped,
    }
}
