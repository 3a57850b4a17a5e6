//! Indexed-mode cases from upstream `indexed_job_utils_test.go`
//! (`TestCalculateSucceededIndexes`, `TestFirstPendingIndexes`,
//! `TestAppendDuplicatedIndexPodsForRemoval`, `TestPodGenerateNameWithIndex`)
//! and `success_policy_test.go`.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus, SuccessPolicy, SuccessPolicyRule};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, PodTemplateSpec};

use super::indexed::*;
use super::reconcile::JOB_TRACKING_FINALIZER;

fn set(v: &[i32]) -> BTreeSet<i32> {
    v.iter().copied().collect()
}

fn pod(name: &str, index: Option<&str>, phase: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.uid = Some(name.into());
    pod.metadata.finalizers = Some(vec![JOB_TRACKING_FINALIZER.into()]);
    if let Some(ix) = index {
        pod.metadata.annotations =
            Some([(COMPLETION_INDEX_ANNOTATION.to_string(), ix.to_string())].into());
    }
    pod.status = Some(PodStatus {
        phase: Some(phase.into()),
        ..Default::default()
    });
    pod
}

fn indexed_job(completions: i32, completed: &str) -> Job {
    let mut job = Job::default();
    job.metadata.name = Some("job".into());
    job.spec = Some(JobSpec {
        completions: Some(completions),
        completion_mode: Some("Indexed".into()),
        template: PodTemplateSpec::default(),
        ..Default::default()
    });
    job.status = Some(JobStatus {
        completed_indexes: Some(completed.into()),
        ..Default::default()
    });
    job
}

#[test]
fn completed_indexes_round_trip_in_upstream_format() {
    let cases: &[(&[i32], &str)] = &[
        (&[], ""),
        (&[0], "0"),
        (&[0, 1], "0,1"),
        (&[0, 1, 2], "0-2"),
        (&[1, 3, 4, 5, 7], "1,3-5,7"),
        (&[0, 2, 3, 9, 10, 11, 12], "0,2,3,9-12"),
    ];
    for (indexes, text) in cases {
        assert_eq!(format_indexes(&set(indexes)), *text);
        assert_eq!(parse_indexes(text, 100), set(indexes), "{text}");
    }
    // Out of range and corrupt parts are dropped, the last interval cut.
    assert_eq!(parse_indexes("0,x,2-5,8", 4), set(&[0, 2, 3]));
    assert_eq!(parse_indexes("1-3,5", 3), set(&[1, 2]));
}

#[test]
fn succeeded_indexes_add_succeeded_pods_with_finalizer() {
    let job = indexed_job(6, "0-1");
    let pods = [
        pod("a", Some("2"), "Succeeded"),
        pod("b", Some("3"), "Running"),
        pod("c", Some("9"), "Succeeded"),
        pod("d", None, "Succeeded"),
        pod("e", Some("4"), "Failed"),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let (prev, all) = succeeded_indexes(&job, &refs);
    assert_eq!(prev, set(&[0, 1]));
    assert_eq!(all, set(&[0, 1, 2]));
}

#[test]
fn first_pending_skips_succeeded_and_active() {
    let active = [
        pod("a", Some("1"), "Running"),
        pod("b", Some("4"), "Running"),
    ];
    let refs: Vec<&Pod> = active.iter().collect();
    assert_eq!(first_pending(&refs, &set(&[0, 2]), 3, 8), vec![3, 5, 6]);
    assert_eq!(first_pending(&refs, &set(&[0, 2]), 10, 6), vec![3, 5]);
    assert!(first_pending(&[], &set(&[]), 0, 5).is_empty());
}

#[test]
fn duplicated_and_invalid_indexes_are_removed() {
    let active = [
        pod("p0", Some("0"), "Running"),
        pod("p0-dup", Some("0"), "Pending"),
        pod("p1", Some("1"), "Running"),
        pod("none", None, "Running"),
        pod("high", Some("7"), "Running"),
    ];
    let refs: Vec<&Pod> = active.iter().collect();
    let now = Timestamp::UNIX_EPOCH;
    let mut rm: Vec<&str> = for_removal(&refs, 3, 0, now)
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    rm.sort();
    assert_eq!(rm, ["high", "none", "p0-dup"], "the pending duplicate goes");
    assert_eq!(for_removal(&refs, 3, 4, now).len(), 4);
}

#[test]
fn generate_name_and_template_per_index() {
    assert_eq!(name_prefix("pi", 3), "pi-3");
    let long = "a".repeat(60);
    let prefix = name_prefix(&long, 12);
    assert_eq!(format!("{prefix}-").len(), 58);
    assert!(prefix.ends_with("a-12"));

    let template = PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    let t = template_for_index(&template, "pi", 2);
    let meta = t.metadata.clone().unwrap_or_default();
    let ann = meta.annotations.unwrap_or_default();
    assert_eq!(
        ann.get(COMPLETION_INDEX_ANNOTATION).map(String::as_str),
        Some("2")
    );
    let labels = meta.labels.unwrap_or_default();
    assert_eq!(
        labels.get(COMPLETION_INDEX_ANNOTATION).map(String::as_str),
        Some("2")
    );
    let spec = t.spec.unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
    let env = spec.containers[0].env.clone().unwrap_or_default();
    assert_eq!(env.len(), 1);
    assert_eq!(env[0].name, COMPLETION_INDEX_ENV);
    let path = env[0]
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(
        path,
        Some("metadata.labels['batch.kubernetes.io/job-completion-index']")
    );
    // Idempotent: an existing variable is not added twice.
    let again = template_for_index(&template_for_index(&template, "pi", 2), "pi", 2);
    let env = again.spec.unwrap_or_default().containers[0]
        .env
        .clone()
        .unwrap_or_default();
    assert_eq!(env.len(), 1);
}

#[test]
fn success_policy_rules() {
    let rule = |indexes: Option<&str>, count: Option<i32>| SuccessPolicyRule {
        succeeded_indexes: indexes.map(str::to_string),
        succeeded_count: count,
    };
    let with = |rules: Vec<SuccessPolicyRule>| {
        let mut job = indexed_job(10, "");
        if let Some(s) = job.spec.as_mut() {
            s.success_policy = Some(SuccessPolicy { rules });
        }
        job
    };
    let job = with(vec![rule(Some("0-2"), None)]);
    assert_eq!(match_success_policy(&job, &set(&[0, 1])), None);
    assert_eq!(
        match_success_policy(&job, &set(&[0, 1, 2, 5])).as_deref(),
        Some("Matched rules at index 0")
    );
    let job = with(vec![rule(Some("0-4"), Some(2)), rule(None, Some(1))]);
    assert_eq!(
        match_success_policy(&job, &set(&[7])).as_deref(),
        Some("Matched rules at index 1")
    );
    assert_eq!(
        match_success_policy(&job, &set(&[1, 3])).as_deref(),
        Some("Matched rules at index 0")
    );
    assert_eq!(match_success_policy(&job, &set(&[])), None);
}
