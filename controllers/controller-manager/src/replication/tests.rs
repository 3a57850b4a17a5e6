//! The ReplicationController path of the engine on plain objects and fake
//! writers (upstream `replication_controller_test.go` / `conversion`):
//! selector map → `matchLabels`, v1 ReplicationController owner references,
//! adoption and release, expectations, status fields.

use std::collections::BTreeMap;
use std::sync::Arc;

use component_base::events::EventBroadcaster;
use component_base::informers::Change;
use component_base::ownerref::{self, ClaimingController};
use k8s_openapi::api::apps::v1::{ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    Pod, PodSpec, PodTemplateSpec, ReplicationController, ReplicationControllerSpec,
    ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::conversion::{rc_to_rs, rs_status_to_rc};
use crate::control::fake::{FakeObjectControl, FakePodControl, Write};
use crate::controller::{Key, Reconciler};
use crate::controller_utils::{self, Expectations};
use crate::events::EventSink;
use crate::replicaset::controller::Controller;
use crate::replicaset::kind::ReplicaSetLike;

fn labels() -> BTreeMap<String, String> {
    [("app".to_string(), "web".to_string())].into()
}

fn rc(replicas: i32) -> ReplicationController {
    ReplicationController {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("rc-uid".into()),
            generation: Some(2),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(ReplicationControllerSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(7),
            selector: Some(labels()),
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            }),
        }),
        status: None,
    }
}

fn pod(name: &str, labels: BTreeMap<String, String>, owner: Option<OwnerReference>) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some("ns".into());
    pod.metadata.uid = Some(format!("{name}-uid"));
    pod.metadata.resource_version = Some("1".into());
    pod.metadata.labels = Some(labels);
    pod.metadata.owner_references = owner.map(|o| vec![o]);
    pod
}

fn owned(name: &str, rc: &ReplicationController) -> Pod {
    pod(name, labels(), Some(ownerref::new_controller_ref_for(rc)))
}

struct Harness {
    ctl: Controller<ReplicationController>,
    pod_cache: Writer<Pod>,
    pods: Arc<FakePodControl>,
    rcs: Arc<FakeObjectControl<ReplicationController>>,
    shutdown: CancellationToken,
}

impl Harness {
    fn new(rc: ReplicationController, pods: Vec<Pod>) -> Self {
        let mut rc_cache = Writer::<ReplicationController>::default();
        let mut pod_cache = Writer::<Pod>::default();
        rc_cache.apply_watcher_event(&watcher::Event::Apply(rc.clone()));
        for p in pods {
            pod_cache.apply_watcher_event(&watcher::Event::Apply(p));
        }
        let shutdown = CancellationToken::new();
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let events = EventBroadcaster::start(client, shutdown.clone());
        let pods = Arc::new(FakePodControl::default());
        let rcs = Arc::new(FakeObjectControl::default());
        *rcs.current.lock().expect("lock") = Some(rc);
        let ctl = Controller {
            replicasets: rc_cache.as_reader(),
            pods: pod_cache.as_reader(),
            pod_control: pods.clone(),
            rs_control: rcs.clone(),
            expectations: Expectations::default(),
            events: EventSink::new(&events, super::EVENT_SOURCE),
        };
        Self {
            ctl,
            pod_cache,
            pods,
            rcs,
            shutdown,
        }
    }

    async fn sync(&self) -> crate::controller::SyncResult {
        self.ctl.sync(&Key::new(Some("ns"), "web")).await
    }

    fn statuses(&self) -> Vec<ReplicationControllerStatus> {
        self.rcs
            .writes()
            .into_iter()
            .map(|w| match w {
                Write::UpdateStatus(rc) => rc.status.unwrap_or_default(),
                other => panic!("unexpected write {other:?}"),
            })
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[test]
fn rc_shows_as_a_replicaset() {
    let mut rc = rc(3);
    rc.status = Some(ReplicationControllerStatus {
        replicas: 2,
        fully_labeled_replicas: Some(2),
        ready_replicas: Some(1),
        available_replicas: Some(1),
        observed_generation: Some(1),
        conditions: None,
    });
    let rs = rc_to_rs(&rc);
    let spec = rs.spec.clone().unwrap_or_default();
    assert_eq!(spec.selector.match_labels, Some(labels()));
    assert_eq!(spec.selector.match_expressions, None);
    assert_eq!((spec.replicas, spec.min_ready_seconds), (Some(3), Some(7)));
    assert_eq!(
        spec.template,
        rc.spec.as_ref().and_then(|s| s.template.clone())
    );
    assert_eq!(rs.metadata, rc.metadata);
    let status = rs.status.unwrap_or_default();
    assert_eq!(status.replicas, 2);
    assert_eq!(status.fully_labeled_replicas, Some(2));
    assert_eq!(status.terminating_replicas, None);
    assert_eq!(
        rs_status_to_rc(&status),
        rc.status.clone().unwrap_or_default()
    );
    assert!(matches!(rc.as_replica_set(), std::borrow::Cow::Owned(_)));
}

#[test]
fn replica_failure_condition_carries_over() {
    let status = ReplicaSetStatus {
        replicas: 1,
        terminating_replicas: Some(0),
        conditions: Some(vec![ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some("exceeded quota".into()),
            last_transition_time: None,
        }]),
        ..Default::default()
    };
    let written = rc(1).with_status(&status);
    let cond = written
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().next())
        .unwrap_or_default();
    assert_eq!(cond.type_, "ReplicaFailure");
    assert_eq!(cond.reason.as_deref(), Some("FailedCreate"));
    assert_eq!(cond.message.as_deref(), Some("exceeded quota"));
}

