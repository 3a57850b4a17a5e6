//! Runs the controllers in-process against a real etcd + kube-apiserver:
//! a Deployment of 3 gets a ReplicaSet with 3 pods, and an image update
//! rolls out to revision 2. There is no kubelet, so the test marks pods
//! Running/Ready itself to drive availability. Fails when the binaries are
//! missing, unless `FK_ALLOW_SKIP=1`.

use test_support::apiserver;
use test_support::wait::eventually;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_controller_manager::ControllerManagerConfig;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const REVISION: &str = "deployment.kubernetes.io/revision";

/// Stands in for the kubelet: every pending pod becomes Running and Ready.
async fn mark_pods_ready(client: Client, shutdown: CancellationToken) {
    let pods: Api<Pod> = Api::namespaced(client, "default");
    while !shutdown.is_cancelled() {
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for pod in list.items {
                let ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if ready || pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let now = jiff::Timestamp::now().to_string();
                let status = json!({"status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                }});
                let _ = pods
                    .patch_status(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(status),
                    )
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn deployment(image: &str) -> Deployment {
    match serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    })) {
        Ok(d) => d,
        Err(e) => panic!("building deployment: {e}"),
    }
}

fn revision_of(meta: &kube::api::ObjectMeta) -> Option<String> {
    meta.annotations.as_ref()?.get(REVISION).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployment_rolls_out_against_real_apiserver() {
    // `RUST_LOG=kube_controller_manager=debug` shows the controllers' work.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let root_ca = std::fs::read(server.pki_dir().join("ca.crt")).ok();
    let shutdown = CancellationToken::new();
    // Only the controllers under test (others have their own tests).
    let controllers = [
        "replicaset",
        "deployment",
        "serviceaccount",
        "root-ca-cert-publisher",
    ];
    let config = ControllerManagerConfig {
        controllers: controllers.iter().map(|c| c.to_string()).collect(),
        root_ca: root_ca.clone(),
        ..Default::default()
    };
    let manager = tokio::spawn(kube_controller_manager::run(
        client.clone(),
        config,
        shutdown.clone(),
    ));
    tokio::spawn(mark_pods_ready(client.clone(), shutdown.clone()));
    let minute = Duration::from_secs(60);

    // serviceaccount + root CA publisher.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    eventually("default service account", minute, || {
        let sas = sas.clone();
        Box::pin(async move { sas.get_opt("default").await.ok().flatten() })
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = eventually("kube-root-ca.crt", minute, || {
        let cms = cms.clone();
        Box::pin(async move { cms.get_opt("kube-root-ca.crt").await.ok().flatten() })
    })
    .await;
    let published = cm.data.and_then(|d| d.get("ca.crt").cloned());
    assert_eq!(published.map(String::into_bytes), root_ca);

    // Deployment -> ReplicaSet -> 3 pods, revision 1, available.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    if let Err(e) = deploys
        .create(&PostParams::default(), &deployment("nginx:1"))
        .await
    {
        panic!("creating deployment: {e}");
    }
    let first_rs = eventually("first ReplicaSet with 3 pods", minute, || {
        let (rss, pods) = (rss.clone(), pods.clone());
        Box::pin(async move {
            let list = rss.list(&ListParams::default()).await.ok()?;
            let rs = list.items.into_iter().next()?;
            let pod_count = pods.list(&ListParams::default()).await.ok()?.items.len();
            (pod_count == 3 && rs.status.as_ref()?.available_replicas == Some(3)).then_some(rs)
        })
    })
    .await;
    assert!(first_rs.name_any().starts_with("web-"));
    assert_eq!(revision_of(&first_rs.metadata).as_deref(), Some("1"));
    eventually("deployment available at revision 1", minute, || {
        let deploys = deploys.clone();
        Box::pin(async move {
            let d = deploys.get("web").await.ok()?;
            let s = d.status.as_ref()?;
            let done = s.available_replicas == Some(3)
                && revision_of(&d.metadata).as_deref() == Some("1")
                && s.conditions.as_ref()?.iter().any(|c| {
                    c.type_ == "Progressing"
                        && c.reason.as_deref() == Some("NewReplicaSetAvailable")
                });
            done.then_some(())
        })
    })
    .await;

    // Image update -> new RS at revision 2, old RS scaled to 0.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
    if let Err(e) = deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        panic!("updating image: {e}");
    }
    let d = eventually(
        "rollout to revision 2 complete",
        Duration::from_secs(120),
        || {
            let deploys = deploys.clone();
            Box::pin(async move {
                let d = deploys.get("web").await.ok()?;
                let s = d.status.as_ref()?;
                let done = s.observed_generation == d.metadata.generation
                    && s.updated_replicas == Some(3)
                    && s.replicas == Some(3)
                    && s.available_replicas == Some(3)
                    && revision_of(&d.metadata).as_deref() == Some("2")
                    && s.conditions.as_ref()?.iter().any(|c| {
                        c.type_ == "Progressing"
                            && c.reason.as_deref() == Some("NewReplicaSetAvailable")
                    });
                done.then_some(d)
            })
        },
    )
    .await;
    let all = match rss.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => panic!("listing replicasets: {e}"),
    };
    assert_eq!(all.len(), 2, "one old and one new ReplicaSet");
    for rs in &all {
        let replicas = rs.spec.as_ref().and_then(|s| s.replicas);
        if rs.name_any() == first_rs.name_any() {
            assert_eq!(replicas, Some(0));
            assert_eq!(revision_of(&rs.metadata).as_deref(), Some("1"));
        } else {
            assert_eq!(replicas, Some(3));
            assert_eq!(revision_of(&rs.metadata).as_deref(), Some("2"));
            assert_eq!(
                rs.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("deployment.kubernetes.io/desired-replicas"))
                    .map(String::as_str),
                Some("3")
            );
        }
    }
    let available = d
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Available");
    assert_eq!(
        available.and_then(|c| c.reason).as_deref(),
        Some("MinimumReplicasAvailable")
    );

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), manager).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("controller manager did not stop cleanly: {other:?}"),
    }
}
