//! Finalizer-based pod accounting (upstream `trackJobStatusAndRemoveFinalizers`,
//! `canRemoveFinalizer`, `cleanUncountedPodsWithoutFinalizers`,
//! `enactJobFinished`): finished pods go into
//! `status.uncountedTerminatedPods`, lose the tracking finalizer, then move
//! into the counters; the terminal condition waits for all of it.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;

use super::failure_policy;
use super::indexed::{is_indexed, valid_index};
use super::reconcile::{
    COND_COMPLETE, COND_FAILED, COND_SUCCESS_CRITERIA_MET, MAX_UNCOUNTED_PODS, completions,
    ensure_condition, has_tracking_finalizer, is_pod_failed, new_condition, uid, uncounted,
};
use crate::controller_utils::pod_phase;
/// Upstream `canRemoveFinalizer` (without per-index delays).
fn can_remove_finalizer(
    job: &Job,
    pod: &Pod,
    finished: bool,
    failed: bool,
    keep: &BTreeSet<String>,
) -> bool {
    if job.metadata.deletion_timestamp.is_some() || finished || pod_phase(pod) == "Succeeded" {
        return true;
    }
    // backoffLimitPerIndex: a failed pod waits for its replacement.
    failed && !keep.contains(uid(pod))
}

/// The first half of upstream `trackJobStatusAndRemoveFinalizers`: adds
/// finished pods to `status.uncountedTerminatedPods` and picks the pods
/// whose finalizer goes. `finishing_failed` is a FailureTarget/Failed
/// finish (every unfinished pod then counts as failed).
pub struct Tracking<'a> {
    pub remove_finalizer: Vec<&'a Pod>,
    /// Indexed Jobs count succeeded pods by index, not UID.
    pub new_succeeded_indexes: BTreeSet<i32>,
    pub status_changed: bool,
    pub reached_max: bool,
}

pub fn track_uncounted<'a>(
    job: &Job,
    status: &mut JobStatus,
    pods: &[&'a Pod],
    expected_rm: &BTreeSet<String>,
    finished: Option<&JobCondition>,
    prev_succeeded: &BTreeSet<i32>,
    keep: &BTreeSet<String>,
) -> Tracking<'a> {
    let (unc_succeeded, unc_failed) = uncounted(job);
    let indexed = is_indexed(job).then(|| completions(job).unwrap_or(0));
    let unc = status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);
    let succ = unc.succeeded.get_or_insert_with(Vec::new);
    let mut out = Tracking {
        remove_finalizer: Vec::new(),
        new_succeeded_indexes: BTreeSet::new(),
        status_changed: false,
        reached_max: false,
    };
    let mut new_failed = Vec::new();
    let failing = finished.is_some_and(|c| c.type_ != COND_SUCCESS_CRITERIA_MET);
    for pod in pods {
        let id = uid(pod);
        if !has_tracking_finalizer(pod) || expected_rm.contains(id) {
            continue;
        }
        let failed = is_pod_failed(pod, job);
        if !can_remove_finalizer(job, pod, finished.is_some(), failed, keep) {
            continue;
        }
        out.remove_finalizer.push(pod);
        let index = indexed.map(|c| valid_index(pod, c));
        if pod_phase(pod) == "Succeeded" && !unc_failed.contains(id) {
            if let Some(index) = index {
                if let Some(ix) = index.filter(|ix| !prev_succeeded.contains(ix)) {
                    out.new_succeeded_indexes.insert(ix);
                    out.status_changed = true;
                }
            } else if !unc_succeeded.contains(id) {
                succ.push(id.to_string());
                out.status_changed = true;
            }
        } else if (failed || failing)
            && !unc_failed.contains(id)
            && index.is_none_or(|ix| ix.is_some())
        {
            // An Ignore rule: the finalizer goes, the failure is not counted.
            if failure_policy::counts_as_failed(job, pod) {
                new_failed.push(id.to_string());
                out.status_changed = true;
            }
        }
        let total =
            out.new_succeeded_indexes.len() + succ.len() + unc_failed.len() + new_failed.len();
        if total >= MAX_UNCOUNTED_PODS {
            out.reached_max = true;
            break;
        }
    }
    if !new_failed.is_empty() {
        unc.failed.get_or_insert_with(Vec::new).extend(new_failed);
    }
    out
}

/// Upstream `cleanUncountedPodsWithoutFinalizers`: UIDs whose pods no
/// longer carry the finalizer move into the counters. Returns whether the
/// status changed.
pub fn clean_uncounted(status: &mut JobStatus, with_finalizer: &BTreeSet<String>) -> bool {
    let Some(unc) = status.uncounted_terminated_pods.as_mut() else {
        return false;
    };
    let mut changed = false;
    let mut move_out = |list: &mut Option<Vec<String>>, counter: &mut Option<i32>| {
        let Some(v) = list.as_mut() else { return };
        let before = v.len();
        v.retain(|u| with_finalizer.contains(u));
        if v.len() != before {
            *counter = Some(counter.unwrap_or(0) + (before - v.len()) as i32);
            changed = true;
        }
    };
    move_out(&mut unc.succeeded, &mut status.succeeded);
    move_out(&mut unc.failed, &mut status.failed);
    changed
}

/// Upstream `enactJobFinished`: the terminal condition goes on once no
/// pod is uncounted or terminating. Returns whether it did.
pub fn enact_finished(
    status: &mut JobStatus,
    finished: &JobCondition,
    terminating: i32,
    now: Timestamp,
) -> bool {
    let uncounted = status.uncounted_terminated_pods.as_ref().map_or(0, |u| {
        u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
    });
    if uncounted > 0 || terminating > 0 {
        return false;
    }
    let list = status.conditions.get_or_insert_with(Vec::new);
    let reason = finished.reason.as_deref().unwrap_or_default();
    let message = finished.message.as_deref().unwrap_or_default();
    ensure_condition(
        list,
        &finished.type_,
        &finished.status,
        reason,
        message,
        now,
    );
    if finished.type_ == COND_COMPLETE {
        status.completion_time = list
            .iter()
            .find(|c| c.type_ == COND_COMPLETE)
            .and_then(|c| c.last_transition_time.clone());
    }
    true
}

/// The terminal condition an interim one leads to: FailureTarget → Failed,
/// SuccessCriteriaMet → Complete, same reason and message.
pub fn terminal_for(interim: &JobCondition, now: Timestamp) -> JobCondition {
    let type_ = if interim.type_ == COND_SUCCESS_CRITERIA_MET {
        COND_COMPLETE
    } else {
        COND_FAILED
    };
    new_condition(
        type_,
        "True",
        interim.reason.as_deref().unwrap_or_default(),
        interim.message.as_deref().unwrap_or_default(),
        now,
    )
}
