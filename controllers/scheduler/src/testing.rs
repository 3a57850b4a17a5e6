//! Small builders for plain Pod/Node objects used by unit and integration tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Node, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
    Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

/// A container requesting the given resources (empty slice = no requests at all).
pub fn container(requests: &[(&str, &str)]) -> Container {
    Container {
        name: "c".into(),
        image: Some("busybox".into()),
        resources: (!requests.is_empty()).then(|| ResourceRequirements {
            requests: Some(list(requests)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Pod `default/<name>` with uid `uid-<name>` for the default scheduler.
pub fn pod_named(name: &str, containers: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            scheduler_name: Some("default-scheduler".into()),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn pod_with(containers: Vec<Container>) -> Pod {
    pod_named("p", containers)
}

/// Node with equal capacity and allocatable.
pub fn node(name: &str, cpu: &str, memory: &str, pods: &str) -> Node {
    let alloc = list(&[("cpu", cpu), ("memory", memory), ("pods", pods)]);
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                name.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(alloc.clone()),
            allocatable: Some(alloc),
            ..Default::default()
        }),
    }
}

pub fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: (!value.is_empty()).then(|| value.to_string()),
        effect: effect.into(),
        time_added: None,
    }
}

pub fn with_taints(mut n: Node, taints: Vec<Taint>) -> Node {
    n.spec.get_or_insert_with(Default::default).taints = Some(taints);
    n
}

pub fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
    Toleration {
        key: (!key.is_empty()).then(|| key.to_string()),
        operator: (!op.is_empty()).then(|| op.to_string()),
        value: (!value.is_empty()).then(|| value.to_string()),
        effect: (!effect.is_empty()).then(|| effect.to_string()),
        toleration_seconds: None,
    }
}

pub fn with_tolerations(mut p: Pod, tolerations: Vec<Toleration>) -> Pod {
    p.spec.get_or_insert_with(Default::default).tolerations = Some(tolerations);
    p
}

/// Adds a TCP host port to the pod's first container.
pub fn with_host_port(mut p: Pod, port: i32) -> Pod {
    if let Some(c) = p.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        c.ports.get_or_insert_with(Vec::new).push(ContainerPort {
            container_port: port,
            host_port: Some(port),
            protocol: Some("TCP".into()),
            ..Default::default()
        });
    }
    p
}

pub fn with_labels(mut n: Node, labels: &[(&str, &str)]) -> Node {
    let l = n.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in labels {
        l.insert(k.to_string(), v.to_string());
    }
    n
}

pub fn with_priority(mut p: Pod, priority: i32) -> Pod {
    p.spec.get_or_insert_with(Default::default).priority = Some(priority);
    p
}

/// Pod `default/<name>` with the given labels (no containers).
pub fn labeled_pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    let mut p = pod_named(name, vec![]);
    p.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    p
}

pub fn on_node(mut p: Pod, node: &str) -> Pod {
    p.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
    p
}

pub fn in_namespace(mut p: Pod, ns: &str) -> Pod {
    p.metadata.namespace = Some(ns.into());
    p
}

/// Node `name` with exactly `labels` (no hostname label unless listed).
pub fn labeled_node(name: &str, labels: &[(&str, &str)]) -> Node {
    let mut n = node(name, "32", "64Gi", "110");
    n.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    n
}

/// NodeInfos for `nodes` holding the `pods` whose `spec.nodeName` names them.
pub fn node_infos(nodes: &[Node], pods: &[Pod]) -> Vec<std::sync::Arc<crate::framework::NodeInfo>> {
    nodes
        .iter()
        .map(|n| {
            let mut ni = crate::framework::NodeInfo::new(std::sync::Arc::new(n.clone()));
            for p in pods
                .iter()
                .filter(|p| crate::pod::node_name(p) == n.metadata.name.as_deref().unwrap_or(""))
            {
                ni.add_pod(std::sync::Arc::new(p.clone()));
            }
            std::sync::Arc::new(ni)
        })
        .collect()
}

/// `matchExpressions: [{key, Exists}]`.
pub fn exists_selector(key: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_expressions: Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                key: key.into(),
                operator: "Exists".into(),
                values: None,
            },
        ]),
        match_labels: None,
    }
}
