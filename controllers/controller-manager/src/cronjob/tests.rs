//! Unit tests of the CronJob decisions (upstream `utils_test.go`
//! `TestMostRecentScheduleTime`, `TestGetJobFromTemplate2`,
//! `TestNextScheduleTime`) and of the sync against fake writers (upstream
//! `cronjob_controllerv2_test.go` `TestControllerV2SyncCronJob` and
//! `TestControllerV2CleanupFinishedJobs`).

use std::sync::Arc;
use std::time::Duration;

use component_base::events::EventBroadcaster;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, CronJobStatus, Job, JobCondition, JobStatus, JobTemplateSpec,
};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PropagationPolicy;
use kube::runtime::reflector::store::Writer;
use tokio_util::sync::CancellationToken;

use super::reconcile::{self as rc, Decision, InvalidSchedule, Missed};
use super::schedule::Schedule;
use super::{CRONJOB_CONTROLLER, Controller};
use crate::control::fake::{FakeObjectControl, Write, written_name};
use crate::events::EventSink;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const TOP_OF_THE_HOUR: &str = "2016-05-19T10:00:00Z";

fn cronjob(schedule: &str, created: &str) -> CronJob {
    CronJob {
        metadata: ObjectMeta {
            name: Some("mycronjob".into()),
            namespace: Some("snazzycats".into()),
            uid: Some("1a2b3c".into()),
            creation_timestamp: Some(Time(ts(created))),
            ..Default::default()
        },
        spec: CronJobSpec {
            schedule: schedule.into(),
            concurrency_policy: Some("Allow".into()),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("a".to_string(), "b".to_string())].into()),
                    annotations: Some([("x".to_string(), "y".to_string())].into()),
                    ..Default::default()
                }),
                spec: Some(Default::default()),
            },
            ..Default::default()
        },
        status: None,
    }
}

fn with_last(mut cj: CronJob, last: &str) -> CronJob {
    cj.status
        .get_or_insert_with(Default::default)
        .last_schedule_time = Some(Time(ts(last)));
    cj
}

fn sched(cj: &CronJob) -> Schedule {
    rc::parse_schedule(cj).0.unwrap()
}

