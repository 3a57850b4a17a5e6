//! Owner reference helpers and the adopt/release decisions of upstream
//! `pkg/controller/controller_ref_manager.go` (cases after its
//! `TestClaimPods`), tested on plain objects.

use std::collections::BTreeMap;

use component_base::ownerref::{
    ClaimDecision, ClaimingController, OwnerRefError, adopt_patch, adoption_error_is_ignorable,
    claim_decision, get_controller_of, is_controlled_by, new_controller_ref_for, plan_claims,
    plan_claims_by_selector, recheck_deletion_timestamp, release_error_is_ignorable, release_patch,
};
use component_base::selectors::Selector;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::core::Status;

fn owner_ref(uid: &str, controller: Option<bool>) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: format!("rs-{uid}"),
        uid: uid.into(),
        controller,
        block_owner_deletion: controller,
    }
}

fn deleted_at() -> Time {
    Time(jiff::Timestamp::UNIX_EPOCH)
}

fn pod(name: &str, labels: &[(&str, &str)], owners: Vec<OwnerReference>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("{name}-uid")),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            owner_references: (!owners.is_empty()).then_some(owners),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn controller(being_deleted: bool) -> ClaimingController {
    ClaimingController {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "frontend".into(),
        namespace: "default".into(),
        uid: "123".into(),
        being_deleted,
    }
}

#[test]
fn controller_of_and_controlled_by() {
    let none = pod("a", &[], vec![]);
    assert!(get_controller_of(&none.metadata).is_none());
    assert!(!is_controlled_by(&none.metadata, "123"));

    let plain_owner = pod("b", &[], vec![owner_ref("123", None)]);
    assert!(get_controller_of(&plain_owner.metadata).is_none());
    assert!(!is_controlled_by(&plain_owner.metadata, "123"));

    let controlled = pod(
        "c",
        &[],
        vec![
            owner_ref("999", Some(false)),
            owner_ref("123", Some(true)),
            owner_ref("456", Some(true)),
        ],
    );
    assert_eq!(
        get_controller_of(&controlled.metadata).map(|r| r.uid.as_str()),
        Some("123")
    );
    assert!(is_controlled_by(&controlled.metadata, "123"));
    assert!(!is_controlled_by(&controlled.metadata, "456"));
}

