//! `--use-service-account-credentials` against a real etcd + kube-apiserver:
//! the controller-manager runs as `system:kube-controller-manager` (the
//! admin client impersonating it), which RBAC forbids from creating
//! ReplicaSets or Pods itself; with per-controller ServiceAccount clients a
//! Deployment still gets its ReplicaSet and pods and `kube-root-ca.crt` is
//! published. Fails when the binaries are missing, unless `FK_ALLOW_SKIP=1`.

use test_support::apiserver;
use test_support::wait::eventually;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use kube_controller_manager::ControllerManagerConfig;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn deployment() -> Deployment {
    match serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sa-web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "sa-web"}},
            "template": {
                "metadata": {"labels": {"app": "sa-web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1"}]},
            },
        },
    })) {
        Ok(d) => d,
        Err(e) => panic!("building deployment: {e}"),
    }
}

fn replicaset() -> ReplicaSet {
    match serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "forbidden", "namespace": "default"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "forbidden"}},
            "template": {
                "metadata": {"labels": {"app": "forbidden"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
            },
        },
    })) {
        Ok(rs) => rs,
        Err(e) => panic!("building replicaset: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controllers_use_their_service_accounts() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let admin = server.client().await;
    let admin_config = server.admin_config().await;
    let kcm = apiserver::impersonating(&admin_config, "system:kube-controller-manager");

    // The process identity alone must not be able to do the controllers'
    // work, or this test would prove nothing.
    let kcm_rss: Api<ReplicaSet> = Api::namespaced(kcm.clone(), "default");
    match kcm_rss.create(&PostParams::default(), &replicaset()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("system:kube-controller-manager created a ReplicaSet: {other:?}"),
    }

    let root_ca = std::fs::read(server.pki_dir().join("ca.crt")).ok();
    let shutdown = CancellationToken::new();
    let controllers = [
        "replicaset",
        "deployment",
        "serviceaccount",
        "root-ca-cert-publisher",
    ];
    let config = ControllerManagerConfig {
        controllers: controllers.iter().map(|c| c.to_string()).collect(),
        root_ca: root_ca.clone(),
        use_service_account_credentials: true,
        base_client_config: Some(admin_config.clone()),
        ..Default::default()
    };
    let manager = tokio::spawn(kube_controller_manager::run(kcm, config, shutdown.clone()));
    let minute = Duration::from_secs(60);

    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    let cm = eventually("kube-root-ca.crt", minute, || {
        let cms = cms.clone();
        Box::pin(async move { cms.get_opt("kube-root-ca.crt").await.ok().flatten() })
    })
    .await;
    let published = cm.data.and_then(|d| d.get("ca.crt").cloned());
    assert_eq!(published.map(String::into_bytes), root_ca);

    let deploys: Api<Deployment> = Api::namespaced(admin.clone(), "default");
    if let Err(e) = deploys.create(&PostParams::default(), &deployment()).await {
        panic!("creating deployment: {e}");
    }
    let rss: Api<ReplicaSet> = Api::namespaced(admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let by_app = ListParams::default().labels("app=sa-web");
    eventually("ReplicaSet with 2 pods", minute, || {
        let (rss, pods, by_app) = (rss.clone(), pods.clone(), by_app.clone());
        Box::pin(async move {
            let rs = rss.list(&by_app).await.ok()?.items.into_iter().next()?;
            let pod_count = pods.list(&by_app).await.ok()?.items.len();
            (pod_count == 2 && rs.spec.as_ref()?.replicas == Some(2)).then_some(())
        })
    })
    .await;

    // The controllers' ServiceAccounts were created as upstream names them.
    let system_sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "kube-system");
    for name in [
        "replicaset-controller",
        "deployment-controller",
        "service-account-controller",
        "root-ca-cert-publisher",
    ] {
        match system_sas.get_opt(name).await {
            Ok(Some(_)) => {}
            other => panic!("service account kube-system/{name} missing: {other:?}"),
        }
    }

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), manager).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("controller manager did not stop cleanly: {other:?}"),
    }
}
