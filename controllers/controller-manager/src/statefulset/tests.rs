//! StatefulSet decisions on plain objects, after upstream
//! `stateful_set_control_test.go` / `stateful_set_utils_test.go`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetOrdinals,
    StatefulSetSpec, StatefulSetStatus, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::ResourceExt;

use super::control::*;
use super::pod_control::update_claim_owner_refs;
use super::revisions::{UpdateRevision, choose_update_revision, to_truncate};
use super::utils::*;
use crate::controller_utils::testing::{ready_since, ts};
use crate::error::Error;
use crate::history::CONTROLLER_REVISION_HASH_LABEL;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn set(replicas: i32) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("set-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("nginx".into()),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "c".into(),
                        image: Some("v1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("www".into()),
                    ..Default::default()
                },
                ..Default::default()
            }]),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(0),
                    max_unavailable: None,
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: "web".into(),
        uid: "set-uid".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn revision_of(set: &StatefulSet, number: i64) -> ControllerRevision {
    new_revision(set, owner(), number, 0).unwrap()
}

/// `pod` as the apiserver returns it, in `phase`.
fn phase(mut pod: Pod, phase: &str) -> Pod {
    pod.status.get_or_insert_with(Default::default).phase = Some(phase.into());
    pod
}

/// A pod of `set` at `revision`, running and ready.
fn healthy(set: &StatefulSet, ordinal: i32, revision: &ControllerRevision) -> Pod {
    let mut pod = new_pod(set, ordinal, owner());
    set_pod_revision(&mut pod, &revision.name_any());
    ready_since(phase(pod, "Running"), 0)
}

#[derive(Default)]
struct FakeOps {
    calls: Mutex<Vec<String>>,
    events: Mutex<Vec<(String, String)>>,
}

impl FakeOps {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn push(&self, what: &str, pod: &Pod) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{what} {}", pod.name_any()));
    }
}

impl StatefulPodOps for FakeOps {
    fn create_stateful_pod<'a>(
        &'a self,
        _: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.push("create", pod);
        Box::pin(async { Ok(()) })
    }
    fn update_stateful_pod<'a>(
        &'a self,
        _: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.push("update", pod);
        Box::pin(async { Ok(()) })
    }
    fn delete_stateful_pod<'a>(
        &'a self,
        _: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.push("delete", pod);
        Box::pin(async { Ok(()) })
    }
    fn create_missing_claims<'a>(
        &'a self,
        _: &'a StatefulSet,
        _: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    fn claims_match_retention_policy(&self, _: &StatefulSet, _: &Pod) -> Result<bool, Error> {
        Ok(true)
    }
    fn update_claims_for_retention_policy<'a>(
        &'a self,
        _: &'a StatefulSet,
        _: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    fn pod_claim_is_stale(&self, _: &StatefulSet, _: &Pod) -> Result<bool, Error> {
        Ok(false)
    }
    fn record(&self, _: &StatefulSet, _: bool, reason: &str, message: String) {
        self.events.lock().unwrap().push((reason.into(), message));
    }
}

async fn run(
    set: &StatefulSet,
    current: &ControllerRevision,
    update: &ControllerRevision,
    pods: &[Pod],
) -> (FakeOps, StatefulSetStatus) {
    let ops = FakeOps::default();
    let refs: Vec<&Pod> = pods.iter().collect();
    let revisions = Revisions {
        current,
        update,
        collision_count: 0,
    };
    let (status, result) =
        update_stateful_set(&ops, set, &revisions, &refs, owner(), ts(1000)).await;
    result.unwrap();
    (ops, status)
}

#[test]
fn names_and_ordinals() {
    assert_eq!(parent_and_ordinal("web-0"), (Some("web"), 0));
    assert_eq!(parent_and_ordinal("my-web-12"), (Some("my-web"), 12));
    assert_eq!(parent_and_ordinal("web"), (None, -1));
    assert_eq!(parent_and_ordinal("web-x"), (None, -1));
    let s = set(3);
    assert_eq!(pod_name(&s, 2), "web-2");
    let template = &s
        .spec
        .as_ref()
        .unwrap()
        .volume_claim_templates
        .as_ref()
        .unwrap()[0];
    assert_eq!(claim_name(&s, template, 2), "www-web-2");
}

#[test]
fn new_pod_has_identity_and_storage() {
    let s = set(3);
    let pod = new_pod(&s, 1, owner());
    assert_eq!(pod.name_any(), "web-1");
    let l = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(l[POD_NAME_LABEL], "web-1");
    assert_eq!(l[POD_INDEX_LABEL], "1");
    assert_eq!(l["app"], "web");
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let volume = &spec.volumes.as_ref().unwrap()[0];
    assert_eq!(volume.name, "www");
    assert_eq!(
        volume.persistent_volume_claim.as_ref().unwrap().claim_name,
        "www-web-1"
    );
    assert!(identity_matches(&s, &pod));
    assert!(storage_matches(&s, &pod));
    assert!(is_member_of(&s, &pod));
    let claims = claims_for(&s, &pod);
    assert_eq!(claims[0].1.name_any(), "www-web-1");
    assert_eq!(claims[0].1.labels()["app"], "web");
}

