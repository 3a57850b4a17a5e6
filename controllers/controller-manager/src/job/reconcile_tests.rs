//! Table-driven tests of the Job decisions, cases from upstream
//! `job_controller_test.go` (`TestControllerSyncJob`,
//! `TestPastDeadlineJobFinished`, `TestTrackJobStatusAndRemoveFinalizers`,
//! `backoff_utils_test.go`).

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::accounting::*;
use super::reconcile::*;

fn job(parallelism: i32, completions: Option<i32>, backoff: i32) -> Job {
    let mut job = Job::default();
    job.metadata.name = Some("foobar".into());
    job.metadata.namespace = Some("default".into());
    job.metadata.uid = Some("job-uid".into());
    job.spec = Some(JobSpec {
        parallelism: Some(parallelism),
        completions,
        backoff_limit: Some(backoff),
        template: PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec::default()),
        },
        ..Default::default()
    });
    job
}

fn pod(name: &str, phase: &str, finalizer: bool) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = Some(name.into());
    if finalizer {
        pod.metadata.finalizers = Some(vec![JOB_TRACKING_FINALIZER.into()]);
    }
    pod.status = Some(PodStatus {
        phase: Some(phase.into()),
        ..Default::default()
    });
    pod
}

fn pods(active: usize, succeeded: usize, failed: usize) -> Vec<Pod> {
    let mut out = Vec::new();
    out.extend((0..active).map(|i| pod(&format!("a{i}"), "Running", true)));
    out.extend((0..succeeded).map(|i| pod(&format!("s{i}"), "Succeeded", true)));
    out.extend((0..failed).map(|i| pod(&format!("f{i}"), "Failed", true)));
    out
}