#[test]
fn most_recent_schedule_time() {
    let hourly = "0 * * * ?";
    type Want = Result<(&'static str, Option<&'static str>, Missed), InvalidSchedule>;
    let cases: Vec<(&str, CronJob, &str, Want)> = vec![
        (
            "created just before the hour, now before it",
            cronjob(hourly, "2016-05-19T09:59:00Z"),
            "2016-05-19T09:59:30Z",
            Ok(("2016-05-19T09:59:00Z", None, Missed::None)),
        ),
        (
            "one unmet time",
            cronjob(hourly, "2016-05-19T09:59:00Z"),
            "2016-05-19T10:01:00Z",
            Ok(("2016-05-19T09:59:00Z", Some(TOP_OF_THE_HOUR), Missed::None)),
        ),
        (
            "two unmet times: the most recent",
            cronjob(hourly, "2016-05-19T08:59:00Z"),
            "2016-05-19T10:01:00Z",
            Ok(("2016-05-19T08:59:00Z", Some(TOP_OF_THE_HOUR), Missed::Few)),
        ),
        (
            "last schedule time counts, not creation",
            with_last(cronjob(hourly, "2016-05-19T08:59:00Z"), TOP_OF_THE_HOUR),
            "2016-05-19T10:01:00Z",
            Ok((TOP_OF_THE_HOUR, None, Missed::None)),
        ),
        (
            "a week of hourly misses is too many",
            cronjob(hourly, "2016-05-12T09:59:00Z"),
            "2016-05-19T10:01:00Z",
            Ok(("2016-05-12T09:59:00Z", Some(TOP_OF_THE_HOUR), Missed::Many)),
        ),
        (
            "irregular schedule across a weekend",
            cronjob("30 6-16/4 * * 1-5", "2016-05-20T06:00:00Z"),
            "2016-05-23T07:00:00Z",
            Ok((
                "2016-05-20T06:00:00Z",
                Some("2016-05-23T06:30:00Z"),
                Missed::Few,
            )),
        ),
        (
            "impossible day",
            cronjob("59 23 31 2 *", "2016-05-19T09:59:00Z"),
            "2016-05-19T10:01:00Z",
            Err(InvalidSchedule::TooClose),
        ),
    ];
    for (name, cj, now, want) in cases {
        let got = rc::most_recent_schedule_time(&cj, ts(now), &sched(&cj), true);
        let want = want.map(|(e, r, m)| (ts(e), r.map(ts), m));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn starting_deadline_moves_the_earliest_time() {
    let mut cj = cronjob("0 * * * ?", "2016-05-12T09:59:00Z");
    cj.spec.starting_deadline_seconds = Some(200);
    let now = ts("2016-05-19T10:01:00Z");
    let got = rc::most_recent_schedule_time(&cj, now, &sched(&cj), true);
    assert_eq!(
        got,
        Ok((
            ts("2016-05-19T09:57:40Z"),
            Some(ts(TOP_OF_THE_HOUR)),
            Missed::None
        ))
    );
    // Without the deadline (requeue arithmetic) a week is missed.
    let got = rc::most_recent_schedule_time(&cj, now, &sched(&cj), false);
    assert_eq!(got.map(|g| g.2), Ok(Missed::Many));
}

#[test]
fn job_name_is_minutes_since_epoch() {
    assert_eq!(
        rc::job_name("mycronjob", ts(TOP_OF_THE_HOUR)),
        "mycronjob-24394200"
    );
}

#[test]
fn job_from_template_in_utc_and_in_a_time_zone() {
    let cj = cronjob("0 * * * ?", "2016-05-19T09:00:00Z");
    let job = rc::job_from_template(&cj, ts(TOP_OF_THE_HOUR)).unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some("mycronjob-24394200"));
    let annotations = job.metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations[rc::SCHEDULED_TIMESTAMP_ANNOTATION],
        "2016-05-19T10:00:00Z"
    );
    assert_eq!(annotations["x"], "y");
    assert_eq!(job.metadata.labels.clone().unwrap()["a"], "b");
    let owner = &job.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("CronJob", "mycronjob", "1a2b3c")
    );
    assert_eq!(owner.api_version, "batch/v1");
    assert_eq!(owner.controller, Some(true));
    let mut ny = cj.clone();
    ny.spec.time_zone = Some("America/New_York".into());
    let job = rc::job_from_template(&ny, ts(TOP_OF_THE_HOUR)).unwrap();
    assert_eq!(
        job.metadata.annotations.unwrap()[rc::SCHEDULED_TIMESTAMP_ANNOTATION],
        "2016-05-19T06:00:00-04:00"
    );
    let mut bad = cj;
    bad.spec.time_zone = Some("Nowhere/Land".into());
    assert!(rc::job_from_template(&bad, ts(TOP_OF_THE_HOUR)).is_err());
}

#[test]
fn time_zone_moves_the_schedule() {
    let mut cj = cronjob("0 6 * * *", "2016-05-19T00:00:00Z");
    cj.spec.time_zone = Some("America/New_York".into());
    let (sched, warning) = rc::parse_schedule(&cj);
    assert!(warning.is_none());
    assert_eq!(
        sched.unwrap().next(ts("2016-05-19T00:00:00Z")),
        Some(ts(TOP_OF_THE_HOUR))
    );
    let tz_in_schedule = cronjob("TZ=UTC 0 6 * * *", "2016-05-19T00:00:00Z");
    let (_, warning) = rc::parse_schedule(&tz_in_schedule);
    assert_eq!(
        warning.map(|w| w.reason).as_deref(),
        Some("UnsupportedSchedule")
    );
}

fn active_ref(name: &str) -> ObjectReference {
    ObjectReference {
        name: Some(name.into()),
        namespace: Some("snazzycats".into()),
        uid: Some(format!("{name}-uid")),
        ..Default::default()
    }
}

fn with_active(mut cj: CronJob, name: &str) -> CronJob {
    cj.status.get_or_insert_with(CronJobStatus::default).active = Some(vec![active_ref(name)]);
    cj
}

