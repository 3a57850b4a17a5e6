//! The write half of a ReplicaSet sync against fake writers (upstream
//! `replica_set_test.go` with `FakePodControl`): expectations across a
//! lagging cache, slow start, status conflicts, deletions.

use std::sync::Arc;

use component_base::events::EventBroadcaster;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Resource;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::Controller;
use crate::control::fake::{FakeObjectControl, FakePodControl, Write, api_error};
use crate::controller::{Key, Reconciler};
use crate::controller_utils::{Expectations, SLOW_START_INITIAL_BATCH_SIZE, slow_start_batches};
use crate::events::EventSink;
use component_base::informers::Change;

fn labels() -> std::collections::BTreeMap<String, String> {
    [("app".to_string(), "web".to_string())].into()
}

fn replicaset(replicas: i32, version: &str) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("rs-uid".into()),
            generation: Some(1),
            resource_version: Some(version.into()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels()),
                ..Default::default()
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// A pod of `rs` as the informer would show it.
fn owned_pod(rs: &ReplicaSet, name: &str, created: i64) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some("ns".into());
    pod.metadata.uid = Some(format!("{name}-uid"));
    pod.metadata.resource_version = Some("1".into());
    pod.metadata.labels = Some(labels());
    pod.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(created).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    ));
    pod.metadata.owner_references =
        Some(vec![component_base::ownerref::new_controller_ref_for(rs)]);
    pod
}

/// The controller on in-memory caches and fake writers.
struct Harness {
    ctl: Controller,
    rs_cache: Writer<ReplicaSet>,
    pod_cache: Writer<Pod>,
    pods: Arc<FakePodControl>,
    statuses: Arc<FakeObjectControl<ReplicaSet>>,
    shutdown: CancellationToken,
}

impl Harness {
    fn new(rs: ReplicaSet, pods: FakePodControl) -> Self {
        let mut rs_cache = Writer::<ReplicaSet>::default();
        let pod_cache = Writer::<Pod>::default();
        rs_cache.apply_watcher_event(&watcher::Event::Apply(rs));
        let shutdown = CancellationToken::new();
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let events = EventBroadcaster::start(client, shutdown.clone());
        let pods = Arc::new(pods);
        let statuses = Arc::new(FakeObjectControl::default());
        let ctl = Controller {
            replicasets: rs_cache.as_reader(),
            pods: pod_cache.as_reader(),
            pod_control: pods.clone(),
            rs_control: statuses.clone(),
            expectations: Expectations::default(),
            events: EventSink::new(&events, super::REPLICASET_CONTROLLER),
        };
        Self {
            ctl,
            rs_cache,
            pod_cache,
            pods,
            statuses,
            shutdown,
        }
    }

    async fn sync(&self) -> crate::controller::SyncResult {
        self.ctl.sync(&Key::new(Some("ns"), "web")).await
    }

    /// The informer catches up: `pod` appears in the cache and is announced.
    fn observe_added(&mut self, pod: Pod) {
        self.pod_cache
            .apply_watcher_event(&watcher::Event::Apply(pod.clone()));
        self.ctl.pod_changed(Change::Added(Arc::new(pod)));
    }

    fn observe_deleted(&mut self, pod: Pod) {
        self.pod_cache
            .apply_watcher_event(&watcher::Event::Delete(pod.clone()));
        self.ctl.pod_changed(Change::Deleted(Arc::new(pod)));
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test]
async fn expectations_prevent_over_creation_across_a_watch_lag() {
    let mut h = Harness::new(replicaset(3, "1"), FakePodControl::default());
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.create_calls(), 3);
    // The informer has not shown the new pods yet: nothing more is created.
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.create_calls(), 3);
    for pod in h.pods.created() {
        h.observe_added(pod);
    }
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.create_calls(), 3, "all three are now in the cache");
    let owner = h.pods.created()[0].metadata.owner_references.clone();
    assert_eq!(
        owner.and_then(|o| o.into_iter().next()).map(|o| o.uid),
        Some("rs-uid".to_string())
    );
}

