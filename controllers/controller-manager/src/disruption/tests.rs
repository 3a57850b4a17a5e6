//! Upstream `disruption_test.go`'s sync cases on the real sync with caches
//! we fill and a fake status writer; each written status is put back in
//! the PDB cache, as the watch would.

use std::collections::BTreeMap;
use std::sync::Arc;

use component_base::events::EventBroadcaster;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus, ReplicationController};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::reconcile::{
    DISRUPTION_ALLOWED_CONDITION, INSUFFICIENT_PODS_REASON, SUFFICIENT_PODS_REASON,
    SYNC_FAILED_REASON,
};
use super::*;
use crate::control::fake::{FakeObjectControl, Write, api_error};

fn foo_bar() -> BTreeMap<String, String> {
    BTreeMap::from([("foo".to_string(), "bar".to_string())])
}

fn pdb_with(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
    let mut pdb = PodDisruptionBudget::default();
    pdb.metadata.name = Some("foobar".into());
    pdb.metadata.namespace = Some("default".into());
    pdb.metadata.uid = Some("pdb-uid".into());
    pdb.metadata.generation = Some(1);
    pdb.spec = Some(PodDisruptionBudgetSpec {
        min_available: min,
        max_unavailable: max,
        selector: Some(LabelSelector {
            match_labels: Some(foo_bar()),
            ..Default::default()
        }),
        ..Default::default()
    });
    pdb
}

fn min_available(v: IntOrString) -> PodDisruptionBudget {
    pdb_with(Some(v), None)
}

fn max_unavailable(v: IntOrString) -> PodDisruptionBudget {
    pdb_with(None, Some(v))
}

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

/// Upstream `newPod`: labelled foo=bar and Ready.
fn pod(name: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = Some(format!("{name}-uid"));
    pod.metadata.labels = Some(foo_bar());
    pod.status = Some(PodStatus {
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    pod
}

fn unready(mut p: Pod) -> Pod {
    p.status = Some(PodStatus {
        conditions: Some(Vec::new()),
        ..Default::default()
    });
    p
}

fn owned_by(mut p: Pod, api_version: &str, kind: &str, name: &str, uid: &str) -> Pod {
    p.metadata
        .owner_references
        .get_or_insert_with(Vec::new)
        .push(OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            ..Default::default()
        });
    p
}

fn meta<K: Resource>(mut obj: K, name: &str, uid: &str) -> K {
    obj.meta_mut().name = Some(name.into());
    obj.meta_mut().namespace = Some("default".into());
    obj.meta_mut().uid = Some(uid.into());
    obj
}

fn rs(replicas: i32) -> ReplicaSet {
    let mut rs = meta(ReplicaSet::default(), "foobar", "rs-uid");
    rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    rs
}

fn rc(name: &str, uid: &str, replicas: i32) -> ReplicationController {
    let mut rc = meta(ReplicationController::default(), name, uid);
    rc.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    rc
}

struct Harness {
    ctl: Controller,
    pdbs: Writer<PodDisruptionBudget>,
    pods: Writer<Pod>,
    rss: Writer<ReplicaSet>,
    rcs: Writer<ReplicationController>,
    deployments: Writer<Deployment>,
    statefulsets: Writer<StatefulSet>,
    writes: Arc<FakeObjectControl<PodDisruptionBudget>>,
    _shutdown: CancellationToken,
}

fn apply<K>(w: &mut Writer<K>, obj: K)
where
    K: component_base::informers::Informable,
    K::DynamicType: Clone + Default + Eq + std::hash::Hash,
{
    w.apply_watcher_event(&watcher::Event::Apply(obj));
}

impl Harness {
    fn new(pdb: PodDisruptionBudget) -> Self {
        let mut pdbs = Writer::default();
        apply(&mut pdbs, pdb);
        let pods = Writer::default();
        let (rss, rcs) = (Writer::default(), Writer::default());
        let (deployments, statefulsets) = (Writer::default(), Writer::default());
        let shutdown = CancellationToken::new();
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let events = EventBroadcaster::start(client, shutdown.clone());
        let writes = Arc::new(FakeObjectControl::default());
        let ctl = Controller {
            pdbs: pdbs.as_reader(),
            pods: pods.as_reader(),
            workloads: Box::new(Stores {
                rcs: rcs.as_reader(),
                rss: rss.as_reader(),
                deployments: deployments.as_reader(),
                statefulsets: statefulsets.as_reader(),
            }),
            pdb_control: writes.clone(),
            events: EventSink::new(&events, EVENT_SOURCE_COMPONENT),
        };
        Self {
            ctl,
            pdbs,
            pods,
            rss,
            rcs,
            deployments,
            statefulsets,
            writes,
            _shutdown: shutdown,
        }
    }

    /// Syncs the PDB; a status written goes back into the cache.
    async fn sync(&mut self) -> SyncResult {
        let result = self.ctl.sync(&Key::new(Some("default"), "foobar")).await;
        if let Some(Write::UpdateStatus(pdb)) = self.writes.writes().last().cloned() {
            apply(&mut self.pdbs, pdb);
        }
        result
    }

    fn status(&self) -> PodDisruptionBudgetStatus {
        let pdb = self
            .ctl
            .pdbs
            .get(&ObjectRef::new("foobar").within("default"));
        pdb.and_then(|p| p.status.clone()).unwrap_or_default()
    }

    /// Upstream `VerifyPdbStatus(allowed, currentHealthy, desiredHealthy,
    /// expectedPods)` with an empty `disruptedPods`.
    #[track_caller]
    fn verify(&self, allowed: i32, current: i32, desired: i32, expected: i32) {
        let s = self.status();
        let got = (
            s.disruptions_allowed,
            s.current_healthy,
            s.desired_healthy,
            s.expected_pods,
        );
        let want = (Some(allowed), Some(current), Some(desired), Some(expected));
        assert_eq!(got, want, "(allowed, current, desired, expected)");
        assert!(s.disrupted_pods.unwrap_or_default().is_empty());
        assert_eq!(s.observed_generation, Some(1));
    }

    fn condition(&self) -> (String, String) {
        let s = self.status();
        let c = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == DISRUPTION_ALLOWED_CONDITION)
            .cloned()
            .expect("DisruptionAllowed condition");
        (c.status, c.reason)
    }
}

