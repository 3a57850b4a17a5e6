//! The ResourceQuota controller in-process against a real etcd +
//! kube-apiserver (whose quota admission charges creations): the status is
//! calculated promptly, usage is released when a ConfigMap, a ReplicaSet
//! or a pod is deleted or a pod finishes, and a changed `spec.hard` is
//! mirrored at once. Run as the controller's ServiceAccount
//! (`--use-service-account-credentials`), so upstream's bootstrap RBAC
//! covers what it reads and writes. Fails when the binaries are missing,
//! unless `FK_ALLOW_SKIP=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_controller_manager::ControllerManagerConfig;
use serde_json::json;
use test_support::apiserver;
use test_support::wait::eventually;
use tokio_util::sync::CancellationToken;

const MINUTE: Duration = Duration::from_secs(60);

fn quota() -> ResourceQuota {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "quota", "namespace": "default"},
        "spec": {"hard": {
            "pods": "5",
            "requests.cpu": "2",
            "configmaps": "10",
            "resourcequotas": "1",
            "count/replicasets.apps": "5",
        }},
    }))
    .unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "500m"}}}],
        },
    }))
    .unwrap()
}

fn replica_set() -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "rs", "namespace": "default"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "rs"}},
            "template": {
                "metadata": {"labels": {"app": "rs"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }))
    .unwrap()
}

/// `status.used` as plain strings, once written.
async fn used(quotas: &Api<ResourceQuota>) -> Option<BTreeMap<String, String>> {
    let q = quotas.get("quota").await.ok()?;
    let used = q.status?.used?;
    Some(used.into_iter().map(|(k, v)| (k, v.0)).collect())
}

async fn wait_used(quotas: &Api<ResourceQuota>, what: &str, want: &[(&str, &str)]) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    eventually(what, MINUTE, || {
        let quotas = quotas.clone();
        let want = want.clone();
        Box::pin(async move { (used(&quotas).await? == want).then_some(()) })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resource_quota_against_real_apiserver() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some("default".into());
    sas.create(&PostParams::default(), &sa).await.unwrap();

    let shutdown = CancellationToken::new();
    let admin = server.admin_config().await;
    let config = ControllerManagerConfig {
        controllers: vec!["resourcequota".to_string()],
        use_service_account_credentials: true,
        base_client_config: Some(admin.clone()),
        ..Default::default()
    };
    let manager = tokio::spawn(kube_controller_manager::run(
        apiserver::impersonating(&admin, "system:kube-controller-manager"),
        config,
        shutdown.clone(),
    ));

    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "default");
    quotas
        .create(&PostParams::default(), &quota())
        .await
        .unwrap();
    let zero = [
        ("configmaps", "0"),
        ("count/replicasets.apps", "0"),
        ("pods", "0"),
        ("requests.cpu", "0"),
        ("resourcequotas", "1"),
    ];
    wait_used(&quotas, "status promptly calculated", &zero).await;
    let status = quotas.get("quota").await.unwrap().status.unwrap();
    assert_eq!(status.hard, quota().spec.unwrap().hard);

    // A ConfigMap is charged by admission and released by the controller.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("cm".into());
    cms.create(&PostParams::default(), &cm).await.unwrap();
    wait_used(
        &quotas,
        "configmap charged",
        &[
            ("configmaps", "1"),
            ("count/replicasets.apps", "0"),
            ("pods", "0"),
            ("requests.cpu", "0"),
            ("resourcequotas", "1"),
        ],
    )
    .await;
    cms.delete("cm", &DeleteParams::default()).await.unwrap();
    wait_used(&quotas, "configmap released", &zero).await;

    // A discovered resource (count/replicasets.apps), the same way.
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    rss.create(&PostParams::default(), &replica_set())
        .await
        .unwrap();
    wait_used(
        &quotas,
        "replicaset charged",
        &[
            ("configmaps", "0"),
            ("count/replicasets.apps", "1"),
            ("pods", "0"),
            ("requests.cpu", "0"),
            ("resourcequotas", "1"),
        ],
    )
    .await;
    rss.delete("rs", &DeleteParams::default()).await.unwrap();
    wait_used(&quotas, "replicaset released", &zero).await;

    // Pods: charged with their requests, released when they finish and
    // when they are deleted.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("a"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("b"))
        .await
        .unwrap();
    let two = [
        ("configmaps", "0"),
        ("count/replicasets.apps", "0"),
        ("pods", "2"),
        ("requests.cpu", "1"),
        ("resourcequotas", "1"),
    ];
    wait_used(&quotas, "pods charged", &two).await;
    let done = json!({"status": {"phase": "Succeeded"}});
    pods.patch_status("a", &PatchParams::default(), &Patch::Merge(&done))
        .await
        .unwrap();
    let one = [
        ("configmaps", "0"),
        ("count/replicasets.apps", "0"),
        ("pods", "1"),
        ("requests.cpu", "500m"),
        ("resourcequotas", "1"),
    ];
    wait_used(&quotas, "finished pod released", &one).await;
    pods.delete("b", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_used(&quotas, "deleted pod released", &zero).await;

    // A new hard limit is mirrored promptly, with its usage.
    let patch = json!({"spec": {"hard": {"secrets": "3"}}});
    quotas
        .patch("quota", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("secrets tracked", MINUTE, || {
        let quotas = quotas.clone();
        Box::pin(async move {
            let q = quotas.get("quota").await.ok()?;
            let status = q.status?;
            (status.hard?.contains_key("secrets") && status.used?.get("secrets")?.0 == "0")
                .then_some(())
        })
    })
    .await;

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), manager).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("controller manager did not stop cleanly: {other:?}"),
    }
}
