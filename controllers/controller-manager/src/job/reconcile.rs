//! The pure half of the Job controller (upstream
//! `pkg/controller/job/job_controller.go` `syncJob`, `manageJob`,
//! `backoff_utils.go`): counts, the finished condition, how many pods to
//! create or which to delete, back-off. Finalizer accounting is in
//! [`super::accounting`].

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::failure_policy;
use super::indexed::{is_indexed, valid_index};
use crate::controller_utils::{is_pod_active, is_pod_ready, is_pod_terminating, pod_phase};

/// Upstream `batch.JobTrackingFinalizer`.
pub const JOB_TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Upstream `MaxUncountedPods`.
pub const MAX_UNCOUNTED_PODS: usize = 500;
/// Upstream `MaxPodCreateDeletePerSync`.
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;
/// Upstream `DefaultJobPodFailureBackOff` / `MaxJobPodFailureBackOff`.
pub const DEFAULT_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(360);

pub const COND_COMPLETE: &str = "Complete";
pub const COND_FAILED: &str = "Failed";
pub const COND_FAILURE_TARGET: &str = "FailureTarget";
pub const COND_SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const COND_SUSPENDED: &str = "Suspended";

pub const REASON_BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub const REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const REASON_COMPLETIONS_REACHED: &str = "CompletionsReached";
pub const REASON_SUCCESS_POLICY: &str = "SuccessPolicy";
pub const MSG_BACKOFF_LIMIT_EXCEEDED: &str = "Job has reached the specified backoff limit";
pub const MSG_DEADLINE_EXCEEDED: &str = "Job was active longer than specified deadline";
pub const MSG_COMPLETIONS_REACHED: &str = "Reached expected number of succeeded pods";

fn spec_i32(
    job: &Job,
    f: impl Fn(&k8s_openapi::api::batch::v1::JobSpec) -> Option<i32>,
) -> Option<i32> {
    job.spec.as_ref().and_then(f)
}

/// `spec.parallelism` (apiserver default 1).
pub fn parallelism(job: &Job) -> i32 {
    spec_i32(job, |s| s.parallelism).unwrap_or(1)
}

pub fn completions(job: &Job) -> Option<i32> {
    spec_i32(job, |s| s.completions)
}

/// `spec.backoffLimit` (apiserver default 6).
pub fn backoff_limit(job: &Job) -> i32 {
    spec_i32(job, |s| s.backoff_limit).unwrap_or(6)
}

pub fn is_suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false)
}

/// Upstream `onlyReplaceFailedPods` (podReplacementPolicy Failed, which a
/// podFailurePolicy implies).
pub fn only_replace_failed_pods(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || spec.is_some_and(|s| s.pod_failure_policy.is_some())
}

pub fn conditions(job: &Job) -> &[JobCondition] {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn condition_true(list: &[JobCondition], type_: &str) -> Option<JobCondition> {
    list.iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .cloned()
}

/// Upstream `IsJobFinished`: Complete or Failed is True.
pub fn is_finished(job: &Job) -> bool {
    let list = conditions(job);
    condition_true(list, COND_COMPLETE).is_some() || condition_true(list, COND_FAILED).is_some()
}

pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == JOB_TRACKING_FINALIZER))
}

pub fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// Upstream `isPodFailed`: Failed, or (unless only failed pods are
/// replaced) deleted before succeeding.
pub fn is_pod_failed(pod: &Pod, job: &Job) -> bool {
    let phase = pod_phase(pod);
    if phase == "Failed" {
        return true;
    }
    if only_replace_failed_pods(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase != "Succeeded"
}

/// Upstream `newCondition`.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream `ensureJobConditionStatus`: sets or appends the condition;
/// never appends a False one. Returns whether the list changed.
pub fn ensure_condition(
    list: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    if let Some(c) = list.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status
            || c.reason.as_deref().unwrap_or_default() != reason
            || c.message.as_deref().unwrap_or_default() != message
        {
            *c = new_condition(type_, status, reason, message, now);
            return true;
        }
        return false;
    }
    if status != "False" {
        list.push(new_condition(type_, status, reason, message, now));
        return true;
    }
    false
}

