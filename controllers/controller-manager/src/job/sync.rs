//! Upstream `syncJob` and `trackJobStatusAndRemoveFinalizers`: reads the
//! caches, asks [`super::reconcile`] what to do, writes pods and status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use component_base::ownerref;
use component_base::selectors::Selector;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::reconcile::{self as rc, Counts, Manage};
use super::{Controller, accounting, indexed, per_index};
use crate::controller::SyncResult;
use crate::controller_utils::{Key, is_pod_active, is_pod_terminating};
use crate::error::Error;
use crate::events::EventSpec;

/// Upstream `JobControllerName`, the value of `spec.managedBy` we own.
const MANAGED_BY_JOB_CONTROLLER: &str = "kubernetes.io/job-controller";

/// Indexed Jobs' per-sync state (empty for NonIndexed).
#[derive(Default)]
struct IndexState {
    /// Succeeded indexes in status, and with this sync's pods.
    prev_succeeded: BTreeSet<i32>,
    succeeded: BTreeSet<i32>,
    /// With backoffLimitPerIndex: failed indexes, and per index to retry
    /// the failed pod whose finalizer waits for its replacement.
    failed: Option<BTreeSet<i32>>,
    delayed: BTreeMap<i32, Pod>,
}

impl IndexState {
    fn of(job: &Job, pods: &[&Pod], active: &[&Pod], expected_rm: &BTreeSet<String>) -> Self {
        if !indexed::is_indexed(job) {
            return Self::default();
        }
        let (prev_succeeded, succeeded) = indexed::succeeded_indexes(job, pods);
        let mut state = IndexState {
            prev_succeeded,
            succeeded,
            ..Default::default()
        };
        if per_index::backoff_limit_per_index(job).is_some() {
            let failed = per_index::failed_indexes(job, pods);
            let delayed = per_index::delayed_deletion(
                job,
                pods,
                active,
                &state.succeeded,
                &failed,
                expected_rm,
            );
            state.delayed = delayed.into_iter().map(|(i, p)| (i, p.clone())).collect();
            state.failed = Some(failed);
        }
        state
    }

    /// The interim condition the indexes call for, if any (upstream order:
    /// failed indexes, then the success policy).
    fn verdict(&self, job: &Job, now: Timestamp) -> Option<JobCondition> {
        if let Some(failed) = &self.failed
            && let Some((reason, msg)) = per_index::failure_reason(job, failed, &self.succeeded)
        {
            return Some(rc::new_condition(
                rc::COND_FAILURE_TARGET,
                "True",
                reason,
                msg,
                now,
            ));
        }
        let msg = indexed::match_success_policy(job, &self.succeeded)?;
        Some(rc::new_condition(
            rc::COND_SUCCESS_CRITERIA_MET,
            "True",
            rc::REASON_SUCCESS_POLICY,
            &msg,
            now,
        ))
    }

    /// UIDs whose finalizer removal waits for a replacement pod.
    fn keep_finalizer(&self) -> BTreeSet<String> {
        self.delayed
            .values()
            .map(|p| rc::uid(p).to_string())
            .collect()
    }
}

/// What one sync decided before tracking finished pods.
struct Pass {
    status: JobStatus,
    ix: IndexState,
    counts: Counts,
    finished: Option<JobCondition>,
    needs_flush: bool,
    requeue: Option<Duration>,
    error: Option<Error>,
}