#[tokio::test]
async fn no_selector_matches_every_pod() {
    let mut pdb = min_available(IntOrString::Int(3));
    pdb.spec.as_mut().expect("spec").selector = Some(LabelSelector::default());
    let mut h = Harness::new(pdb);
    h.sync().await.expect("sync");
    h.verify(0, 0, 3, 0);
    apply(&mut h.pods, pod("yo-yo-yo"));
    h.sync().await.expect("sync");
    h.verify(0, 1, 3, 1);
}

#[tokio::test]
async fn unavailable_pods_lower_current_healthy() {
    let mut h = Harness::new(min_available(IntOrString::Int(3)));
    h.sync().await.expect("sync");
    for i in 0..4 {
        h.verify(0, i, 3, i);
        apply(&mut h.pods, pod(&format!("yo-yo-yo {i}")));
        h.sync().await.expect("sync");
    }
    h.verify(1, 4, 3, 4);
    assert_eq!(
        h.condition(),
        ("True".into(), SUFFICIENT_PODS_REASON.into())
    );
    apply(&mut h.pods, unready(pod("yo-yo-yo 0")));
    h.sync().await.expect("sync");
    h.verify(0, 3, 3, 4);
    assert_eq!(
        h.condition(),
        ("False".into(), INSUFFICIENT_PODS_REASON.into())
    );
}

#[tokio::test]
async fn integer_max_unavailable_allows_nothing_for_naked_pods() {
    let mut h = Harness::new(max_unavailable(IntOrString::Int(1)));
    h.sync().await.expect("sync");
    assert_eq!(h.status().disruptions_allowed, Some(0));
    apply(&mut h.pods, pod("naked"));
    h.sync().await.expect("sync");
    assert_eq!(h.status().disruptions_allowed, Some(0));
}

