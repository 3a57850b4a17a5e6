//! Cases from upstream `endpoints_controller_test.go`: the pure reconcile
//! on plain objects, then the runner on in-memory caches and a fake writer.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EndpointAddress, EndpointSubset, Endpoints, PodIP, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;

use super::reconcile::{OVER_CAPACITY, Write, desired_subsets, reconcile};
use super::*;
use crate::control::fake::{FakeObjectControl, Write as FakeWrite};
use crate::controller_utils::testing::{pod, ready_since, ts};
use crate::endpointslice::reconcile::{LABEL_HEADLESS, LAST_CHANGE_TRIGGER_TIME};

fn svc(target: IntOrString) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("foo".into()),
            namespace: Some("ns".into()),
            labels: Some([("app".to_string(), "x".to_string())].into()),
            creation_timestamp: Some(Time(ts(10))),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some([("foo".to_string(), "bar".to_string())].into()),
            cluster_ip: Some("10.96.0.10".into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                protocol: Some("TCP".into()),
                target_port: Some(target),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A selected pod with `ip` exposing container port 8080 as "http".
fn backend(name: &str, ip: &str, ready: bool) -> Pod {
    let mut p = if ready {
        ready_since(pod(name), 100)
    } else {
        pod(name)
    };
    p.metadata.labels = Some([("foo".to_string(), "bar".to_string())].into());
    if let Some(spec) = p.spec.as_mut() {
        spec.node_name = Some("n1".into());
        spec.containers = vec![Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }];
    }
    if let Some(status) = p.status.as_mut() {
        status.pod_ip = Some(ip.into());
        status.pod_ips = Some(vec![PodIP { ip: ip.into() }]);
    }
    p
}

fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
    list.iter().flatten().map(|a| a.ip.as_str()).collect()
}

/// (ready IPs, not-ready IPs, ports) of each subset.
fn shape(subsets: &[EndpointSubset]) -> Vec<(Vec<&str>, Vec<&str>, Vec<i32>)> {
    subsets
        .iter()
        .map(|s| {
            let ports = s.ports.iter().flatten().map(|p| p.port).collect();
            (ips(&s.addresses), ips(&s.not_ready_addresses), ports)
        })
        .collect()
}

#[test]
fn ready_and_not_ready_pods_split_and_terminating_left_out() {
    let a = backend("a", "1.2.3.4", true);
    let b = backend("b", "1.2.3.5", false);
    let mut gone = backend("c", "1.2.3.6", true);
    gone.metadata.deletion_timestamp = Some(Time(ts(200)));
    let mut failed = backend("d", "1.2.3.7", false);
    if let Some(s) = failed.status.as_mut() {
        s.phase = Some("Failed".into());
    }
    let service = svc(IntOrString::Int(8080));
    let got = desired_subsets(&service, &[&a, &b, &gone, &failed]);
    assert_eq!(
        shape(&got),
        vec![(vec!["1.2.3.4"], vec!["1.2.3.5"], vec![8080])]
    );
    let addr = &got[0]
        .addresses
        .as_ref()
        .map(|a| a[0].clone())
        .unwrap_or_default();
    assert_eq!(addr.node_name.as_deref(), Some("n1"));
    let target = addr.target_ref.clone().unwrap_or_default();
    assert_eq!(
        (
            target.kind.as_deref(),
            target.name.as_deref(),
            target.uid.as_deref()
        ),
        (Some("Pod"), Some("a"), Some("uid-a"))
    );
    let port = got[0]
        .ports
        .as_ref()
        .map(|p| p[0].clone())
        .unwrap_or_default();
    assert_eq!(port.name.as_deref(), Some("http"));
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
}

/// `TestSyncEndpointsItemsPreexistingLabelsChange`-style publishNotReady:
/// everything is an address, terminating pods included.
#[test]
fn publish_not_ready_addresses_tolerates_everything() {
    let mut service = svc(IntOrString::Int(8080));
    if let Some(spec) = service.spec.as_mut() {
        spec.publish_not_ready_addresses = Some(true);
    }
    let a = backend("a", "1.2.3.4", false);
    let mut b = backend("b", "1.2.3.5", true);
    b.metadata.deletion_timestamp = Some(Time(ts(200)));
    let got = desired_subsets(&service, &[&a, &b]);
    assert_eq!(
        shape(&got),
        vec![(vec!["1.2.3.4", "1.2.3.5"], vec![], vec![8080])]
    );
}

/// Named target ports resolve per pod; a pod without the port is left out
/// of that port (upstream `TestSyncEndpointsItemsWithNamedPorts`-like).
#[test]
fn named_target_port_resolves_per_pod() {
    let service = svc(IntOrString::String("http".into()));
    let a = backend("a", "1.2.3.4", true);
    let mut b = backend("b", "1.2.3.5", true);
    if let Some(spec) = b.spec.as_mut() {
        spec.containers[0].ports = Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 9090,
            ..Default::default()
        }]);
    }
    let mut c = backend("c", "1.2.3.6", true);
    if let Some(spec) = c.spec.as_mut() {
        spec.containers[0].ports = None;
    }
    let got = desired_subsets(&service, &[&a, &b, &c]);
    assert_eq!(
        shape(&got),
        vec![
            (vec!["1.2.3.4"], vec![], vec![8080]),
            (vec!["1.2.3.5"], vec![], vec![9090]),
        ]
    );
}

