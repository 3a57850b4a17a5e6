//! Per-node aggregate the plugins evaluate (upstream `framework.NodeInfo`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::affinity_term::PodAffinityTerms;
use super::resource::{Resource, pod_requests};

/// A pod plus values precomputed once when it enters a NodeInfo.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub requests: Resource,
    pub non_zero_cpu: i64,
    pub non_zero_mem: i64,
    /// Parsed pod (anti-)affinity terms; `None` when the pod has none (upstream
    /// `PodsWithAffinity` membership).
    pub affinity: Option<Arc<PodAffinityTerms>>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        let requests = pod_requests(&pod, false);
        let non_zero = pod_requests(&pod, true);
        PodInfo {
            requests,
            non_zero_cpu: non_zero.milli_cpu,
            non_zero_mem: non_zero.memory,
            affinity: PodAffinityTerms::of_lossy(&pod).map(Arc::new),
            pod,
        }
    }

    pub fn uid(&self) -> &str {
        crate::pod::uid(&self.pod)
    }

    /// The pod has required anti-affinity terms (upstream `PodsWithRequiredAntiAffinity`).
    pub fn has_required_anti_affinity(&self) -> bool {
        self.affinity
            .as_ref()
            .is_some_and(|a| !a.required_anti_affinity.is_empty())
    }
}

/// Host ports in use on a node: host IP -> set of (protocol, port) (upstream `HostPortInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPortInfo(HashMap<String, HashSet<(String, i32)>>);

pub const DEFAULT_BIND_ALL_HOST_IP: &str = "0.0.0.0";

fn sanitize(ip: &str, protocol: &str) -> (String, String) {
    let ip = if ip.is_empty() {
        DEFAULT_BIND_ALL_HOST_IP
    } else {
        ip
    };
    let protocol = if protocol.is_empty() { "TCP" } else { protocol };
    (ip.to_string(), protocol.to_string())
}

impl HostPortInfo {
    pub fn add(&mut self, ip: &str, protocol: &str, port: i32) {
        if port <= 0 {
            return;
        }
        let (ip, protocol) = sanitize(ip, protocol);
        self.0.entry(ip).or_default().insert((protocol, port));
    }

    pub fn remove(&mut self, ip: &str, protocol: &str, port: i32) {
        if port <= 0 {
            return;
        }
        let (ip, protocol) = sanitize(ip, protocol);
        if let Some(set) = self.0.get_mut(&ip) {
            set.remove(&(protocol, port));
            if set.is_empty() {
                self.0.remove(&ip);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.values().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// 0.0.0.0 conflicts with the same protocol/port on any IP; a specific IP conflicts with
    /// itself and with 0.0.0.0.
    pub fn check_conflict(&self, ip: &str, protocol: &str, port: i32) -> bool {
        if port <= 0 {
            return false;
        }
        let (ip, protocol) = sanitize(ip, protocol);
        let key = (protocol, port);
        if ip == DEFAULT_BIND_ALL_HOST_IP {
            return self.0.values().any(|s| s.contains(&key));
        }
        [DEFAULT_BIND_ALL_HOST_IP, ip.as_str()]
            .iter()
            .any(|k| self.0.get(*k).is_some_and(|s| s.contains(&key)))
    }
}

/// Host ports a pod asks for: app containers and restartable init (sidecar) containers.
pub fn pod_host_ports(pod: &Pod) -> Vec<(String, String, i32)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let hp = p.host_port.unwrap_or(0);
            (hp > 0).then(|| {
                (
                    p.host_ip.clone().unwrap_or_default(),
                    p.protocol.clone().unwrap_or_default(),
                    hp,
                )
            })
        })
        .collect()
}

/// An image on a node and how many nodes in the cluster have it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageStateSummary {
    pub size: i64,
    pub num_nodes: usize,
    pub total_nodes: usize,
}