#[test]
fn adoption_patch_names_a_v1_replicationcontroller() {
    let me = ClaimingController::from_resource(&rc(1));
    assert_eq!(
        (me.api_version.as_str(), me.kind.as_str()),
        ("v1", "ReplicationController")
    );
    let patch = controller_utils::adopt_patch(&me, "p-uid").expect("patch");
    let text = patch.to_string();
    assert!(
        text.contains("\"kind\":\"ReplicationController\""),
        "{text}"
    );
    assert!(text.contains("\"apiVersion\":\"v1\""), "{text}");
    assert!(text.contains("\"uid\":\"rc-uid\""), "{text}");
}

#[tokio::test]
async fn creates_pods_controlled_by_the_rc_and_honours_expectations() {
    let h = Harness::new(rc(3), Vec::new());
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.create_calls(), 3);
    for created in h.pods.created() {
        let owner = ownerref::get_controller_of(&created.metadata).cloned();
        let owner = owner.unwrap_or_default();
        assert_eq!(owner.api_version, "v1");
        assert_eq!(owner.kind, "ReplicationController");
        assert_eq!((owner.name.as_str(), owner.uid.as_str()), ("web", "rc-uid"));
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(created.metadata.labels, Some(labels()));
    }
    // The cache has not shown them yet: no second round.
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.create_calls(), 3);
}

#[tokio::test]
async fn status_fields_are_written_once() {
    let rc = rc(2);
    let mut h = Harness::new(
        rc.clone(),
        vec![owned("a", &rc), pod("b", BTreeMap::new(), None)],
    );
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.create_calls(), 1, "one more for two replicas");
    let status = h.statuses().pop().unwrap_or_default();
    assert_eq!(status.replicas, 1);
    assert_eq!(status.fully_labeled_replicas, Some(1));
    assert_eq!(status.ready_replicas, None);
    assert_eq!(status.available_replicas, None);
    assert_eq!(status.observed_generation, Some(2));
    // The informer shows the written status and the created pod: the next
    // sync writes nothing (no terminatingReplicas on an RC to differ on).
    let mut seen = rc.clone();
    seen.status = Some(status);
    let created = h.pods.created().pop().expect("created");
    let mut seen_pod = created.clone();
    seen_pod.metadata.uid = Some("c-uid".into());
    h.pod_cache
        .apply_watcher_event(&watcher::Event::Apply(seen_pod.clone()));
    h.ctl.pod_changed(Change::Added(Arc::new(seen_pod)));
    let mut rc_cache = Writer::<ReplicationController>::default();
    rc_cache.apply_watcher_event(&watcher::Event::Apply(seen.clone()));
    h.ctl.replicasets = rc_cache.as_reader();
    assert!(h.sync().await.is_ok());
    let statuses = h.statuses();
    assert_eq!(statuses.len(), 2, "status moves to 2 replicas");
    assert_eq!(statuses[1].replicas, 2);
    seen.status = statuses.last().cloned();
    rc_cache.apply_watcher_event(&watcher::Event::Apply(seen));
    assert!(h.sync().await.is_ok());
    assert_eq!(h.statuses().len(), 2, "unchanged status is not rewritten");
}

#[tokio::test]
async fn adopts_matching_orphans_and_releases_mismatched_pods() {
    let rc = rc(2);
    let mut stray = owned("stray", &rc);
    stray.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    let h = Harness::new(
        rc.clone(),
        vec![
            owned("mine", &rc),
            pod("orphan", labels(), None),
            stray,
            pod("unrelated", [("app".into(), "db".into())].into(), None),
        ],
    );
    assert!(h.sync().await.is_ok());
    let mut patched = h.pods.patched();
    patched.sort();
    assert_eq!(patched, ["orphan", "stray"]);
    assert_eq!(h.pods.create_calls(), 0, "mine + adopted orphan = 2");
    assert_eq!(h.statuses().pop().map(|s| s.replicas), Some(2));
}

#[tokio::test]
async fn pods_of_a_replicaset_with_the_same_name_are_not_ours() {
    let h = Harness::new(rc(1), Vec::new());
    let rs_owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "web".into(),
        uid: "rc-uid".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let foreign = pod("foreign", labels(), Some(rs_owner));
    assert!(
        h.ctl
            .pod_changed(Change::Added(Arc::new(foreign)))
            .is_empty()
    );
    let orphan = pod("orphan", labels(), None);
    assert_eq!(h.ctl.pod_changed(Change::Added(Arc::new(orphan))).len(), 1);
}

#[tokio::test]
async fn a_failed_creation_sets_replica_failure_on_the_rc() {
    let mut h = Harness::new(rc(2), Vec::new());
    h.pods = Arc::new(FakePodControl::with_create_limit(0));
    h.ctl.pod_control = h.pods.clone();
    assert!(h.sync().await.is_err(), "the failure is retried");
    let status = h.statuses().pop().unwrap_or_default();
    let cond = status
        .conditions
        .and_then(|c| c.into_iter().next())
        .unwrap_or_default();
    assert_eq!(
        (cond.type_.as_str(), cond.status.as_str()),
        ("ReplicaFailure", "True")
    );
    assert_eq!(cond.reason.as_deref(), Some("FailedCreate"));
    assert!(cond.message.is_some_and(|m| m.contains("InternalError")));
}

#[tokio::test]
async fn scale_down_deletes_the_surplus_once() {
    let rc = rc(1);
    let pods: Vec<Pod> = (0..3).map(|i| owned(&format!("web-{i}"), &rc)).collect();
    let h = Harness::new(rc, pods);
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.deleted().len(), 2);
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.deleted().len(), 2, "waits to observe the deletions");
    assert_eq!(h.pods.create_calls(), 0);
}
