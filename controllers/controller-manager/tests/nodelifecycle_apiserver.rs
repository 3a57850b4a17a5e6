//! Runs the node-lifecycle controller against a real etcd + kube-apiserver:
//! a new Node carries the `not-ready` NoSchedule taint the TaintNodesByCondition
//! admission plugin adds; Ready=True removes it, Ready=False brings it back.
//! Fails when the binaries are missing, unless `FK_ALLOW_SKIP=1`.

use test_support::apiserver;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_controller_manager::ControllerManagerConfig;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NOT_READY: &str = "node.kubernetes.io/not-ready";

fn no_schedule_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .filter(|t| t.effect == "NoSchedule")
                .map(|t| t.key.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls the node until its NoSchedule taint keys satisfy `want`.
async fn wait_for_taints(nodes: &Api<Node>, what: &str, want: impl Fn(&[String]) -> bool) {
    let start = std::time::Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(node) = nodes.get("worker-1").await {
            last = no_schedule_keys(&node);
            if want(&last) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out waiting for {what}; NoSchedule taints are {last:?}");
}

async fn set_ready(nodes: &Api<Node>, status: &str) {
    let now = jiff::Timestamp::now().to_string();
    let patch = json!({"status": {"conditions": [{
        "type": "Ready", "status": status, "reason": "Test",
        "lastHeartbeatTime": now, "lastTransitionTime": now,
    }]}});
    if let Err(e) = nodes
        .patch_status(
            "worker-1",
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        panic!("setting Ready={status}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_schedule_taints_follow_ready_condition() {
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
        controllers: vec!["node-lifecycle-controller".to_string()],
        ..Default::default()
    };
    let manager = tokio::spawn(kube_controller_manager::run(
        client.clone(),
        config,
        shutdown.clone(),
    ));

    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = match serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "worker-1"},
        "spec": {"taints": [{"key": "example.com/dedicated", "value": "ci", "effect": "NoSchedule"}]},
    })) {
        Ok(n) => n,
        Err(e) => panic!("building node: {e}"),
    };
    let created = match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => n,
        Err(e) => panic!("creating node: {e}"),
    };
    assert!(
        no_schedule_keys(&created).iter().any(|k| k == NOT_READY),
        "admission should add the not-ready taint, got {:?}",
        no_schedule_keys(&created)
    );

    set_ready(&nodes, "True").await;
    wait_for_taints(&nodes, "not-ready taint removed", |keys| {
        keys == ["example.com/dedicated"]
    })
    .await;

    set_ready(&nodes, "False").await;
    wait_for_taints(&nodes, "not-ready taint back", |keys| {
        keys.iter().any(|k| k == NOT_READY) && keys.iter().any(|k| k == "example.com/dedicated")
    })
    .await;
    let node = match nodes.get("worker-1").await {
        Ok(n) => n,
        Err(e) => panic!("reading node: {e}"),
    };
    let not_ready = node
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .find(|t| t.key == NOT_READY);
    assert!(
        not_ready.is_some_and(|t| t.time_added.is_some()),
        "controller-added taint carries timeAdded"
    );

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), manager).await;
}
