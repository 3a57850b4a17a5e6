//! The write half of a Job sync against fake writers (upstream
//! `job_controller_test.go` with `FakePodControl`): expectations across a
//! lagging cache, finalizer removal and counting, completion.

use std::collections::BTreeMap;
use std::sync::Arc;

use component_base::events::EventBroadcaster;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::reconcile::{COND_COMPLETE, COND_SUCCESS_CRITERIA_MET, JOB_TRACKING_FINALIZER};
use super::tracking::{BackoffStore, FinalizerExpectations};
use super::{Controller, JOB_CONTROLLER};
use crate::control::fake::{FakeObjectControl, FakePodControl, Write, api_error};
use crate::controller::{Key, Reconciler};
use crate::controller_utils::Expectations;
use crate::events::EventSink;
use component_base::informers::Change;

fn labels() -> BTreeMap<String, String> {
    [(
        "batch.kubernetes.io/controller-uid".to_string(),
        "job-uid".to_string(),
    )]
    .into()
}

fn job(parallelism: i32, completions: i32) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("ns".into()),
            uid: Some("job-uid".into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            parallelism: Some(parallelism),
            completions: Some(completions),
            backoff_limit: Some(6),
            selector: Some(LabelSelector {
                match_labels: Some(labels()),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            },
            ..Default::default()
        }),
        status: None,
    }
}

struct Harness {
    ctl: Controller,
    job_cache: Writer<Job>,
    pod_cache: Writer<Pod>,
    pods: Arc<FakePodControl>,
    statuses: Arc<FakeObjectControl<Job>>,
    shutdown: CancellationToken,
}

impl Harness {
    fn new(job: Job) -> Self {
        let mut job_cache = Writer::<Job>::default();
        job_cache.apply_watcher_event(&watcher::Event::Apply(job));
        let pod_cache = Writer::<Pod>::default();
        let shutdown = CancellationToken::new();
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let events = EventBroadcaster::start(client, shutdown.clone());
        let pods = Arc::new(FakePodControl::default());
        let statuses = Arc::new(FakeObjectControl::default());
        let ctl = Controller {
            jobs: job_cache.as_reader(),
            pods: pod_cache.as_reader(),
            pod_control: pods.clone(),
            job_control: statuses.clone(),
            expectations: Expectations::default(),
            finalizers: FinalizerExpectations::default(),
            backoff: BackoffStore::default(),
            events: EventSink::new(&events, JOB_CONTROLLER),
        };
        Self {
            ctl,
            job_cache,
            pod_cache,
            pods,
            statuses,
            shutdown,
        }
    }

    async fn sync(&self) -> crate::controller::SyncResult {
        self.ctl.sync(&Key::new(Some("ns"), "pi")).await
    }

    /// The informer shows `pod` (with a UID, as the apiserver gives it).
    fn observe(&mut self, mut pod: Pod) -> Pod {
        let name = pod.metadata.name.clone().unwrap_or_default();
        pod.metadata.uid.get_or_insert(format!("{name}-uid"));
        pod.metadata.resource_version = Some(format!("{}", self.pods.create_calls() + 10));
        let old = self
            .pod_cache
            .as_reader()
            .get(&kube::runtime::reflector::ObjectRef::new(&name).within("ns"));
        self.pod_cache
            .apply_watcher_event(&watcher::Event::Apply(pod.clone()));
        let change = match old {
            Some(old) => Change::Updated {
                old,
                new: Arc::new(pod.clone()),
            },
            None => Change::Added(Arc::new(pod.clone())),
        };
        self.ctl.pod_changed(change);
        pod
    }

    /// The job as the last status write left it, back in the cache.
    fn observe_job_status(&mut self) -> JobStatus {
        self.observe_status_write(0)
    }

