//! Upstream `sync`, `syncCronJob` and `cleanupFinishedJobs`: reads the
//! caches, asks [`super::reconcile`] what to do, writes Jobs and status.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, PropagationPolicy};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::reconcile::{self as rc, Decision};
use super::{Controller, owner_cronjob_key};
use crate::controller::SyncResult;
use crate::controller_utils::Key;
use crate::error::Error;
use crate::events::EventSpec;

impl Controller {
    /// Upstream `sync`.
    pub(crate) async fn sync_cronjob(&self, key: &Key) -> SyncResult {
        let Some(ns) = key.namespace.as_deref() else {
            return Ok(None);
        };
        let Some(cached) = self.cronjobs.get(&ObjectRef::new(&key.name).within(ns)) else {
            return Ok(None);
        };
        let jobs = self.jobs_to_be_reconciled(key);
        let jobs: Vec<&Job> = jobs.iter().map(|j| j.as_ref()).collect();
        let mut cj = (*cached).clone();
        let cleaned = self.cleanup_finished_jobs(&mut cj, &jobs).await;
        let now = Timestamp::now();
        let (requeue, updated, result) = self.sync_one(&mut cj, &jobs, now).await;
        if let Err(err) = &result {
            tracing::info!(cronjob = %key, error = %err, "error reconciling cronjob");
        }
        if cleaned || updated {
            self.cronjob_control.update_status(ns, &cj).await?;
        }
        match requeue {
            Some(after) => Ok(Some(after)),
            None => result.map(|()| None),
        }
    }

    /// Upstream `getJobsToBeReconciled`: Jobs whose controller reference
    /// names this CronJob.
    fn jobs_to_be_reconciled(&self, key: &Key) -> Vec<std::sync::Arc<Job>> {
        self.jobs
            .state()
            .into_iter()
            .filter(|j| owner_cronjob_key(j).as_ref() == Some(key))
            .collect()
    }

    fn publish(&self, cj: &CronJob, spec: &EventSpec) {
        self.events.publish(&cj.object_ref(&()), spec);
    }

    /// Upstream `cleanupFinishedJobs`; true when the active list changed.
    pub(crate) async fn cleanup_finished_jobs(&self, cj: &mut CronJob, jobs: &[&Job]) -> bool {
        let mut updated = false;
        for job in rc::jobs_over_history_limits(cj, jobs) {
            updated |= self.delete_job(cj, job).await;
        }
        updated
    }

    /// Upstream `deleteJob`: background deletion, then out of the active
    /// list.
    async fn delete_job(&self, cj: &mut CronJob, job: &Job) -> bool {
        let ns = job.namespace().unwrap_or_default();
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let name = job.name_any();
        if let Err(err) = self.job_control.delete_with(&ns, &name, params).await {
            self.publish(
                cj,
                &EventSpec::warning("FailedDelete", format!("Deleted job: {err}")),
            );
            return false;
        }
        rc::delete_from_active_list(cj, job.metadata.uid.as_deref().unwrap_or_default());
        self.publish(
            cj,
            &EventSpec::normal("SuccessfulDelete", format!("Deleted job {name}")),
        );
        true
    }

    /// Upstream `syncCronJob`: (requeue after, status changed, error).
    pub(crate) async fn sync_one(
        &self,
        cj: &mut CronJob,
        jobs: &[&Job],
        now: Timestamp,
    ) -> (Option<Duration>, bool, Result<(), Error>) {
        let mut updated = match self.reconcile_children(cj, jobs).await {
            Ok(updated) => updated,
            Err(err) => return (None, false, Err(err)),
        };
        match self.missing_active(cj, jobs).await {
            Ok(changed) => updated |= changed,
            Err(err) => return (None, updated, Err(err)),
        }
        if cj.metadata.deletion_timestamp.is_some() {
            return (None, updated, Ok(()));
        }
        if let Some(tz) = rc::time_zone(cj)
            && let Err(err) = super::schedule::load_location(tz)
        {
            let msg = format!("invalid timeZone: {tz:?}: {err}");
            self.publish(cj, &EventSpec::warning("UnknownTimeZone", msg));
            return (None, updated, Ok(()));
        }
        if rc::is_suspended(cj) {
            return (None, updated, Ok(()));
        }
        let (sched, warning) = rc::parse_schedule(cj);
        if let Some(warning) = warning {
            self.publish(cj, &warning);
        }
        let sched = match sched {
            Ok(sched) => sched,
            Err(err) => {
                let msg = format!("unparseable schedule: {:?} : {err}", rc::schedule_str(cj));
                self.publish(cj, &EventSpec::warning("UnparseableSchedule", msg));
                return (None, updated, Ok(()));
            }
        };
        let mut events = Vec::new();
        let decision = rc::decide(cj, now, &sched, &mut events);
        for event in &events {
            self.publish(cj, event);
        }
        match decision {
            Decision::Wait(after) => (after, updated, Ok(())),
            Decision::Skip(event, after) => {
                self.publish(cj, &event);
                (after, updated, Ok(()))
            }
            Decision::Invalid(event) => {
                self.publish(cj, &event);
                (None, updated, Ok(()))
            }
            Decision::Start {
                scheduled,
                replace,
                requeue,
            } => {
                if replace {
                    match self.replace_active(cj).await {
                        Ok(changed) => updated |= changed,
                        Err(err) => return (None, updated, Err(err)),
                    }
                }
                match self.start_job(cj, scheduled).await {
                    Ok(()) => (requeue, true, Ok(())),
                    Err(err) => (None, updated, Err(err)),
                }
            }
        }
    }