fn now() -> Timestamp {
    Timestamp::from_second(1_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn manage_outcome(job: &Job, all: &[Pod]) -> (String, usize) {
    let refs: Vec<&Pod> = all.iter().collect();
    let active: Vec<&Pod> = refs
        .iter()
        .copied()
        .filter(|p| crate::controller_utils::is_pod_active(p))
        .collect();
    let counts = count(job, &refs, &BTreeSet::new());
    match manage(job, &active, &counts, now()) {
        Manage::Nothing => ("nothing".into(), 0),
        Manage::Create(n) => ("create".into(), n),
        Manage::Delete(p) => ("delete".into(), p.len()),
    }
}

/// (name, parallelism, completions, active, succeeded, suspend, want)
type ManageCase = (
    &'static str,
    i32,
    Option<i32>,
    usize,
    usize,
    bool,
    (&'static str, usize),
);

#[test]
fn manage_job_matches_upstream_sync_cases() {
    let cases: &[ManageCase] = &[
        ("job start", 2, Some(5), 0, 0, false, ("create", 2)),
        ("WQ job start", 2, None, 0, 0, false, ("create", 2)),
        ("correct # of pods", 2, Some(5), 2, 0, false, ("nothing", 0)),
        (
            "too few active pods",
            2,
            Some(5),
            1,
            1,
            false,
            ("create", 1),
        ),
        (
            "too many active pods",
            2,
            Some(5),
            3,
            0,
            false,
            ("delete", 1),
        ),
        (
            "fewer completions than parallelism",
            3,
            Some(2),
            0,
            0,
            false,
            ("create", 2),
        ),
        (
            "WQ job finishing: keep running",
            2,
            None,
            1,
            1,
            false,
            ("nothing", 0),
        ),
        (
            "more succeeded than completions",
            2,
            Some(2),
            1,
            2,
            false,
            ("delete", 1),
        ),
        (
            "suspended job deletes active pods",
            2,
            Some(5),
            2,
            0,
            true,
            ("delete", 2),
        ),
        ("parallelism 0", 0, Some(5), 0, 0, false, ("nothing", 0)),
    ];
    for (name, par, comp, active, succeeded, suspend, want) in cases {
        let mut j = job(*par, *comp, 6);
        if let Some(spec) = j.spec.as_mut() {
            spec.suspend = Some(*suspend);
        }
        let got = manage_outcome(&j, &pods(*active, *succeeded, 0));
        assert_eq!((got.0.as_str(), got.1), *want, "{name}");
    }
}

#[test]
fn counts_take_finalizers_and_uncounted_into_account() {
    let mut j = job(2, Some(5), 6);
    j.status = Some(JobStatus {
        succeeded: Some(1),
        failed: Some(1),
        uncounted_terminated_pods: Some(UncountedTerminatedPods {
            succeeded: Some(vec!["s0".into()]),
            failed: None,
        }),
        ..Default::default()
    });
    let mut all = pods(1, 2, 1);
    // A succeeded pod without the finalizer is already counted.
    all.push(pod("old", "Succeeded", false));
    let refs: Vec<&Pod> = all.iter().collect();
    let c = count(&j, &refs, &BTreeSet::new());
    assert_eq!(c.active, 1);
    assert_eq!(c.new_succeeded, 1, "s1 only: s0 is uncounted already");
    assert_eq!(c.succeeded, 1 + 1 + 1);
    assert_eq!(c.new_failed, 1);
    assert_eq!(c.failed, 2);
    let expected: BTreeSet<String> = ["f0".to_string()].into();
    assert_eq!(count(&j, &refs, &expected).new_failed, 0, "removal pending");
}

#[test]
fn finished_condition_cases() {
    // Backoff limit exceeded: failed 2 > backoffLimit 1.
    let j = job(2, Some(5), 1);
    let all = pods(1, 0, 2);
    let refs: Vec<&Pod> = all.iter().collect();
    let c = count(&j, &refs, &BTreeSet::new());
    let cond = failure_or_success_target(&j, &refs, &c, now());
    assert_eq!(
        cond.as_ref().map(|c| c.type_.as_str()),
        Some(COND_FAILURE_TARGET)
    );
    assert_eq!(
        cond.and_then(|c| c.reason),
        Some(REASON_BACKOFF_LIMIT_EXCEEDED.to_string())
    );
    // At the limit it is still running.
    let j = job(2, Some(5), 2);
    let c = count(&j, &refs, &BTreeSet::new());
    assert!(failure_or_success_target(&j, &refs, &c, now()).is_none());

    // activeDeadlineSeconds passed.
    let mut j = job(1, Some(1), 6);
    if let Some(s) = j.spec.as_mut() {
        s.active_deadline_seconds = Some(10);
    }
    let start = Timestamp::from_second(now().as_second() - 10).unwrap_or(now());
    j.status = Some(JobStatus {
        start_time: Some(Time(start)),
        ..Default::default()
    });
    let cond = failure_or_success_target(&j, &[], &Counts::default(), now());
    assert_eq!(
        cond.and_then(|c| c.reason),
        Some(REASON_DEADLINE_EXCEEDED.to_string())
    );
    let later = Timestamp::from_second(now().as_second() - 4).unwrap_or(now());
    j.status = Some(JobStatus {
        start_time: Some(Time(later)),
        ..Default::default()
    });
    assert_eq!(deadline_remaining(&j, now()), Some(Duration::from_secs(6)));
    if let Some(s) = j.spec.as_mut() {
        s.suspend = Some(true);
    }
    assert_eq!(
        deadline_remaining(&j, now()),
        None,
        "suspended jobs have no deadline"
    );
}

#[test]
fn restarts_count_against_backoff_limit_under_on_failure() {
    let mut j = job(1, Some(1), 2);
    if let Some(t) = j.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        t.restart_policy = Some("OnFailure".into());
    }
    let mut p = pod("a", "Running", true);
    if let Some(s) = p.status.as_mut() {
        s.container_statuses = Some(vec![ContainerStatus {
            restart_count: 2,
            ..Default::default()
        }]);
    }
    assert!(past_backoff_limit_on_failure(&j, &[&p]));
    if let Some(s) = p
        .status
        .as_mut()
        .and_then(|s| s.container_statuses.as_mut())
    {
        s[0].restart_count = 1;
    }
    assert!(!past_backoff_limit_on_failure(&j, &[&p]));
}

#[test]
fn completion_rules() {
    assert!(is_complete(&job(2, Some(3), 6), 3, 0));
    assert!(!is_complete(&job(2, Some(3), 6), 3, 1));
    assert!(!is_complete(&job(2, Some(3), 6), 2, 0));
    assert!(is_complete(&job(2, None, 6), 1, 0));
    assert!(!is_complete(&job(2, None, 6), 0, 0));
}

#[test]
fn finished_pods_are_uncounted_then_counted_when_their_finalizer_goes() {
    let j = job(2, Some(3), 6);
    let all = pods(1, 1, 1);
    let refs: Vec<&Pod> = all.iter().collect();
    let mut status = JobStatus::default();
    let t = track_uncounted(
        &j,
        &mut status,
        &refs,
        &BTreeSet::new(),
        None,
        &BTreeSet::new(),
        &BTreeSet::new(),
    );
    assert!(t.status_changed);
    let names: Vec<&str> = t
        .remove_finalizer
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["s0", "f0"], "the running pod keeps its finalizer");
    let unc = status.uncounted_terminated_pods.clone().unwrap_or_default();
    assert_eq!(unc.succeeded, Some(vec!["s0".to_string()]));
    assert_eq!(unc.failed, Some(vec!["f0".to_string()]));
    // The finalizers were removed: only the running pod still has one.
    let with: BTreeSet<String> = ["a0".to_string()].into();
    assert!(clean_uncounted(&mut status, &with));
    assert_eq!(status.succeeded, Some(1));
    assert_eq!(status.failed, Some(1));
    let unc = status.uncounted_terminated_pods.clone().unwrap_or_default();
    assert_eq!(unc.succeeded.map(|v| v.len()), Some(0));
    assert!(!clean_uncounted(&mut status, &with), "nothing more to move");
}

#[test]
fn a_failing_job_counts_running_pods_as_failed() {
    let j = job(2, Some(3), 6);
    let all = pods(1, 0, 0);
    let refs: Vec<&Pod> = all.iter().collect();
    let target = new_condition(COND_FAILURE_TARGET, "True", "R", "M", now());
    let mut status = JobStatus::default();
    let t = track_uncounted(
        &j,
        &mut status,
        &refs,
        &BTreeSet::new(),
        Some(&target),
        &BTreeSet::new(),
        &BTreeSet::new(),
    );
    assert_eq!(t.remove_finalizer.len(), 1);
    let unc = status.uncounted_terminated_pods.unwrap_or_default();
    assert_eq!(unc.failed, Some(vec!["a0".to_string()]));
    // SuccessCriteriaMet removes the finalizer but does not count it.
    let met = new_condition(COND_SUCCESS_CRITERIA_MET, "True", "R", "M", now());
    let mut status = JobStatus::default();
    let t = track_uncounted(
        &j,
        &mut status,
        &refs,
        &BTreeSet::new(),
        Some(&met),
        &BTreeSet::new(),
        &BTreeSet::new(),
    );
    assert_eq!(t.remove_finalizer.len(), 1);
    assert_eq!(
        status.uncounted_terminated_pods.and_then(|u| u.failed),
        None
    );
}

#[test]
fn terminal_condition_waits_for_uncounted_and_terminating_pods() {
    let met = new_condition(
        COND_SUCCESS_CRITERIA_MET,
        "True",
        REASON_COMPLETIONS_REACHED,
        MSG_COMPLETIONS_REACHED,
        now(),
    );
    let complete = terminal_for(&met, now());
    assert_eq!(complete.type_, COND_COMPLETE);
    assert_eq!(complete.reason.as_deref(), Some(REASON_COMPLETIONS_REACHED));
    let mut status = JobStatus::default();
    assert!(!enact_finished(&mut status, &complete, 1, now()));
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: Some(vec!["x".into()]),
        failed: None,
    });
    assert!(!enact_finished(&mut status, &complete, 0, now()));
    status.uncounted_terminated_pods = None;
    assert!(enact_finished(&mut status, &complete, 0, now()));
    assert_eq!(status.completion_time, Some(Time(now())));
    let target = new_condition(COND_FAILURE_TARGET, "True", "R", "M", now());
    assert_eq!(terminal_for(&target, now()).type_, COND_FAILED);
}