#[test]
fn start_ordinal_shifts_the_range() {
    let mut s = set(2);
    s.spec.as_mut().unwrap().ordinals = Some(StatefulSetOrdinals { start: Some(5) });
    assert_eq!((start_ordinal(&s), end_ordinal(&s)), (5, 6));
    assert!(in_ordinal_range(&new_pod(&s, 6, owner()), &s));
    assert!(!in_ordinal_range(&new_pod(&s, 0, owner()), &s));
}

#[test]
fn revisions_round_trip_the_template() {
    let s = set(1);
    let rev = revision_of(&s, 1);
    assert!(rev.name_any().starts_with("web-"));
    assert_eq!(
        rev.labels()[CONTROLLER_REVISION_HASH_LABEL],
        rev.name_any()["web-".len()..]
    );
    let mut changed = s.clone();
    changed
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("v2".into());
    let restored = apply_revision(&changed, &rev).unwrap();
    // Equal as upstream sees templates: the same revision bytes. (Go's
    // patch spells out empty structs such as `resources: {}`, which come
    // back as `Some(default)` where the original had `None`.)
    let patch = |t| crate::hash::template_patch(t).unwrap();
    assert_eq!(
        patch(&restored.spec.unwrap().template),
        patch(&s.spec.unwrap().template)
    );
}

#[test]
fn update_revision_is_latest_renumbered_or_created() {
    let v1 = set(1);
    let mut v2 = set(1);
    v2.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("v2".into());
    let history = vec![revision_of(&v1, 1), revision_of(&v2, 2)];
    assert_eq!(
        choose_update_revision(&history, &revision_of(&v2, 3)),
        UpdateRevision::Latest(1)
    );
    assert_eq!(
        choose_update_revision(&history, &revision_of(&v1, 3)),
        UpdateRevision::Renumber(0)
    );
    let mut v3 = set(1);
    v3.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("v3".into());
    assert_eq!(
        choose_update_revision(&history, &revision_of(&v3, 3)),
        UpdateRevision::Create
    );
}

#[test]
fn history_beyond_the_limit_is_truncated_oldest_first() {
    let revs: Vec<ControllerRevision> = (1..=4)
        .map(|i| {
            let mut r = revision_of(&set(1), i);
            r.metadata.name = Some(format!("r{i}"));
            r
        })
        .collect();
    let mut pod = new_pod(&set(1), 0, owner());
    set_pod_revision(&mut pod, "r1");
    let gone = to_truncate(&revs, &[&pod], Some(&revs[3]), Some(&revs[3]), 1);
    assert_eq!(gone, ["r2"]);
}

#[tokio::test]
async fn ordered_ready_creates_one_pod_at_a_time() {
    let s = set(3);
    let rev = revision_of(&s, 1);
    let (ops, status) = run(&s, &rev, &rev, &[]).await;
    assert_eq!(ops.calls(), ["create web-0"]);
    // Counted once the cache shows it, as upstream.
    assert_eq!(status.replicas, 0);
    // web-0 exists but is not ready yet: wait.
    let pending = phase(new_pod(&s, 0, owner()), "Pending");
    let (ops, _) = run(&s, &rev, &rev, &[pending]).await;
    assert!(ops.calls().is_empty());
    // web-0 ready: web-1 next.
    let (ops, status) = run(&s, &rev, &rev, &[healthy(&s, 0, &rev)]).await;
    assert_eq!(ops.calls(), ["create web-1"]);
    assert_eq!(status.ready_replicas, Some(1));
}

#[tokio::test]
async fn parallel_creates_every_pod() {
    let mut s = set(3);
    s.spec.as_mut().unwrap().pod_management_policy = Some("Parallel".into());
    let rev = revision_of(&s, 1);
    let (ops, _) = run(&s, &rev, &rev, &[]).await;
    assert_eq!(
        ops.calls(),
        ["create web-0", "create web-1", "create web-2"]
    );
}

#[tokio::test]
async fn scale_down_removes_the_highest_ordinal_first() {
    let s = set(1);
    let rev = revision_of(&s, 1);
    let pods = [
        healthy(&s, 0, &rev),
        healthy(&s, 1, &rev),
        healthy(&s, 2, &rev),
    ];
    let (ops, status) = run(&s, &rev, &rev, &pods).await;
    assert_eq!(ops.calls(), ["delete web-2"]);
    assert_eq!(status.replicas, 3);
}

#[tokio::test]
async fn failed_pods_are_recreated_with_an_event() {
    let s = set(1);
    let rev = revision_of(&s, 1);
    let failed = phase(new_pod(&s, 0, owner()), "Failed");
    let (ops, _) = run(&s, &rev, &rev, &[failed]).await;
    assert_eq!(ops.calls(), ["delete web-0", "create web-0"]);
    let events = ops.events.lock().unwrap().clone();
    assert_eq!(events[0].0, "RecreatingFailedPod");
    assert_eq!(
        events[0].1,
        "StatefulSet ns/web is recreating failed Pod web-0"
    );
}

