//! Table-driven tests of the slice reconciler on plain objects.

use k8s_openapi::api::core::v1::{Node, Pod, PodIP, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;

use super::reconcile::*;
use crate::controller_utils::testing::{on_node, pod, ready_since};

fn service(cluster_ip: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("svc-uid".into()),
            labels: Some(
                [
                    ("app".to_string(), "web".to_string()),
                    (LABEL_MANAGED_BY.to_string(), "x".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.into()),
            ip_families: Some(vec!["IPv4".into()]),
            selector: Some([("app".to_string(), "web".to_string())].into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ip_pod(i: usize) -> Pod {
    let mut p = on_node(ready_since(pod(&format!("p{i}")), 1), "n1");
    if let Some(s) = p.status.as_mut() {
        let ip = format!("10.0.{}.{}", i / 250, i % 250 + 1);
        s.pod_ip = Some(ip.clone());
        s.pod_ips = Some(vec![PodIP { ip }]);
    }
    p
}

fn node(name: &str) -> Option<Node> {
    Some(Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    })
}

fn plan(svc: &Service, pods: &[Pod], slices: &[EndpointSlice], max: usize) -> Plan {
    reconcile(&State {
        service: svc,
        pods: pods.iter().collect(),
        slices: slices.iter().collect(),
        node: &node,
        max_endpoints: max,
        trigger_time: Some("2026-11-23T20:00:00Z".into()),
    })
}

/// Pretends the apiserver accepted the plan: creates get names.
fn apply(mut slices: Vec<EndpointSlice>, p: &Plan) -> Vec<EndpointSlice> {
    for (i, action) in p.actions.iter().enumerate() {
        match action {
            Action::Create(s) => {
                let mut s = s.clone();
                s.metadata.name = Some(format!("web-gen{}-{i}", slices.len()));
                slices.push(s);
            }
            Action::Update(s) => {
                if let Some(slot) = slices
                    .iter_mut()
                    .find(|x| x.metadata.name == s.metadata.name)
                {
                    *slot = s.clone();
                }
            }
            Action::Delete(name) => slices.retain(|x| x.metadata.name.as_ref() != Some(name)),
        }
    }
    slices
}

fn count(slices: &[EndpointSlice]) -> Vec<usize> {
    let mut v: Vec<usize> = slices
        .iter()
        .map(|s| s.endpoints.as_ref().map_or(0, Vec::len))
        .collect();
    v.sort();
    v
}

#[test]
fn new_service_gets_one_labelled_owned_slice() {
    let svc = service("10.96.0.10");
    let p = plan(&svc, &[ip_pod(0), ip_pod(1)], &[], 100);
    let [Action::Create(slice)] = p.actions.as_slice() else {
        panic!("want one create, got {:?}", p.actions);
    };
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(LABEL_SERVICE_NAME).map(String::as_str),
        Some("web")
    );
    assert_eq!(
        labels.get(LABEL_MANAGED_BY).map(String::as_str),
        Some(CONTROLLER_NAME)
    );
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    assert!(!labels.contains_key(LABEL_HEADLESS));
    let owner = &slice.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Service", "svc-uid", Some(true))
    );
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(slice.endpoints.as_ref().map(Vec::len), Some(2));
    assert_eq!(slice.ports.as_ref().and_then(|p| p[0].port), Some(8080));
    let annotations = slice.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get(LAST_CHANGE_TRIGGER_TIME)
            .map(String::as_str),
        Some("2026-11-23T20:00:00Z")
    );
}

#[test]
fn headless_label_and_placeholder_without_pods() {
    let svc = service("None");
    let p = plan(&svc, &[], &[], 100);
    let [Action::Create(slice)] = p.actions.as_slice() else {
        panic!("want placeholder, got {:?}", p.actions);
    };
    assert!(
        slice
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .contains_key(LABEL_HEADLESS)
    );
    assert!(slice.endpoints.as_deref().unwrap_or_default().is_empty());
    // The placeholder is stable: a second sync changes nothing.
    let slices = apply(Vec::new(), &p);
    let mut again = plan(&svc, &[], &slices, 100);
    again.actions.retain(|a| !matches!(a, Action::Update(_)));
    assert!(again.actions.is_empty(), "{:?}", again.actions);
}

#[test]
fn packs_into_slices_of_max_and_fills_before_creating() {
    let svc = service("10.96.0.10");
    let pods: Vec<Pod> = (0..250).map(ip_pod).collect();
    let slices = apply(Vec::new(), &plan(&svc, &pods, &[], 100));
    assert_eq!(count(&slices), vec![50, 100, 100]);
    // Steady state: nothing to do.
    assert!(plan(&svc, &pods, &slices, 100).actions.is_empty());
    // 30 more pods go into the partly full slice, no new slice.
    let more: Vec<Pod> = (0..280).map(ip_pod).collect();
    let p = plan(&svc, &more, &slices, 100);
    assert!(
        p.actions.iter().all(|a| matches!(a, Action::Update(_))),
        "{:?}",
        p.actions
    );
    assert_eq!(p.actions.len(), 1);
    let slices = apply(slices, &p);
    assert_eq!(count(&slices), vec![80, 100, 100]);
    // Removing pods only touches the slices that held them.
    let fewer: Vec<Pod> = (0..200).map(ip_pod).collect();
    let p = plan(&svc, &fewer, &slices, 100);
    let slices = apply(slices, &p);
    assert_eq!(count(&slices).iter().sum::<usize>(), 200);
    assert!(plan(&svc, &fewer, &slices, 100).actions.is_empty());
}

#[test]
fn pods_with_different_named_port_numbers_get_separate_slices() {
    use k8s_openapi::api::core::v1::{Container, ContainerPort};
    let mut svc = service("10.96.0.10");
    if let Some(spec) = svc.spec.as_mut() {
        spec.ports = Some(vec![ServicePort {
            name: Some("http".into()),
            port: 80,
            protocol: Some("TCP".into()),
            target_port: Some(IntOrString::String("web".into())),
            ..Default::default()
        }]);
    }
    let with_port = |i: usize, port: i32| {
        let mut p = ip_pod(i);
        if let Some(spec) = p.spec.as_mut() {
            spec.containers = vec![Container {
                name: "c".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("web".into()),
                    container_port: port,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }];
        }
        p
    };
    let p = plan(
        &svc,
        &[with_port(0, 8080), with_port(1, 9090), with_port(2, 8080)],
        &[],
        100,
    );
    let mut ports: Vec<(Option<i32>, usize)> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(s) => Some((
                s.ports.as_ref().and_then(|p| p[0].port),
                s.endpoints.as_ref().map_or(0, Vec::len),
            )),
            _ => None,
        })
        .collect();
    ports.sort();
    assert_eq!(ports, vec![(Some(8080), 2), (Some(9090), 1)]);
}