#[tokio::test]
async fn max_unavailable_follows_the_replicaset_scale() {
    for (max, first, second) in [
        (IntOrString::Int(2), (5, 7), (3, 5)),
        (pct("30%"), (4, 7), (2, 3)),
    ] {
        let mut h = Harness::new(max_unavailable(max));
        apply(&mut h.rss, rs(7));
        let p = owned_by(pod("pod"), "apps/v1", "ReplicaSet", "foobar", "rs-uid");
        apply(&mut h.pods, p);
        h.sync().await.expect("sync");
        h.verify(0, 1, first.0, first.1);
        apply(&mut h.rss, rs(second.1));
        h.sync().await.expect("sync");
        h.verify(0, 1, second.0, second.1);
    }
}

#[tokio::test]
async fn percentage_with_a_naked_pod_allows_nothing() {
    let mut h = Harness::new(min_available(pct("28%")));
    h.sync().await.expect("sync");
    assert_eq!(h.status().disruptions_allowed, Some(0));
    apply(&mut h.pods, pod("naked"));
    h.sync().await.expect("sync");
    assert_eq!(h.status().disruptions_allowed, Some(0));
    // Unmanaged pods are no sync error (upstream `TestStatusForUnmanagedPod`).
    assert_eq!(
        h.condition(),
        ("False".into(), INSUFFICIENT_PODS_REASON.into())
    );
}

#[tokio::test]
async fn unsupported_controller_fails_safe() {
    let mut h = Harness::new(min_available(pct("28%")));
    let p = owned_by(
        pod("naked"),
        "apps.test.io/v1",
        "TestWorkload",
        "fake-controller",
        "b7329742-8daa-493a-8881-6ca07139172b",
    );
    apply(&mut h.pods, p);
    h.sync().await.expect("the fail-safe write succeeded");
    assert_eq!(h.status().disruptions_allowed, Some(0));
    assert_eq!(h.condition(), ("False".into(), SYNC_FAILED_REASON.into()));
    let s = h.status();
    let c = s.conditions.iter().flatten().next().expect("condition");
    assert_eq!(c.message, "found no controllers for pod \"naked\"");
}

#[tokio::test]
async fn replicaset_without_deployment_counts_its_scale() {
    let mut h = Harness::new(min_available(pct("20%")));
    apply(&mut h.rss, rs(10));
    apply(
        &mut h.pods,
        owned_by(pod("pod"), "apps/v1", "ReplicaSet", "foobar", "rs-uid"),
    );
    h.sync().await.expect("sync");
    h.verify(0, 1, 2, 10);
}

#[tokio::test]
async fn replicaset_of_a_deployment_counts_the_deployment() {
    let mut h = Harness::new(min_available(pct("20%")));
    let mut d = meta(Deployment::default(), "web", "d-uid");
    d.spec.get_or_insert_with(Default::default).replicas = Some(5);
    apply(&mut h.deployments, d);
    let mut owned_rs = rs(10);
    owned_rs.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "web".into(),
        uid: "d-uid".into(),
        controller: Some(true),
        ..Default::default()
    }]);
    apply(&mut h.rss, owned_rs);
    apply(
        &mut h.pods,
        owned_by(pod("pod"), "apps/v1", "ReplicaSet", "foobar", "rs-uid"),
    );
    h.sync().await.expect("sync");
    h.verify(0, 1, 1, 5);
}

/// Upstream `TestReplicationController`: 34% of 3 rounds up to 2; a rogue
/// pod without a controller still counts as healthy.
#[tokio::test]
async fn replication_controller_scale_and_rogue_pod() {
    let mut h = Harness::new(min_available(pct("34%")));
    apply(&mut h.rcs, rc("foobar", "rc-uid", 3));
    h.sync().await.expect("sync");
    h.verify(0, 0, 0, 0);
    for i in 0..3 {
        let p = owned_by(
            pod(&format!("foobar {i}")),
            "v1",
            "ReplicationController",
            "foobar",
            "rc-uid",
        );
        apply(&mut h.pods, p);
        h.sync().await.expect("sync");
        if i < 2 {
            h.verify(0, i + 1, 2, 3);
        } else {
            h.verify(1, 3, 2, 3);
        }
    }
    apply(&mut h.pods, pod("rogue"));
    h.sync().await.expect("sync");
    assert_eq!(h.status().disruptions_allowed, Some(2));
}