#[test]
fn conditions_never_start_false() {
    let mut list = Vec::new();
    assert!(!ensure_condition(
        &mut list,
        COND_SUSPENDED,
        "False",
        "JobResumed",
        "Job resumed",
        now()
    ));
    assert!(list.is_empty());
    assert!(ensure_condition(
        &mut list,
        COND_SUSPENDED,
        "True",
        "JobSuspended",
        "Job suspended",
        now()
    ));
    assert!(!ensure_condition(
        &mut list,
        COND_SUSPENDED,
        "True",
        "JobSuspended",
        "Job suspended",
        now()
    ));
    assert!(ensure_condition(
        &mut list,
        COND_SUSPENDED,
        "False",
        "JobResumed",
        "Job resumed",
        now()
    ));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, "False");
}

#[test]
fn pod_failure_backoff_doubles_to_six_minutes() {
    let last = Some(now());
    assert_eq!(backoff_remaining(0, last, now()), Duration::ZERO);
    assert_eq!(backoff_remaining(1, last, now()), Duration::from_secs(10));
    assert_eq!(backoff_remaining(2, last, now()), Duration::from_secs(20));
    assert_eq!(backoff_remaining(3, last, now()), Duration::from_secs(40));
    assert_eq!(backoff_remaining(10, last, now()), Duration::from_secs(360));
    let later = Timestamp::from_second(now().as_second() + 15).unwrap_or(now());
    assert_eq!(backoff_remaining(2, last, later), Duration::from_secs(5));
    assert_eq!(backoff_remaining(1, None, now()), Duration::ZERO);
}

#[test]
fn deleted_pods_count_as_failed_unless_only_failed_are_replaced() {
    let mut j = job(1, Some(1), 6);
    let mut p = pod("a", "Running", true);
    p.metadata.deletion_timestamp = Some(Time(now()));
    assert!(is_pod_failed(&p, &j));
    if let Some(s) = j.spec.as_mut() {
        s.pod_replacement_policy = Some("Failed".into());
    }
    assert!(!is_pod_failed(&p, &j));
}
