//! `Proxier::sync` end to end against the fake nft and conntrack: what a
//! sync sends to the kernel, not just what the renderer would produce.

use std::net::IpAddr;

use serde_json::json;

use super::fake::{FakeConntrack, FakeNft};
use super::names::ServiceChains;
use super::proxier::Proxier;
use super::render_tests::config;
use crate::conntrack::Deletion;
use crate::model::{NamespacedName, Protocol, ServicePortName};
use crate::testutil::{service, slice};
use crate::{Provider, ProxierHealth, ProxyMetrics};

type FakeProxier = Proxier<FakeNft, FakeConntrack>;

fn proxier() -> (FakeProxier, FakeNft, FakeConntrack) {
    let (nft, conntrack) = (FakeNft::default(), FakeConntrack::default());
    let health = ProxierHealth::new(std::time::Duration::from_secs(60));
    let mut p = Proxier::new(
        config(),
        nft.clone(),
        conntrack.clone(),
        "node-a",
        health,
        ProxyMetrics::default(),
    );
    p.on_service_synced();
    p.on_endpoint_slices_synced();
    (p, nft, conntrack)
}

fn chains(name: &str, port: &str, protocol: Protocol) -> ServiceChains {
    ServiceChains::new(&ServicePortName {
        service: NamespacedName::new("ns1", name),
        port: port.into(),
        protocol,
    })
}

fn web(name: &str, ip: &str) -> k8s_openapi::api::core::v1::Service {
    service(
        "ns1",
        name,
        json!({"clusterIP": ip, "ports": [{"name": "p80", "port": 80}]}),
    )
}

fn web_slice(svc: &str, ip: &str) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    slice(
        "ns1",
        svc,
        &format!("{svc}-1"),
        &[("p80", "TCP", 8080)],
        &[(ip, true, true, false, "node-b")],
    )
}

#[tokio::test]
async fn nothing_is_written_before_both_caches_synced() {
    let (nft, conntrack) = (FakeNft::default(), FakeConntrack::default());
    let health = ProxierHealth::new(std::time::Duration::from_secs(60));
    let mut p: FakeProxier = Proxier::new(
        config(),
        nft.clone(),
        conntrack,
        "node-a",
        health,
        ProxyMetrics::default(),
    );
    assert!(
        !p.on_service_add(&web("a", "172.30.0.61")),
        "not yet initialized"
    );
    p.on_service_synced();
    assert!(p.sync().await.unwrap().is_none());
    assert!(nft.record().scripts.is_empty());
}

#[tokio::test]
async fn service_and_slice_become_one_full_transaction() {
    let (mut p, nft, _) = proxier();
    assert!(p.on_service_add(&web("a", "172.30.0.61")));
    assert!(p.on_endpoint_slice_add(&web_slice("a", "10.180.0.11")));
    let report = p.sync().await.unwrap().unwrap();
    assert!(report.full);

    let scripts = nft.record().scripts.clone();
    assert_eq!(scripts.len(), 1, "one atomic transaction: {scripts:?}");
    let script = &scripts[0];
    assert_eq!(script, &report.script);
    let svc = chains("a", "p80", Protocol::Tcp).cluster_policy;
    for needle in [
        "add table ip kube-proxy".to_string(),
        "add chain ip kube-proxy services".to_string(),
        format!("add chain ip kube-proxy {svc}"),
        format!("172.30.0.61 . tcp . 80 : goto {svc}"),
        "__10.180.0.11/8080".to_string(),
        "dnat to 10.180.0.11:8080".to_string(),
    ] {
        assert!(script.contains(&needle), "missing {needle:?} in:\n{script}");
    }
}

