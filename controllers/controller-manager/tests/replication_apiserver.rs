//! The ReplicationController controller in-process against a real etcd +
//! kube-apiserver: an RC of 3 adopts a matching orphan and creates the
//! rest, scaling to 1 deletes 2, a pod whose labels stop matching is
//! released and replaced, and the status counts follow. There is no
//! kubelet, so pods never run: ready/available stay 0. Run once as admin
//! and once with `--use-service-account-credentials`. Fails when the
//! binaries are missing, unless `FK_ALLOW_SKIP=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_controller_manager::ControllerManagerConfig;
use serde_json::json;
use test_support::apiserver;
use test_support::wait::eventually;
use tokio_util::sync::CancellationToken;

const MINUTE: Duration = Duration::from_secs(60);

fn rc(replicas: i32) -> ReplicationController {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"app": "web"},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "front"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }))
    .expect("rc")
}

fn orphan() -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orphan", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    }))
    .expect("pod")
}

fn controller_uid(pod: &Pod) -> Option<String> {
    let refs = pod.metadata.owner_references.as_ref()?;
    let r = refs.iter().find(|r| r.controller == Some(true))?;
    assert_eq!(
        (r.api_version.as_str(), r.kind.as_str()),
        ("v1", "ReplicationController")
    );
    Some(r.uid.clone())
}

fn fully_labeled(pods: &[Pod]) -> i32 {
    let has_tier = |p: &&Pod| p.labels().get("tier").map(String::as_str) == Some("front");
    pods.iter().filter(has_tier).count() as i32
}

/// Waits until exactly `n` live pods are controlled by `uid` and the RC's
/// status counts them (`replicas`, `fullyLabeledReplicas`: those with the
/// template's labels) for its generation.
async fn settles_at(client: &Client, uid: &str, n: usize) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    let uid = uid.to_string();
    let owned = eventually(&format!("{n} pods owned by the RC"), MINUTE, || {
        let (pods, uid) = (pods.clone(), uid.clone());
        Box::pin(async move {
            let list = pods.list(&ListParams::default()).await.ok()?.items;
            let mine: Vec<Pod> = list
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| controller_uid(p).as_deref() == Some(uid.as_str()))
                .collect();
            (mine.len() == n).then_some(mine)
        })
    })
    .await;
    let fully_labeled = fully_labeled(&owned);
    eventually(&format!("status.replicas {n}"), MINUTE, || {
        let rcs = rcs.clone();
        Box::pin(async move {
            let rc = rcs.get("web").await.ok()?;
            let s = rc.status.as_ref()?;
            let done = s.replicas == n as i32
                && s.fully_labeled_replicas.unwrap_or(0) == fully_labeled
                && s.ready_replicas.unwrap_or(0) == 0
                && s.available_replicas.unwrap_or(0) == 0
                && s.observed_generation == rc.metadata.generation;
            done.then_some(())
        })
    })
    .await;
    owned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_controller_against_real_apiserver() {
    scenario(false).await;
}

/// The same as the ServiceAccount `replication-controller` (upstream's
/// bootstrap RBAC: update on replicationcontrollers/status, patch on pods),
/// with the process itself impersonating `system:kube-controller-manager`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_controller_with_service_account_credentials() {
    scenario(true).await;
}

async fn scenario(use_service_account_credentials: bool) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    // Pod admission needs the default ServiceAccount (no SA controller here).
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some("default".into());
    sas.create(&PostParams::default(), &sa).await.unwrap();
    // The orphan exists before the controller starts, so its first sync
    // adopts it rather than racing it with a creation.
    pods.create(&PostParams::default(), &orphan())
        .await
        .unwrap();
    let created = rcs.create(&PostParams::default(), &rc(3)).await.unwrap();
    let uid = created.uid().unwrap();

    let shutdown = CancellationToken::new();
    let mut config = ControllerManagerConfig {
        controllers: vec!["replicationcontroller".to_string()],
        ..Default::default()
    };
    let mut process_client = client.clone();
    if use_service_account_credentials {
        let admin = server.admin_config().await;
        process_client = apiserver::impersonating(&admin, "system:kube-controller-manager");
        config.use_service_account_credentials = true;
        config.base_client_config = Some(admin);
    }
    let manager = tokio::spawn(kube_controller_manager::run(
        process_client,
        config,
        shutdown.clone(),
    ));

    // 3 replicas: the orphan is adopted, two pods are created. The orphan
    // lacks the template's `tier` label: 2 fully labeled.
    let owned = settles_at(&client, &uid, 3).await;
    assert_eq!(fully_labeled(&owned), 2);
    assert!(
        owned.iter().any(|p| p.name_any() == "orphan"),
        "orphan adopted"
    );
    for p in owned.iter().filter(|p| p.name_any() != "orphan") {
        assert!(p.name_any().starts_with("web-"), "{}", p.name_any());
        assert_eq!(p.labels().get("tier").map(String::as_str), Some("front"));
    }

    // Scale to 1: two are deleted.
    let scale = json!({"spec": {"replicas": 1}});
    rcs.patch("web", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    let remaining = settles_at(&client, &uid, 1).await.remove(0);

    // Its labels stop matching: released (no controller ref) and replaced.
    let relabel = json!({"metadata": {"labels": {"app": "other"}}});
    let released_name = remaining.name_any();
    pods.patch(
        &released_name,
        &PatchParams::default(),
        &Patch::Merge(&relabel),
    )
    .await
    .unwrap();
    let released = eventually("release", MINUTE, || {
        let (pods, name) = (pods.clone(), released_name.clone());
        Box::pin(async move {
            let p = pods.get(&name).await.ok()?;
            p.owner_references().is_empty().then_some(p)
        })
    })
    .await;
    assert_eq!(
        released.labels().get("app").map(String::as_str),
        Some("other")
    );
    let replacement = settles_at(&client, &uid, 1).await;
    assert_eq!(fully_labeled(&replacement), 1);
    assert_ne!(replacement[0].name_any(), released_name);

    // Events as upstream's: from replication-controller, "Created pod: x".
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let created_events = eventually("SuccessfulCreate events", MINUTE, || {
        let events = events.clone();
        Box::pin(async move {
            let list = events.list(&ListParams::default()).await.ok()?.items;
            let mine: Vec<Event> = list
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
                .filter(|e| e.involved_object.kind.as_deref() == Some("ReplicationController"))
                .collect();
            (!mine.is_empty()).then_some(mine)
        })
    })
    .await;
    for e in &created_events {
        // Recorded as core/v1 events with upstream's source component.
        assert_eq!(
            e.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("replication-controller")
        );
        let reporter = e.reporting_component.as_deref();
        assert_eq!(reporter, Some("replication-controller"));
        assert!(
            e.message
                .as_deref()
                .unwrap_or_default()
                .starts_with("Created pod: web-")
        );
    }

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), manager).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("controller manager did not stop cleanly: {other:?}"),
    }
}
