//! The Job controller in-process against a real etcd + kube-apiserver: a
//! Job with completions 3 / parallelism 2 gets 2 pods carrying the
//! tracking finalizer and the job labels; each pod marked Succeeded (no
//! kubelet runs: the test sets phases through the status subresource) is
//! counted, loses its finalizer and is replaced until 3 succeed → Complete.
//! Then an Indexed Job of 2 completes with `completedIndexes` `0,1`.
//! Fails when the binaries are missing, unless `FK_ALLOW_SKIP=1`.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_controller_manager::ControllerManagerConfig;
use serde_json::json;
use test_support::apiserver;
use test_support::wait::eventually;
use tokio_util::sync::CancellationToken;

const FINALIZER: &str = "batch.kubernetes.io/job-tracking";

fn has_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == FINALIZER)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

async fn job_pods(client: &Client) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    match pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=pi"))
        .await
    {
        Ok(list) => list.items,
        Err(_) => Vec::new(),
    }
}

async fn succeed(client: &Client, pod: &Pod) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let status = json!({"status": {"phase": "Succeeded"}});
    let result = pods
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await;
    assert!(
        result.is_ok(),
        "marking {} Succeeded: {result:?}",
        pod.name_any()
    );
}

fn pi_job() -> Job {
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default"},
        "spec": {
            "completions": 3,
            "parallelism": 2,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "perl"}],
            }},
        },
    });
    match serde_json::from_value(job) {
        Ok(job) => job,
        Err(e) => panic!("building job: {e}"),
    }
}

/// Pods the controller has created and not yet seen finish, once there
/// are `want` of them.
async fn running(client: &Client, want: usize) -> Vec<Pod> {
    let c = client.clone();
    eventually(
        &format!("{want} running job pods"),
        Duration::from_secs(60),
        move || {
            let c = c.clone();
            Box::pin(async move {
                let pods: Vec<Pod> = job_pods(&c)
                    .await
                    .into_iter()
                    .filter(|p| phase(p) != "Succeeded")
                    .collect();
                (pods.len() == want).then_some(pods)
            })
        },
    )
    .await
}