/// Upstream `TestControllerV2SyncCronJob`'s decision columns.
#[test]
fn decisions() {
    let created = "2016-05-19T09:59:00Z";
    let now = ts("2016-05-19T10:01:00Z");
    let base = || cronjob("0 * * * ?", created);
    let start = |replace| Decision::Start {
        scheduled: ts(TOP_OF_THE_HOUR),
        replace,
        requeue: Some(Duration::from_secs(59 * 60) + Duration::from_millis(100)),
    };
    let requeue = Some(Duration::from_secs(59 * 60) + Duration::from_millis(100));
    let mut forbid = with_active(base(), "old");
    forbid.spec.concurrency_policy = Some("Forbid".into());
    let mut replace = with_active(base(), "old");
    replace.spec.concurrency_policy = Some("Replace".into());
    let mut deadline = base();
    deadline.spec.starting_deadline_seconds = Some(30);
    let cases: Vec<(&str, CronJob, Decision)> = vec![
        ("Allow starts", base(), start(false)),
        (
            "Allow with active starts",
            with_active(base(), "old"),
            start(false),
        ),
        ("Replace starts after deleting", replace, start(true)),
        (
            "Forbid with active skips",
            forbid,
            Decision::Skip(
                crate::events::EventSpec::normal(
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid",
                ),
                requeue,
            ),
        ),
        (
            "already processed",
            with_last(base(), TOP_OF_THE_HOUR),
            Decision::Wait(requeue),
        ),
        (
            "job of that time already active",
            with_active(base(), "mycronjob-24394200"),
            Decision::Wait(requeue),
        ),
        (
            "starting deadline passed",
            deadline,
            Decision::Wait(requeue),
        ),
    ];
    for (name, cj, want) in cases {
        let mut events = Vec::new();
        assert_eq!(
            rc::decide(&cj, now, &sched(&cj), &mut events),
            want,
            "{name}"
        );
        assert!(events.is_empty(), "{name}: {events:?}");
    }
}

#[test]
fn missed_deadline_and_too_many_missed_warn() {
    // 61s late with a 10s deadline inside the minute window: MissSchedule.
    let mut cj = cronjob("* * * * *", "2016-05-19T09:58:30Z");
    cj.spec.starting_deadline_seconds = Some(10);
    let now = ts("2016-05-19T09:59:20Z");
    let decision = rc::decide(&cj, now, &sched(&cj), &mut Vec::new());
    // The deadline moved the earliest time past 09:59:00: nothing unmet.
    assert!(matches!(decision, Decision::Wait(_)), "{decision:?}");
    let cj = cronjob("0 * * * ?", "2016-05-12T09:59:00Z");
    let mut events = Vec::new();
    let decision = rc::decide(&cj, ts("2016-05-19T10:01:00Z"), &sched(&cj), &mut events);
    assert!(matches!(decision, Decision::Start { .. }), "{decision:?}");
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["TooManyMissedTimes"]);
    let invalid = cronjob("59 23 31 2 *", "2016-05-12T09:59:00Z");
    let decision = rc::decide(
        &invalid,
        ts(TOP_OF_THE_HOUR),
        &sched(&invalid),
        &mut Vec::new(),
    );
    assert!(
        matches!(&decision, Decision::Invalid(e) if e.reason == "InvalidSchedule"),
        "{decision:?}"
    );
}

