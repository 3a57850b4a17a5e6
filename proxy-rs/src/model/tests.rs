//! Table-driven tests of the model on plain API objects.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::testutil::{service, slice};

fn spn(ns: &str, name: &str, port: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName {
        service: NamespacedName::new(ns, name),
        port: port.into(),
        protocol,
    }
}

#[test]
fn service_ports_skip_rules() {
    let base = json!({"clusterIP": "172.30.0.1", "ports": [{"name": "p80", "port": 80}]});
    let cases = [
        ("plain", base.clone(), None, 1),
        (
            "headless",
            json!({"clusterIP": "None", "ports": [{"port": 80}]}),
            None,
            0,
        ),
        ("no clusterIP", json!({"ports": [{"port": 80}]}), None, 0),
        (
            "external name",
            json!({"type": "ExternalName", "externalName": "x.example", "clusterIP": "", "ports": [{"port": 80}]}),
            None,
            0,
        ),
        (
            "other proxy",
            base.clone(),
            Some(service_port::LABEL_SERVICE_PROXY_NAME),
            0,
        ),
        (
            "headless label",
            base.clone(),
            Some(service_port::LABEL_HEADLESS),
            0,
        ),
        (
            "ipv6 only",
            json!({"clusterIP": "fd00::1", "clusterIPs": ["fd00::1"], "ports": [{"port": 80}]}),
            None,
            0,
        ),
        (
            "bad protocol",
            json!({"clusterIP": "172.30.0.1", "ports": [{"port": 80, "protocol": "ICMP"}]}),
            None,
            0,
        ),
    ];
    for (name, spec, label, want) in cases {
        let mut svc = service("ns", "svc", spec);
        if let Some(l) = label {
            svc.metadata.labels = Some(BTreeMap::from([(l.to_string(), "x".to_string())]));
        }
        assert_eq!(
            service_port::service_ports(&svc, IpFamily::V4).len(),
            want,
            "{name}"
        );
    }
}

