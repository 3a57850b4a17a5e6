//! `spec.backoffLimitPerIndex` / `maxFailedIndexes` for Indexed Jobs
//! (upstream `indexed_job_utils.go` `calculateFailedIndexes`,
//! `getPodsWithDelayedDeletionPerIndex`, the index failure-count
//! annotations, and `backoff_utils.go` `getRemainingTimePerIndex`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};

use super::failure_policy::match_pod;
use super::indexed::{completion_index, parse_indexes, valid_index};
use super::reconcile::{
    backoff_remaining, completions, has_tracking_finalizer, is_pod_failed, uid,
};

/// Upstream `batch.JobIndexFailureCountAnnotation`.
pub const INDEX_FAILURE_COUNT_ANNOTATION: &str = "batch.kubernetes.io/job-index-failure-count";
/// Upstream `batch.JobIndexIgnoredFailureCountAnnotation`.
pub const INDEX_IGNORED_FAILURE_COUNT_ANNOTATION: &str =
    "batch.kubernetes.io/job-index-ignored-failure-count";

pub const REASON_MAX_FAILED_INDEXES_EXCEEDED: &str = "MaxFailedIndexesExceeded";
pub const MSG_MAX_FAILED_INDEXES_EXCEEDED: &str =
    "Job has exceeded the specified maximal number of failed indexes";
pub const REASON_FAILED_INDEXES: &str = "FailedIndexes";
pub const MSG_FAILED_INDEXES: &str = "Job has failed indexes";

pub fn backoff_limit_per_index(job: &Job) -> Option<i32> {
    job.spec.as_ref()?.backoff_limit_per_index
}

fn annotation_count(pod: &Pod, key: &str) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v >= 0)
        .unwrap_or(0)
}

pub fn index_failure_count(pod: &Pod) -> i32 {
    annotation_count(pod, INDEX_FAILURE_COUNT_ANNOTATION)
}

fn absolute_failure_count(pod: &Pod) -> i32 {
    index_failure_count(pod) + annotation_count(pod, INDEX_IGNORED_FAILURE_COUNT_ANNOTATION)
}

/// Upstream `isIndexFailed`: a FailIndex rule matched, or the counted
/// failures of the index reached the per-index limit.
pub fn is_index_failed(job: &Job, pod: &Pod) -> bool {
    if !is_pod_failed(pod, job) {
        return false;
    }
    let matched = match_pod(job, pod);
    if matched.action.as_deref() == Some("FailIndex") {
        return true;
    }
    matched.count_failed && Some(index_failure_count(pod)) >= backoff_limit_per_index(job)
}

/// Upstream `calculateFailedIndexes`: `status.failedIndexes` plus indexes
/// whose pod (still carrying the finalizer) failed for good.
pub fn failed_indexes(job: &Job, pods: &[&Pod]) -> BTreeSet<i32> {
    let c = completions(job).unwrap_or(0);
    let prev = job
        .status
        .as_ref()
        .and_then(|s| s.failed_indexes.as_deref());
    let mut out = parse_indexes(prev.unwrap_or_default(), c);
    out.extend(
        pods.iter()
            .filter(|p| has_tracking_finalizer(p) && is_index_failed(job, p))
            .filter_map(|p| valid_index(p, c)),
    );
    out
}

/// Upstream `getPodsWithDelayedDeletionPerIndex`: per index still to be
/// retried, the failed pod whose finalizer stays until its replacement
/// exists (it carries the failure count over).
pub fn delayed_deletion<'a>(
    job: &Job,
    pods: &[&'a Pod],
    active: &[&Pod],
    succeeded: &BTreeSet<i32>,
    failed: &BTreeSet<i32>,
    expected_rm: &BTreeSet<String>,
) -> BTreeMap<i32, &'a Pod> {
    let c = completions(job).unwrap_or(0);
    let active_ix: BTreeSet<i32> = active.iter().filter_map(|p| completion_index(p)).collect();
    let mut out: BTreeMap<i32, &Pod> = BTreeMap::new();
    for p in pods {
        if !has_tracking_finalizer(p) || expected_rm.contains(uid(p)) || !is_pod_failed(p, job) {
            continue;
        }
        let Some(ix) = valid_index(p, c) else {
            continue;
        };
        if succeeded.contains(&ix) || failed.contains(&ix) || active_ix.contains(&ix) {
            continue;
        }
        let newer = out
            .get(&ix)
            .is_none_or(|last| absolute_failure_count(last) <= absolute_failure_count(p));
        if newer {
            out.insert(ix, p);
        }
    }
    out
}

/// Upstream `addIndexFailureCountAnnotation`: the replacement carries the
/// replaced pod's counts plus its failure.
pub fn annotate_failure_counts(template: &mut PodTemplateSpec, job: &Job, replaced: Option<&Pod>) {
    let (mut failures, mut ignored) = (0, 0);
    if let Some(p) = replaced {
        failures = index_failure_count(p);
        ignored = annotation_count(p, INDEX_IGNORED_FAILURE_COUNT_ANNOTATION);
        if match_pod(job, p).count_failed {
            failures += 1;
        } else {
            ignored += 1;
        }
    }
    let meta = template.metadata.get_or_insert_with(Default::default);
    let ann = meta.annotations.get_or_insert_with(Default::default);
    ann.insert(INDEX_FAILURE_COUNT_ANNOTATION.into(), failures.to_string());
    if ignored > 0 {
        ann.insert(
            INDEX_IGNORED_FAILURE_COUNT_ANNOTATION.into(),
            ignored.to_string(),
        );
    }
}

/// When a failed pod finished: its containers' latest finish time.
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
}

/// Upstream `getRemainingTimePerIndex`: the index's own back-off, from
/// the failure count of the pod it replaces.
pub fn remaining_for_index(replaced: Option<&Pod>, now: Timestamp) -> Duration {
    let Some(p) = replaced else {
        return Duration::ZERO;
    };
    let failures = (absolute_failure_count(p) + 1).max(1) as u32;
    backoff_remaining(failures, finished_at(p), now)
}

/// Upstream's per-index failure verdicts before pods are managed.
pub fn failure_reason(
    job: &Job,
    failed: &BTreeSet<i32>,
    succeeded: &BTreeSet<i32>,
) -> Option<(&'static str, &'static str)> {
    let spec = job.spec.as_ref()?;
    if spec
        .max_failed_indexes
        .is_some_and(|m| failed.len() > m.max(0) as usize)
    {
        return Some((
            REASON_MAX_FAILED_INDEXES_EXCEEDED,
            MSG_MAX_FAILED_INDEXES_EXCEEDED,
        ));
    }
    let c = completions(job).unwrap_or(0).max(0) as usize;
    if !failed.is_empty() && failed.len() + succeeded.len() >= c {
        return Some((REASON_FAILED_INDEXES, MSG_FAILED_INDEXES));
    }
    None
}
