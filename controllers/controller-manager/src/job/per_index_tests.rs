//! backoffLimitPerIndex cases after upstream `indexed_job_utils_test.go`
//! (`TestCalculateFailedIndexes`, `TestGetPodsWithDelayedDeletionPerIndex`,
//! `TestGetNewIndexFailureCountValue`) and the job-level verdicts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{Pod, PodStatus, PodTemplateSpec};

use super::indexed::COMPLETION_INDEX_ANNOTATION;
use super::per_index::*;
use super::reconcile::JOB_TRACKING_FINALIZER;

fn set(v: &[i32]) -> BTreeSet<i32> {
    v.iter().copied().collect()
}

fn job(completions: i32, limit: i32, max_failed: Option<i32>, failed: Option<&str>) -> Job {
    Job {
        spec: Some(JobSpec {
            completions: Some(completions),
            completion_mode: Some("Indexed".into()),
            backoff_limit_per_index: Some(limit),
            max_failed_indexes: max_failed,
            template: PodTemplateSpec::default(),
            ..Default::default()
        }),
        status: Some(JobStatus {
            failed_indexes: failed.map(str::to_string),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(name: &str, index: i32, phase: &str, failures: Option<i32>) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.uid = Some(name.into());
    pod.metadata.finalizers = Some(vec![JOB_TRACKING_FINALIZER.into()]);
    let mut ann: BTreeMap<String, String> =
        [(COMPLETION_INDEX_ANNOTATION.to_string(), index.to_string())].into();
    if let Some(f) = failures {
        ann.insert(INDEX_FAILURE_COUNT_ANNOTATION.into(), f.to_string());
    }
    pod.metadata.annotations = Some(ann);
    pod.status = Some(PodStatus {
        phase: Some(phase.into()),
        ..Default::default()
    });
    pod
}

#[test]
fn an_index_fails_once_its_count_reaches_the_limit() {
    let j = job(5, 1, None, Some("0"));
    let pods = [
        pod("a", 1, "Failed", Some(0)),
        pod("b", 2, "Failed", Some(1)),
        pod("c", 3, "Running", Some(1)),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    assert_eq!(failed_indexes(&j, &refs), set(&[0, 2]));
}

#[test]
fn the_failed_pod_of_an_index_to_retry_waits_for_its_replacement() {
    let j = job(5, 2, None, None);
    let pods = [
        pod("old", 1, "Failed", Some(0)),
        pod("newer", 1, "Failed", Some(1)),
        pod("done", 2, "Failed", Some(0)),
        pod("busy-failed", 3, "Failed", Some(0)),
        pod("busy", 3, "Running", Some(1)),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let active = [&pods[4]];
    let delayed = delayed_deletion(&j, &refs, &active, &set(&[2]), &set(&[]), &BTreeSet::new());
    let names: Vec<(i32, &str)> = delayed
        .iter()
        .map(|(i, p)| (*i, p.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        names,
        [(1, "newer")],
        "succeeded and active indexes need no wait"
    );
}

#[test]
fn replacements_carry_the_failure_count() {
    let j = job(5, 2, None, None);
    let mut t = PodTemplateSpec::default();
    annotate_failure_counts(&mut t, &j, Some(&pod("p", 1, "Failed", Some(1))));
    let ann = t.metadata.and_then(|m| m.annotations).unwrap_or_default();
    assert_eq!(
        ann.get(INDEX_FAILURE_COUNT_ANNOTATION).map(String::as_str),
        Some("2")
    );
    assert!(!ann.contains_key(INDEX_IGNORED_FAILURE_COUNT_ANNOTATION));
    let mut t = PodTemplateSpec::default();
    annotate_failure_counts(&mut t, &j, None);
    let ann = t.metadata.and_then(|m| m.annotations).unwrap_or_default();
    assert_eq!(
        ann.get(INDEX_FAILURE_COUNT_ANNOTATION).map(String::as_str),
        Some("0")
    );
}

#[test]
fn per_index_backoff_grows_with_the_index_failures() {
    assert_eq!(
        remaining_for_index(None, Timestamp::UNIX_EPOCH),
        Duration::ZERO
    );
    let mut p = pod("p", 0, "Failed", Some(1));
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::UNIX_EPOCH,
    ));
    // Second failure of the index: 20s from when the pod finished.
    assert_eq!(
        remaining_for_index(Some(&p), Timestamp::UNIX_EPOCH),
        Duration::from_secs(20)
    );
}

#[test]
fn job_level_verdicts() {
    let j = job(4, 1, Some(1), None);
    assert_eq!(failure_reason(&j, &set(&[0]), &set(&[])), None);
    assert_eq!(
        failure_reason(&j, &set(&[0, 1]), &set(&[])).map(|r| r.0),
        Some(REASON_MAX_FAILED_INDEXES_EXCEEDED)
    );
    let j = job(4, 1, None, None);
    assert_eq!(
        failure_reason(&j, &set(&[0]), &set(&[1, 2, 3])).map(|r| r.1),
        Some(MSG_FAILED_INDEXES)
    );
    assert_eq!(failure_reason(&j, &set(&[]), &set(&[1, 2, 3])), None);
}
