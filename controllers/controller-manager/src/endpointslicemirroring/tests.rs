//! Cases from upstream `reconciler_test.go` and
//! `endpointslicemirroring_controller_test.go`: the pure reconcile on
//! plain objects, then the runner on in-memory caches and a fake writer.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, Service, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ObjectMeta;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;

use super::reconcile::{
    Action, CONTROLLER_NAME, LABEL_SKIP_MIRROR, LAST_APPLIED, reconcile, should_mirror,
};
use super::*;
use crate::control::fake::{FakeObjectControl, Write};
use crate::endpointslice::reconcile::LAST_CHANGE_TRIGGER_TIME;

fn addr(ip: &str) -> EndpointAddress {
    EndpointAddress {
        ip: ip.into(),
        ..Default::default()
    }
}

fn port(name: &str, n: i32) -> CorePort {
    CorePort {
        name: Some(name.into()),
        port: n,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn endpoints(subsets: Vec<EndpointSubset>) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: Some("test-ep".into()),
            namespace: Some("ns".into()),
            uid: Some("ep-uid".into()),
            labels: Some([("foo".to_string(), "bar".to_string())].into()),
            annotations: Some(
                [
                    ("keep".to_string(), "me".to_string()),
                    (LAST_CHANGE_TRIGGER_TIME.to_string(), "t".to_string()),
                    (LAST_APPLIED.to_string(), "{}".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        subsets: Some(subsets),
    }
}

fn subset(ready: &[&str], not_ready: &[&str], ports: &[CorePort]) -> EndpointSubset {
    let list = |ips: &[&str]| Some(ips.iter().map(|ip| addr(ip)).collect());
    EndpointSubset {
        addresses: list(ready),
        not_ready_addresses: list(not_ready),
        ports: Some(ports.to_vec()),
    }
}

fn created(plan: &[Action]) -> Vec<EndpointSlice> {
    plan.iter()
        .filter_map(|a| match a {
            Action::Create(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// (address, ready) of a slice's endpoints.
fn summary(slice: &EndpointSlice) -> Vec<(String, Option<bool>)> {
    let mut out: Vec<_> = slice
        .endpoints
        .iter()
        .flatten()
        .map(|e| {
            let ready = e.conditions.as_ref().and_then(|c| c.ready);
            (e.addresses.join(","), ready)
        })
        .collect();
    out.sort();
    out
}

/// Upstream "Endpoints with 1 subset, 2 ready + 1 not ready": one slice
/// with labels, annotations (minus trigger time and last-applied), owner,
/// ports and readiness.
#[test]
fn one_subset_becomes_one_slice() {
    let ep = endpoints(vec![subset(
        &["10.0.0.1", "10.0.0.2"],
        &["10.0.0.3"],
        &[port("http", 80)],
    )]);
    let plan = reconcile(&ep, &[], 1000);
    let slices = created(&plan.actions);
    assert_eq!(slices.len(), 1);
    let slice = &slices[0];
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("test-ep-"));
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    let want: BTreeMap<String, String> = [
        ("foo", "bar"),
        ("kubernetes.io/service-name", "test-ep"),
        ("endpointslice.kubernetes.io/managed-by", CONTROLLER_NAME),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels, want);
    let annotations = slice.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations, [("keep".to_string(), "me".to_string())].into());
    let owner = &slice.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Endpoints", "test-ep", "ep-uid")
    );
    assert_eq!(owner.controller, Some(true));
    let p = &slice.ports.clone().unwrap_or_default()[0];
    assert_eq!(
        (p.name.as_deref(), p.port, p.protocol.as_deref()),
        (Some("http"), Some(80), Some("TCP"))
    );
    assert_eq!(
        summary(slice),
        vec![
            ("10.0.0.1".to_string(), Some(true)),
            ("10.0.0.2".to_string(), Some(true)),
            ("10.0.0.3".to_string(), Some(false)),
        ]
    );
}

/// Upstream: mixed families split by address type; invalid IPs skipped
/// and counted; max per subset caps a subset.
#[test]
fn families_invalid_ips_and_max_per_subset() {
    let ep = endpoints(vec![subset(
        &["10.0.0.1", "fd00::1", "not-an-ip"],
        &[],
        &[port("", 80)],
    )]);
    let plan = reconcile(&ep, &[], 1000);
    let mut types: Vec<String> = created(&plan.actions)
        .iter()
        .map(|s| s.address_type.clone())
        .collect();
    types.sort();
    assert_eq!(types, vec!["IPv4".to_string(), "IPv6".to_string()]);
    assert_eq!((plan.invalid_addresses, plan.skipped_addresses), (1, 1));

    let ep = endpoints(vec![subset(
        &["10.0.0.1", "10.0.0.2", "10.0.0.3"],
        &[],
        &[port("", 80)],
    )]);
    let plan = reconcile(&ep, &[], 2);
    assert_eq!(summary(&created(&plan.actions)[0]).len(), 2);
    assert_eq!((plan.invalid_addresses, plan.skipped_addresses), (0, 1));
}

/// Two subsets with different ports → two slices; the same addresses
/// and ports written twice → nothing to do.
#[test]
fn up_to_date_slices_are_left_alone_and_changes_update() {
    let ep = endpoints(vec![
        subset(&["10.0.0.1"], &[], &[port("a", 80)]),
        subset(&["10.0.0.2"], &[], &[port("b", 81)]),
    ]);
    let mut existing = created(&reconcile(&ep, &[], 1000).actions);
    assert_eq!(existing.len(), 2);
    for (i, s) in existing.iter_mut().enumerate() {
        s.metadata.name = Some(format!("test-ep-{i}"));
        s.metadata.generate_name = None;
    }
    let refs: Vec<&EndpointSlice> = existing.iter().collect();
    assert_eq!(reconcile(&ep, &refs, 1000).actions, vec![]);

    // One address flips to not ready: only its slice is updated.
    let changed = endpoints(vec![
        subset(&["10.0.0.1"], &[], &[port("a", 80)]),
        subset(&[], &["10.0.0.2"], &[port("b", 81)]),
    ]);
    let actions = reconcile(&changed, &refs, 1000).actions;
    let [Action::Update(updated)] = actions.as_slice() else {
        panic!("one update, got {actions:?}");
    };
    assert_eq!(
        summary(updated),
        vec![("10.0.0.2".to_string(), Some(false))]
    );

    // A port set disappears: its slice is deleted.
    let fewer = endpoints(vec![subset(&["10.0.0.1"], &[], &[port("a", 80)])]);
    let actions = reconcile(&fewer, &refs, 1000).actions;
    assert_eq!(actions.len(), 1);
    assert!(matches!(&actions[0], Action::Delete(_)));

    // Labels changed on the Endpoints: the slice follows.
    let mut relabelled = ep.clone();
    relabelled.metadata.labels = Some(BTreeMap::new());
    assert_eq!(reconcile(&relabelled, &refs, 1000).actions.len(), 2);
}

/// A slice due for deletion is recycled instead of creating a new one.
#[test]
fn port_change_recycles_the_old_slice() {
    let ep = endpoints(vec![subset(&["10.0.0.1"], &[], &[port("a", 80)])]);
    let mut old = created(&reconcile(&ep, &[], 1000).actions).remove(0);
    old.metadata.name = Some("test-ep-abc".into());
    let moved = endpoints(vec![subset(&["10.0.0.1"], &[], &[port("a", 8080)])]);
    let actions = reconcile(&moved, &[&old], 1000).actions;
    let [Action::Update(slice)] = actions.as_slice() else {
        panic!("recycled as one update, got {actions:?}");
    };
    assert_eq!(slice.metadata.name.as_deref(), Some("test-ep-abc"));
    assert_eq!(slice.ports.clone().unwrap_or_default()[0].port, Some(8080));
}

#[test]
fn skip_mirror_and_leader_locks_are_not_mirrored() {
    let mut ep = endpoints(vec![]);
    assert!(should_mirror(&ep));
    ep.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL_SKIP_MIRROR.into(), "true".into());
    assert!(!should_mirror(&ep));
    let mut lock = endpoints(vec![]);
    lock.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            "control-plane.alpha.kubernetes.io/leader".into(),
            "{}".into(),
        );
    assert!(!should_mirror(&lock));
}

fn service(selector: Option<&str>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("test-ep".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: selector.map(|s| [("app".to_string(), s.to_string())].into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Harness {
    services: Writer<Service>,
    endpoints: Writer<Endpoints>,
    slices: Writer<EndpointSlice>,
    ctl: Controller<FakeObjectControl<EndpointSlice>>,
}

impl Harness {
    fn new() -> Self {
        let services = Writer::<Service>::default();
        let endpoints = Writer::<Endpoints>::default();
        let slices = Writer::<EndpointSlice>::default();
        let ctl = Controller {
            services: services.as_reader(),
            endpoints: endpoints.as_reader(),
            slices: slices.as_reader(),
            writer: FakeObjectControl::default(),
            max_endpoints_per_subset: 1000,
            tracker: Mutex::new(SliceTracker::default()),
            events: None,
        };
        Self {
            services,
            endpoints,
            slices,
            ctl,
        }
    }
}

/// Upstream `TestSyncEndpoints`-like: mirrored for a selector-less
/// Service; a selector, or the Endpoints going away, deletes the slices.
#[tokio::test]
async fn runner_mirrors_and_cleans_up() {
    let mut h = Harness::new();
    let key = Key::new(Some("ns"), "test-ep");
    let ep = endpoints(vec![subset(&["10.0.0.1"], &[], &[port("a", 80)])]);
    h.endpoints
        .apply_watcher_event(&watcher::Event::Apply(ep.clone()));
    // No Service yet: nothing mirrored.
    assert!(h.ctl.sync_endpoints(&key).await.is_ok());
    assert!(h.ctl.writer.writes().is_empty());

    h.services
        .apply_watcher_event(&watcher::Event::Apply(service(None)));
    assert!(h.ctl.sync_endpoints(&key).await.is_ok());
    let writes = h.ctl.writer.writes();
    let [Write::Create(slice)] = writes.as_slice() else {
        panic!("one create, got {writes:?}");
    };
    let mut stored = slice.clone();
    stored.metadata.name = Some("test-ep-xyz".into());
    stored.metadata.uid = Some("slice-uid".into());
    h.slices
        .apply_watcher_event(&watcher::Event::Apply(stored.clone()));
    assert_eq!(h.ctl.all_keys(), vec![Enqueue::Now(key.clone())]);

    // The Service gains a selector: mirrored slices go.
    h.services
        .apply_watcher_event(&watcher::Event::Apply(service(Some("x"))));
    assert!(h.ctl.sync_endpoints(&key).await.is_ok());
    assert_eq!(
        h.ctl.writer.writes().last(),
        Some(&Write::Delete("test-ep-xyz".into()))
    );

    // Back to selector-less, then the Endpoints is deleted: deleted again.
    h.services
        .apply_watcher_event(&watcher::Event::Apply(service(None)));
    h.endpoints.apply_watcher_event(&watcher::Event::Delete(ep));
    let before = h.ctl.writer.writes().len();
    assert!(h.ctl.sync_endpoints(&key).await.is_ok());
    assert_eq!(h.ctl.writer.writes().len(), before + 1);
}