#[test]
fn tampered_and_foreign_slices_are_repaired() {
    let svc = service("10.96.0.10");
    let pods = vec![ip_pod(0)];
    let mut slices = apply(Vec::new(), &plan(&svc, &pods, &[], 100));
    // Someone flips an endpoint condition: the slice is updated back.
    if let Some(ep) = slices[0].endpoints.as_mut().and_then(|e| e.first_mut())
        && let Some(c) = ep.conditions.as_mut()
    {
        c.ready = Some(false);
    }
    let p = plan(&svc, &pods, &slices, 100);
    let [Action::Update(fixed)] = p.actions.as_slice() else {
        panic!("{:?}", p.actions);
    };
    assert_eq!(
        fixed
            .endpoints
            .as_ref()
            .and_then(|e| e[0].conditions.as_ref())
            .and_then(|c| c.ready),
        Some(true)
    );
    // A slice owned by another service object (old UID) is recycled by name.
    let mut foreign = slices[0].clone();
    foreign.metadata.name = Some("web-old".into());
    if let Some(refs) = foreign.metadata.owner_references.as_mut() {
        refs[0].uid = "other".into();
    }
    let p = plan(&svc, &pods, &[foreign], 100);
    assert!(
        p.actions.contains(&Action::Delete("web-old".into())),
        "{:?}",
        p.actions
    );
}

#[test]
fn pods_on_unknown_nodes_are_skipped_and_reported() {
    let svc = service("10.96.0.10");
    let stray = on_node(ip_pod(1), "ghost");
    let p = reconcile(&State {
        service: &svc,
        pods: vec![&stray],
        slices: Vec::new(),
        node: &|name: &str| if name == "ghost" { None } else { node(name) },
        max_endpoints: 100,
        trigger_time: None,
    });
    assert_eq!(p.pods_missing_node, vec!["p1".to_string()]);
}

#[test]
fn address_types_follow_families_then_cluster_ip() {
    let mut svc = service("fd00::10");
    assert_eq!(
        address_types(&svc).into_iter().collect::<Vec<_>>(),
        vec!["IPv4"]
    );
    if let Some(spec) = svc.spec.as_mut() {
        spec.ip_families = None;
    }
    assert_eq!(
        address_types(&svc).into_iter().collect::<Vec<_>>(),
        vec!["IPv6"]
    );
    let mut headless = service("None");
    if let Some(spec) = headless.spec.as_mut() {
        spec.ip_families = None;
    }
    assert_eq!(
        address_types(&headless).into_iter().collect::<Vec<_>>(),
        vec!["IPv4", "IPv6"]
    );
}