impl Controller {
    pub(super) async fn sync_job(&self, key: &Key) -> SyncResult {
        let Some(ns) = key.namespace.as_deref() else {
            return Ok(None);
        };
        let k = key.to_string();
        let job = self.jobs.get(&ObjectRef::new(&key.name).within(ns));
        self.release_orphans(key, job.as_deref()).await?;
        let Some(job) = job else {
            self.expectations.delete(&k);
            self.finalizers.delete(&k);
            self.backoff.remove(&k);
            return Ok(None);
        };
        let managed_by = job.spec.as_ref().and_then(|s| s.managed_by.as_deref());
        if managed_by.is_some_and(|m| m != MANAGED_BY_JOB_CONTROLLER) {
            return Ok(None);
        }
        if rc::is_finished(&job) {
            self.backoff.remove(&k);
            return Ok(None);
        }
        let selector = match Selector::from_label_selector(
            job.spec.as_ref().and_then(|s| s.selector.as_ref()),
        ) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(job = %key, error = %err, "invalid selector; not syncing");
                return Ok(None);
            }
        };
        let satisfied = self.expectations.satisfied(&k);
        let pods = self.claim_pods(&job, &selector).await?;
        let pods: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let now = Timestamp::now();
        let pass = self.decide(&job, key, &pods, satisfied, now).await;
        let requeue = pass.requeue;
        let error = self.track_and_flush(&job, key, &pods, pass, now).await?;
        error.map_or(Ok(requeue), Err)
    }

    /// Upstream `syncJob` up to the status tracking: finished condition,
    /// pod management, the Suspended condition.
    async fn decide(
        &self,
        job: &Job,
        key: &Key,
        pods: &[&Pod],
        satisfied: bool,
        now: Timestamp,
    ) -> Pass {
        let k = key.to_string();
        let expected_rm = self.finalizers.expected(&k);
        let mut counts = rc::count(job, pods, &expected_rm);
        let mut status = job.status.clone().unwrap_or_default();
        let mut needs_flush = false;
        if status.start_time.is_none() && !rc::is_suspended(job) {
            status.start_time = Some(Time(now));
            needs_flush = true;
        }
        let new_failed: Vec<String> = pods
            .iter()
            .filter(|p| rc::has_tracking_finalizer(p) && !expected_rm.contains(rc::uid(p)))
            .filter(|p| rc::is_pod_failed(p, job))
            .map(|p| rc::uid(p).to_string())
            .collect();
        let record = self
            .backoff
            .update(&k, counts.new_succeeded, &new_failed, now);
        let job_now = Job {
            status: Some(status.clone()),
            ..job.clone()
        };
        let mut finished = rc::failure_or_success_target(job, pods, &counts, now);
        let active: Vec<&Pod> = pods.iter().copied().filter(|p| is_pod_active(p)).collect();
        let ix = IndexState::of(job, pods, &active, &expected_rm);
        if indexed::is_indexed(job) {
            counts.succeeded = ix.succeeded.len() as i32;
            if finished.is_none() {
                finished = ix.verdict(job, now);
            }
        }
        let mut requeue = None;
        if finished.is_none() {
            requeue = rc::deadline_remaining(&job_now, now);
        }
        let mut error = None;
        if finished.is_some() {
            let (ready, deleted, err) = self.delete_active_pods(job, &active).await;
            if deleted != counts.active || !satisfied {
                finished = None;
            }
            counts.active -= deleted;
            counts.terminating += deleted;
            counts.ready -= ready;
            error = err;
        } else {
            let mut managed = false;
            if satisfied && job.metadata.deletion_timestamp.is_none() {
                let backoff = if ix.failed.is_some() {
                    Duration::ZERO // each index backs off on its own
                } else {
                    rc::backoff_remaining(
                        record.failures_after_last_success,
                        record.last_failure,
                        now,
                    )
                };
                let plan = (&active[..], pods, &ix);
                match self.manage(job, key, plan, &mut counts, backoff, now).await {
                    Ok(after) => requeue = min_some(requeue, after),
                    Err(err) => error = Some(err),
                }
                managed = true;
            }
            if rc::is_complete(job, counts.succeeded, counts.active) {
                finished = Some(rc::new_condition(
                    rc::COND_SUCCESS_CRITERIA_MET,
                    "True",
                    rc::REASON_COMPLETIONS_REACHED,
                    rc::MSG_COMPLETIONS_REACHED,
                    now,
                ));
            } else if managed {
                needs_flush |= self.suspend_condition(job, &mut status, now);
            }
        }
        let prev = job.status.clone().unwrap_or_default();
        needs_flush |= prev.active.unwrap_or(0) != counts.active
            || prev.ready != Some(counts.ready)
            || prev.terminating != Some(counts.terminating);
        status.active = Some(counts.active);
        status.ready = Some(counts.ready);
        status.terminating = Some(counts.terminating);
        Pass {
            status,
            ix,
            counts,
            finished,
            needs_flush,
            requeue,
            error,
        }
    }

    /// Upstream `manageJob` side effects; returns a delay to sync again
    /// after when creation is backed off.
    async fn manage(
        &self,
        job: &Job,
        key: &Key,
        (active, pods, ix): (&[&Pod], &[&Pod], &IndexState),
        counts: &mut Counts,
        backoff: Duration,
        now: Timestamp,
    ) -> Result<Option<Duration>, Error> {
        match rc::manage(job, active, counts, now) {
            Manage::Nothing => Ok(None),
            Manage::Delete(pods) => {
                let (ready, deleted, err) = self.delete_job_pods(job, key, &pods).await;
                counts.active -= deleted;
                counts.terminating += deleted;
                counts.ready -= ready;
                err.map_or(Ok(None), Err)
            }
            Manage::Create(_) if !backoff.is_zero() => Ok(Some(backoff)),
            Manage::Create(n) => {
                let indexes: Vec<Option<i32>> = if indexed::is_indexed(job) {
                    let (indexes, wait) = pending_indexes(job, active, pods, ix, n, now);
                    if indexes.is_empty() {
                        return Ok(wait);
                    }
                    indexes.into_iter().map(Some).collect()
                } else {
                    vec![None; n]
                };
                let delayed = ix.failed.as_ref().map(|_| &ix.delayed);
                let result = self.create_pods(job, key, &indexes, delayed).await;
                match result {
                    Ok(created) => {
                        counts.active += created;
                        Ok(None)
                    }
                    Err(err) => Err(err),
                }
            }
        }
    }

    /// The Suspended condition and its events (`Suspended` / `Resumed`);
    /// resuming restarts the active-deadline clock, as upstream.
    fn suspend_condition(&self, job: &Job, status: &mut JobStatus, now: Timestamp) -> bool {
        let list = status.conditions.get_or_insert_with(Vec::new);
        let regarding = job.object_ref(&());
        if rc::is_suspended(job) {
            let changed = rc::ensure_condition(
                list,
                rc::COND_SUSPENDED,
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            );
            if changed {
                self.events
                    .publish(&regarding, &EventSpec::normal("Suspended", "Job suspended"));
            }
            return changed;
        }
        let changed = rc::ensure_condition(
            list,
            rc::COND_SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now,
        );
        if changed {
            self.events
                .publish(&regarding, &EventSpec::normal("Resumed", "Job resumed"));
            status.start_time = Some(Time(now));
        }
        changed
    }

    /// Upstream `trackJobStatusAndRemoveFinalizers` +
    /// `flushUncountedAndRemoveFinalizers` + `enactJobFinished`. Returns
    /// the management error to report after the status is written.
    async fn track_and_flush(
        &self,
        job: &Job,
        key: &Key,
        pods: &[&Pod],
        pass: Pass,
        now: Timestamp,
    ) -> Result<Option<Error>, Error> {
        let k = key.to_string();
        let Pass {
            mut status,
            ix,
            counts,
            mut finished,
            mut needs_flush,
            error,
            ..
        } = pass;
        let expected_rm = self.finalizers.expected(&k);
        let mut with_finalizer: BTreeSet<String> = pods
            .iter()
            .filter(|p| rc::has_tracking_finalizer(p) && !expected_rm.contains(rc::uid(p)))
            .map(|p| rc::uid(p).to_string())
            .collect();
        needs_flush |= accounting::clean_uncounted(&mut status, &with_finalizer);
        let tracking = accounting::track_uncounted(
            job,
            &mut status,
            pods,
            &expected_rm,
            finished.as_ref(),
            &ix.prev_succeeded,
            &ix.keep_finalizer(),
        );
        needs_flush |= tracking.status_changed;
        if indexed::is_indexed(job) {
            let failed = ix.failed.as_ref().map(indexed::format_indexes);
            if status.failed_indexes != failed {
                status.failed_indexes = failed;
                needs_flush = true;
            }
            let mut all = ix.succeeded;
            all.extend(tracking.new_succeeded_indexes.iter().copied());
            let text = indexed::format_indexes(&all);
            if status.completed_indexes.as_deref().unwrap_or_default() != text {
                needs_flush = true;
            }
            status.succeeded = Some(all.len() as i32);
            status.completed_indexes = Some(text).filter(|t| !t.is_empty());
        }
        if let Some(interim) = finished.take() {
            let list = status.conditions.get_or_insert_with(Vec::new);
            if !list
                .iter()
                .any(|c| c.type_ == interim.type_ && c.status == "True")
            {
                list.push(interim.clone());
                needs_flush = true;
            }
            finished = Some(accounting::terminal_for(&interim, now));
        }
        let mut current = job.clone();
        if needs_flush {
            current = self.write_status(&current, status.clone()).await?;
            status = current.status.clone().unwrap_or_default();
            needs_flush = false;
        }
        let (removed, rm_error) = self.remove_finalizers(&k, &tracking.remove_finalizer).await;
        for uid in &removed {
            with_finalizer.remove(uid);
        }
        needs_flush |= accounting::clean_uncounted(&mut status, &with_finalizer);
        if let Some(err) = rm_error {
            if needs_flush {
                self.write_status(&current, status).await?;
            }
            return Err(err);
        }
        let done = !tracking.reached_max
            && finished.as_ref().is_some_and(|f| {
                accounting::enact_finished(&mut status, f, counts.terminating, now)
            });
        if needs_flush || done {
            let written = self.write_status(&current, status).await?;
            if done && let Some(f) = &finished {
                self.record_finished(&written, f);
            }
        }
        Ok(error)
    }

    async fn write_status(&self, job: &Job, status: JobStatus) -> Result<Job, Error> {
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let next = Job {
            status: Some(status),
            ..job.clone()
        };
        self.job_control.update_status(ns, &next).await
    }

    /// Upstream `recordJobFinished`'s events.
    fn record_finished(&self, job: &Job, cond: &JobCondition) {
        let regarding = job.object_ref(&());
        if cond.type_ == rc::COND_COMPLETE {
            let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
            if rc::completions(job).is_some_and(|c| succeeded > c) {
                self.events.publish(
                    &regarding,
                    &EventSpec::warning(
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached",
                    ),
                );
            }
            self.events
                .publish(&regarding, &EventSpec::normal("Completed", "Job completed"));
        } else {
            let reason = cond.reason.as_deref().unwrap_or_default();
            let message = cond.message.clone().unwrap_or_default();
            self.events
                .publish(&regarding, &EventSpec::warning(reason, message));
        }
    }

    /// Upstream `handleOrphanPod` for pods still held by the finalizer of a
    /// Job that is gone (or was replaced under the same name).
    async fn release_orphans(&self, key: &Key, job: Option<&Job>) -> Result<(), Error> {
        let live_uid = job.and_then(|j| j.metadata.uid.clone());
        let ns = key.namespace.clone();
        let orphans = self.pods.state_filter(|p| {
            p.metadata.namespace == ns
                && rc::has_tracking_finalizer(p)
                && ownerref::get_controller_of(&p.metadata).is_some_and(|o| {
                    o.kind == "Job" && o.name == key.name && Some(&o.uid) != live_uid.as_ref()
                })
        });
        if orphans.is_empty() {
            return Ok(());
        }
        // No expectations: a pod whose patch is not yet visible is simply
        // patched again (NotFound means it is gone already).
        for pod in &orphans {
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            tracing::debug!(job = %key, pod = %pod.name_any(), "removing finalizer of orphan pod");
            let result = self
                .pod_control
                .patch_pod(ns, &pod.name_any(), super::pods::remove_finalizer_patch())
                .await;
            match result {
                Err(err) if !err.is_not_found() => return Err(err),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Upstream `firstPendingIndexes` and, with backoffLimitPerIndex,
/// `getPodCreationInfoForIndependentIndexes`: the indexes to create now,
/// or how long until the first one's back-off ends.
fn pending_indexes(
    job: &Job,
    active: &[&Pod],
    pods: &[&Pod],
    ix: &IndexState,
    n: usize,
    now: Timestamp,
) -> (Vec<i32>, Option<Duration>) {
    let completions = rc::completions(job).unwrap_or(0);
    let mut non_pending = ix.succeeded.clone();
    non_pending.extend(ix.failed.iter().flatten().copied());
    if rc::only_replace_failed_pods(job) {
        let terminating = pods.iter().filter(|p| is_pod_terminating(p));
        non_pending.extend(terminating.filter_map(|p| indexed::completion_index(p)));
    }
    let indexes = indexed::first_pending(active, &non_pending, n, completions);
    if ix.failed.is_none() {
        return (indexes, None);
    }
    let remaining = |i: &i32| per_index::remaining_for_index(ix.delayed.get(i), now);
    let ready: Vec<i32> = indexes
        .iter()
        .copied()
        .filter(|i| remaining(i).is_zero())
        .collect();
    if !ready.is_empty() {
        return (ready, None);
    }
    (Vec::new(), indexes.iter().map(remaining).min())
}

fn min_some(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