/// Headless without ports still lists its pods; hostname is set when
/// hostname+subdomain match (upstream `TestPodToEndpointAddressForService`).
#[test]
fn headless_without_ports_and_hostname() {
    let mut service = svc(IntOrString::Int(8080));
    if let Some(spec) = service.spec.as_mut() {
        spec.cluster_ip = Some("None".into());
        spec.ports = None;
    }
    let mut a = backend("a", "1.2.3.4", true);
    if let Some(spec) = a.spec.as_mut() {
        spec.hostname = Some("host-a".into());
        spec.subdomain = Some("foo".into());
    }
    let got = desired_subsets(&service, &[&a]);
    assert_eq!(shape(&got), vec![(vec!["1.2.3.4"], vec![], vec![])]);
    let addr = got[0]
        .addresses
        .as_ref()
        .map(|a| a[0].clone())
        .unwrap_or_default();
    assert_eq!(addr.hostname.as_deref(), Some("host-a"));
    let Some(Write::Create(ep)) = reconcile(&service, &[&a], None, None) else {
        panic!("headless service gets an Endpoints");
    };
    let labels = ep.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get(LABEL_HEADLESS).map(String::as_str), Some(""));
    assert_eq!(labels.get("app").map(String::as_str), Some("x"));
}

/// The address follows the service's IP family on a dual-stack pod.
#[test]
fn address_follows_service_family() {
    let mut service = svc(IntOrString::Int(8080));
    if let Some(spec) = service.spec.as_mut() {
        spec.ip_families = Some(vec!["IPv6".into()]);
    }
    let mut a = backend("a", "1.2.3.4", true);
    if let Some(s) = a.status.as_mut() {
        s.pod_ips = Some(vec![
            PodIP {
                ip: "1.2.3.4".into(),
            },
            PodIP {
                ip: "fd00::1".into(),
            },
        ]);
    }
    assert_eq!(
        shape(&desired_subsets(&service, &[&a])),
        vec![(vec!["fd00::1"], vec![], vec![8080])]
    );
}

/// Creates with labels and trigger time; writes nothing when equal (even
/// with a different target resourceVersion); updates when pods change.
#[test]
fn create_then_no_op_then_update() {
    let service = svc(IntOrString::Int(8080));
    let a = backend("a", "1.2.3.4", true);
    let Some(Write::Create(mut ep)) = reconcile(&service, &[&a], None, Some("t0".into())) else {
        panic!("first sync creates");
    };
    let annotations = ep.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get(LAST_CHANGE_TRIGGER_TIME)
            .map(String::as_str),
        Some("t0")
    );
    assert!(
        !ep.metadata
            .labels
            .clone()
            .unwrap_or_default()
            .contains_key(LABEL_HEADLESS)
    );
    ep.metadata.resource_version = Some("1".into());
    for s in ep.subsets.iter_mut().flatten() {
        for addr in s.addresses.iter_mut().flatten() {
            if let Some(t) = addr.target_ref.as_mut() {
                t.resource_version = Some("77".into());
            }
        }
    }
    assert_eq!(reconcile(&service, &[&a], Some(&ep), None), None);
    let b = backend("b", "1.2.3.5", true);
    let Some(Write::Update(updated)) = reconcile(&service, &[&a, &b], Some(&ep), None) else {
        panic!("a new pod updates");
    };
    assert_eq!(
        shape(updated.subsets.as_deref().unwrap_or_default()),
        vec![(vec!["1.2.3.4", "1.2.3.5"], vec![], vec![8080])]
    );
    let annotations = updated.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key(LAST_CHANGE_TRIGGER_TIME),
        "no new trigger clears it"
    );
}

/// Upstream `TestSyncEndpointsServiceLabelsChange`-like: label drift and a
/// stale over-capacity annotation are repaired.
#[test]
fn labels_and_stale_capacity_annotation_are_repaired() {
    let service = svc(IntOrString::Int(8080));
    let a = backend("a", "1.2.3.4", true);
    let Some(Write::Create(mut ep)) = reconcile(&service, &[&a], None, None) else {
        panic!("first sync creates");
    };
    ep.metadata.labels = Some(BTreeMap::new());
    assert!(matches!(
        reconcile(&service, &[&a], Some(&ep), None),
        Some(Write::Update(_))
    ));
    let Some(Write::Create(mut ep)) = reconcile(&service, &[&a], None, None) else {
        panic!("first sync creates");
    };
    ep.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(OVER_CAPACITY.into(), "truncated".into());
    let Some(Write::Update(fixed)) = reconcile(&service, &[&a], Some(&ep), None) else {
        panic!("stale annotation is removed");
    };
    assert!(
        !fixed
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(OVER_CAPACITY)
    );
}

