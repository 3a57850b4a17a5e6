//! The CronJob and TTL-after-finished controllers in-process against a
//! real etcd + kube-apiserver (no Job controller runs, so Jobs stay
//! active unless the test finishes them through the status subresource):
//! a `* * * * *` CronJob whose lastScheduleTime is in the past gets the
//! Job of the most recent minute, named `<cronjob>-<minutes since epoch>`,
//! with the scheduled-timestamp annotation, the template's labels and the
//! controller reference; a Forbid CronJob with an active Job starts none
//! (`JobAlreadyActive`); a finished Job with ttlSecondsAfterFinished 0 is
//! deleted. Fails when the binaries are missing, unless `FK_ALLOW_SKIP=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_controller_manager::ControllerManagerConfig;
use serde_json::json;
use test_support::apiserver;
use test_support::wait::eventually;
use tokio_util::sync::CancellationToken;

const ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

fn job_template() -> serde_json::Value {
    json!({"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox"}],
    }})
}

fn cronjob(name: &str, policy: &str) -> CronJob {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedule": "* * * * *",
            "suspend": true,
            "concurrencyPolicy": policy,
            "jobTemplate": {
                "metadata": {"labels": {"app": name}, "annotations": {"note": "kept"}},
                "spec": {"template": job_template()},
            },
        },
    }))
    .unwrap()
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn patch_status(api: &Api<CronJob>, name: &str, status: serde_json::Value) {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap();
}

async fn unsuspend(api: &Api<CronJob>, name: &str) {
    let body = Patch::Merge(json!({"spec": {"suspend": false}}));
    api.patch(name, &PatchParams::default(), &body)
        .await
        .unwrap();
}

async fn owned_jobs(client: &Client, owner_uid: &str) -> Vec<Job> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let list = jobs.list(&ListParams::default()).await.unwrap().items;
    list.into_iter()
        .filter(|j| j.owner_references().iter().any(|o| o.uid == owner_uid))
        .collect()
}