#[test]
fn new_controller_ref_sets_controller_and_block_owner_deletion() {
    let rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some("frontend".into()),
            namespace: Some("default".into()),
            uid: Some("123".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let got = new_controller_ref_for(&rs);
    assert_eq!(
        got,
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "frontend".into(),
            uid: "123".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    );
    let claiming = ClaimingController::from_resource(&rs);
    assert_eq!(claiming, controller(false));
    assert_eq!(claiming.controller_ref(), got);
}

#[test]
fn claim_decisions() {
    let ours = || vec![owner_ref("123", Some(true))];
    let theirs = || vec![owner_ref("456", Some(true))];
    let mut deleting_pod = pod("p", &[], vec![]);
    deleting_pod.metadata.deletion_timestamp = Some(deleted_at());
    let mut other_ns = pod("p", &[], vec![]);
    other_ns.metadata.namespace = Some("kube-system".into());

    let cases = [
        (
            "matching orphan is adopted",
            controller(false),
            pod("p", &[], vec![]),
            true,
            ClaimDecision::Adopt,
        ),
        (
            "non-matching orphan is ignored",
            controller(false),
            pod("p", &[], vec![]),
            false,
            ClaimDecision::Ignore,
        ),
        (
            "deleting controller adopts nothing",
            controller(true),
            pod("p", &[], vec![]),
            true,
            ClaimDecision::Ignore,
        ),
        (
            "owned and matching is claimed",
            controller(false),
            pod("p", &[], ours()),
            true,
            ClaimDecision::Owned,
        ),
        (
            "owned and matching is claimed while deleting",
            controller(true),
            pod("p", &[], ours()),
            true,
            ClaimDecision::Owned,
        ),
        (
            "owned but not matching is released",
            controller(false),
            pod("p", &[], ours()),
            false,
            ClaimDecision::Release,
        ),
        (
            "deleting controller releases nothing",
            controller(true),
            pod("p", &[], ours()),
            false,
            ClaimDecision::Ignore,
        ),
        (
            "another controller's object is ignored",
            controller(false),
            pod("p", &[], theirs()),
            true,
            ClaimDecision::Ignore,
        ),
        (
            "non-controller owner ref is still an orphan",
            controller(false),
            pod("p", &[], vec![owner_ref("123", Some(false))]),
            true,
            ClaimDecision::Adopt,
        ),
        (
            "object being deleted is not adopted",
            controller(false),
            deleting_pod,
            true,
            ClaimDecision::Ignore,
        ),
        (
            "other namespace is not adopted",
            controller(false),
            other_ns.clone(),
            true,
            ClaimDecision::Ignore,
        ),
        (
            "cluster-scoped controller adopts across namespaces",
            ClaimingController {
                namespace: String::new(),
                ..controller(false)
            },
            other_ns,
            true,
            ClaimDecision::Adopt,
        ),
    ];
    for (name, ctrl, obj, matches, want) in cases {
        assert_eq!(
            claim_decision(&ctrl, &obj.metadata, matches),
            want,
            "{name}"
        );
    }
}

#[test]
fn plan_claims_by_selector_sorts_candidates() {
    let selector: Selector = "app=web"
        .parse()
        .unwrap_or_else(|e| panic!("selector: {e}"));
    let pods = vec![
        pod("orphan-match", &[("app", "web")], vec![]),
        pod("orphan-other", &[("app", "db")], vec![]),
        pod(
            "ours-match",
            &[("app", "web")],
            vec![owner_ref("123", Some(true))],
        ),
        pod(
            "ours-stale",
            &[("app", "db")],
            vec![owner_ref("123", Some(true))],
        ),
        pod(
            "theirs",
            &[("app", "web")],
            vec![owner_ref("456", Some(true))],
        ),
        pod("unlabelled", &[], vec![]),
    ];
    let names = |v: &[&Pod]| -> Vec<String> {
        v.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    };
    let plan = plan_claims_by_selector(&controller(false), &selector, &pods);
    assert_eq!(names(&plan.owned), ["ours-match"]);
    assert_eq!(names(&plan.adopt), ["orphan-match"]);
    assert_eq!(names(&plan.release), ["ours-stale"]);

    let deleting = plan_claims_by_selector(&controller(true), &selector, &pods);
    assert_eq!(names(&deleting.owned), ["ours-match"]);
    assert!(deleting.adopt.is_empty() && deleting.release.is_empty());

    // Custom match functions (StatefulSet's isMemberOf and the like).
    let by_name = plan_claims(&controller(false), &pods, |p: &Pod| {
        p.metadata.name.as_deref() == Some("orphan-other")
    });
    assert_eq!(names(&by_name.adopt), ["orphan-other"]);
    assert_eq!(names(&by_name.release), ["ours-match", "ours-stale"]);
}

fn json(bytes: serde_json::Result<Vec<u8>>) -> String {
    String::from_utf8(bytes.unwrap_or_default()).unwrap_or_default()
}

#[test]
fn adoption_patch_is_byte_identical_to_upstream() {
    let patch = adopt_patch(&controller(false), "pod-uid", &[]);
    assert_eq!(
        json(patch.to_json()),
        r#"{"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"frontend","uid":"123","controller":true,"blockOwnerDeletion":true}],"uid":"pod-uid"}}"#
    );
    let with_finalizer = adopt_patch(
        &controller(false),
        "pod-uid",
        &["batch.kubernetes.io/job-tracking".to_string()],
    );
    assert_eq!(
        json(with_finalizer.to_json()),
        r#"{"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"frontend","uid":"123","controller":true,"blockOwnerDeletion":true}],"uid":"pod-uid","finalizers":["batch.kubernetes.io/job-tracking"]}}"#
    );
}

#[test]
fn release_patch_is_byte_identical_to_upstream() {
    assert_eq!(
        json(release_patch("pod-uid", &["123"], &[]).to_json()),
        r#"{"metadata":{"uid":"pod-uid","ownerReferences":[{"$patch":"delete","uid":"123"}]}}"#
    );
    assert_eq!(
        json(release_patch("pod-uid", &["123", "456"], &["f1".to_string()]).to_json()),
        r#"{"metadata":{"uid":"pod-uid","ownerReferences":[{"$patch":"delete","uid":"123"},{"$patch":"delete","uid":"456"}],"$deleteFromPrimitiveList/finalizers":["f1"]}}"#
    );
    assert_eq!(
        json(release_patch("pod-uid", &[], &[]).to_json()),
        r#"{"metadata":{"uid":"pod-uid","ownerReferences":null}}"#
    );
}

#[test]
fn recheck_deletion_timestamp_guards_adoption() {
    let ctrl = controller(false);
    let fresh = ObjectMeta {
        name: Some("frontend".into()),
        namespace: Some("default".into()),
        uid: Some("123".into()),
        ..Default::default()
    };
    assert_eq!(recheck_deletion_timestamp(&ctrl, &fresh), Ok(()));

    let recreated = ObjectMeta {
        uid: Some("999".into()),
        ..fresh.clone()
    };
    assert_eq!(
        recheck_deletion_timestamp(&ctrl, &recreated).map_err(|e| e.to_string()),
        Err("original default/frontend is gone: got uid 999, wanted 123".to_string())
    );

    let deleting = ObjectMeta {
        deletion_timestamp: Some(deleted_at()),
        ..fresh
    };
    assert!(matches!(
        recheck_deletion_timestamp(&ctrl, &deleting),
        Err(OwnerRefError::ControllerDeleted { .. })
    ));
}

#[test]
fn patch_errors_that_mean_nothing_to_do() {
    let api = |code: u16, reason: &str| {
        kube::Error::Api(
            Status {
                code,
                reason: reason.into(),
                ..Default::default()
            }
            .boxed(),
        )
    };
    assert!(adoption_error_is_ignorable(&api(404, "NotFound")));
    assert!(!adoption_error_is_ignorable(&api(422, "Invalid")));
    assert!(!adoption_error_is_ignorable(&api(409, "Conflict")));
    assert!(release_error_is_ignorable(&api(404, "NotFound")));
    assert!(release_error_is_ignorable(&api(422, "Invalid")));
    assert!(!release_error_is_ignorable(&api(500, "InternalError")));
}