fn finished_job(name: &str, kind: &str, start: Option<&str>) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("snazzycats".into()),
            uid: Some(format!("{name}-uid")),
            ..Default::default()
        },
        spec: None,
        status: Some(JobStatus {
            start_time: start.map(|s| Time(ts(s))),
            completion_time: start.map(|s| Time(ts(s))),
            conditions: Some(vec![JobCondition {
                type_: kind.into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// Upstream `TestControllerV2CleanupFinishedJobs`: oldest start first, a
/// missing start time last, names break ties.
#[test]
fn history_limits_pick_the_oldest() {
    let mut cj = cronjob("* * * * *", "2016-05-19T00:00:00Z");
    cj.spec.successful_jobs_history_limit = Some(1);
    cj.spec.failed_jobs_history_limit = Some(0);
    let jobs = [
        finished_job("s3", "Complete", Some("2016-05-19T03:00:00Z")),
        finished_job("s-nil", "Complete", None),
        finished_job("s1", "Complete", Some("2016-05-19T01:00:00Z")),
        finished_job("s2", "Complete", Some("2016-05-19T02:00:00Z")),
        finished_job("f1", "Failed", Some("2016-05-19T01:00:00Z")),
    ];
    let refs: Vec<&Job> = jobs.iter().collect();
    let names: Vec<&str> = rc::jobs_over_history_limits(&cj, &refs)
        .iter()
        .map(|j| j.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["s1", "s2", "s3", "f1"]);
    cj.spec.successful_jobs_history_limit = None;
    cj.spec.failed_jobs_history_limit = None;
    assert!(rc::jobs_over_history_limits(&cj, &refs).is_empty());
}

struct Harness {
    ctl: Controller,
    jobs: Arc<FakeObjectControl<Job>>,
    cronjobs: Arc<FakeObjectControl<CronJob>>,
    _shutdown: CancellationToken,
}

impl Harness {
    fn new() -> Self {
        let shutdown = CancellationToken::new();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let events = EventBroadcaster::start(client, shutdown.clone());
        let jobs = Arc::new(FakeObjectControl::default());
        let cronjobs = Arc::new(FakeObjectControl::default());
        let ctl = Controller {
            cronjobs: Writer::<CronJob>::default().as_reader(),
            jobs: Writer::<Job>::default().as_reader(),
            job_control: jobs.clone(),
            cronjob_control: cronjobs.clone(),
            events: EventSink::new(&events, CRONJOB_CONTROLLER),
        };
        Self {
            ctl,
            jobs,
            cronjobs,
            _shutdown: shutdown,
        }
    }
}

#[tokio::test]
async fn sync_creates_the_job_and_records_it() {
    let h = Harness::new();
    let mut cj = cronjob("0 * * * ?", "2016-05-19T09:59:00Z");
    let (requeue, updated, result) = h
        .ctl
        .sync_one(&mut cj, &[], ts("2016-05-19T10:01:00Z"))
        .await;
    assert!(result.is_ok());
    assert!(updated);
    assert_eq!(
        requeue,
        Some(Duration::from_secs(59 * 60) + Duration::from_millis(100))
    );
    let writes = h.jobs.writes();
    let names: Vec<String> = writes.iter().map(written_name).collect();
    assert_eq!(names, ["mycronjob-24394200"]);
    let status = cj.status.unwrap();
    assert_eq!(status.last_schedule_time, Some(Time(ts(TOP_OF_THE_HOUR))));
    let active = status.active.unwrap();
    assert_eq!(active[0].name.as_deref(), Some("mycronjob-24394200"));
    assert_eq!(active[0].kind.as_deref(), Some("Job"));
}

#[tokio::test]
async fn forbid_with_an_active_job_creates_nothing() {
    let h = Harness::new();
    let old = finished_job("old", "Complete", None);
    let mut running = old.clone();
    running.status = None;
    let mut cj = with_active(cronjob("0 * * * ?", "2016-05-19T09:59:00Z"), "old");
    cj.spec.concurrency_policy = Some("Forbid".into());
    let (_, updated, result) = h
        .ctl
        .sync_one(&mut cj, &[&running], ts("2016-05-19T10:01:00Z"))
        .await;
    assert!(result.is_ok());
    assert!(!updated);
    assert!(h.jobs.writes().is_empty());
}

#[tokio::test]
async fn completed_job_leaves_the_active_list_and_sets_last_successful_time() {
    let h = Harness::new();
    let done = finished_job("old", "Complete", Some("2016-05-19T09:30:00Z"));
    let mut cj = with_active(cronjob("0 * * * ?", "2016-05-19T09:59:00Z"), "old");
    cj.spec.suspend = Some(true);
    let (requeue, updated, result) = h
        .ctl
        .sync_one(&mut cj, &[&done], ts("2016-05-19T10:01:00Z"))
        .await;
    assert!(result.is_ok());
    assert!(updated);
    assert_eq!(requeue, None, "suspended: no requeue");
    assert!(rc::active(&cj).is_empty());
    // Leaving the active list this sync; the next one records the time.
    let (_, updated, _) = h
        .ctl
        .sync_one(&mut cj, &[&done], ts("2016-05-19T10:01:00Z"))
        .await;
    assert!(updated);
    let last = cj.status.unwrap().last_successful_time;
    assert_eq!(last, Some(Time(ts("2016-05-19T09:30:00Z"))));
    assert!(h.jobs.writes().is_empty());
}

#[tokio::test]
async fn replace_deletes_the_active_job_in_the_background_first() {
    let h = Harness::new();
    let mut running = finished_job("old", "Complete", None);
    running.status = None;
    *h.jobs.current.lock().unwrap() = Some(running.clone());
    let mut cj = with_active(cronjob("0 * * * ?", "2016-05-19T09:59:00Z"), "old");
    cj.spec.concurrency_policy = Some("Replace".into());
    let (_, updated, result) = h
        .ctl
        .sync_one(&mut cj, &[&running], ts("2016-05-19T10:01:00Z"))
        .await;
    assert!(result.is_ok());
    assert!(updated);
    let writes = h.jobs.writes();
    assert!(
        matches!(&writes[0], Write::Delete(n) if n == "old"),
        "{writes:?}"
    );
    assert!(
        matches!(&writes[1], Write::Create(j) if j.metadata.name.as_deref() == Some("mycronjob-24394200"))
    );
    let params = h.jobs.delete_params.lock().unwrap();
    assert_eq!(
        params[0].propagation_policy,
        Some(PropagationPolicy::Background)
    );
    let active: Vec<_> = rc::active(&cj)
        .iter()
        .filter_map(|r| r.name.clone())
        .collect();
    assert_eq!(active, ["mycronjob-24394200"]);
}

#[tokio::test]
async fn cleanup_deletes_over_the_limit() {
    let h = Harness::new();
    let mut cj = cronjob("* * * * *", "2016-05-19T00:00:00Z");
    cj.spec.successful_jobs_history_limit = Some(1);
    let a = finished_job("a", "Complete", Some("2016-05-19T01:00:00Z"));
    let b = finished_job("b", "Complete", Some("2016-05-19T02:00:00Z"));
    assert!(h.ctl.cleanup_finished_jobs(&mut cj, &[&b, &a]).await);
    let names: Vec<String> = h.jobs.writes().iter().map(written_name).collect();
    assert_eq!(names, ["a"]);
    assert!(h.cronjobs.writes().is_empty());
}

#[test]
fn unknown_time_zone_is_an_error() {
    assert!(super::schedule::load_location("Nowhere/Land").is_err());
    assert_eq!(super::schedule::load_location("").unwrap(), TimeZone::UTC);
}

#[tokio::test]
async fn unknown_time_zone_or_unparseable_schedule_stops_without_requeue() {
    let h = Harness::new();
    let now = ts("2016-05-19T10:01:00Z");
    let mut bad_tz = cronjob("0 * * * ?", "2016-05-19T09:59:00Z");
    bad_tz.spec.time_zone = Some("Nowhere/Land".into());
    let (requeue, updated, result) = h.ctl.sync_one(&mut bad_tz, &[], now).await;
    assert!(result.is_ok() && !updated && requeue.is_none());
    let mut bad = cronjob("61 * * * *", "2016-05-19T09:59:00Z");
    let (requeue, updated, result) = h.ctl.sync_one(&mut bad, &[], now).await;
    assert!(result.is_ok() && !updated && requeue.is_none());
    assert!(h.jobs.writes().is_empty());
}

/// Upstream `TestControllerV2UpdateCronJob`: a schedule change requeues at
/// its next time, another change syncs now, a bad schedule waits.
#[tokio::test]
async fn cronjob_updates_requeue_as_upstream() {
    use component_base::informers::Change;

    use crate::controller::{Enqueue, Key};
    let h = Harness::new();
    let old = Arc::new(cronjob("0 * * * ?", "2016-05-19T09:59:00Z"));
    let key = Key::new(Some("snazzycats"), "mycronjob");
    let mut suspended = (*old).clone();
    suspended.spec.suspend = Some(true);
    let got = h.ctl.cronjob_changed(Change::Updated {
        old: old.clone(),
        new: Arc::new(suspended),
    });
    assert_eq!(got, vec![Enqueue::Now(key.clone())]);
    let mut rescheduled = (*old).clone();
    rescheduled.spec.schedule = "*/1 * * * *".into();
    let got = h.ctl.cronjob_changed(Change::Updated {
        old: old.clone(),
        new: Arc::new(rescheduled),
    });
    assert!(
        matches!(&got[..], [Enqueue::After(k, _)] if *k == key),
        "{got:?}"
    );
    let mut bad = (*old).clone();
    bad.spec.schedule = "61 * * * *".into();
    let got = h.ctl.cronjob_changed(Change::Updated {
        old,
        new: Arc::new(bad),
    });
    assert!(got.is_empty());
}