async fn event_on(client: &Client, name: &str, reason: &str) -> String {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let (name, reason) = (name.to_string(), reason.to_string());
    eventually(
        &format!("{reason} on {name}"),
        Duration::from_secs(60),
        move || {
            let (events, name, reason) = (events.clone(), name.clone(), reason.clone());
            Box::pin(async move {
                let list = events.list(&ListParams::default()).await.ok()?.items;
                list.into_iter()
                    .find(|e| {
                        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
                            && e.reason.as_deref() == Some(reason.as_str())
                    })
                    .map(|e| e.note.unwrap_or_default())
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cronjob_and_ttl_against_real_apiserver() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let shutdown = CancellationToken::new();
    let config = ControllerManagerConfig {
        controllers: vec!["cronjob".to_string(), "ttl-after-finished".to_string()],
        ..Default::default()
    };
    let manager = tokio::spawn(kube_controller_manager::run(
        client.clone(),
        config,
        shutdown.clone(),
    ));
    allow_creates_the_missed_job(&client).await;
    forbid_with_an_active_job_starts_none(&client).await;
    finished_job_with_ttl_zero_is_deleted(&client).await;
    shutdown.cancel();
    let _ = manager.await;
}

async fn allow_creates_the_missed_job(client: &Client) {
    let api: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let cj = api
        .create(&PostParams::default(), &cronjob("every", "Allow"))
        .await
        .unwrap();
    let uid = cj.uid().unwrap();
    let past = Timestamp::now() - SignedDuration::from_secs(150);
    patch_status(&api, "every", json!({"lastScheduleTime": rfc3339(past)})).await;
    unsuspend(&api, "every").await;
    let c = client.clone();
    let u = uid.clone();
    let jobs = eventually("the cronjob's job", Duration::from_secs(60), move || {
        let (c, u) = (c.clone(), u.clone());
        Box::pin(async move {
            let jobs = owned_jobs(&c, &u).await;
            (!jobs.is_empty()).then_some(jobs)
        })
    })
    .await;
    assert_eq!(jobs.len(), 1, "one job for the most recent missed minute");
    let job = &jobs[0];
    let stamp = job.annotations().get(ANNOTATION).cloned().unwrap();
    let scheduled: Timestamp = stamp.parse().unwrap();
    assert!(stamp.ends_with('Z'), "UTC without a timeZone: {stamp}");
    assert_eq!(scheduled.as_second() % 60, 0);
    assert!(scheduled > past && scheduled <= Timestamp::now());
    assert_eq!(
        job.name_any(),
        format!("every-{}", scheduled.as_second() / 60)
    );
    assert_eq!(job.labels().get("app").map(String::as_str), Some("every"));
    assert_eq!(
        job.annotations().get("note").map(String::as_str),
        Some("kept")
    );
    let owner = job.owner_references().first().cloned().unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("CronJob", "every")
    );
    assert_eq!(owner.controller, Some(true));
    let job_name = job.name_any();
    let status = eventually("status.active", Duration::from_secs(30), || {
        let api = api.clone();
        Box::pin(async move {
            let status = api.get("every").await.ok()?.status?;
            (status.active.as_ref().is_some_and(|a| !a.is_empty())).then_some(status)
        })
    })
    .await;
    let active = status.active.unwrap_or_default();
    assert_eq!(active[0].name.as_deref(), Some(job_name.as_str()));
    assert_eq!(active[0].kind.as_deref(), Some("Job"));
    assert_eq!(status.last_schedule_time.map(|t| t.0), Some(scheduled));
    let note = event_on(client, "every", "SuccessfulCreate").await;
    assert_eq!(note, format!("Created job {job_name}"));
}

async fn forbid_with_an_active_job_starts_none(client: &Client) {
    let api: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let cj = api
        .create(&PostParams::default(), &cronjob("forbid", "Forbid"))
        .await
        .unwrap();
    let uid = cj.uid().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let manual: Job = serde_json::from_value(json!({
        "metadata": {"name": "forbid-manual", "namespace": "default",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                "name": "forbid", "uid": uid, "controller": true}]},
        "spec": {"template": job_template()},
    }))
    .unwrap();
    let manual = jobs.create(&PostParams::default(), &manual).await.unwrap();
    let past = Timestamp::now() - SignedDuration::from_secs(150);
    let active = json!([{"apiVersion": "batch/v1", "kind": "Job", "namespace": "default",
        "name": "forbid-manual", "uid": manual.uid()}]);
    patch_status(
        &api,
        "forbid",
        json!({"active": active, "lastScheduleTime": rfc3339(past)}),
    )
    .await;
    unsuspend(&api, "forbid").await;
    let note = event_on(client, "forbid", "JobAlreadyActive").await;
    assert_eq!(
        note,
        "Not starting job because prior execution is running and concurrency policy is Forbid"
    );
    let owned = owned_jobs(client, &uid).await;
    let names: Vec<String> = owned.iter().map(|j| j.name_any()).collect();
    assert_eq!(names, ["forbid-manual"], "no second job under Forbid");
}

async fn finished_job_with_ttl_zero_is_deleted(client: &Client) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "done", "namespace": "default"},
        "spec": {"ttlSecondsAfterFinished": 0, "template": job_template()},
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let now = rfc3339(Timestamp::now());
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "lastProbeTime": now});
    let status = json!({"status": {
        "startTime": now, "completionTime": now, "succeeded": 1,
        "conditions": [cond("SuccessCriteriaMet"), cond("Complete")],
    }});
    jobs.patch_status("done", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    // Foreground deletion: with no garbage collector running the Job keeps
    // its foregroundDeletion finalizer, so "being deleted" is the signal.
    eventually("the finished job deleted", Duration::from_secs(60), || {
        let jobs = jobs.clone();
        Box::pin(async move {
            match jobs.get_opt("done").await.ok()? {
                None => Some(()),
                Some(job) => job.metadata.deletion_timestamp.map(|_| ()),
            }
        })
    })
    .await;
}
