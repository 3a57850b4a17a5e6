#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Runs the taint-eviction controller against a real etcd + kube-apiserver:
//! after a NoExecute taint lands on a node, a pod not tolerating it is marked
//! `DisruptionTarget` and deleted at once, one tolerating it for 4s is
//! deleted only after those seconds, one tolerating it forever stays; the
//! eviction events are recorded. Fails when the binaries are missing,
//! unless `FK_ALLOW_SKIP=1`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_controller_manager::ControllerManagerConfig;
use serde_json::json;
use test_support::apiserver;
use test_support::wait::eventually;
use tokio_util::sync::CancellationToken;

const MINUTE: Duration = Duration::from_secs(60);

fn pod(name: &str, tolerations: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": "worker-1",
            "tolerations": tolerations,
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
        },
    }))
    .unwrap()
}

/// Gone or terminating: there is no kubelet to finish the graceful delete.
async fn deleted(pods: &Api<Pod>, name: &str) -> bool {
    match pods.get_opt(name).await.unwrap() {
        None => true,
        Some(p) => p.metadata.deletion_timestamp.is_some(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_execute_taint_evicts_untolerating_pods_after_their_toleration() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let shutdown = CancellationToken::new();
    // As kubeadm runs it: each controller under its ServiceAccount, so the
    // bootstrap RBAC the controller's client name maps to is exercised
    // (upstream's taint manager acts as node-controller).
    let admin = server.admin_config().await;
    let config = ControllerManagerConfig {
        controllers: vec!["taint-eviction-controller".to_string()],
        use_service_account_credentials: true,
        base_client_config: Some(admin.clone()),
        ..Default::default()
    };
    let manager = tokio::spawn(kube_controller_manager::run(
        apiserver::impersonating(&admin, "system:kube-controller-manager"),
        config,
        shutdown.clone(),
    ));

    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some("default".into());
    sas.create(&PostParams::default(), &sa).await.unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let toleration = |seconds: Option<i64>| {
        json!([{"key": "example.com/evict", "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": seconds}])
    };
    for (name, tolerations) in [
        ("plain", json!([])),
        ("tolerates-4s", toleration(Some(4))),
        ("tolerates-forever", toleration(None)),
    ] {
        pods.create(&PostParams::default(), &pod(name, tolerations))
            .await
            .unwrap();
    }

    let patch = json!({"spec": {"taints": [
        {"key": "example.com/evict", "value": "yes", "effect": "NoExecute"}
    ]}});
    let tainted_at = Instant::now();
    nodes
        .patch("worker-1", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();

    eventually("untolerating pod deleted", MINUTE, || async {
        deleted(&pods, "plain").await.then_some(())
    })
    .await;
    if let Some(plain) = pods.get_opt("plain").await.unwrap() {
        let conditions = plain.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conditions.iter().any(|c| c.type_ == "DisruptionTarget"
                && c.status == "True"
                && c.reason.as_deref() == Some("DeletionByTaintManager")),
            "DisruptionTarget condition before delete, got {conditions:?}"
        );
    }
    assert!(
        !deleted(&pods, "tolerates-4s").await,
        "tolerating pod deleted before its tolerationSeconds"
    );
    eventually("tolerating pod deleted after 4s", MINUTE, || async {
        deleted(&pods, "tolerates-4s").await.then_some(())
    })
    .await;
    assert!(
        tainted_at.elapsed() >= Duration::from_secs(4),
        "deleted after {:?}",
        tainted_at.elapsed()
    );
    assert!(!deleted(&pods, "tolerates-forever").await);

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually("TaintManagerEviction event", MINUTE, || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("TaintManagerEviction")
                    && e.note.as_deref() == Some("Marking for deletion Pod default/plain")
            })
            .then_some(())
    })
    .await;

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), manager).await;
}

/// Removing the taint before the toleration runs out cancels the eviction
/// (upstream's "removing taint cancels eviction" conformance spec).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_the_taint_cancels_the_eviction() {
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let shutdown = CancellationToken::new();
    let config = ControllerManagerConfig {
        controllers: vec!["taint-eviction-controller".to_string()],
        ..Default::default()
    };
    let manager = tokio::spawn(kube_controller_manager::run(
        client.clone(),
        config,
        shutdown.clone(),
    ));
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some("default".into());
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let tolerations = json!([{"key": "example.com/evict", "operator": "Exists",
                              "effect": "NoExecute", "tolerationSeconds": 6}]);
    pods.create(&PostParams::default(), &pod("waiting", tolerations))
        .await
        .unwrap();

    let taint = json!({"spec": {"taints": [
        {"key": "example.com/evict", "value": "yes", "effect": "NoExecute"}
    ]}});
    nodes
        .patch("worker-1", &PatchParams::default(), &Patch::Merge(taint))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let untaint = json!({"spec": {"taints": null}});
    nodes
        .patch("worker-1", &PatchParams::default(), &Patch::Merge(untaint))
        .await
        .unwrap();

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually("cancellation event", MINUTE, || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .any(|e| e.note.as_deref() == Some("Cancelling deletion of Pod default/waiting"))
            .then_some(())
    })
    .await;
    // Well past the 6s toleration, the pod is still there.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        !deleted(&pods, "waiting").await,
        "eviction was not cancelled"
    );

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), manager).await;
}