    /// The job as the `back`-th status write from the end left it.
    fn observe_status_write(&mut self, back: usize) -> JobStatus {
        let last = self
            .statuses
            .writes()
            .into_iter()
            .rev()
            .filter_map(|w| match w {
                Write::UpdateStatus(j) => Some(j),
                _ => None,
            })
            .nth(back);
        let job = last.expect("a status write");
        self.job_cache
            .apply_watcher_event(&watcher::Event::Apply(job.clone()));
        job.status.unwrap_or_default()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn with_phase(mut pod: Pod, phase: &str) -> Pod {
    pod.status = Some(PodStatus {
        phase: Some(phase.into()),
        ..Default::default()
    });
    pod
}

#[tokio::test]
async fn creates_parallelism_pods_with_the_finalizer_and_waits_for_the_cache() {
    let mut h = Harness::new(job(2, 3));
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.create_calls(), 2);
    for pod in h.pods.created() {
        let fins = pod.metadata.finalizers.clone().unwrap_or_default();
        assert_eq!(fins, vec![JOB_TRACKING_FINALIZER.to_string()]);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-"));
        let owner = pod.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owner[0].kind, "Job");
        assert_eq!(owner[0].controller, Some(true));
    }
    let status = h.observe_job_status();
    assert_eq!(status.active, Some(2));
    assert!(status.start_time.is_some());
    // A watch lag: the pods are not in the cache yet; nothing more is created.
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.create_calls(), 2);
    for pod in h.pods.created() {
        h.observe(pod);
    }
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.create_calls(), 2, "parallelism reached");
}

#[tokio::test]
async fn succeeded_pods_are_counted_through_the_finalizer_until_complete() {
    let mut h = Harness::new(job(2, 2));
    assert!(h.sync().await.is_ok());
    let created: Vec<Pod> = h.pods.created().into_iter().map(|p| h.observe(p)).collect();
    h.observe_job_status();
    for pod in &created {
        h.observe(with_phase(pod.clone(), "Succeeded"));
    }
    assert!(h.sync().await.is_ok());
    let mut patched = h.pods.patched();
    patched.sort();
    assert_eq!(patched, ["pi-fake0", "pi-fake1"], "finalizers removed");
    let status = h.observe_job_status();
    assert_eq!(
        status.succeeded,
        Some(2),
        "counted once the finalizers went"
    );
    let types: Vec<String> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(types, [COND_SUCCESS_CRITERIA_MET, COND_COMPLETE]);
    assert!(status.completion_time.is_some());
    assert_eq!(
        h.pods.create_calls(),
        2,
        "no replacement for succeeded pods"
    );
    // The finalizer removal is expected: a stale cache does not recount.
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.patched().len(), 2);
}

#[tokio::test]
async fn a_pending_finalizer_removal_is_not_counted_twice() {
    let mut h = Harness::new(job(1, 3));
    assert!(h.sync().await.is_ok());
    let pod = h.observe(h.pods.created()[0].clone());
    h.observe_job_status();
    h.observe(with_phase(pod, "Succeeded"));
    // The pod goes into uncounted; the write counting it conflicts.
    h.statuses.script([None, Some(api_error(409, "Conflict"))]);
    assert!(h.sync().await.is_err());
    let status = h.observe_status_write(1);
    let uncounted = status.uncounted_terminated_pods.and_then(|u| u.succeeded);
    assert_eq!(uncounted.map(|u| u.len()), Some(1));
    assert_eq!(status.succeeded, None);
    // The cache still shows the finalizer (watch lag): no double count.
    assert!(h.sync().await.is_ok());
    let status = h.observe_job_status();
    assert_eq!(status.succeeded, Some(1));
    assert_eq!(h.pods.create_calls(), 2, "the next pod was created once");
}

fn index_of(pod: &Pod) -> Option<String> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(super::indexed::COMPLETION_INDEX_ANNOTATION)
        .cloned()
}

