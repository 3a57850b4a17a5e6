//! The nftables proxier against real nftables inside throwaway network
//! namespaces: ruleset structure, ClusterIP and NodePort DNAT with real TCP
//! traffic, reject without endpoints, and incremental syncs.
//! Fails when not root or tools are missing, unless `FK_ALLOW_SKIP=1`.
// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_proxy::conntrack::Conntrack;
use kube_proxy::model::IpFamily;
use kube_proxy::nftables::exec::NftCli;
use kube_proxy::nftables::{NftConfig, Proxier};
use kube_proxy::proxy_util::{LocalDetector, NodePortAddresses};
use kube_proxy::{Provider, ProxierHealth, ProxyMetrics};
use serde_json::json;
use support::{NODE_IP, Topology, netns_tests_can_run};

fn service(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": "ns1", "name": name}, "spec": spec}))
        .unwrap()
}

fn slice(svc: &str, name: &str, port: i32, ips: &[&str]) -> EndpointSlice {
    let eps: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "nodeName": "node-b", "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "ns1", "name": name, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "p80", "protocol": "TCP", "port": port}],
        "endpoints": eps,
    }))
    .unwrap()
}

fn proxier(topo: &Topology, node_ports: NodePortAddresses) -> (Proxier, NftCli) {
    let nft = NftCli::new("ip").in_netns(topo.node.path());
    let cfg = NftConfig {
        family: IpFamily::V4,
        masquerade_all: false,
        masquerade_bit: 14,
        local_detector: LocalDetector::Cidrs(vec!["10.244.0.0/16".parse().unwrap()]),
        node_port_addresses: node_ports,
        node_ip: Some(NODE_IP.parse::<IpAddr>().unwrap()),
        service_cidrs: vec![],
    };
    let health = ProxierHealth::new(std::time::Duration::from_secs(60));
    let mut p = Proxier::new(
        cfg,
        nft.clone(),
        Conntrack::in_netns(topo.node.path()),
        "node-a",
        health,
        ProxyMetrics::default(),
    );
    p.on_service_synced();
    p.on_endpoint_slices_synced();
    (p, nft)
}

macro_rules! skip_unless_root {
    () => {
        if !netns_tests_can_run() {
            return;
        }
    };
}

#[tokio::test]
async fn cluster_ip_and_node_port_traffic_is_dnated() {
    skip_unless_root!();
    let topo = Topology::new();
    let _backend = topo.backend("10.180.0.1", 8080, "backend-1");
    let (mut p, nft) = proxier(&topo, NodePortAddresses::MatchAll);

    p.on_service_add(&service(
        "web",
        json!({"type": "NodePort", "clusterIP": "172.30.0.41",
        "ports": [{"name": "p80", "port": 80, "nodePort": 30080}]}),
    ));
    p.on_endpoint_slice_add(&slice("web", "web-1", 8080, &["10.180.0.1"]));
    p.on_service_add(&service(
        "empty",
        json!({"clusterIP": "172.30.0.43", "ports": [{"name": "p80", "port": 80}]}),
    ));
    let report = p.sync().await.expect("sync").expect("initialized");
    assert!(report.full);

    let table = nft.list_table().await.unwrap();
    for needle in [
        "chain nat-prerouting {",
        "type nat hook prerouting priority dstnat; policy accept;",
        "chain services {",
        "map service-ips {",
        "172.30.0.41 . tcp . 80 : goto service-",
        "tcp . 30080 : goto external-",
        "172.30.0.43 . tcp . 80 comment \"ns1/empty:p80\" : goto reject-chain",
        "set cluster-ips {",
        "chain mark-for-masquerade {",
        "meta mark set meta mark | 0x00004000",
        "masquerade fully-random",
        "numgen random mod 1 vmap { 0 : goto endpoint-",
        "meta l4proto tcp dnat to 10.180.0.1:8080",
    ] {
        assert!(table.contains(needle), "missing {needle:?} in:\n{table}");
    }

    assert_eq!(
        topo.connect("172.30.0.41", 80).as_deref(),
        Ok("backend-1"),
        "ClusterIP"
    );
    assert_eq!(
        topo.connect(NODE_IP, 30080).as_deref(),
        Ok("backend-1"),
        "NodePort"
    );
    let rejected = topo.connect("172.30.0.43", 80);
    assert!(
        rejected
            .as_ref()
            .is_err_and(|e| e.contains("Connection refused")),
        "no endpoints must reject: {rejected:?}"
    );
}

