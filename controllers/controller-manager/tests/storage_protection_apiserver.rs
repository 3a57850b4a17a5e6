//! The PVC, PV and VolumeAttributesClass protection controllers in-process
//! against a real etcd + kube-apiserver: each object gets its finalizer; a
//! deleted claim stays while a scheduled pod uses it and goes once the pod
//! is gone; an unbound PV goes at once; a deleted class stays while a claim
//! refers to it. Run as the controllers' ServiceAccounts. Fails when the
//! binaries are missing, unless `FK_ALLOW_SKIP=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount};
use k8s_openapi::api::storage::v1::VolumeAttributesClass;
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams};
use kube_controller_manager::ControllerManagerConfig;
use serde::de::DeserializeOwned;
use serde_json::json;
use test_support::apiserver;
use test_support::wait::eventually;
use tokio_util::sync::CancellationToken;

const MINUTE: Duration = Duration::from_secs(60);

fn claim(name: &str, class: Option<&str>) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeAttributesClassName": class,
        },
    }))
    .unwrap()
}

async fn wait_finalizer<K>(api: &Api<K>, name: &str, finalizer: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let finalizer = finalizer.to_string();
    eventually(&format!("{name} has {finalizer}"), MINUTE, || {
        let api = api.clone();
        let name = name.to_string();
        let finalizer = finalizer.clone();
        Box::pin(async move {
            let obj = api.get(&name).await.ok()?;
            obj.meta()
                .finalizers
                .as_ref()?
                .contains(&finalizer)
                .then_some(())
        })
    })
    .await;
}

async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    eventually(&format!("{name} deleted"), MINUTE, || {
        let api = api.clone();
        let name = name.to_string();
        Box::pin(async move { api.get_opt(&name).await.ok()?.is_none().then_some(()) })
    })
    .await;
}

/// Still there, being deleted, for a few seconds.
async fn assert_held<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    tokio::time::sleep(Duration::from_secs(3)).await;
    let obj = api.get(name).await.expect("still present");
    assert!(
        obj.meta().deletion_timestamp.is_some(),
        "{name} is being deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_protection_against_real_apiserver() {
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
        controllers: vec![
            "pvc-protection".to_string(),
            "pv-protection".to_string(),
            "volumeattributesclass-protection-controller".to_string(),
        ],
        use_service_account_credentials: true,
        base_client_config: Some(admin.clone()),
        ..Default::default()
    };
    let manager = tokio::spawn(kube_controller_manager::run(
        apiserver::impersonating(&admin, "system:kube-controller-manager"),
        config,
        shutdown.clone(),
    ));

    // PVC: protected while a scheduled pod uses it.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    pvcs.create(&PostParams::default(), &claim("data", None))
        .await
        .unwrap();
    wait_finalizer(&pvcs, "data", "kubernetes.io/pvc-protection").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "user", "namespace": "default"},
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "c", "image": "nginx"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pvcs.delete("data", &DeleteParams::default()).await.unwrap();
    assert_held(&pvcs, "data").await;
    pods.delete("user", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_gone(&pvcs, "data").await;

    // PV: not Bound (no PV controller runs), so deletion goes through.
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv-1"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/pv-1"},
        },
    }))
    .unwrap();
    pvs.create(&PostParams::default(), &pv).await.unwrap();
    wait_finalizer(&pvs, "pv-1", "kubernetes.io/pv-protection").await;
    pvs.delete("pv-1", &DeleteParams::default()).await.unwrap();
    wait_gone(&pvs, "pv-1").await;

    // VolumeAttributesClass: held while a claim refers to it.
    let vacs: Api<VolumeAttributesClass> = Api::all(client.clone());
    let vac: VolumeAttributesClass = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttributesClass",
        "metadata": {"name": "gold"},
        "driverName": "example.com/csi",
        "parameters": {"iops": "100"},
    }))
    .unwrap();
    vacs.create(&PostParams::default(), &vac).await.unwrap();
    wait_finalizer(&vacs, "gold", "kubernetes.io/vac-protection").await;
    pvcs.create(&PostParams::default(), &claim("fast", Some("gold")))
        .await
        .unwrap();
    wait_finalizer(&pvcs, "fast", "kubernetes.io/pvc-protection").await;
    vacs.delete("gold", &DeleteParams::default()).await.unwrap();
    assert_held(&vacs, "gold").await;
    pvcs.delete("fast", &DeleteParams::default()).await.unwrap();
    wait_gone(&pvcs, "fast").await;
    wait_gone(&vacs, "gold").await;

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), manager).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("controller manager did not stop cleanly: {other:?}"),
    }
}
