//! Pure decisions of the CronJob controller (upstream
//! `pkg/controller/cronjob/utils.go` and the decision half of
//! `syncCronJob`): the time is passed in.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobCondition};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;

use super::schedule::{Schedule, ScheduleError, load_location};
use crate::events::EventSpec;

/// Upstream `batchv1.CronJobScheduledTimestampAnnotation`.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Upstream `nextScheduleDelta`: requeue a little after the schedule time.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// Upstream's "arbitrarily picked 100, as more than 80, but less than lots".
const MAX_MISSED: i64 = 100;

/// Upstream `missedSchedulesType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    Many,
}

/// Why there is no next schedule time although the spec parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidSchedule {
    #[error("time difference between two schedules is less than 1 second")]
    TooClose,
}

fn spec(cj: &CronJob) -> Option<&k8s_openapi::api::batch::v1::CronJobSpec> {
    Some(&cj.spec)
}

pub fn schedule_str(cj: &CronJob) -> &str {
    spec(cj).map(|s| s.schedule.as_str()).unwrap_or_default()
}

pub fn time_zone(cj: &CronJob) -> Option<&str> {
    spec(cj).and_then(|s| s.time_zone.as_deref())
}

pub fn is_suspended(cj: &CronJob) -> bool {
    spec(cj).and_then(|s| s.suspend).unwrap_or(false)
}

pub fn concurrency_policy(cj: &CronJob) -> &str {
    spec(cj)
        .and_then(|s| s.concurrency_policy.as_deref())
        .unwrap_or("Allow")
}

pub fn active(cj: &CronJob) -> &[ObjectReference] {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_deref())
        .unwrap_or_default()
}

fn last_schedule_time(cj: &CronJob) -> Option<Timestamp> {
    cj.status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(|t| t.0)
}

/// Upstream `formatSchedule` + `cron.ParseStandard`: the schedule in its
/// `timeZone` (UTC without one). A `TZ=`/`CRON_TZ=` in the schedule is
/// honoured with upstream's `UnsupportedSchedule` warning.
pub fn parse_schedule(cj: &CronJob) -> (Result<Schedule, ScheduleError>, Option<EventSpec>) {
    let raw = schedule_str(cj);
    if raw.contains("TZ") {
        let warning = EventSpec::warning(
            "UnsupportedSchedule",
            format!(
                "CRON_TZ or TZ used in schedule {raw:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"
            ),
        );
        return (Schedule::parse(raw, &TimeZone::UTC), Some(warning));
    }
    let tz = match time_zone(cj).map(load_location) {
        Some(Ok(tz)) => tz,
        Some(Err(err)) => return (Err(err), None),
        None => TimeZone::UTC,
    };
    (Schedule::parse(raw, &tz), None)
}

/// Upstream `getJobName`: the scheduled time in minutes since the epoch.
pub fn job_name(cj_name: &str, scheduled: Timestamp) -> String {
    format!("{cj_name}-{}", scheduled.as_second().div_euclid(60))
}

/// Upstream `mostRecentScheduleTime`: the earliest time considered, the
/// most recent unmet schedule time (if any) and how many were missed.
pub fn most_recent_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    include_starting_deadline: bool,
) -> Result<(Timestamp, Option<Timestamp>, Missed), InvalidSchedule> {
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    let mut earliest = last_schedule_time(cj).unwrap_or(created);
    if include_starting_deadline
        && let Some(deadline) = spec(cj).and_then(|s| s.starting_deadline_seconds)
    {
        let scheduling_deadline = now - SignedDuration::from_secs(deadline);
        if scheduling_deadline > earliest {
            earliest = scheduling_deadline;
        }
    }
    // Upstream's zero time (no activation within five years) is before
    // every `now` and 0s from its successor: an invalid schedule.
    let Some(t1) = sched.next(earliest) else {
        return Err(InvalidSchedule::TooClose);
    };
    if now < t1 {
        return Ok((earliest, None, Missed::None));
    }
    let Some(t2) = sched.next(t1) else {
        return Err(InvalidSchedule::TooClose);
    };
    if now < t2 {
        return Ok((earliest, Some(t1), Missed::None));
    }
    let between = t2.duration_since(t1).as_secs_f64().round() as i64;
    if between < 1 {
        return Err(InvalidSchedule::TooClose);
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed = elapsed / between + 1;
    // Start one interval early and walk the schedule, so irregular ones
    // (`30 6-16/4 * * 1-5`) land on a real activation.
    let potential = t1.as_second() + (missed - 2) * between;
    let mut most_recent = None;
    let mut t = Timestamp::from_second(potential)
        .ok()
        .and_then(|p| sched.next(p));
    while let Some(cur) = t.filter(|cur| *cur <= now) {
        most_recent = Some(cur);
        t = sched.next(cur);
    }
    let kind = if missed > MAX_MISSED {
        Missed::Many
    } else {
        Missed::Few
    };
    Ok((earliest, most_recent, kind))
}

/// Upstream `nextScheduleTime`: the unmet time to start now, with the
/// `TooManyMissedTimes` warning when over 100 were missed.
pub fn next_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
) -> (
    Result<Option<Timestamp>, InvalidSchedule>,
    Option<EventSpec>,
) {
    match most_recent_schedule_time(cj, now, sched, true) {
        Err(err) => (Err(err), None),
        Ok((_, None, _)) => (Ok(None), None),
        Ok((_, Some(t), _)) if t > now => (Ok(None), None),
        Ok((_, Some(t), missed)) => {
            let warning = (missed == Missed::Many).then(|| {
                EventSpec::warning(
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                )
            });
            (Ok(Some(t)), warning)
        }
    }
}