    /// The first loop of upstream `syncCronJob`: finished Jobs leave the
    /// active list, unknown unfinished ones are reported, the last
    /// successful time moves forward.
    async fn reconcile_children(&self, cj: &mut CronJob, jobs: &[&Job]) -> Result<bool, Error> {
        let mut updated = false;
        for job in jobs {
            let uid = job.metadata.uid.as_deref().unwrap_or_default();
            let found = rc::in_active_list(cj, uid);
            let finished = rc::finished_condition(job);
            if !found && finished.is_none() {
                let ns = cj.namespace().unwrap_or_default();
                let fresh = self.cronjob_control.get(&ns, &cj.name_any()).await?;
                if rc::in_active_list(&fresh, uid) {
                    *cj = fresh;
                    continue;
                }
                let msg = format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    job.name_any()
                );
                self.publish(cj, &EventSpec::warning("UnexpectedJob", msg));
            } else if let (true, Some(cond)) = (found, finished) {
                rc::delete_from_active_list(cj, uid);
                let msg = format!(
                    "Saw completed job: {}, condition: {}",
                    job.name_any(),
                    cond.type_
                );
                self.publish(cj, &EventSpec::normal("SawCompletedJob", msg));
                updated = true;
            } else if finished.is_some_and(|c| c.type_ == "Complete") {
                updated |= advance_last_successful(cj, job);
            }
        }
        Ok(updated)
    }

    /// Active references whose Job is not in the cache: a live GET decides
    /// whether it went missing (upstream `MissingJob`).
    async fn missing_active(&self, cj: &mut CronJob, jobs: &[&Job]) -> Result<bool, Error> {
        let children: BTreeSet<&str> = jobs
            .iter()
            .filter_map(|j| j.metadata.uid.as_deref())
            .collect();
        let mut updated = false;
        for r in rc::active(cj).to_vec() {
            let uid = r.uid.as_deref().unwrap_or_default();
            if children.contains(uid) {
                continue;
            }
            let ns = r.namespace.as_deref().unwrap_or_default();
            let name = r.name.as_deref().unwrap_or_default();
            match self.job_control.get(ns, name).await {
                Err(err) if err.is_not_found() => {
                    let msg = format!("Active job went missing: {name}");
                    self.publish(cj, &EventSpec::normal("MissingJob", msg));
                    rc::delete_from_active_list(cj, uid);
                    updated = true;
                }
                Err(err) => return Err(err),
                Ok(_) => {}
            }
        }
        Ok(updated)
    }

    /// concurrencyPolicy Replace: every active Job is deleted first.
    async fn replace_active(&self, cj: &mut CronJob) -> Result<bool, Error> {
        let mut updated = false;
        for r in rc::active(cj).to_vec() {
            let ns = r.namespace.as_deref().unwrap_or_default();
            let name = r.name.as_deref().unwrap_or_default();
            let job = match self.job_control.get(ns, name).await {
                Ok(job) => job,
                Err(err) => {
                    self.publish(
                        cj,
                        &EventSpec::warning("FailedGet", format!("Get job: {err}")),
                    );
                    return Err(err);
                }
            };
            if !self.delete_job(cj, &job).await {
                return Err(Error::Controller {
                    name: super::CRONJOB_CONTROLLER,
                    reason: format!("could not replace job {ns}/{name}"),
                });
            }
            updated = true;
        }
        Ok(updated)
    }

    /// Creates the Job for `scheduled` (an existing one of that name is
    /// taken as ours) and records it in the status.
    async fn start_job(&self, cj: &mut CronJob, scheduled: Timestamp) -> Result<(), Error> {
        let ns = cj.namespace().unwrap_or_default();
        let request = rc::job_from_template(cj, scheduled).map_err(|e| Error::InvalidObject {
            object: format!("cronjob {ns}/{}", cj.name_any()),
            reason: e.to_string(),
        })?;
        let created = match self.job_control.create(&ns, &request).await {
            Ok(job) => {
                let msg = format!("Created job {}", job.name_any());
                self.publish(cj, &EventSpec::normal("SuccessfulCreate", msg));
                job
            }
            Err(err) if err.is_namespace_terminating() => return Err(err),
            Err(err) if err.is_already_exists() => {
                tracing::info!(job = %request.name_any(), "job already exists");
                self.job_control.get(&ns, &request.name_any()).await?
            }
            Err(err) => {
                let msg = format!("Error creating job: {err}");
                self.publish(cj, &EventSpec::warning("FailedCreate", msg));
                return Err(err);
            }
        };
        let status = cj.status.get_or_insert_with(CronJobStatus::default);
        status
            .active
            .get_or_insert_with(Vec::new)
            .push(rc::job_ref(&created));
        status.last_schedule_time = Some(Time(scheduled));
        Ok(())
    }
}

/// `lastSuccessfulTime` follows the newest completion.
fn advance_last_successful(cj: &mut CronJob, job: &Job) -> bool {
    let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.clone()) else {
        return false;
    };
    let status = cj.status.get_or_insert_with(CronJobStatus::default);
    match &status.last_successful_time {
        Some(last) if last.0 >= done.0 => false,
        _ => {
            status.last_successful_time = Some(done);
            true
        }
    }
}