async fn succeeded_count(client: &Client, want: i32) -> Job {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    eventually(
        &format!("status.succeeded {want}"),
        Duration::from_secs(60),
        move || {
            let jobs = jobs.clone();
            Box::pin(async move {
                let job = jobs.get("pi").await.ok()?;
                (job.status.as_ref()?.succeeded == Some(want)).then_some(job)
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_runs_to_completion_against_real_apiserver() {
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
        // The ServiceAccount controller makes `default`, which pod
        // admission requires.
        controllers: vec!["job".to_string(), "serviceaccount".to_string()],
        ..Default::default()
    };
    let manager = tokio::spawn(kube_controller_manager::run(
        client.clone(),
        config,
        shutdown.clone(),
    ));
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    eventually("default service account", Duration::from_secs(60), || {
        let sas = sas.clone();
        Box::pin(async move { sas.get_opt("default").await.ok().flatten() })
    })
    .await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let created = jobs.create(&PostParams::default(), &pi_job()).await;
    let uid = match created {
        Ok(job) => job.uid().unwrap_or_default(),
        Err(e) => panic!("creating job: {e}"),
    };

    let first = running(&client, 2).await;
    for pod in &first {
        assert!(
            has_finalizer(pod),
            "{} has the tracking finalizer",
            pod.name_any()
        );
        let labels = pod.labels();
        assert_eq!(labels.get("batch.kubernetes.io/controller-uid"), Some(&uid));
        assert_eq!(
            labels
                .get("batch.kubernetes.io/job-name")
                .map(String::as_str),
            Some("pi")
        );
        assert_eq!(labels.get("controller-uid"), Some(&uid));
        assert_eq!(labels.get("job-name").map(String::as_str), Some("pi"));
        let owner = pod.owner_references().first().cloned();
        assert_eq!(owner.as_ref().map(|o| o.uid.as_str()), Some(uid.as_str()));
        assert_eq!(owner.and_then(|o| o.controller), Some(true));
        assert!(pod.name_any().starts_with("pi-"));
    }

    // One succeeds: counted, finalizer removed, a replacement created.
    succeed(&client, &first[0]).await;
    succeeded_count(&client, 1).await;
    let second = running(&client, 2).await;
    let pods = job_pods(&client).await;
    let done = pods.iter().find(|p| p.name_any() == first[0].name_any());
    assert!(
        done.is_some_and(|p| !has_finalizer(p)),
        "finalizer removed after counting"
    );
    assert_eq!(pods.len(), 3, "one replacement for the succeeded pod");

    // The other two succeed: 3 succeeded, no more pods, Complete.
    for pod in &second {
        succeed(&client, pod).await;
    }
    succeeded_count(&client, 3).await;
    let job = eventually("Complete condition", Duration::from_secs(60), || {
        let jobs = jobs.clone();
        Box::pin(async move {
            let job = jobs.get("pi").await.ok()?;
            let conds = job.status.as_ref()?.conditions.clone()?;
            conds
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
                .then_some(job)
        })
    })
    .await;
    let status = job.status.clone().unwrap_or_default();
    let conds = status.conditions.unwrap_or_default();
    let types: Vec<&str> = conds.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    for c in &conds {
        assert_eq!(c.reason.as_deref(), Some("CompletionsReached"));
    }
    assert!(status.completion_time.is_some());
    assert_eq!(status.active.unwrap_or(0), 0, "active (omitted when 0)");
    let pods = job_pods(&client).await;
    assert_eq!(pods.len(), 3, "no pod beyond completions");
    assert!(
        pods.iter().all(|p| !has_finalizer(p)),
        "every finalizer removed"
    );

    job_events_recorded(&client).await;
    indexed_job_completes(&client).await;

    shutdown.cancel();
    let _ = manager.await;
}

/// Upstream's reasons and messages on the Job: `SuccessfulCreate`
/// "Created pod: x" and `Completed` "Job completed".
async fn job_events_recorded(client: &Client) {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually("job events", Duration::from_secs(60), || {
        let events = events.clone();
        Box::pin(async move {
            let list = events.list(&ListParams::default()).await.ok()?.items;
            let on_job: Vec<(String, String)> = list
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("pi"))
                .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
                .collect();
            // Read through the events.k8s.io/v1 view of the core/v1 events.
            let created = on_job
                .iter()
                .any(|(r, n)| r == "SuccessfulCreate" && n.starts_with("Created pod: pi-"));
            let completed = on_job
                .iter()
                .any(|(r, n)| r == "Completed" && n == "Job completed");
            (created && completed).then_some(())
        })
    })
    .await;
}

/// An Indexed Job of 2: each pod carries its index (annotation, label,
/// hostname, `JOB_COMPLETION_INDEX`), and `completedIndexes` is `0,1`.
async fn indexed_job_completes(client: &Client) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "idx", "namespace": "default"},
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "completionMode": "Indexed",
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}],
            }},
        },
    });
    let job: Job = match serde_json::from_value(job) {
        Ok(job) => job,
        Err(e) => panic!("building job: {e}"),
    };
    if let Err(e) = jobs.create(&PostParams::default(), &job).await {
        panic!("creating indexed job: {e}");
    }
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pods = eventually("2 indexed pods", Duration::from_secs(60), || {
        let api = pods_api.clone();
        Box::pin(async move {
            let lp = ListParams::default().labels("batch.kubernetes.io/job-name=idx");
            let list = api.list(&lp).await.ok()?.items;
            (list.len() == 2).then_some(list)
        })
    })
    .await;
    let mut indexes = Vec::new();
    for pod in &pods {
        let ix = pod
            .annotations()
            .get("batch.kubernetes.io/job-completion-index")
            .cloned();
        let ix = ix.unwrap_or_default();
        assert_eq!(
            pod.labels().get("batch.kubernetes.io/job-completion-index"),
            Some(&ix)
        );
        let spec = pod.spec.clone().unwrap_or_default();
        assert_eq!(spec.hostname, Some(format!("idx-{ix}")));
        assert!(pod.name_any().starts_with(&format!("idx-{ix}-")));
        let env = spec.containers[0].env.clone().unwrap_or_default();
        assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
        indexes.push(ix);
        succeed(client, pod).await;
    }
    indexes.sort();
    assert_eq!(indexes, ["0", "1"]);
    eventually("indexed job Complete", Duration::from_secs(60), || {
        let jobs = jobs.clone();
        Box::pin(async move {
            let status = jobs.get("idx").await.ok()?.status?;
            let complete = status.conditions?.iter().any(|c| c.type_ == "Complete");
            (complete && status.completed_indexes.as_deref() == Some("0,1")).then_some(())
        })
    })
    .await;
}
