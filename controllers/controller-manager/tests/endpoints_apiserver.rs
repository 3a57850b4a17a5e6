//! The Endpoints and EndpointSlice-mirroring controllers against a real
//! apiserver (no kubelet: pod status is patched by hand). A Service with a
//! selector gets an Endpoints with its Ready pod as an address and the
//! other as a notReadyAddress; a selector-less Service's hand-written
//! Endpoints is mirrored into a managed EndpointSlice that goes with it.
//! Fails without the binaries, unless `FK_ALLOW_SKIP=1`.

#[path = "garbagecollector_support/mod.rs"]
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    match serde_json::from_value(v) {
        Ok(t) => t,
        Err(e) => panic!("fixture: {e}"),
    }
}

async fn create<K>(api: &Api<K>, obj: serde_json::Value)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let obj: K = parse(obj);
    if let Err(e) = api.create(&PostParams::default(), &obj).await {
        panic!("create: {e}");
    }
}

/// A pod with `ip`; Running and, if `ready`, Ready (patched status).
async fn pod(client: &Client, name: &str, ip: &str, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ep");
    create(
        &pods,
        json!({
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                "ports": [{"name": "http", "containerPort": 8080}]}]}
        }),
    )
    .await;
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status}]}});
    if let Err(e) = pods
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        panic!("patch pod status {name}: {e}");
    }
}

fn ips(list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<String> {
    list.iter().flatten().map(|a| a.ip.clone()).collect()
}

#[tokio::test]
async fn service_pods_become_endpoints() {
    let Some(server) = support::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    support::create_namespace(&client, "ep").await;
    let services: Api<Service> = Api::namespaced(client.clone(), "ep");
    create(
        &services,
        json!({
            "metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
        }),
    )
    .await;
    pod(&client, "a", "10.244.0.5", true).await;
    pod(&client, "b", "10.244.0.6", false).await;

    let (ctx, shutdown) = support::context(&client, &kube_controller_manager::endpoint::DESCRIPTOR);
    let controller = tokio::spawn(kube_controller_manager::endpoint::start(ctx));
    let api: Api<Endpoints> = Api::namespaced(client.clone(), "ep");
    let ep = support::wait_for("endpoints with both pods", LIMIT, || async {
        let ep = api.get_opt("web").await.ok().flatten()?;
        let subset = ep.subsets.clone()?.first()?.clone();
        let shape = (ips(&subset.addresses), ips(&subset.not_ready_addresses));
        (shape == (vec!["10.244.0.5".into()], vec!["10.244.0.6".into()])).then_some(ep)
    })
    .await;
    let subsets = ep.subsets.clone().unwrap_or_default();
    assert_eq!(subsets.len(), 1);
    let port = &subsets[0].ports.clone().unwrap_or_default()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
    let addr = &subsets[0].addresses.clone().unwrap_or_default()[0];
    assert_eq!(addr.node_name.as_deref(), Some("n1"));
    assert_eq!(
        addr.target_ref.as_ref().and_then(|t| t.name.as_deref()),
        Some("a")
    );
    let labels = ep.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    let annotations = ep.metadata.annotations.clone().unwrap_or_default();
    assert!(annotations.contains_key("endpoints.kubernetes.io/last-change-trigger-time"));

    // A pod change that does not touch the endpoints writes nothing.
    let version = ep.metadata.resource_version.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ep");
    let touch = json!({"metadata": {"annotations": {"touched": "yes"}}});
    if let Err(e) = pods
        .patch("a", &PatchParams::default(), &Patch::Merge(&touch))
        .await
    {
        panic!("annotate pod: {e}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = api.get("web").await.map(|e| e.metadata.resource_version);
    assert_eq!(now.ok().flatten(), version, "no write when nothing changed");

    // The Service goes: so does its Endpoints.
    if let Err(e) = services.delete("web", &DeleteParams::default()).await {
        panic!("delete service: {e}");
    }
    support::wait_for("endpoints deleted", LIMIT, || async {
        matches!(api.get_opt("web").await, Ok(None)).then_some(())
    })
    .await;
    shutdown.cancel();
    let _ = controller.await;
}

#[tokio::test]
async fn selectorless_endpoints_are_mirrored() {
    let Some(server) = support::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    support::create_namespace(&client, "ep").await;
    let services: Api<Service> = Api::namespaced(client.clone(), "ep");
    create(
        &services,
        json!({"metadata": {"name": "db"}, "spec": {"ports": [{"name": "pg", "port": 5432}]}}),
    )
    .await;
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "ep");
    create(
        &endpoints,
        json!({
            "metadata": {"name": "db", "labels": {"team": "b"}},
            "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "notReadyAddresses": [{"ip": "192.0.2.11"}],
                "ports": [{"name": "pg", "port": 5432}]}]
        }),
    )
    .await;

    let descriptor = &kube_controller_manager::endpointslicemirroring::DESCRIPTOR;
    let (ctx, shutdown) = support::context(&client, descriptor);
    let controller = tokio::spawn(kube_controller_manager::endpointslicemirroring::start(ctx));
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "ep");
    let lp = ListParams::default().labels("kubernetes.io/service-name=db");
    let slice = support::wait_for("mirrored slice", LIMIT, || async {
        let list = slices.list(&lp).await.ok()?.items;
        (list.len() == 1).then(|| list[0].clone())
    })
    .await;
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslicemirroring-controller.k8s.io")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("b"));
    assert_eq!(slice.address_type, "IPv4");
    let owner = slice.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("Endpoints"));
    let mut got: Vec<(String, Option<bool>)> = slice
        .endpoints
        .iter()
        .flatten()
        .map(|e| {
            (
                e.addresses.join(","),
                e.conditions.as_ref().and_then(|c| c.ready),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("192.0.2.10".to_string(), Some(true)),
            ("192.0.2.11".to_string(), Some(false)),
        ]
    );
    let port = &slice.ports.clone().unwrap_or_default()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("pg"), Some(5432)));

    // Its own Added event resyncs it: nothing to write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let name = slice.metadata.name.clone().unwrap_or_default();
    let now = slices.get(&name).await.map(|s| s.metadata.resource_version);
    assert_eq!(
        now.ok().flatten(),
        slice.metadata.resource_version,
        "no write when nothing changed"
    );

    // Deleting the Endpoints removes the mirrored slice.
    if let Err(e) = endpoints.delete("db", &DeleteParams::default()).await {
        panic!("delete endpoints: {e}");
    }
    support::wait_for("mirrored slice deleted", LIMIT, || async {
        let list = slices.list(&lp).await.ok()?.items;
        list.is_empty().then_some(())
    })
    .await;
    shutdown.cancel();
    let _ = controller.await;
}