#[tokio::test]
async fn node_port_addresses_restrict_to_listed_ips() {
    skip_unless_root!();
    let topo = Topology::new();
    let _backend = topo.backend("10.180.0.2", 8080, "backend-2");
    topo.node
        .exec(&["ip", "addr", "add", "10.99.1.1/24", "dev", "n0"]);
    topo.client
        .exec(&["ip", "addr", "add", "10.99.1.2/24", "dev", "c0"]);
    let only = NodePortAddresses::Ips(vec![NODE_IP.parse().unwrap()]);
    let (mut p, nft) = proxier(&topo, only);
    p.on_service_add(&service(
        "np",
        json!({"type": "NodePort", "clusterIP": "172.30.0.50",
        "ports": [{"name": "p80", "port": 80, "nodePort": 30090}]}),
    ));
    p.on_endpoint_slice_add(&slice("np", "np-1", 8080, &["10.180.0.2"]));
    p.sync().await.expect("sync");
    let table = nft.list_table().await.unwrap();
    assert!(table.contains("set nodeport-ips {"), "{table}");
    assert_eq!(topo.connect(NODE_IP, 30090).as_deref(), Ok("backend-2"));
    assert!(
        topo.connect("10.99.1.1", 30090).is_err(),
        "NodePort must not answer on unlisted IPs"
    );
}

#[tokio::test]
async fn incremental_sync_only_touches_changed_service() {
    skip_unless_root!();
    let topo = Topology::new();
    let _b1 = topo.backend("10.180.0.11", 8080, "a-old");
    let _b2 = topo.backend("10.180.0.12", 8080, "a-new");
    let _b3 = topo.backend("10.180.0.13", 8080, "b");
    let (mut p, nft) = proxier(&topo, NodePortAddresses::MatchAll);
    p.on_service_add(&service(
        "a",
        json!({"clusterIP": "172.30.0.61", "ports": [{"name": "p80", "port": 80}]}),
    ));
    p.on_service_add(&service(
        "b",
        json!({"clusterIP": "172.30.0.62", "ports": [{"name": "p80", "port": 80}]}),
    ));
    p.on_endpoint_slice_add(&slice("a", "a-1", 8080, &["10.180.0.11"]));
    p.on_endpoint_slice_add(&slice("b", "b-1", 8080, &["10.180.0.13"]));
    assert!(p.sync().await.unwrap().unwrap().full);
    assert_eq!(topo.connect("172.30.0.61", 80).as_deref(), Ok("a-old"));

    assert!(p.on_endpoint_slice_update(
        &slice("a", "a-1", 8080, &["10.180.0.11"]),
        &slice("a", "a-1", 8080, &["10.180.0.12"])
    ));
    let report = p.sync().await.unwrap().unwrap();
    assert!(!report.full, "change-driven sync is partial");
    assert!(
        !report.script.contains("ns1/b/"),
        "service b untouched:\n{}",
        report.script
    );
    assert!(
        !report.script.contains("add table"),
        "no setup in a partial sync:\n{}",
        report.script
    );
    assert!(
        report.script.contains("__10.180.0.12/8080"),
        "{}",
        report.script
    );
    assert_eq!(topo.connect("172.30.0.61", 80).as_deref(), Ok("a-new"));
    assert_eq!(topo.connect("172.30.0.62", 80).as_deref(), Ok("b"));

    // The old endpoint chain was flushed; a sync a second later deletes it.
    let chains = nft.list("chains").await.unwrap();
    assert!(
        chains.iter().any(|c| c.ends_with("__10.180.0.11/8080")),
        "stale chain kept briefly: {chains:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    p.sync().await.unwrap();
    let chains = nft.list("chains").await.unwrap();
    assert!(
        !chains.iter().any(|c| c.ends_with("__10.180.0.11/8080")),
        "stale chain deleted: {chains:?}"
    );

    // A periodic full resync leaves the same working state.
    p.request_full_sync();
    assert!(p.sync().await.unwrap().unwrap().full);
    assert_eq!(topo.connect("172.30.0.61", 80).as_deref(), Ok("a-new"));

    Proxier::cleanup(&nft).await.unwrap();
    assert!(nft.list("chains").await.unwrap().is_empty());
}