/// Over 1000 addresses: truncated and annotated.
#[test]
fn over_capacity_is_truncated_and_annotated() {
    let service = svc(IntOrString::Int(8080));
    let pods: Vec<Pod> = (0..1001)
        .map(|i| {
            backend(
                &format!("p{i}"),
                &format!("10.0.{}.{}", i / 250, i % 250),
                true,
            )
        })
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let Some(Write::Create(ep)) = reconcile(&service, &refs, None, None) else {
        panic!("creates");
    };
    let n: usize = ep
        .subsets
        .iter()
        .flatten()
        .map(|s| ips(&s.addresses).len())
        .sum();
    assert_eq!(n, 1000);
    let annotations = ep.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get(OVER_CAPACITY).map(String::as_str),
        Some("truncated")
    );
}

struct Harness {
    services: Writer<Service>,
    pods: Writer<Pod>,
    endpoints: Writer<Endpoints>,
    ctl: Controller<FakeObjectControl<Endpoints>>,
}

impl Harness {
    fn new() -> Self {
        let services = Writer::<Service>::default();
        let pods = Writer::<Pod>::default();
        let endpoints = Writer::<Endpoints>::default();
        let ctl = Controller {
            services: services.as_reader(),
            pods: pods.as_reader(),
            endpoints: endpoints.as_reader(),
            writer: FakeObjectControl::default(),
            trigger_times: Mutex::new(TriggerTimeTracker::default()),
            events: None,
            started: AtomicBool::new(false),
        };
        Self {
            services,
            pods,
            endpoints,
            ctl,
        }
    }
}

fn key() -> Key {
    Key::new(Some("ns"), "foo")
}

/// Upstream `TestSyncEndpointsItemsPreserveNoSelector`, and deletion with
/// the service (`TestSyncServiceNotFound`-like).
#[tokio::test]
async fn selectorless_left_alone_and_deleted_with_service() {
    let mut h = Harness::new();
    let mut service = svc(IntOrString::Int(8080));
    if let Some(spec) = service.spec.as_mut() {
        spec.selector = None;
    }
    h.services
        .apply_watcher_event(&watcher::Event::Apply(service.clone()));
    h.pods
        .apply_watcher_event(&watcher::Event::Apply(backend("a", "1.2.3.4", true)));
    assert!(h.ctl.sync_service(&key()).await.is_ok());
    assert!(h.ctl.writer.writes().is_empty());
    h.services
        .apply_watcher_event(&watcher::Event::Delete(service));
    assert!(h.ctl.sync_service(&key()).await.is_ok());
    assert_eq!(h.ctl.writer.writes(), vec![FakeWrite::Delete("foo".into())]);
}

/// The runner creates once, then stays quiet when the cache holds it.
#[tokio::test]
async fn runner_creates_then_stays_quiet() {
    let mut h = Harness::new();
    h.services
        .apply_watcher_event(&watcher::Event::Apply(svc(IntOrString::Int(8080))));
    h.pods
        .apply_watcher_event(&watcher::Event::Apply(backend("a", "1.2.3.4", true)));
    assert!(h.ctl.sync_service(&key()).await.is_ok());
    let writes = h.ctl.writer.writes();
    let [FakeWrite::Create(ep)] = writes.as_slice() else {
        panic!("one create, got {writes:?}");
    };
    let mut stored = ep.clone();
    stored.metadata.resource_version = Some("5".into());
    h.endpoints
        .apply_watcher_event(&watcher::Event::Apply(stored));
    assert!(h.ctl.sync_service(&key()).await.is_ok());
    assert_eq!(
        h.ctl.writer.writes().len(),
        1,
        "no write when nothing changed"
    );
    let keys = h.ctl.all_keys();
    assert_eq!(keys, vec![Enqueue::Now(key())]);
}

/// Upstream `checkLeftoverEndpoints`: at start, an Endpoints without a
/// Service is queued (and its sync deletes it); later full passes (a
/// lagged watch) only queue Services.
#[tokio::test]
async fn leftover_endpoints_are_checked_once_at_start() {
    let mut h = Harness::new();
    let orphan = Endpoints {
        metadata: ObjectMeta {
            name: Some("foo".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut lock = orphan.clone();
    lock.metadata.name = Some("lock".into());
    lock.metadata.annotations = Some([(LEADER_ANNOTATION.to_string(), "{}".to_string())].into());
    h.endpoints
        .apply_watcher_event(&watcher::Event::Apply(orphan));
    h.endpoints
        .apply_watcher_event(&watcher::Event::Apply(lock));
    assert_eq!(h.ctl.all_keys(), vec![Enqueue::Now(key())]);
    assert!(h.ctl.all_keys().is_empty());
    assert!(h.ctl.sync_service(&key()).await.is_ok());
    assert_eq!(h.ctl.writer.writes(), vec![FakeWrite::Delete("foo".into())]);
}