/// The counts of one sync (upstream `syncJobCtx`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counts {
    pub active: i32,
    pub ready: i32,
    pub terminating: i32,
    /// status.succeeded plus newly finished and uncounted ones.
    pub succeeded: i32,
    pub failed: i32,
    pub new_succeeded: usize,
    pub new_failed: usize,
}

/// The uncounted UIDs of a job's status.
pub fn uncounted(job: &Job) -> (BTreeSet<String>, BTreeSet<String>) {
    let u = job
        .status
        .as_ref()
        .and_then(|s| s.uncounted_terminated_pods.as_ref());
    let set = |v: Option<&Vec<String>>| v.into_iter().flatten().cloned().collect();
    (
        set(u.and_then(|u| u.succeeded.as_ref())),
        set(u.and_then(|u| u.failed.as_ref())),
    )
}

/// Upstream `getNewFinishedPods` plus the counters computed in `syncJob`.
pub fn count(job: &Job, pods: &[&Pod], expected_rm: &BTreeSet<String>) -> Counts {
    let (unc_succeeded, unc_failed) = uncounted(job);
    let index_ok =
        |p: &Pod| !is_indexed(job) || valid_index(p, completions(job).unwrap_or(0)).is_some();
    let valid = |p: &&&Pod, uncounted: &BTreeSet<String>| {
        has_tracking_finalizer(p)
            && !uncounted.contains(uid(p))
            && !expected_rm.contains(uid(p))
            && index_ok(p)
    };
    let new_succeeded = pods
        .iter()
        .filter(|p| valid(p, &unc_succeeded) && pod_phase(p) == "Succeeded")
        .count();
    let new_failed_pods: Vec<&&Pod> = pods
        .iter()
        .filter(|p| valid(p, &unc_failed) && is_pod_failed(p, job))
        .collect();
    let new_failed = new_failed_pods.len();
    let counted_failed = new_failed_pods
        .iter()
        .filter(|p| failure_policy::counts_as_failed(job, p))
        .count();
    let status = job.status.clone().unwrap_or_default();
    let active: Vec<&&Pod> = pods.iter().filter(|p| is_pod_active(p)).collect();
    Counts {
        active: active.len() as i32,
        ready: active.iter().filter(|p| is_pod_ready(p)).count() as i32,
        terminating: pods.iter().filter(|p| is_pod_terminating(p)).count() as i32,
        succeeded: status.succeeded.unwrap_or(0) + (new_succeeded + unc_succeeded.len()) as i32,
        failed: status.failed.unwrap_or(0) + (counted_failed + unc_failed.len()) as i32,
        new_succeeded,
        new_failed,
    }
}

