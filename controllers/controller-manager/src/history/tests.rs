use serde_json::json;

use super::*;
use crate::control::fake::{FakeObjectControl, Write, api_error};

fn parent() -> ObjectMeta {
    ObjectMeta {
        name: Some("web".into()),
        namespace: Some("ns".into()),
        uid: Some("u1".into()),
        ..Default::default()
    }
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: "web".into(),
        uid: "u1".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn revision(data: serde_json::Value, number: i64) -> ControllerRevision {
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    new_controller_revision(&parent(), owner(), Some(&labels), data, number, None).unwrap()
}

#[test]
fn name_is_prefix_dash_hash_with_prefix_capped() {
    assert_eq!(controller_revision_name("web", "abc"), "web-abc");
    let long = "x".repeat(300);
    assert_eq!(controller_revision_name(&long, "h").len(), 223 + 2);
}

#[test]
fn new_revision_is_named_and_labelled_by_its_hash() {
    let cr = revision(json!({"spec": {"template": {"$patch": "replace"}}}), 1);
    let hash = cr.metadata.labels.as_ref().unwrap()[CONTROLLER_REVISION_HASH_LABEL].clone();
    assert_eq!(
        cr.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(cr.metadata.labels.as_ref().unwrap()["app"], "web");
    assert_eq!(cr.revision, 1);
    let raw = br#"{"spec":{"template":{"$patch":"replace"}}}"#;
    assert_eq!(hash, controller_revision_hash(raw, None));
}

#[test]
fn equal_revisions_compare_data() {
    let a = revision(json!({"a": 1}), 1);
    let b = revision(json!({"a": 1}), 2);
    let c = revision(json!({"a": 2}), 3);
    assert!(equal_revision(&a, &b));
    assert!(!equal_revision(&a, &c));
    let all = vec![a.clone(), b, c];
    assert_eq!(find_equal_revisions(&all, &a).len(), 2);
}

#[test]
fn sorted_by_revision_then_name_and_next_is_max_plus_one() {
    let mut revs = vec![
        revision(json!({"a": 3}), 3),
        revision(json!({"a": 1}), 1),
        revision(json!({"a": 2}), 2),
    ];
    sort_controller_revisions(&mut revs);
    let numbers: Vec<i64> = revs.iter().map(|r| r.revision).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    assert_eq!(next_revision(&revs), 4);
    assert_eq!(next_revision(&[]), 1);
}

#[tokio::test]
async fn create_returns_identical_existing_revision() {
    let control = FakeObjectControl::<ControllerRevision>::default();
    let cr = revision(json!({"a": 1}), 1);
    *control.current.lock().unwrap() = Some(cr.clone());
    control.script([Some(api_error(409, "AlreadyExists"))]);
    let mut collisions = 0;
    let got = create_controller_revision(&control, &parent(), &cr, &mut collisions)
        .await
        .unwrap();
    assert_eq!(got.metadata.name, cr.metadata.name);
    assert_eq!(collisions, 0);
}

#[tokio::test]
async fn create_bumps_collision_count_on_a_foreign_name() {
    let control = FakeObjectControl::<ControllerRevision>::default();
    let cr = revision(json!({"a": 1}), 1);
    *control.current.lock().unwrap() = Some(revision(json!({"other": true}), 1));
    control.script([Some(api_error(409, "AlreadyExists")), None]);
    let mut collisions = 0;
    let got = create_controller_revision(&control, &parent(), &cr, &mut collisions)
        .await
        .unwrap();
    assert_eq!(collisions, 1);
    let second = controller_revision_name("web", &hash_controller_revision(&cr, Some(1)).unwrap());
    assert_eq!(got.metadata.name.as_deref(), Some(second.as_str()));
    let creates = control
        .writes()
        .iter()
        .filter(|w| matches!(w, Write::Create(_)))
        .count();
    assert_eq!(creates, 2);
}
