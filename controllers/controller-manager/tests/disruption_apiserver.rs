//! The disruption controller in-process against a real etcd +
//! kube-apiserver: three Ready pods of a ReplicaSet (made Ready by
//! patching their status: no kubelet runs) and a PDB with minAvailable 2
//! give expectedPods 3, currentHealthy 3, desiredHealthy 2,
//! disruptionsAllowed 1; one eviction then succeeds and the next is
//! refused with 429. Run once as admin and once with
//! `--use-service-account-credentials`. Fails when the binaries are
//! missing, unless `FK_ALLOW_SKIP=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use kube::core::Status as EvictionStatus;
use kube_controller_manager::ControllerManagerConfig;
use serde_json::json;
use test_support::apiserver;
use test_support::wait::eventually;
use tokio_util::sync::CancellationToken;

const MINUTE: Duration = Duration::from_secs(60);

fn replica_set() -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }))
    .unwrap()
}

/// A pod the ReplicaSet controls, bound to a node no kubelet serves.
fn pod(name: &str, rs_uid: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"app": "web"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                "uid": rs_uid, "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "nginx"}]},
    }))
    .unwrap()
}

fn pdb() -> PodDisruptionBudget {
    serde_json::from_value(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap()
}

/// What the kubelet would report: Running and Ready.
async fn make_ready(pods: &Api<Pod>, name: &str) {
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// An eviction the PDB blocks comes back as the apiserver's 429 at once:
/// the refusal carries no `Retry-After`, so a client-go-like client does
/// not retry it (kube-client's default backoff once held it for minutes).
async fn refused_promptly(pods: &Api<Pod>, name: &str) -> Result<EvictionStatus, kube::Error> {
    match tokio::time::timeout(
        Duration::from_secs(20),
        pods.evict(name, &EvictParams::default()),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => panic!("eviction of {name} neither succeeded nor was refused within 20s"),
    }
}

/// (expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed)
/// once the status is for the PDB's generation.
async fn pdb_counts(pdbs: &Api<PodDisruptionBudget>) -> Option<(i32, i32, i32, i32)> {
    let pdb = pdbs.get("web").await.ok()?;
    let s = pdb.status.as_ref()?;
    (s.observed_generation == pdb.metadata.generation).then_some(())?;
    Some((
        s.expected_pods.unwrap_or(0),
        s.current_healthy.unwrap_or(0),
        s.desired_healthy.unwrap_or(0),
        s.disruptions_allowed.unwrap_or(0),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disruption_against_real_apiserver() {
    scenario(false).await;
}

/// As the ServiceAccount `disruption-controller` (upstream's bootstrap
/// RBAC: update on poddisruptionbudgets/status).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disruption_with_service_account_credentials() {
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
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    // Pod admission needs the default ServiceAccount (no SA controller here).
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some("default".into());
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rs = rss
        .create(&PostParams::default(), &replica_set())
        .await
        .unwrap();
    let rs_uid = rs.uid().unwrap();
    for name in ["web-a", "web-b", "web-c"] {
        pods.create(&PostParams::default(), &pod(name, &rs_uid))
            .await
            .unwrap();
        make_ready(&pods, name).await;
    }
    pdbs.create(&PostParams::default(), &pdb()).await.unwrap();

    let shutdown = CancellationToken::new();
    let mut config = ControllerManagerConfig {
        controllers: vec!["disruption".to_string()],
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

    eventually("PDB status 3/3/2/1", MINUTE, || {
        let pdbs = pdbs.clone();
        Box::pin(async move { (pdb_counts(&pdbs).await? == (3, 3, 2, 1)).then_some(()) })
    })
    .await;
    let status = pdbs.get("web").await.unwrap().status.unwrap();
    let cond = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "DisruptionAllowed")
        .expect("DisruptionAllowed condition");
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "SufficientPods")
    );

    // One eviction is within budget; the apiserver records it and deletes
    // the pod (it stays terminating: no kubelet).
    pods.evict("web-a", &EvictParams::default()).await.unwrap();
    let refused = refused_promptly(&pods, "web-b").await;
    match refused {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 429, "{status:?}"),
        other => panic!("second eviction should be refused with 429, got {other:?}"),
    }
    // The controller agrees: the terminating pod is not healthy.
    eventually("PDB status 3/2/2/0", MINUTE, || {
        let pdbs = pdbs.clone();
        Box::pin(async move { (pdb_counts(&pdbs).await? == (3, 2, 2, 0)).then_some(()) })
    })
    .await;
    let refused_again = refused_promptly(&pods, "web-b").await;
    assert!(
        matches!(&refused_again, Err(kube::Error::Api(s)) if s.code == 429),
        "{refused_again:?}"
    );

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), manager).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("controller manager did not stop cleanly: {other:?}"),
    }
}
