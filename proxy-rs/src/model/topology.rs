//! Endpoint selection for one Service port (upstream `CategorizeEndpoints`).

use std::collections::BTreeMap;

use super::endpoint::Endpoint;
use super::service_port::ServiceInfo;

/// Node label carrying the zone topology hints refer to.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Categorized {
    /// Usable endpoints for "Cluster" policy (empty if the Service never uses it).
    pub cluster: Vec<Endpoint>,
    /// Usable endpoints for "Local" policy (empty if the Service never uses it).
    pub local: Vec<Endpoint>,
    /// Union of the two: every endpoint this node may send traffic to.
    pub all_reachable: Vec<Endpoint>,
    /// The Service has a usable endpoint somewhere in the cluster.
    pub has_any: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopologyMode {
    None,
    PreferSameNode,
    PreferSameZone,
}

/// Ready endpoints, falling back to serving-terminating ones when none are
/// ready (separately for Cluster and Local), honouring topology hints.
pub fn categorize_endpoints(
    endpoints: &[Endpoint],
    svc: &ServiceInfo,
    node_name: &str,
    node_labels: &BTreeMap<String, String>,
) -> Categorized {
    let mut out = Categorized::default();
    if endpoints.is_empty() {
        return out;
    }
    let zone = node_labels
        .get(LABEL_TOPOLOGY_ZONE)
        .map(String::as_str)
        .unwrap_or("");
    let mut mode = TopologyMode::None;
    if svc.uses_cluster_endpoints() {
        mode = topology_mode(endpoints, node_name, zone);
        out.cluster = filter(endpoints, |ep| {
            ep.ready && available_for(ep, mode, node_name, zone)
        });
        if out.cluster.is_empty() {
            out.cluster = filter(endpoints, |ep| ep.serving && ep.terminating);
        }
        out.has_any = !out.cluster.is_empty();
    }
    if !svc.uses_local_endpoints() {
        out.all_reachable = out.cluster.clone();
        return out;
    }

    let mut local_ready = false;
    let mut local_serving_terminating = false;
    for ep in endpoints {
        if ep.ready {
            out.has_any = true;
            local_ready |= ep.is_local;
        } else if ep.serving && ep.terminating {
            out.has_any = true;
            local_serving_terminating |= ep.is_local;
        }
    }
    let mut use_serving_terminating = false;
    if local_ready {
        out.local = filter(endpoints, |ep| ep.is_local && ep.ready);
    } else if local_serving_terminating {
        use_serving_terminating = true;
        out.local = filter(endpoints, |ep| ep.is_local && ep.serving && ep.terminating);
    }

    if !svc.uses_cluster_endpoints() {
        out.all_reachable = out.local.clone();
        return out;
    }
    if mode == TopologyMode::None && !use_serving_terminating {
        // Cluster holds every ready endpoint, so it already contains Local's.
        out.all_reachable = out.cluster.clone();
        return out;
    }
    let mut merged: BTreeMap<String, Endpoint> = BTreeMap::new();
    for ep in out.cluster.iter().chain(out.local.iter()) {
        merged.insert(ep.to_string(), ep.clone());
    }
    out.all_reachable = merged.into_values().collect();
    out
}

fn filter(endpoints: &[Endpoint], pred: impl Fn(&Endpoint) -> bool) -> Vec<Endpoint> {
    endpoints.iter().filter(|ep| pred(ep)).cloned().collect()
}

/// PreferSameNode when every ready endpoint has node hints and one names this
/// node; else PreferSameZone on the same rule for zones; else no topology.
fn topology_mode(endpoints: &[Endpoint], node_name: &str, zone: &str) -> TopologyMode {
    let ready: Vec<&Endpoint> = endpoints.iter().filter(|e| e.ready).collect();
    if ready.is_empty() {
        return TopologyMode::None;
    }
    let all_node_hints = ready.iter().all(|e| !e.node_hints.is_empty());
    if all_node_hints && ready.iter().any(|e| e.node_hints.contains(node_name)) {
        return TopologyMode::PreferSameNode;
    }
    let all_zone_hints = ready.iter().all(|e| !e.zone_hints.is_empty());
    if all_zone_hints && ready.iter().any(|e| e.zone_hints.contains(zone)) {
        return TopologyMode::PreferSameZone;
    }
    TopologyMode::None
}

fn available_for(ep: &Endpoint, mode: TopologyMode, node_name: &str, zone: &str) -> bool {
    match mode {
        TopologyMode::None => true,
        TopologyMode::PreferSameNode => ep.node_hints.contains(node_name),
        TopologyMode::PreferSameZone => ep.zone_hints.contains(zone),
    }
}