/// Upstream `pastBackoffLimitOnFailure`: container restarts of running
/// pods count against the limit under restartPolicy OnFailure.
pub fn past_backoff_limit_on_failure(job: &Job, pods: &[&Pod]) -> bool {
    let policy = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(pod_phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            let init = s.init_container_statuses.iter().flatten();
            init.chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    let limit = backoff_limit(job);
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

fn start_time(job: &Job) -> Option<Timestamp> {
    job.status.as_ref()?.start_time.as_ref().map(|t| t.0)
}

/// Time left before activeDeadlineSeconds passes; `None` without a
/// deadline, a start time, or while suspended.
pub fn deadline_remaining(job: &Job, now: Timestamp) -> Option<Duration> {
    let secs = job.spec.as_ref()?.active_deadline_seconds?;
    if is_suspended(job) {
        return None;
    }
    let start = start_time(job)?;
    let elapsed = Duration::try_from(now.duration_since(start)).unwrap_or_default();
    Some(Duration::from_secs(secs.max(0) as u64).saturating_sub(elapsed))
}

/// Upstream's choice of finished condition before pods are managed:
/// an existing SuccessCriteriaMet / FailureTarget, the backoff limit, the
/// active deadline.
pub fn failure_or_success_target(
    job: &Job,
    pods: &[&Pod],
    counts: &Counts,
    now: Timestamp,
) -> Option<JobCondition> {
    let list = conditions(job);
    if let Some(c) = condition_true(list, COND_SUCCESS_CRITERIA_MET) {
        return Some(c);
    }
    if let Some(c) = condition_true(list, COND_FAILURE_TARGET) {
        return Some(c);
    }
    if let Some(message) = failure_policy::fail_job_message(job, pods) {
        return Some(new_condition(
            COND_FAILURE_TARGET,
            "True",
            failure_policy::REASON_POD_FAILURE_POLICY,
            &message,
            now,
        ));
    }
    if counts.failed > backoff_limit(job) || past_backoff_limit_on_failure(job, pods) {
        return Some(new_condition(
            COND_FAILURE_TARGET,
            "True",
            REASON_BACKOFF_LIMIT_EXCEEDED,
            MSG_BACKOFF_LIMIT_EXCEEDED,
            now,
        ));
    }
    if deadline_remaining(job, now) == Some(Duration::ZERO) {
        return Some(new_condition(
            COND_FAILURE_TARGET,
            "True",
            REASON_DEADLINE_EXCEEDED,
            MSG_DEADLINE_EXCEEDED,
            now,
        ));
    }
    None
}

/// Upstream's completion check after `manageJob`.
pub fn is_complete(job: &Job, succeeded: i32, active: i32) -> bool {
    match completions(job) {
        None => succeeded > 0 && active == 0,
        Some(c) => succeeded >= c && active == 0,
    }
}

/// What `manageJob` does to pods this sync.
#[derive(Debug, PartialEq)]
pub enum Manage<'a> {
    Nothing,
    Create(usize),
    Delete(Vec<&'a Pod>),
}

/// Upstream `manageJob`'s decision (creation back-off is the caller's).
pub fn manage<'a>(job: &Job, active: &[&'a Pod], counts: &Counts, now: Timestamp) -> Manage<'a> {
    if is_suspended(job) {
        return Manage::Delete(for_removal(active, active.len(), now));
    }
    let n_active = active.len() as i32;
    let parallelism = parallelism(job);
    let want = match completions(job) {
        None if counts.succeeded > 0 => n_active,
        None => parallelism,
        Some(c) => (c - counts.succeeded).clamp(0, parallelism.max(0)),
    };
    let rm = (n_active - want).max(0) as usize;
    let mut to_delete = if is_indexed(job) {
        super::indexed::for_removal(active, completions(job).unwrap_or(0), rm, now)
    } else {
        for_removal(active, rm, now)
    };
    if !to_delete.is_empty() {
        to_delete.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
        return Manage::Delete(to_delete);
    }
    let terminating = if only_replace_failed_pods(job) {
        counts.terminating
    } else {
        0
    };
    let diff = want - terminating - n_active;
    if diff > 0 {
        return Manage::Create((diff as usize).min(MAX_POD_CREATE_DELETE_PER_SYNC));
    }
    Manage::Nothing
}

/// Upstream `activePodsForRemoval` (NonIndexed): `controller.ActivePods`
/// order, the earliest-stage pods first.
fn for_removal<'a>(active: &[&'a Pod], n: usize, now: Timestamp) -> Vec<&'a Pod> {
    let mut ranked: Vec<(&Pod, usize)> = active.iter().map(|p| (*p, 0)).collect();
    crate::controller_utils::sort_pods_for_deletion(&mut ranked, now);
    ranked.into_iter().take(n).map(|(p, _)| p).collect()
}

/// Upstream backoff (`backoff_utils.go` `getRemainingTime`): 10s doubling
/// per consecutive failure, capped at 6 minutes, counted from the last one.
pub fn backoff_remaining(
    failures: u32,
    last_failure: Option<Timestamp>,
    now: Timestamp,
) -> Duration {
    let Some(last) = last_failure else {
        return Duration::ZERO;
    };
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = (failures - 1).min(16);
    let backoff = DEFAULT_POD_FAILURE_BACKOFF
        .saturating_mul(1u32 << exp)
        .min(MAX_POD_FAILURE_BACKOFF);
    let elapsed = Duration::try_from(now.duration_since(last)).unwrap_or_default();
    backoff.saturating_sub(elapsed)
}