/// Upstream `nextScheduleTimeDuration`: when to look at the CronJob again.
pub fn next_schedule_time_duration(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
) -> Option<Duration> {
    let from = match most_recent_schedule_time(cj, now, sched, false) {
        Err(_) => now,
        Ok((_, Some(t), _)) => t,
        Ok((earliest, None, _)) => earliest,
    };
    let next = sched.next(from)?;
    let wait = next.duration_since(now);
    // A negative wait requeues immediately, as AddAfter does.
    let wait = Duration::try_from(wait).unwrap_or_default();
    Some(wait + NEXT_SCHEDULE_DELTA)
}

/// What the scheduling half of `syncCronJob` decides once the active list
/// is current.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Nothing to start; look again after the duration (if any).
    Wait(Option<Duration>),
    /// Skip this start with an event, then look again.
    Skip(EventSpec, Option<Duration>),
    /// Start the Job for `scheduled` (after deleting the active ones when
    /// `replace`), then look again.
    Start {
        scheduled: Timestamp,
        replace: bool,
        requeue: Option<Duration>,
    },
    /// The schedule cannot produce a time: a warning and no requeue.
    Invalid(EventSpec),
}

/// The scheduling decision (upstream `syncCronJob` after the active list
/// and suspend checks); `events` collects `TooManyMissedTimes`.
pub fn decide(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    events: &mut Vec<EventSpec>,
) -> Decision {
    let requeue = next_schedule_time_duration(cj, now, sched);
    let (next, warning) = next_schedule_time(cj, now, sched);
    events.extend(warning);
    let scheduled = match next {
        Err(err) => {
            return Decision::Invalid(EventSpec::warning(
                "InvalidSchedule",
                format!("invalid schedule: {} : {err}", schedule_str(cj)),
            ));
        }
        Ok(None) => return Decision::Wait(requeue),
        Ok(Some(t)) => t,
    };
    if let Some(deadline) = spec(cj).and_then(|s| s.starting_deadline_seconds)
        && scheduled + SignedDuration::from_secs(deadline) < now
    {
        let msg = format!(
            "Missed scheduled time to start a job: {}",
            rfc1123z(scheduled)
        );
        return Decision::Skip(EventSpec::warning("MissSchedule", msg), requeue);
    }
    let name = job_name(cj.metadata.name.as_deref().unwrap_or_default(), scheduled);
    if active(cj)
        .iter()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || last_schedule_time(cj) == Some(scheduled)
    {
        return Decision::Wait(requeue);
    }
    let policy = concurrency_policy(cj);
    if policy == "Forbid" && !active(cj).is_empty() {
        let event = EventSpec::normal(
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid",
        );
        return Decision::Skip(event, requeue);
    }
    Decision::Start {
        scheduled,
        replace: policy == "Replace",
        requeue,
    }
}

/// Go's `time.RFC1123Z` of a UTC time.
fn rfc1123z(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// Upstream `getJobFromTemplate2`: the Job for `scheduled`, with the
/// template's labels and annotations, the scheduled-timestamp annotation
/// (RFC 3339 in the CronJob's time zone) and the controller reference.
pub fn job_from_template(cj: &CronJob, scheduled: Timestamp) -> Result<Job, ScheduleError> {
    let tz = load_location(time_zone(cj).unwrap_or_default())?;
    let template = spec(cj).map(|s| &s.job_template);
    let template_meta = template.and_then(|t| t.metadata.as_ref());
    let mut annotations: BTreeMap<String, String> = template_meta
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.to_string(),
        rfc3339_in(scheduled, &tz),
    );
    let labels = template_meta
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(
                cj.metadata.name.as_deref().unwrap_or_default(),
                scheduled,
            )),
            namespace: cj.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            creation_timestamp: Some(Time(scheduled)),
            owner_references: cj.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    })
}

/// Go's `Format(time.RFC3339)`: `Z` in UTC, else the numeric offset.
fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Upstream `getRef`: what `status.active` holds for a Job.
pub fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// Upstream `getFinishedStatus`: the Complete or Failed condition that is
/// True.
pub fn finished_condition(job: &Job) -> Option<&JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

pub fn in_active_list(cj: &CronJob, uid: &str) -> bool {
    active(cj).iter().any(|r| r.uid.as_deref() == Some(uid))
}

pub fn delete_from_active_list(cj: &mut CronJob, uid: &str) {
    if let Some(active) = cj.status.as_mut().and_then(|s| s.active.as_mut()) {
        active.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

/// Upstream `cleanupFinishedJobs` + `removeOldestJobs`: the finished Jobs
/// past the history limits, oldest start first (names break ties).
pub fn jobs_over_history_limits<'a>(cj: &CronJob, jobs: &[&'a Job]) -> Vec<&'a Job> {
    let (successful_limit, failed_limit) = spec(cj)
        .map(|s| (s.successful_jobs_history_limit, s.failed_jobs_history_limit))
        .unwrap_or_default();
    let of_type = |t: &str| -> Vec<&'a Job> {
        jobs.iter()
            .copied()
            .filter(|j| finished_condition(j).is_some_and(|c| c.type_ == t))
            .collect()
    };
    let mut out = Vec::new();
    for (limit, kind) in [(successful_limit, "Complete"), (failed_limit, "Failed")] {
        let Some(limit) = limit else { continue };
        let mut finished = of_type(kind);
        let excess = finished
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        if excess == 0 {
            continue;
        }
        finished.sort_by(|a, b| by_start_time(a, b));
        out.extend(finished.into_iter().take(excess));
    }
    out
}

/// Upstream `byJobStartTime`: a nil start time sorts last.
fn by_start_time(a: &Job, b: &Job) -> std::cmp::Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        _ => a.metadata.name.cmp(&b.metadata.name),
    }
}
