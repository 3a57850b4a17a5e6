//! The garbage collector against a real apiserver: background, orphan and
//! foreground propagation on ConfigMaps, and a Deployment → ReplicaSet →
//! Pod chain. Fails without etcd/kube-apiserver, unless `FK_ALLOW_SKIP=1`.

#[path = "garbagecollector_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::{Client, Resource};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into(),
        kind: K::kind(&()).into(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

async fn config_map(api: &Api<ConfigMap>, name: &str, owner: Option<&ConfigMap>) -> ConfigMap {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.map(|o| vec![owner_ref(o)]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &cm).await {
        Ok(created) => created,
        Err(e) => panic!("create configmap {name}: {e}"),
    }
}

async fn gone<K>(api: &Api<K>, name: &str) -> Option<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(None) => Some(()),
        _ => None,
    }
}

async fn delete_with(api: &Api<ConfigMap>, name: &str, params: &DeleteParams) {
    if let Err(e) = api.delete(name, params).await {
        panic!("delete {name}: {e}");
    }
}

#[tokio::test]
async fn collects_orphans_and_foreground_dependents() {
    let Some(server) = support::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    support::create_namespace(&client, "gc").await;
    let (ctx, shutdown) = support::context(
        &client,
        &kube_controller_manager::garbagecollector::DESCRIPTOR,
    );
    let gc = tokio::spawn(kube_controller_manager::garbagecollector::start(ctx));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "gc");

    // Background (the default): the dependent follows its owner.
    let owner = config_map(&cms, "owner-bg", None).await;
    config_map(&cms, "dep-bg", Some(&owner)).await;
    delete_with(&cms, "owner-bg", &DeleteParams::default()).await;
    support::wait_for("background dependent deleted", LIMIT, || {
        gone(&cms, "dep-bg")
    })
    .await;

    // Orphan: the owner goes, the dependent stays without the reference.
    let owner = config_map(&cms, "owner-orphan", None).await;
    config_map(&cms, "dep-orphan", Some(&owner)).await;
    delete_with(&cms, "owner-orphan", &DeleteParams::orphan()).await;
    support::wait_for("orphaned owner gone", LIMIT, || gone(&cms, "owner-orphan")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dep = match cms.get("dep-orphan").await {
        Ok(d) => d,
        Err(e) => panic!("orphaned dependent must survive: {e}"),
    };
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());

    // Foreground: the dependent is deleted first, then the owner.
    let owner = config_map(&cms, "owner-fg", None).await;
    config_map(&cms, "dep-fg", Some(&owner)).await;
    delete_with(&cms, "owner-fg", &DeleteParams::foreground()).await;
    support::wait_for("foreground dependent deleted", LIMIT, || {
        gone(&cms, "dep-fg")
    })
    .await;
    support::wait_for("foreground owner deleted", LIMIT, || gone(&cms, "owner-fg")).await;

    // An owner that never existed (wrong UID) is dangling: dependent deleted.
    let mut ghost = config_map(&cms, "ghost-owner", None).await;
    ghost.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    config_map(&cms, "dep-ghost", Some(&ghost)).await;
    support::wait_for("dependent of a dangling owner deleted", LIMIT, || {
        gone(&cms, "dep-ghost")
    })
    .await;
    assert!(cms.get_opt("ghost-owner").await.ok().flatten().is_some());

    shutdown.cancel();
    let _ = gc.await;
}

async fn deployment_chain(client: &Client, name: &str) -> (Deployment, ReplicaSet, Pod) {
    let labels = json!({"app": name});
    let deploy: Deployment = match serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}
    })) {
        Ok(d) => d,
        Err(e) => panic!("deployment json: {e}"),
    };
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "gc2");
    let deploy = match deploys.create(&PostParams::default(), &deploy).await {
        Ok(d) => d,
        Err(e) => panic!("create deployment: {e}"),
    };
    let mut rs: ReplicaSet = match serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-rs"), "labels": labels},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}
    })) {
        Ok(r) => r,
        Err(e) => panic!("replicaset json: {e}"),
    };
    rs.metadata.owner_references = Some(vec![owner_ref(&deploy)]);
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "gc2");
    let rs = match rss.create(&PostParams::default(), &rs).await {
        Ok(r) => r,
        Err(e) => panic!("create replicaset: {e}"),
    };
    let mut pod: Pod = match serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-pod"), "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    })) {
        Ok(p) => p,
        Err(e) => panic!("pod json: {e}"),
    };
    pod.metadata.owner_references = Some(vec![owner_ref(&rs)]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "gc2");
    let pod = match pods.create(&PostParams::default(), &pod).await {
        Ok(p) => p,
        Err(e) => panic!("create pod: {e}"),
    };
    (deploy, rs, pod)
}

#[tokio::test]
async fn deleting_a_deployment_cascades_unless_orphaned() {
    let Some(server) = support::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    support::create_namespace(&client, "gc2").await;
    let (ctx, shutdown) = support::context(
        &client,
        &kube_controller_manager::garbagecollector::DESCRIPTOR,
    );
    let gc = tokio::spawn(kube_controller_manager::garbagecollector::start(ctx));
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "gc2");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "gc2");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "gc2");

    deployment_chain(&client, "web").await;
    if let Err(e) = deploys.delete("web", &DeleteParams::background()).await {
        panic!("delete deployment: {e}");
    }
    support::wait_for("replicaset collected", LIMIT, || gone(&rss, "web-rs")).await;
    support::wait_for("pod collected", LIMIT, || gone(&pods, "web-pod")).await;

    // kubectl delete --cascade=orphan
    deployment_chain(&client, "kept").await;
    if let Err(e) = deploys.delete("kept", &DeleteParams::orphan()).await {
        panic!("delete deployment: {e}");
    }
    support::wait_for("orphaned deployment gone", LIMIT, || gone(&deploys, "kept")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rs = rss.get_opt("kept-rs").await.ok().flatten();
    let rs = rs.unwrap_or_else(|| panic!("replicaset must survive orphaning"));
    assert!(rs.metadata.owner_references.unwrap_or_default().is_empty());
    let pod = pods.get_opt("kept-pod").await.ok().flatten();
    let pod = pod.unwrap_or_else(|| panic!("pod must survive orphaning"));
    assert_eq!(
        pod.metadata.owner_references.map(|r| r.len()),
        Some(1),
        "pod still owned by the replicaset"
    );

    shutdown.cancel();
    let _ = gc.await;
}