#[tokio::test]
async fn statefulset_scale() {
    let mut h = Harness::new(min_available(pct("34%")));
    let mut ss = meta(StatefulSet::default(), "foobar", "ss-uid");
    ss.spec.get_or_insert_with(Default::default).replicas = Some(3);
    apply(&mut h.statefulsets, ss);
    for i in 0..3 {
        let p = owned_by(
            pod(&format!("foobar {i}")),
            "apps/v1",
            "StatefulSet",
            "foobar",
            "ss-uid",
        );
        apply(&mut h.pods, p);
        h.sync().await.expect("sync");
    }
    h.verify(1, 3, 2, 3);
}

/// Upstream `TestMultipleControllers`: no controllers yet → nothing
/// allowed; one RC of 1 owning 2 ready pods → 1 allowed.
#[tokio::test]
async fn pods_without_known_controllers_then_one_rc() {
    let mut h = Harness::new(min_available(pct("1%")));
    let rc1 = rc("rc 1", "rc1-uid", 1);
    for i in 0..2 {
        let p = owned_by(
            pod(&format!("pod {i}")),
            "v1",
            "ReplicationController",
            "rc 1",
            "rc1-uid",
        );
        apply(&mut h.pods, p);
    }
    h.sync().await.expect("sync");
    assert_eq!(h.status().disruptions_allowed, Some(0));
    apply(&mut h.rcs, rc1);
    h.sync().await.expect("sync");
    assert_eq!(h.status().disruptions_allowed, Some(1));
}

#[tokio::test]
async fn unchanged_status_is_not_written() {
    let mut h = Harness::new(min_available(IntOrString::Int(1)));
    apply(&mut h.pods, pod("a"));
    h.sync().await.expect("sync");
    h.sync().await.expect("sync");
    assert_eq!(h.writes.writes().len(), 1, "one write, then up to date");
}

/// Upstream `TestUpdateDisruptedPods`: an entry past the deletion timeout
/// and one for a pod already terminating are dropped; a fresh one stays,
/// keeps its pod out of currentHealthy and asks for a recheck.
#[tokio::test]
async fn disrupted_pods_are_pruned() {
    let now = jiff::Timestamp::now();
    let mut pdb = min_available(IntOrString::Int(1));
    pdb.status = Some(PodDisruptionBudgetStatus {
        disrupted_pods: Some(BTreeMap::from([
            ("p1".to_string(), Time(now)),
            ("p2".to_string(), Time(now)),
            (
                "p3".to_string(),
                Time(now - jiff::SignedDuration::from_secs(600)),
            ),
        ])),
        ..Default::default()
    });
    let mut h = Harness::new(pdb);
    let mut p2 = pod("p2");
    p2.metadata.deletion_timestamp = Some(Time(now));
    for p in [pod("p1"), p2, pod("p3")] {
        apply(&mut h.pods, p);
    }
    let recheck = h.sync().await.expect("sync").expect("a recheck");
    assert!(
        recheck.as_secs() > 100 && recheck.as_secs() <= 120,
        "{recheck:?}"
    );
    let s = h.status();
    let kept: Vec<String> = s.disrupted_pods.unwrap_or_default().into_keys().collect();
    assert_eq!(kept, vec!["p1".to_string()]);
    assert_eq!(s.current_healthy, Some(1), "only p3 counts");
}

/// A conflict is retried as is: no fail-safe write follows.
#[tokio::test]
async fn conflict_is_returned_without_fail_safe() {
    let mut h = Harness::new(min_available(IntOrString::Int(1)));
    apply(&mut h.pods, pod("a"));
    h.writes.script([Some(api_error(409, "Conflict"))]);
    let err = h.sync().await.expect_err("conflict");
    assert!(err.is_conflict());
    assert_eq!(h.writes.writes().len(), 1);
}

#[test]
fn pods_map_to_pdbs_in_their_namespace_by_selector() {
    let pdb = min_available(IntOrString::Int(1));
    let mut other_ns = pdb.clone();
    other_ns.metadata.namespace = Some("other".into());
    let mut nil_selector = pdb.clone();
    nil_selector.spec.as_mut().expect("spec").selector = None;
    let all = [pdb.clone(), other_ns, nil_selector];
    assert_eq!(pdbs_for_pod(all.iter(), &pod("a")).len(), 1);
    let mut no_labels = pod("b");
    no_labels.metadata.labels = None;
    assert!(pdbs_for_pod(all.iter(), &no_labels).is_empty());
}