/// Node plus the pods assigned (or assumed) to it and their aggregated usage.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    node: Option<Arc<Node>>,
    pub pods: Vec<PodInfo>,
    pub requested: Resource,
    /// Like `requested` but with scoring defaults for containers without CPU/memory requests.
    pub non_zero_requested: Resource,
    pub allocatable: Resource,
    pub used_ports: HostPortInfo,
    /// Image name -> size in bytes of images present on the node.
    pub image_sizes: HashMap<String, i64>,
    /// Cluster-wide spread of this node's images, filled in by the cache when it copies the
    /// NodeInfo into a snapshot (upstream `ImageStates`).
    pub image_states: HashMap<String, ImageStateSummary>,
    /// How many of `pods` have pod (anti-)affinity / required anti-affinity (upstream
    /// `PodsWithAffinity` / `PodsWithRequiredAntiAffinity`, as counts).
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
    /// Bumped on every change; the snapshot copies only NodeInfos newer than itself.
    pub generation: u64,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> Self {
        let mut ni = NodeInfo::default();
        ni.set_node(node);
        ni
    }

    pub fn node(&self) -> Option<&Node> {
        self.node.as_deref()
    }

    pub fn node_arc(&self) -> Option<&Arc<Node>> {
        self.node.as_ref()
    }

    pub fn name(&self) -> &str {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.name.as_deref())
            .unwrap_or_default()
    }

    pub fn set_node(&mut self, node: Arc<Node>) {
        let status = node.status.as_ref();
        self.allocatable = Resource::from_list(status.and_then(|s| s.allocatable.as_ref()));
        self.image_sizes.clear();
        for image in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for name in image.names.iter().flatten() {
                self.image_sizes
                    .insert(name.clone(), image.size_bytes.unwrap_or(0));
            }
        }
        self.node = Some(node);
    }

    pub fn remove_node(&mut self) {
        self.node = None;
    }

    pub fn add_pod_info(&mut self, pi: PodInfo) {
        self.requested.add(&pi.requests);
        self.non_zero_requested.milli_cpu += pi.non_zero_cpu;
        self.non_zero_requested.memory += pi.non_zero_mem;
        for (ip, proto, port) in pod_host_ports(&pi.pod) {
            self.used_ports.add(&ip, &proto, port);
        }
        self.pods_with_affinity += usize::from(pi.affinity.is_some());
        self.pods_with_required_anti_affinity += usize::from(pi.has_required_anti_affinity());
        self.pods.push(pi);
    }

    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        self.add_pod_info(PodInfo::new(pod));
    }

    /// Removes the pod with `uid`; returns whether it was present.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(idx) = self.pods.iter().position(|p| p.uid() == uid) else {
            return false;
        };
        let pi = self.pods.swap_remove(idx);
        self.pods_with_affinity -= usize::from(pi.affinity.is_some());
        self.pods_with_required_anti_affinity -= usize::from(pi.has_required_anti_affinity());
        self.requested.sub(&pi.requests);
        self.non_zero_requested.milli_cpu -= pi.non_zero_cpu;
        self.non_zero_requested.memory -= pi.non_zero_mem;
        for (ip, proto, port) in pod_host_ports(&pi.pod) {
            self.used_ports.remove(&ip, &proto, port);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, node, pod_with, with_host_port};

    #[test]
    fn add_and_remove_pod_keeps_aggregates() {
        let mut ni = NodeInfo::new(Arc::new(node("n1", "4", "8Gi", "110")));
        let p = with_host_port(pod_with(vec![container(&[("cpu", "1")])]), 8080);
        ni.add_pod(Arc::new(p));
        assert_eq!(ni.requested.milli_cpu, 1000);
        assert_eq!(ni.non_zero_requested.memory, 200 * 1024 * 1024);
        assert!(ni.used_ports.check_conflict("", "TCP", 8080));
        assert!(ni.remove_pod("uid-p"));
        assert_eq!(ni.requested, Resource::default());
        assert!(ni.used_ports.is_empty());
        assert_eq!(ni.allocatable.allowed_pod_number, 110);
    }

    #[test]
    fn host_port_conflicts_table() {
        let mut h = HostPortInfo::default();
        h.add("127.0.0.1", "TCP", 80);
        h.add("", "UDP", 53);
        let cases = [
            ("127.0.0.1", "TCP", 80, true),
            ("0.0.0.0", "TCP", 80, true),
            ("", "", 80, true),
            ("10.0.0.1", "TCP", 80, false),
            ("10.0.0.1", "UDP", 53, true),
            ("10.0.0.1", "TCP", 53, false),
            ("127.0.0.1", "TCP", 0, false),
        ];
        for (ip, proto, port, want) in cases {
            assert_eq!(
                h.check_conflict(ip, proto, port),
                want,
                "{ip} {proto} {port}"
            );
        }
    }
}