#[tokio::test]
async fn endpoint_change_is_a_partial_sync_of_that_service_only() {
    let (mut p, nft, _) = proxier();
    p.on_service_add(&web("a", "172.30.0.61"));
    p.on_service_add(&web("b", "172.30.0.62"));
    p.on_endpoint_slice_add(&web_slice("a", "10.180.0.11"));
    p.on_endpoint_slice_add(&web_slice("b", "10.180.0.13"));
    assert!(p.sync().await.unwrap().unwrap().full);

    assert!(p.on_endpoint_slice_update(
        &web_slice("a", "10.180.0.11"),
        &web_slice("a", "10.180.0.12")
    ));
    let report = p.sync().await.unwrap().unwrap();
    assert!(!report.full, "change-driven sync is partial");
    assert!(
        !report.script.contains("ns1/b/"),
        "b untouched:\n{}",
        report.script
    );
    assert!(!report.script.contains("add table"), "{}", report.script);
    assert!(
        report.script.contains("__10.180.0.12/8080"),
        "{}",
        report.script
    );
    assert_eq!(nft.record().scripts.len(), 2);

    // Nothing changed: a sync still runs (the periodic path), and is partial.
    assert!(!p.sync().await.unwrap().unwrap().full);
}

#[tokio::test]
async fn a_failed_transaction_makes_the_next_sync_full() {
    let (mut p, nft, _) = proxier();
    p.on_service_add(&web("a", "172.30.0.61"));
    p.on_endpoint_slice_add(&web_slice("a", "10.180.0.11"));
    assert!(p.sync().await.unwrap().unwrap().full);

    p.on_endpoint_slice_update(
        &web_slice("a", "10.180.0.11"),
        &web_slice("a", "10.180.0.12"),
    );
    nft.record().fail_next = Some("Error: Could not process rule".into());
    let err = Provider::sync(&mut p).await.unwrap_err();
    assert!(
        matches!(err, crate::Error::Nft(_)) && err.is_retriable(),
        "{err}"
    );
    assert_eq!(err.to_string(), "nft: Error: Could not process rule");

    let report = p.sync().await.unwrap().unwrap();
    assert!(report.full, "after a failure only a full sync is safe");
    assert!(report.script.contains("add table ip kube-proxy"));
    assert!(
        report.script.contains("__10.180.0.12/8080"),
        "{}",
        report.script
    );
}

#[tokio::test]
async fn udp_service_getting_its_first_endpoint_clears_conntrack() {
    let (mut p, _, conntrack) = proxier();
    let dns = service(
        "ns1",
        "dns",
        json!({"clusterIP": "172.30.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
    );
    p.on_service_add(&dns);
    p.sync().await.unwrap();
    assert!(conntrack.deletions().is_empty());

    p.on_endpoint_slice_add(&slice(
        "ns1",
        "dns",
        "dns-1",
        &[("dns", "UDP", 5353)],
        &[("10.180.0.5", true, true, false, "node-b")],
    ));
    let report = p.sync().await.unwrap().unwrap();
    let ip: IpAddr = "172.30.0.10".parse().unwrap();
    let expected = vec![Deletion::ServicePort { ip, port: 53 }];
    assert_eq!(conntrack.deletions(), expected);
    assert_eq!(
        report.conntrack_deletions.into_iter().collect::<Vec<_>>(),
        expected
    );
}

#[tokio::test]
async fn topology_and_service_cidr_changes_force_a_full_sync() {
    let (mut p, _, _) = proxier();
    p.on_service_add(&web("a", "172.30.0.61"));
    assert!(p.sync().await.unwrap().unwrap().full);
    assert!(!p.sync().await.unwrap().unwrap().full);

    let labels = [("topology.kubernetes.io/zone".to_string(), "z1".to_string())].into();
    assert!(p.on_topology_change(labels));
    assert!(p.sync().await.unwrap().unwrap().full);

    let cidrs = vec![
        "172.30.0.0/16".parse().unwrap(),
        "fd00::/108".parse().unwrap(),
    ];
    assert!(p.on_service_cidrs_changed(cidrs.clone()));
    assert!(!p.on_service_cidrs_changed(cidrs), "unchanged");
    assert!(p.sync().await.unwrap().unwrap().full);
}
