//! `run_in_netns` against a real etcd + kube-apiserver: Services and
//! EndpointSlices created through the API become working nftables rules in
//! a throwaway namespace, endpoint removal turns into reject, and the health
//! handle reports a recent sync. Fails without root/tools or without the
//! apiserver binaries, unless `FK_ALLOW_SKIP=1`.

mod support;

use std::time::Duration;

use component_base::config::ComponentConfig;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube_proxy::KubeProxyConfiguration;
use kube_proxy::{Handles, ProxyConfig};
use serde_json::json;
use support::{NODE_IP, Topology, apiserver, netns_tests_can_run};
use tokio_util::sync::CancellationToken;

async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn services_from_the_apiserver_are_proxied() {
    if !netns_tests_can_run() {
        return;
    }
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let topo = Topology::new();
    let _backend = topo.backend("10.180.1.1", 8080, "from-apiserver");

    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "z1"}},
        "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}
    }))
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.50",
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30500}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("create service");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": [{"addresses": ["10.180.1.1"], "nodeName": "node-b", "conditions": {"ready": true}}]
    }))
    .unwrap();
    slices
        .create(&PostParams::default(), &slice)
        .await
        .expect("create slice");

    let mut kpc = KubeProxyConfiguration {
        mode: "nftables".into(),
        hostname_override: "node-a".into(),
        cluster_cidr: "10.244.0.0/16".into(),
        ..Default::default()
    };
    kpc.set_defaults();
    let mut config = ProxyConfig::from_component_config(&kpc).unwrap();
    config.min_sync_period = Duration::from_millis(100);
    let handles = Handles::new(&config);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(kube_proxy::run_in_netns(
        client.clone(),
        config,
        shutdown.clone(),
        handles.clone(),
        Some(topo.node.path().into()),
    ));

    eventually("ClusterIP to work", || {
        topo.connect("10.96.0.50", 80).as_deref() == Ok("from-apiserver")
    })
    .await;
    assert_eq!(
        topo.connect(NODE_IP, 30500).as_deref(),
        Ok("from-apiserver")
    );
    assert_eq!(handles.health.healthz().status, 200);
    // The apiserver's default ServiceCIDR reaches the fixed rules.
    eventually("ServiceCIDR drop rule", || {
        topo.node
            .exec(&[
                "nft",
                "list",
                "chain",
                "ip",
                "kube-proxy",
                "cluster-ips-check",
            ])
            .contains("ip daddr 10.96.0.0/16 drop")
    })
    .await;

    slices
        .delete("web-abc", &DeleteParams::default())
        .await
        .expect("delete slice");
    eventually("reject without endpoints", || {
        topo.connect("10.96.0.50", 80)
            .is_err_and(|e| e.contains("Connection refused"))
    })
    .await;

    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete service");
    eventually("service rules removed", || {
        !topo
            .node
            .exec(&["nft", "list", "table", "ip", "kube-proxy"])
            .contains("10.96.0.50")
    })
    .await;

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "run exits cleanly on shutdown: {result:?}"
    );
}