#[test]
fn service_info_fields() {
    let mut svc = service(
        "ns",
        "lb",
        json!({
            "type": "LoadBalancer", "clusterIP": "172.30.0.5", "clusterIPs": ["fd00::5", "172.30.0.5"],
            "externalIPs": ["192.0.2.10", "2001:db8::1"],
            "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Cluster",
            "healthCheckNodePort": 32000,
            "sessionAffinity": "ClientIP",
            "loadBalancerSourceRanges": ["203.0.113.0/24"],
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]
        }),
    );
    svc.status = serde_json::from_value(json!({"loadBalancer": {"ingress": [
        {"ip": "198.51.100.1"}, {"ip": "198.51.100.2", "ipMode": "Proxy"}, {"hostname": "lb.example"}
    ]}}))
    .unwrap();
    let ports = service_port::service_ports(&svc, IpFamily::V4);
    assert_eq!(ports.len(), 1);
    let (name, info) = &ports[0];
    assert_eq!(name, &spn("ns", "lb", "dns", Protocol::Udp));
    assert_eq!(name.to_string(), "ns/lb:dns");
    assert_eq!(info.cluster_ip.to_string(), "172.30.0.5");
    assert_eq!(info.node_port, 30053);
    assert_eq!(info.session_affinity_timeout, Some(10800));
    assert_eq!(
        info.external_ips,
        vec!["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        info.load_balancer_vips,
        vec!["198.51.100.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(info.load_balancer_source_ranges.len(), 1);
    assert!(info.external_policy_local && !info.internal_policy_local);
    assert_eq!(info.health_check_node_port, 32000);
    assert!(info.uses_cluster_endpoints() && info.uses_local_endpoints());
}

#[test]
fn external_policy_local_needs_external_access() {
    // A ClusterIP Service without externalIPs ignores externalTrafficPolicy.
    let svc = service(
        "ns",
        "c",
        json!({"clusterIP": "172.30.0.9", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
    );
    let (_, info) = &service_port::service_ports(&svc, IpFamily::V4)[0];
    assert!(!info.external_policy_local);
    assert!(!info.uses_local_endpoints());
}

#[test]
fn service_tracker_reports_only_real_changes() {
    let mut t = ServiceChangeTracker::new(IpFamily::V4);
    let svc = service(
        "ns",
        "a",
        json!({"clusterIP": "172.30.0.1", "ports": [{"port": 80}]}),
    );
    assert!(t.update(&svc));
    assert!(!t.update(&svc), "identical update is not a change");
    let mut relabelled = svc.clone();
    relabelled.metadata.annotations = Some(BTreeMap::from([("a".into(), "b".into())]));
    assert!(
        !t.update(&relabelled),
        "annotation-only change is not a change"
    );
    assert_eq!(t.take_updated().len(), 1);
    assert!(t.take_updated().is_empty());
    assert_eq!(t.port_map().len(), 1);
    assert!(t.delete(&svc));
    assert!(t.port_map().is_empty());
    let headless = service(
        "ns",
        "h",
        json!({"clusterIP": "None", "ports": [{"port": 80}]}),
    );
    assert!(!t.update(&headless));
}

#[test]
fn slices_merge_and_dedupe() {
    let mut t = EndpointsChangeTracker::new("node-a", IpFamily::V4);
    let ports = [("p80", "TCP", 8080)];
    let s1 = slice(
        "ns",
        "svc",
        "svc-1",
        &ports,
        &[
            ("10.0.0.1", true, true, false, "node-a"),
            ("10.0.0.2", false, false, false, "node-b"),
        ],
    );
    let s2 = slice(
        "ns",
        "svc",
        "svc-2",
        &ports,
        &[
            ("10.0.0.2", true, true, false, "node-b"),
            ("10.0.0.3", false, true, true, "node-c"),
        ],
    );
    assert!(t.update(&s1, false));
    assert!(t.update(&s2, false));
    assert!(!t.update(&s2, false), "unchanged slice");
    let map = t.endpoints_map();
    let eps = &map[&spn("ns", "svc", "p80", Protocol::Tcp)];
    let summary: Vec<(String, bool, bool)> = eps
        .iter()
        .map(|e| (e.to_string(), e.ready, e.is_local))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("10.0.0.1:8080".into(), true, true),
            ("10.0.0.2:8080".into(), true, false),
            ("10.0.0.3:8080".into(), false, false),
        ]
    );
    let upd = t.take_updated();
    assert_eq!(upd.updated_services.len(), 1);
    assert!(t.update(&s1, true));
    assert_eq!(
        t.endpoints_map()[&spn("ns", "svc", "p80", Protocol::Tcp)].len(),
        2
    );
}

#[test]
fn slices_without_service_label_or_wrong_family_are_ignored() {
    let mut t = EndpointsChangeTracker::new("n", IpFamily::V4);
    let mut s = slice(
        "ns",
        "svc",
        "s",
        &[("", "TCP", 80)],
        &[("10.0.0.1", true, true, false, "n")],
    );
    s.metadata.labels = None;
    assert!(!t.update(&s, false));
    let mut v6 = slice(
        "ns",
        "svc",
        "s6",
        &[("", "TCP", 80)],
        &[("fd00::1", true, true, false, "n")],
    );
    v6.address_type = "IPv6".into();
    assert!(!t.update(&v6, false));
    assert!(t.endpoints_map().is_empty());
}

fn ep(ip: &str, ready: bool, serving: bool, terminating: bool, local: bool) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port: 80,
        ready,
        serving,
        terminating,
        node_name: None,
        zone_hints: Default::default(),
        node_hints: Default::default(),
        is_local: local,
    }
}

fn info(internal_local: bool, external_local: bool, node_port: u16) -> ServiceInfo {
    ServiceInfo {
        cluster_ip: "172.30.0.1".parse().unwrap(),
        port: 80,
        protocol: Protocol::Tcp,
        node_port,
        session_affinity_timeout: None,
        external_ips: vec![],
        load_balancer_vips: vec![],
        load_balancer_source_ranges: vec![],
        external_policy_local: external_local,
        internal_policy_local: internal_local,
        health_check_node_port: 0,
    }
}

