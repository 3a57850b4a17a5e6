//! Issue 10, "swapping in on a live cluster": Deployments rolled out by the
//! stock kube-controller-manager keep their ReplicaSets and pods when ours
//! takes over, and the ReplicaSets ours creates are kept by stock when it
//! takes back. Both only hold if our `pod-template-hash` is upstream's bit for
//! bit: a different hash makes the taker-over see no ReplicaSet for the
//! template and roll out a new one.
//!
//! Against a real etcd + kube-apiserver, with the stock controller-manager
//! binary (deployment and replicaset controllers) and ours in-process. No
//! kubelet: pods stay Pending, which is enough to see them replaced or not.
//! Fails when a stock binary is missing, unless `FK_ALLOW_SKIP=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "swap_support/mod.rs"]
mod swap_support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_controller_manager::hash::pod_template_hash;
use serde_json::{Value, json};
use swap_support::{start_ours, start_stock};
use test_support::apiserver;
use test_support::wait::eventually;

const MINUTE: Duration = Duration::from_secs(60);
/// How long a controller-manager gets to (wrongly) roll anything out after
/// it takes over: several full syncs of every Deployment.
const SETTLE: Duration = Duration::from_secs(15);

/// Templates as users write them: the e2e suite's, quantities, named and
/// numbered ports, probes, volumes, affinity, security contexts, HTML
/// characters in annotations.
fn manifests() -> Vec<Value> {
    let templates = [
        json!({
            "metadata": {"labels": {"name": "httpd"}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "httpd", "image": "registry.k8s.io/e2e-test-images/httpd:2.4.38-4",
                "securityContext": {}}]}
        }),
        json!({
            "metadata": {"labels": {"app": "web"}, "annotations": {"note": "<a> & <b>\u{2028}"}},
            "spec": {"containers": [{
                "name": "web", "image": "nginx:1.27",
                "ports": [{"name": "http", "containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "1.5Gi"},
                              "limits": {"cpu": "0.5", "memory": "1Gi", "example.com/dongle": "1"}},
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 3},
                "livenessProbe": {"tcpSocket": {"port": 80}},
                "env": [{"name": "A", "value": "1"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}],
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "cfg", "mountPath": "/cfg"}]
            }],
            "volumes": [
                {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "cfg", "projected": {"sources": [
                    {"configMap": {"name": "cfg"}},
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}}
            ]}
        }),
        json!({
            "metadata": {"labels": {"app": "sched"}},
            "spec": {
                "securityContext": {"runAsUser": 1000, "runAsNonRoot": true, "fsGroup": 2000,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule"},
                                {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}],
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100, "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "sched"}},
                        "topologyKey": "kubernetes.io/hostname"}}]}},
                "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]},
                                   {"name": "side", "image": "busybox", "restartPolicy": "Always"}],
                "containers": [{"name": "app", "image": "busybox",
                    "securityContext": {"allowPrivilegeEscalation": false,
                                        "capabilities": {"drop": ["ALL"]}}}]
            }
        }),
    ];
    templates
        .into_iter()
        .enumerate()
        .map(|(i, template)| {
            let labels = template["metadata"]["labels"].clone();
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": format!("d{i}"), "namespace": "default"},
                "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template},
            })
        })
        .collect()
}

/// Per Deployment: its ReplicaSets (name → uid) and its pods' uids.
#[derive(Debug, PartialEq, Eq)]
struct Rollout {
    replica_sets: BTreeMap<String, String>,
    pods: BTreeMap<String, String>,
}

async fn snapshot(client: &Client) -> BTreeMap<String, Rollout> {
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rss = rss.list(&ListParams::default()).await.unwrap().items;
    let pods = pods.list(&ListParams::default()).await.unwrap().items;
    let mut out: BTreeMap<String, Rollout> = BTreeMap::new();
    for rs in &rss {
        let owner = rs
            .owner_references()
            .first()
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let entry = out.entry(owner).or_insert_with(|| Rollout {
            replica_sets: BTreeMap::new(),
            pods: BTreeMap::new(),
        });
        entry.replica_sets.insert(rs.name_any(), rs.uid().unwrap());
        for p in pods.iter().filter(|p| {
            p.owner_references()
                .first()
                .is_some_and(|r| Some(&r.uid) == rs.metadata.uid.as_ref())
        }) {
            entry.pods.insert(p.name_any(), p.uid().unwrap());
        }
    }
    out
}

/// Every Deployment has a ReplicaSet for its current template with all its
/// replicas created, and that ReplicaSet's name and `pod-template-hash` are
/// what our hash gives for the Deployment as served.
async fn rolled_out(client: &Client, who: &str) -> BTreeMap<String, Rollout> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    eventually(&format!("{who} rolls every Deployment out"), MINUTE, || {
        let (deployments, rss) = (deployments.clone(), rss.clone());
        Box::pin(async move {
            let ds = deployments.list(&ListParams::default()).await.ok()?.items;
            let rss = rss.list(&ListParams::default()).await.ok()?.items;
            for d in &ds {
                let spec = d.spec.as_ref()?;
                let collision = d.status.as_ref().and_then(|s| s.collision_count);
                let ours = pod_template_hash(&spec.template, collision);
                let current = rss.iter().find(|rs| {
                    rs.labels().get("pod-template-hash") == Some(&ours)
                        && rs.owner_references().first().map(|r| &r.name)
                            == d.metadata.name.as_ref()
                })?;
                assert_eq!(current.name_any(), format!("{}-{ours}", d.name_any()));
                let created = current.status.as_ref().map_or(0, |s| s.replicas);
                let wanted = current.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                if created != wanted || wanted == 0 {
                    return None;
                }
            }
            Some(())
        })
    })
    .await;
    snapshot(client).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployments_survive_swapping_the_controller_manager_both_ways() {
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
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    for d in manifests() {
        let d: Deployment = serde_json::from_value(d).unwrap();
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }

    // 1. Stock rolls everything out; ours names the same ReplicaSets.
    let Some(mut stock) = start_stock(&kubeconfig, "deployment,replicaset") else {
        return;
    };
    let by_stock = rolled_out(&client, "stock").await;
    stock.process.terminate(MINUTE).unwrap();

    // 2. Ours takes over: nothing new, nothing replaced.
    let (shutdown, ours) = start_ours(&client, "deployment,replicaset");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        snapshot(&client).await,
        by_stock,
        "ours rolled something out"
    );

    // 3. A template change under ours: one new ReplicaSet, named by us.
    let change = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "httpd", "env": [{"name": "CHANGED", "value": "<yes>"}]}]}}}});
    deployments
        .patch("d0", &PatchParams::default(), &Patch::Strategic(&change))
        .await
        .unwrap();
    let by_ours = rolled_out(&client, "ours").await;
    assert_eq!(by_ours["d0"].replica_sets.len(), 2, "{by_ours:?}");
    shutdown.cancel();
    ours.await.unwrap();

    // 4. Stock takes back: it finds our ReplicaSet for the new template.
    let Some(mut stock) = start_stock(&kubeconfig, "deployment,replicaset") else {
        return;
    };
    tokio::time::sleep(SETTLE).await;
    let after = snapshot(&client).await;
    stock.process.terminate(MINUTE).unwrap();
    assert_eq!(
        after
            .iter()
            .map(|(d, r)| (d, &r.replica_sets))
            .collect::<Vec<_>>(),
        by_ours
            .iter()
            .map(|(d, r)| (d, &r.replica_sets))
            .collect::<Vec<_>>(),
        "stock rolled something out after ours; its log:\n{}",
        stock.process.log()
    );
}
