//! The EndpointSlice controller against a real apiserver: a Service with a
//! named target port and pods whose status we fill in ourselves (no
//! kubelet) get a slice with the right endpoints, ports and zones; pod
//! removal and slice tampering are repaired. Fails without the binaries,
//! unless `FK_ALLOW_SKIP=1`.

#[path = "garbagecollector_support/mod.rs"]
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
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

async fn running_pod(client: &Client, name: &str, ip: &str, port: i32) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "es");
    let pod: Pod = parse(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "ports": [{"name": "http", "containerPort": port}]}]}
    }));
    if let Err(e) = pods.create(&PostParams::default(), &pod).await {
        panic!("create pod {name}: {e}");
    }
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True"}]}});
    if let Err(e) = pods
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
    {
        panic!("patch pod status {name}: {e}");
    }
}

async fn slices(api: &Api<EndpointSlice>) -> Vec<EndpointSlice> {
    let lp = ListParams::default().labels("kubernetes.io/service-name=web");
    api.list(&lp).await.map(|l| l.items).unwrap_or_default()
}

/// (address, port, ready) of every endpoint across the service's slices.
fn summary(slices: &[EndpointSlice]) -> Vec<(String, i32, bool)> {
    let mut out: Vec<(String, i32, bool)> = slices
        .iter()
        .flat_map(|s| {
            let port = s
                .ports
                .as_ref()
                .and_then(|p| p.first())
                .and_then(|p| p.port)
                .unwrap_or(0);
            s.endpoints.iter().flatten().map(move |e| {
                let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
                (
                    e.addresses.first().cloned().unwrap_or_default(),
                    port,
                    ready,
                )
            })
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn service_pods_become_endpoint_slices() {
    let Some(server) = support::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    support::create_namespace(&client, "es").await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = parse(
        json!({"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "zone-a"}}}),
    );
    if let Err(e) = nodes.create(&PostParams::default(), &node).await {
        panic!("create node: {e}");
    }
    let services: Api<Service> = Api::namespaced(client.clone(), "es");
    let svc: Service = parse(json!({
        "metadata": {"name": "web", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }));
    if let Err(e) = services.create(&PostParams::default(), &svc).await {
        panic!("create service: {e}");
    }
    running_pod(&client, "a", "10.244.0.5", 8080).await;
    running_pod(&client, "b", "10.244.0.6", 9090).await;

    let (ctx, shutdown) =
        support::context(&client, &kube_controller_manager::endpointslice::DESCRIPTOR);
    let controller = tokio::spawn(kube_controller_manager::endpointslice::start(ctx));
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "es");

    let want = vec![
        ("10.244.0.5".to_string(), 8080, true),
        ("10.244.0.6".to_string(), 9090, true),
    ];
    let got = support::wait_for("slices for both pods", LIMIT, || async {
        let s = slices(&api).await;
        (summary(&s) == want).then_some(s)
    })
    .await;
    // Different port numbers for the same named port: two slices.
    assert_eq!(got.len(), 2);
    for s in &got {
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("endpointslice.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("endpointslice-controller.k8s.io")
        );
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(s.address_type, "IPv4");
        let annotations = s.metadata.annotations.clone().unwrap_or_default();
        assert!(annotations.contains_key("endpoints.kubernetes.io/last-change-trigger-time"));
        assert!(
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("web-"))
        );
        let owner = s.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("Service"));
        let ep = &s.endpoints.clone().unwrap_or_default()[0];
        assert_eq!(ep.zone.as_deref(), Some("zone-a"));
        assert_eq!(ep.node_name.as_deref(), Some("n1"));
        assert_eq!(
            ep.target_ref.as_ref().and_then(|t| t.kind.as_deref()),
            Some("Pod")
        );
    }

    // No kubelet: a gracefully deleted pod stays terminating, and its
    // endpoint says so (ready=false, serving=true, terminating=true).
    let pods: Api<Pod> = Api::namespaced(client.clone(), "es");
    if let Err(e) = pods.delete("b", &DeleteParams::default()).await {
        panic!("delete pod gracefully: {e}");
    }
    let terminating = support::wait_for("terminating endpoint", LIMIT, || async {
        let s = slices(&api).await;
        let ep = s
            .iter()
            .flat_map(|x| x.endpoints.iter().flatten())
            .find(|e| e.addresses.first().map(String::as_str) == Some("10.244.0.6"))
            .cloned()?;
        let c = ep.conditions.clone().unwrap_or_default();
        (c.terminating == Some(true)).then_some(c)
    })
    .await;
    assert_eq!(
        (terminating.ready, terminating.serving),
        (Some(false), Some(true))
    );

    // A pod goes away: its endpoint (and the now-empty slice) go too.
    if let Err(e) = pods
        .delete("b", &DeleteParams::default().grace_period(0))
        .await
    {
        panic!("delete pod: {e}");
    }
    let want_a = vec![("10.244.0.5".to_string(), 8080, true)];
    support::wait_for("slice without pod b", LIMIT, || async {
        let s = slices(&api).await;
        (summary(&s) == want_a && s.len() == 1).then_some(())
    })
    .await;

    // Tampering: a deleted slice is recreated.
    let name = slices(&api)
        .await
        .first()
        .and_then(|s| s.metadata.name.clone())
        .unwrap_or_default();
    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
        panic!("delete slice: {e}");
    }
    support::wait_for("slice recreated", LIMIT, || async {
        let s = slices(&api).await;
        (summary(&s) == want_a
            && s.iter()
                .all(|x| x.metadata.name.as_deref() != Some(name.as_str())))
        .then_some(())
    })
    .await;

    // No pods left: a placeholder slice with no endpoints remains.
    if let Err(e) = pods
        .delete("a", &DeleteParams::default().grace_period(0))
        .await
    {
        panic!("delete pod: {e}");
    }
    support::wait_for("placeholder slice", LIMIT, || async {
        let s = slices(&api).await;
        (s.len() == 1 && s[0].endpoints.as_deref().unwrap_or_default().is_empty()).then_some(())
    })
    .await;

    shutdown.cancel();
    let _ = controller.await;
}