#[test]
fn categorize_endpoints_table() {
    let ips = |eps: &[Endpoint]| eps.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>();
    struct Case {
        name: &'static str,
        svc: ServiceInfo,
        eps: Vec<Endpoint>,
        cluster: Vec<&'static str>,
        local: Vec<&'static str>,
        reachable: usize,
        has_any: bool,
    }
    let cases = [
        Case {
            name: "cluster policy uses ready endpoints only",
            svc: info(false, false, 0),
            eps: vec![
                ep("10.0.0.1", true, true, false, false),
                ep("10.0.0.2", false, true, true, false),
            ],
            cluster: vec!["10.0.0.1"],
            local: vec![],
            reachable: 1,
            has_any: true,
        },
        Case {
            name: "falls back to serving terminating",
            svc: info(false, false, 0),
            eps: vec![
                ep("10.0.0.1", false, false, true, false),
                ep("10.0.0.2", false, true, true, false),
            ],
            cluster: vec!["10.0.0.2"],
            local: vec![],
            reachable: 1,
            has_any: true,
        },
        Case {
            name: "no usable endpoints",
            svc: info(false, false, 0),
            eps: vec![ep("10.0.0.1", false, false, false, false)],
            cluster: vec![],
            local: vec![],
            reachable: 0,
            has_any: false,
        },
        Case {
            name: "internal local picks local ready",
            svc: info(true, false, 0),
            eps: vec![
                ep("10.0.0.1", true, true, false, true),
                ep("10.0.0.2", true, true, false, false),
            ],
            cluster: vec![],
            local: vec!["10.0.0.1"],
            reachable: 1,
            has_any: true,
        },
        Case {
            name: "internal local with only remote endpoints still has_any",
            svc: info(true, false, 0),
            eps: vec![ep("10.0.0.2", true, true, false, false)],
            cluster: vec![],
            local: vec![],
            reachable: 0,
            has_any: true,
        },
        Case {
            name: "external local nodeport: cluster for internal, local for external",
            svc: info(false, true, 30080),
            eps: vec![
                ep("10.0.0.1", true, true, false, true),
                ep("10.0.0.2", true, true, false, false),
            ],
            cluster: vec!["10.0.0.1", "10.0.0.2"],
            local: vec!["10.0.0.1"],
            reachable: 2,
            has_any: true,
        },
        Case {
            name: "local falls back to local serving terminating and merges",
            svc: info(false, true, 30080),
            eps: vec![
                ep("10.0.0.1", false, true, true, true),
                ep("10.0.0.2", true, true, false, false),
            ],
            cluster: vec!["10.0.0.2"],
            local: vec!["10.0.0.1"],
            reachable: 2,
            has_any: true,
        },
    ];
    for c in cases {
        let got = categorize_endpoints(&c.eps, &c.svc, "node", &BTreeMap::new());
        assert_eq!(ips(&got.cluster), c.cluster, "{}: cluster", c.name);
        assert_eq!(ips(&got.local), c.local, "{}: local", c.name);
        assert_eq!(
            got.all_reachable.len(),
            c.reachable,
            "{}: reachable",
            c.name
        );
        assert_eq!(got.has_any, c.has_any, "{}: has_any", c.name);
    }
}

#[test]
fn zone_hints_filter_cluster_endpoints() {
    let mut a = ep("10.0.0.1", true, true, false, false);
    a.zone_hints.insert("zone-a".into());
    let mut b = ep("10.0.0.2", true, true, false, false);
    b.zone_hints.insert("zone-b".into());
    let labels = BTreeMap::from([(
        topology::LABEL_TOPOLOGY_ZONE.to_string(),
        "zone-a".to_string(),
    )]);
    let got = categorize_endpoints(
        &[a.clone(), b.clone()],
        &info(false, false, 0),
        "node",
        &labels,
    );
    assert_eq!(got.cluster, vec![a.clone()]);
    // A node in a zone nobody hinted for ignores hints.
    let other = BTreeMap::from([(
        topology::LABEL_TOPOLOGY_ZONE.to_string(),
        "zone-c".to_string(),
    )]);
    assert_eq!(
        categorize_endpoints(&[a, b], &info(false, false, 0), "node", &other)
            .cluster
            .len(),
        2
    );
}
