//! Issue 10, "swapping in on a live cluster", for the ControllerRevision
//! users: a DaemonSet and a StatefulSet rolled out by the stock
//! kube-controller-manager keep their ControllerRevisions and pods when ours
//! takes over, and back. Both hold only if our revision names
//! (`pod_template_hash` for DaemonSets, `controller_revision_hash` over the
//! `getPatch` bytes for StatefulSets) and the revision each pod carries in
//! `controller-revision-hash` are upstream's bit for bit: a different hash
//! makes the taker-over see an update and replace every pod.
//!
//! Against a real etcd + kube-apiserver, with the stock controller-manager
//! binary and ours in-process, two Nodes that exist only as API objects. No
//! kubelet or scheduler: pods stay Pending, which is enough to see them
//! replaced or not. Fails when a stock binary is missing, unless
//! `FK_ALLOW_SKIP=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "swap_support/mod.rs"]
mod swap_support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use swap_support::{start_ours, start_stock};
use test_support::apiserver;
use test_support::wait::eventually;

const MINUTE: Duration = Duration::from_secs(60);
/// How long a controller-manager gets to (wrongly) roll anything out after
/// it takes over: several syncs of both workloads.
const SETTLE: Duration = Duration::from_secs(15);
const CONTROLLERS: &str = "daemonset,statefulset";

fn node(name: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
    }))
    .unwrap()
}

fn daemon_set() -> DaemonSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}, "annotations": {"note": "<a> & b"}},
                "spec": {"containers": [{
                    "name": "agent", "image": "registry.k8s.io/e2e-test-images/httpd:2.4.38-4",
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                    "ports": [{"containerPort": 80, "hostPort": 8080}],
                }]},
            },
        },
    }))
    .unwrap()
}

fn stateful_set() -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "serviceName": "db",
            // Parallel: both pods appear although none becomes Ready here.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{
                    "name": "db", "image": "busybox",
                    "command": ["sh", "-c", "sleep 3600 && echo '<done>'"],
                    "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5},
                }]},
            },
        },
    }))
    .unwrap()
}

/// What must not change across a swap: every ControllerRevision (name →
/// uid) and every pod (name → uid and its `controller-revision-hash`).
#[derive(Debug, PartialEq, Eq)]
struct State {
    revisions: BTreeMap<String, String>,
    pods: BTreeMap<String, (String, String)>,
}

async fn snapshot(client: &Client) -> State {
    let crs: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let revisions = crs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| (r.name_any(), r.uid().unwrap()))
        .collect();
    let pods = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let hash = p
                .labels()
                .get("controller-revision-hash")
                .cloned()
                .unwrap_or_default();
            (p.name_any(), (p.uid().unwrap(), hash))
        })
        .collect();
    State { revisions, pods }
}

/// Both workloads fully created: one daemon pod per node, both stateful
/// pods, one revision each, every pod labelled with its revision.
async fn rolled_out(client: &Client, who: &str) -> State {
    eventually(&format!("{who} rolls both workloads out"), MINUTE, || {
        let client = client.clone();
        Box::pin(async move {
            let state = snapshot(&client).await;
            let complete = state.revisions.len() == 2
                && state.pods.len() == 4
                && state.pods.values().all(|(_, hash)| !hash.is_empty())
                && state.pods.keys().filter(|n| n.starts_with("db-")).count() == 2;
            complete.then_some(state)
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daemonset_and_statefulset_survive_swapping_the_controller_manager_both_ways() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let kubeconfig = server.kubeconfig().to_string_lossy().into_owned();
    let client = server.client().await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some("default".into());
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    for name in ["node-a", "node-b"] {
        nodes
            .create(&PostParams::default(), &node(name))
            .await
            .unwrap();
        // Admission (TaintNodesByCondition) taints a new node not-ready
        // NoSchedule, which daemon pods do not tolerate; no node-lifecycle
        // controller runs here to lift it.
        let untaint = json!({"spec": {"taints": null}});
        nodes
            .patch(name, &PatchParams::default(), &Patch::Merge(&untaint))
            .await
            .unwrap();
    }
    Api::<DaemonSet>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &daemon_set())
        .await
        .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &stateful_set())
        .await
        .unwrap();

    // 1. Stock rolls both out.
    let Some(mut stock) = start_stock(&kubeconfig, CONTROLLERS) else {
        return;
    };
    let by_stock = rolled_out(&client, "stock").await;
    stock.process.terminate(MINUTE).unwrap();

    // 2. Ours takes over: no new revision, no pod replaced or relabelled.
    let (shutdown, ours) = start_ours(&client, CONTROLLERS);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        snapshot(&client).await,
        by_stock,
        "ours rolled something out"
    );
    shutdown.cancel();
    ours.await.unwrap();

    // 3. Stock takes back: still nothing new.
    let Some(mut stock) = start_stock(&kubeconfig, CONTROLLERS) else {
        return;
    };
    tokio::time::sleep(SETTLE).await;
    let after = snapshot(&client).await;
    let log = stock.process.log();
    stock.process.terminate(MINUTE).unwrap();
    assert_eq!(
        after, by_stock,
        "stock rolled something out after ours; its log:\n{log}"
    );
}