#[tokio::test]
async fn rolling_update_replaces_the_highest_outdated_pod() {
    let v1 = set(3);
    let mut v2 = set(3);
    v2.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("v2".into());
    let (r1, r2) = (revision_of(&v1, 1), revision_of(&v2, 2));
    let pods = [
        healthy(&v1, 0, &r1),
        healthy(&v1, 1, &r1),
        healthy(&v1, 2, &r1),
    ];
    let (ops, status) = run(&v2, &r1, &r2, &pods).await;
    assert_eq!(ops.calls(), ["delete web-2"]);
    assert_eq!(status.current_replicas, Some(2));
    assert_eq!(
        status.update_revision.as_deref(),
        Some(r2.name_any().as_str())
    );
}

#[tokio::test]
async fn partition_keeps_lower_ordinals_at_the_current_revision() {
    let v1 = set(3);
    let mut v2 = set(3);
    v2.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("v2".into());
    v2.spec
        .as_mut()
        .unwrap()
        .update_strategy
        .as_mut()
        .unwrap()
        .rolling_update
        .as_mut()
        .unwrap()
        .partition = Some(2);
    let (r1, r2) = (revision_of(&v1, 1), revision_of(&v2, 2));
    // web-2 already updated: nothing below the partition is touched.
    let pods = [
        healthy(&v1, 0, &r1),
        healthy(&v1, 1, &r1),
        healthy(&v2, 2, &r2),
    ];
    let (ops, _) = run(&v2, &r1, &r2, &pods).await;
    assert!(ops.calls().is_empty());
    // A deleted web-1 comes back at the current revision.
    let ops = FakeOps::default();
    let pods = [healthy(&v1, 0, &r1), healthy(&v2, 2, &r2)];
    let refs: Vec<&Pod> = pods.iter().collect();
    let revisions = Revisions {
        current: &r1,
        update: &r2,
        collision_count: 0,
    };
    let (_, result) = update_stateful_set(&ops, &v2, &revisions, &refs, owner(), ts(1000)).await;
    result.unwrap();
    assert_eq!(ops.calls(), ["create web-1"]);
}

#[tokio::test]
async fn on_delete_never_deletes_outdated_pods() {
    let v1 = set(2);
    let mut v2 = set(2);
    v2.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("v2".into());
    v2.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    let (r1, r2) = (revision_of(&v1, 1), revision_of(&v2, 2));
    let pods = [healthy(&v1, 0, &r1), healthy(&v1, 1, &r1)];
    let (ops, _) = run(&v2, &r1, &r2, &pods).await;
    assert!(ops.calls().is_empty());
}

#[test]
fn rolling_update_completes_when_all_updated_and_ready() {
    let s = set(2);
    let mut status = StatefulSetStatus {
        replicas: 2,
        ready_replicas: Some(2),
        updated_replicas: Some(2),
        current_replicas: Some(0),
        current_revision: Some("a".into()),
        update_revision: Some("b".into()),
        ..Default::default()
    };
    complete_rolling_update(&s, &mut status);
    assert_eq!(status.current_revision.as_deref(), Some("b"));
    assert_eq!(status.current_replicas, Some(2));
    assert!(inconsistent_status(&s, &status));
}

#[test]
fn max_unavailable_is_at_least_one() {
    let mut s = set(10);
    assert_eq!(max_unavailable(&s, 10).unwrap(), 1);
    let ru = s
        .spec
        .as_mut()
        .unwrap()
        .update_strategy
        .as_mut()
        .unwrap()
        .rolling_update
        .as_mut()
        .unwrap();
    ru.max_unavailable =
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("30%".into()));
    assert_eq!(max_unavailable(&s, 10).unwrap(), 3);
}

#[test]
fn retention_policy_sets_claim_owners() {
    let mut s = set(1);
    let mut pod = new_pod(&s, 0, owner());
    pod.metadata.uid = Some("pod-uid".into());
    let mut claim = claims_for(&s, &pod)[0].1.clone();
    // Retain/Retain: nobody owns the claim.
    assert!(!update_claim_owner_refs(&mut claim, &s, &pod));
    s.spec
        .as_mut()
        .unwrap()
        .persistent_volume_claim_retention_policy = Some(
        k8s_openapi::api::apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_deleted: Some("Delete".into()),
            when_scaled: Some("Delete".into()),
        },
    );
    assert!(update_claim_owner_refs(&mut claim, &s, &pod));
    let owners: Vec<&str> = claim
        .owner_references()
        .iter()
        .map(|r| r.kind.as_str())
        .collect();
    assert_eq!(owners, ["StatefulSet"]);
    // Scaled away: the pod owns it instead.
    s.spec.as_mut().unwrap().replicas = Some(0);
    assert!(update_claim_owner_refs(&mut claim, &s, &pod));
    let owners: Vec<&str> = claim
        .owner_references()
        .iter()
        .map(|r| r.kind.as_str())
        .collect();
    assert_eq!(owners, ["Pod"]);
}