#[tokio::test]
async fn an_indexed_job_creates_each_index_once_and_tracks_completed_indexes() {
    let mut j = job(2, 3);
    if let Some(s) = j.spec.as_mut() {
        s.completion_mode = Some("Indexed".into());
    }
    let mut h = Harness::new(j);
    assert!(h.sync().await.is_ok());
    let first: Vec<Pod> = h.pods.created().into_iter().map(|p| h.observe(p)).collect();
    let indexes: Vec<Option<String>> = first.iter().map(index_of).collect();
    assert_eq!(indexes, [Some("0".into()), Some("1".into())]);
    assert_eq!(first[1].metadata.generate_name.as_deref(), Some("pi-1-"));
    let hostname = first[1].spec.as_ref().and_then(|s| s.hostname.clone());
    assert_eq!(hostname.as_deref(), Some("pi-1"));
    h.observe_job_status();

    h.observe(with_phase(first[0].clone(), "Succeeded"));
    assert!(h.sync().await.is_ok());
    let status = h.observe_job_status();
    assert_eq!(status.completed_indexes.as_deref(), Some("0"));
    assert_eq!(status.succeeded, Some(1));
    let created = h.pods.created();
    assert_eq!(created.len(), 3);
    assert_eq!(
        index_of(&created[2]).as_deref(),
        Some("2"),
        "the first pending index"
    );

    let third = h.observe(created[2].clone());
    h.observe(with_phase(first[1].clone(), "Succeeded"));
    h.observe(with_phase(third, "Succeeded"));
    assert!(h.sync().await.is_ok());
    let status = h.observe_job_status();
    assert_eq!(status.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(status.succeeded, Some(3));
    let complete = status.conditions.unwrap_or_default();
    assert!(
        complete
            .iter()
            .any(|c| c.type_ == COND_COMPLETE && c.status == "True")
    );
    assert_eq!(h.pods.create_calls(), 3);
}

#[tokio::test]
async fn a_job_over_its_backoff_limit_fails_after_its_pods_are_gone() {
    let mut j = job(1, 1);
    if let Some(s) = j.spec.as_mut() {
        s.backoff_limit = Some(0);
    }
    let mut h = Harness::new(j);
    assert!(h.sync().await.is_ok());
    let pod = h.observe(h.pods.created()[0].clone());
    h.observe_job_status();
    h.observe(with_phase(pod, "Failed"));
    assert!(h.sync().await.is_ok());
    let status = h.observe_job_status();
    assert_eq!(status.failed, Some(1));
    let conds = status.conditions.unwrap_or_default();
    let types: Vec<(&str, Option<&str>)> = conds
        .iter()
        .map(|c| (c.type_.as_str(), c.reason.as_deref()))
        .collect();
    assert_eq!(
        types,
        [
            ("FailureTarget", Some("BackoffLimitExceeded")),
            ("Failed", Some("BackoffLimitExceeded"))
        ]
    );
    assert_eq!(h.pods.create_calls(), 1, "no replacement once failed");
    assert!(status.completion_time.is_none());
}

#[tokio::test]
async fn suspending_deletes_active_pods_and_resuming_recreates_them() {
    let mut h = Harness::new(job(2, 4));
    assert!(h.sync().await.is_ok());
    for pod in h.pods.created() {
        h.observe(pod);
    }
    h.observe_job_status();
    let mut suspended = h.ctl.jobs.state()[0].as_ref().clone();
    if let Some(s) = suspended.spec.as_mut() {
        s.suspend = Some(true);
    }
    h.job_cache
        .apply_watcher_event(&watcher::Event::Apply(suspended.clone()));
    assert!(h.sync().await.is_ok());
    let mut deleted = h.pods.deleted();
    deleted.sort();
    assert_eq!(deleted, ["pi-fake0", "pi-fake1"]);
    let status = h.observe_job_status();
    let cond = status.conditions.unwrap_or_default();
    assert_eq!(cond.len(), 1);
    assert_eq!(
        (cond[0].type_.as_str(), cond[0].status.as_str()),
        ("Suspended", "True")
    );
    assert_eq!(cond[0].reason.as_deref(), Some("JobSuspended"));
    assert_eq!(status.active, Some(0));
}

#[tokio::test]
async fn pods_of_a_deleted_job_lose_their_finalizer() {
    let j = job(1, 1);
    let mut h = Harness::new(j.clone());
    assert!(h.sync().await.is_ok());
    let pod = h.observe(h.pods.created()[0].clone());
    h.job_cache.apply_watcher_event(&watcher::Event::Delete(j));
    let keys = h.ctl.pod_changed(Change::Updated {
        old: Arc::new(pod.clone()),
        new: Arc::new(Pod {
            metadata: ObjectMeta {
                resource_version: Some("99".into()),
                ..pod.metadata.clone()
            },
            ..pod.clone()
        }),
    });
    assert_eq!(
        keys,
        vec![Key::new(Some("ns"), "pi").into()],
        "the orphan's job key"
    );
    assert!(h.sync().await.is_ok());
    assert_eq!(h.pods.patched(), [pod.metadata.name.unwrap_or_default()]);
}