#[tokio::test]
async fn slow_start_batches_stop_on_first_error() {
    assert_eq!(
        slow_start_batches(15, SLOW_START_INITIAL_BATCH_SIZE),
        vec![1, 2, 4, 8]
    );
    // (successful creations allowed, calls made): every call of a batch is
    // made; the batch after a failure is not.
    for (limit, calls) in [(0, 1), (1, 3), (3, 7), (15, 15)] {
        let h = Harness::new(
            replicaset(15, "1"),
            FakePodControl::with_create_limit(limit),
        );
        let result = h.sync().await;
        assert_eq!(h.pods.create_calls(), calls, "limit {limit}");
        assert_eq!(h.pods.created().len(), limit.min(15), "limit {limit}");
        assert_eq!(result.is_err(), limit < 15, "limit {limit}");
    }
}

#[tokio::test]
async fn failed_creations_lower_the_expectations() {
    let mut h = Harness::new(replicaset(15, "1"), FakePodControl::with_create_limit(3));
    assert!(h.sync().await.is_err());
    assert_eq!(h.pods.create_calls(), 7);
    // Only the three created pods are still expected.
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.create_calls(), 7, "waits for the three");
    for pod in h.pods.created() {
        h.observe_added(pod);
    }
    let _ = h.sync().await;
    assert!(
        h.pods.create_calls() > 7,
        "creates the rest once they are seen"
    );
}

#[tokio::test]
async fn a_status_conflict_is_retried_with_the_reread_object() {
    let mut h = Harness::new(replicaset(0, "1"), FakePodControl::default());
    h.statuses.script([Some(api_error(409, "Conflict"))]);
    let err = h.sync().await.expect_err("conflict");
    assert!(err.is_conflict() && err.is_retriable());
    // The queue retries; meanwhile the cache has the newer object.
    h.rs_cache
        .apply_watcher_event(&watcher::Event::Apply(replicaset(0, "2")));
    assert_eq!(h.sync().await.ok(), Some(None));
    let versions: Vec<Option<String>> = h
        .statuses
        .writes()
        .iter()
        .map(|w| match w {
            Write::UpdateStatus(rs) => rs.meta().resource_version.clone(),
            other => panic!("unexpected write {other:?}"),
        })
        .collect();
    assert_eq!(versions, vec![Some("1".into()), Some("2".into())]);
}

#[tokio::test]
async fn deletions_honour_expectations() {
    let rs = replicaset(1, "1");
    let mut h = Harness::new(rs.clone(), FakePodControl::default());
    let pods: Vec<Pod> = (0..3)
        .map(|i| owned_pod(&rs, &format!("web-{i}"), 100 + i))
        .collect();
    for pod in &pods {
        h.observe_added(pod.clone());
    }
    assert!(h.sync().await.is_ok());
    let deleted = h.pods.deleted();
    assert_eq!(deleted.len(), 2);
    // The cache still shows three pods: no second round of deletions.
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.deleted().len(), 2);
    for pod in pods
        .iter()
        .filter(|p| deleted.contains(&p.metadata.name.clone().unwrap_or_default()))
    {
        h.observe_deleted(pod.clone());
    }
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.deleted().len(), 2, "one pod left, as wanted");
    assert_eq!(h.pods.create_calls(), 0);
}

#[tokio::test]
async fn a_pod_already_gone_counts_as_deleted() {
    let rs = replicaset(0, "1");
    let mut h = Harness::new(rs.clone(), FakePodControl::default());
    let pod = owned_pod(&rs, "web-0", 100);
    h.observe_added(pod.clone());
    h.pods.fail_delete("web-0", 404);
    assert!(h.sync().await.is_ok(), "NotFound is not an error");
    // The expectation was lowered at once: the next sync acts again.
    assert!(h.sync().await.is_ok());
    h.pods.fail_delete("web-0", 500);
    assert!(h.sync().await.is_err());
}
