//! Golden-ish tests of the generated transaction.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::names::{ServiceChains, endpoint_chain};
use super::render::{NftConfig, RendererState, SyncInput, render};
use crate::model::{
    EndpointsChangeTracker, EndpointsMap, IpFamily, NamespacedName, Protocol, ServiceChangeTracker,
    ServicePortMap, ServicePortName,
};
use crate::proxy_util::{LocalDetector, NodePortAddresses};
use crate::testutil::{service, slice};

pub(crate) fn config() -> NftConfig {
    NftConfig {
        family: IpFamily::V4,
        masquerade_all: false,
        masquerade_bit: 14,
        local_detector: LocalDetector::Cidrs(vec!["10.0.0.0/8".parse().unwrap()]),
        node_port_addresses: NodePortAddresses::MatchAll,
        node_ip: Some("192.168.0.10".parse().unwrap()),
        service_cidrs: vec![],
    }
}

struct World {
    svcs: ServiceChangeTracker,
    eps: EndpointsChangeTracker,
}

impl World {
    fn new() -> Self {
        Self {
            svcs: ServiceChangeTracker::new(IpFamily::V4),
            eps: EndpointsChangeTracker::new("node-a", IpFamily::V4),
        }
    }
    fn maps(&self) -> (ServicePortMap, EndpointsMap) {
        (self.svcs.port_map(), self.eps.endpoints_map())
    }
}

fn run(
    state: &mut RendererState,
    world: &mut World,
    full: bool,
    existing: &BTreeSet<String>,
) -> super::SyncOutput {
    let (svcs, eps) = world.maps();
    let mut updated = world.svcs.take_updated();
    updated.extend(world.eps.take_updated().updated_services);
    render(
        &config(),
        state,
        &SyncInput {
            services: &svcs,
            endpoints: &eps,
            node_name: "node-a",
            node_labels: &BTreeMap::new(),
            full,
            updated: &updated,
            existing_chains: existing,
            existing_sets: &BTreeSet::new(),
        },
    )
}

fn spn(name: &str, port: &str, p: Protocol) -> ServicePortName {
    ServicePortName {
        service: NamespacedName::new("ns1", name),
        port: port.into(),
        protocol: p,
    }
}

fn has(ops: &[String], needle: &str) -> bool {
    ops.iter().any(|o| o == needle)
}

fn assert_has(ops: &[String], needle: &str) {
    assert!(
        has(ops, needle),
        "missing {needle:?} in:\n{}",
        ops.join("\n")
    );
}

#[test]
fn chain_names_match_upstream_format() {
    let c = ServiceChains::new(&spn("svc1", "p80", Protocol::Tcp));
    // Upstream's own example: "ULMVA6XW-ns1/svc1/tcp/p80".
    assert_eq!(c.cluster_policy, "service-ULMVA6XW-ns1/svc1/tcp/p80");
    assert_eq!(c.external, "external-ULMVA6XW-ns1/svc1/tcp/p80");
    let ep = crate::model::Endpoint {
        ip: "10.180.0.1".parse().unwrap(),
        port: 80,
        ready: true,
        serving: true,
        terminating: false,
        node_name: None,
        zone_hints: Default::default(),
        node_hints: Default::default(),
        is_local: false,
    };
    assert_eq!(
        endpoint_chain(&spn("svc1", "p80", Protocol::Tcp), &ep),
        "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    );
}

#[test]
fn full_sync_sets_up_base_chains() {
    let mut w = World::new();
    let out = run(
        &mut RendererState::default(),
        &mut w,
        true,
        &BTreeSet::new(),
    );
    let ops = out.tx.ops();
    assert_has(
        ops,
        "add table ip kube-proxy { comment \"rules for kube-proxy\" ; }",
    );
    assert_has(
        ops,
        "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }",
    );
    assert_has(ops, "add rule ip kube-proxy nat-prerouting jump services");
    assert_has(
        ops,
        "add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check",
    );
    assert_has(
        ops,
        "add rule ip kube-proxy mark-for-masquerade mark set mark or 0x004000",
    );
    assert_has(
        ops,
        "add rule ip kube-proxy masquerading mark and 0x004000 == 0 return",
    );
    assert_has(
        ops,
        "add rule ip kube-proxy masquerading masquerade fully-random",
    );
    assert_has(
        ops,
        "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips",
    );
    assert_has(
        ops,
        "add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
    );
    assert_has(ops, "delete set ip kube-proxy nodeport-ips");
}

#[test]
fn cluster_ip_tcp_and_udp_with_two_endpoints() {
    let mut w = World::new();
    w.svcs.update(&service("ns1", "svc1", json!({"clusterIP": "172.30.0.41", "ports": [
        {"name": "p80", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]})));
    w.eps.update(
        &slice(
            "ns1",
            "svc1",
            "svc1-abc",
            &[("p80", "TCP", 8080), ("dns", "UDP", 5353)],
            &[
                ("10.180.0.1", true, true, false, "node-a"),
                ("10.180.0.2", true, true, false, "node-b"),
            ],
        ),
        false,
    );
    let out = run(
        &mut RendererState::default(),
        &mut w,
        true,
        &BTreeSet::new(),
    );
    let ops = out.tx.ops();
    let tcp = ServiceChains::new(&spn("svc1", "p80", Protocol::Tcp)).cluster_policy;
    let udp = ServiceChains::new(&spn("svc1", "dns", Protocol::Udp)).cluster_policy;
    assert_has(
        ops,
        &format!("add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {tcp} }}"),
    );
    assert_has(
        ops,
        &format!("add element ip kube-proxy service-ips {{ 172.30.0.41 . udp . 53 : goto {udp} }}"),
    );
    assert_has(ops, "add element ip kube-proxy cluster-ips { 172.30.0.41 }");
    assert_has(
        ops,
        &format!(
            "add rule ip kube-proxy {tcp} ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade"
        ),
    );
    let lb = ops
        .iter()
        .find(|o| o.starts_with(&format!("add rule ip kube-proxy {tcp} numgen")))
        .expect("lb rule");
    assert!(
        lb.contains("numgen random mod 2 vmap { 0 : goto endpoint-")
            && lb.contains(" , 1 : goto endpoint-"),
        "{lb}"
    );
    let ep_chain = ops
        .iter()
        .find(|o| {
            o.starts_with("add chain ip kube-proxy endpoint-")
                && o.ends_with("ns1/svc1/udp/dns__10.180.0.2/5353")
        })
        .expect("udp endpoint chain");
    let ep_chain = ep_chain.trim_start_matches("add chain ip kube-proxy ");
    assert_has(
        ops,
        &format!("add rule ip kube-proxy {ep_chain} ip saddr 10.180.0.2 jump mark-for-masquerade"),
    );
    assert_has(
        ops,
        &format!("add rule ip kube-proxy {ep_chain} meta l4proto udp dnat to 10.180.0.2:5353"),
    );
    assert_eq!(
        out.active_chains.len(),
        6,
        "2 service chains + 4 endpoint chains"
    );
}

#[test]
fn node_port_goes_through_external_chain() {
    let mut w = World::new();
    w.svcs.update(&service(
        "ns1",
        "np",
        json!({"type": "NodePort", "clusterIP": "172.30.0.42", "ports": [
        {"name": "p80", "port": 80, "nodePort": 30080}]}),
    ));
    w.eps.update(
        &slice(
            "ns1",
            "np",
            "np-1",
            &[("p80", "TCP", 80)],
            &[("10.180.0.3", true, true, false, "node-b")],
        ),
        false,
    );
    let out = run(
        &mut RendererState::default(),
        &mut w,
        true,
        &BTreeSet::new(),
    );
    let ops = out.tx.ops();
    let c = ServiceChains::new(&spn("np", "p80", Protocol::Tcp));
    assert_has(
        ops,
        &format!(
            "add element ip kube-proxy service-nodeports {{ tcp . 30080 : goto {} }}",
            c.external
        ),
    );
    assert_has(
        ops,
        &format!(
            "add rule ip kube-proxy {} jump mark-for-masquerade",
            c.external
        ),
    );
    assert_has(
        ops,
        &format!(
            "add rule ip kube-proxy {} goto {}",
            c.external, c.cluster_policy
        ),
    );
}

#[test]
fn no_endpoints_rejects() {
    let mut w = World::new();
    w.svcs.update(&service(
        "ns1",
        "empty",
        json!({"type": "NodePort", "clusterIP": "172.30.0.43", "ports": [
        {"name": "p80", "port": 80, "nodePort": 30081}]}),
    ));
    let out = run(
        &mut RendererState::default(),
        &mut w,
        true,
        &BTreeSet::new(),
    );
    let ops = out.tx.ops();
    assert_has(
        ops,
        "add element ip kube-proxy no-endpoint-services { 172.30.0.43 . tcp . 80 comment \"ns1/empty:p80\" : goto reject-chain }",
    );
    assert_has(
        ops,
        "add element ip kube-proxy no-endpoint-nodeports { tcp . 30081 comment \"ns1/empty:p80\" : goto reject-chain }",
    );
    assert!(
        !ops.iter()
            .any(|o| o.starts_with("add element ip kube-proxy service-ips")),
        "no dispatch element without endpoints"
    );
    assert!(out.active_chains.is_empty());
}

#[test]
fn local_traffic_policy() {
    let mut w = World::new();
    w.svcs.update(&service("ns1", "loc", json!({"type": "NodePort", "clusterIP": "172.30.0.44",
        "externalTrafficPolicy": "Local", "ports": [{"name": "p80", "port": 80, "nodePort": 30082}]})));
    w.eps.update(
        &slice(
            "ns1",
            "loc",
            "loc-1",
            &[("p80", "TCP", 80)],
            &[
                ("10.180.0.4", true, true, false, "node-a"),
                ("10.180.0.5", true, true, false, "node-b"),
            ],
        ),
        false,
    );
    let out = run(
        &mut RendererState::default(),
        &mut w,
        true,
        &BTreeSet::new(),
    );
    let ops = out.tx.ops();
    let c = ServiceChains::new(&spn("loc", "p80", Protocol::Tcp));
    assert_has(
        ops,
        &format!(
            "add rule ip kube-proxy {} ip saddr 10.0.0.0/8 goto {} comment \"short-circuit pod traffic\"",
            c.external, c.cluster_policy
        ),
    );
    assert_has(
        ops,
        &format!(
            "add rule ip kube-proxy {} fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"",
            c.external
        ),
    );
    assert_has(
        ops,
        &format!(
            "add rule ip kube-proxy {} goto {}",
            c.external, c.local_policy
        ),
    );
    let local_lb = ops
        .iter()
        .find(|o| o.starts_with(&format!("add rule ip kube-proxy {} numgen", c.local_policy)))
        .unwrap();
    assert!(
        local_lb.contains("mod 1 vmap") && local_lb.contains("10.180.0.4/80"),
        "{local_lb}"
    );
    assert!(!ops.iter().any(
        |o| o.contains(&format!("{} jump mark-for-masquerade", c.external)) && !o.contains("fib")
    ));

    // Without local endpoints, external traffic to the NodePort is dropped.
    w.eps.update(
        &slice(
            "ns1",
            "loc",
            "loc-1",
            &[("p80", "TCP", 80)],
            &[("10.180.0.5", true, true, false, "node-b")],
        ),
        false,
    );
    let out = run(
        &mut RendererState::default(),
        &mut w,
        true,
        &BTreeSet::new(),
    );
    assert_has(
        out.tx.ops(),
        "add element ip kube-proxy no-endpoint-nodeports { tcp . 30082 comment \"ns1/loc:p80\" : drop }",
    );
    assert_eq!(out.no_local_endpoints_external, 1);
}

#[test]
fn session_affinity() {
    let mut w = World::new();
    w.svcs.update(&service("ns1", "sticky", json!({"clusterIP": "172.30.0.45", "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}}, "ports": [{"name": "p80", "port": 80}]})));
    w.eps.update(
        &slice(
            "ns1",
            "sticky",
            "s-1",
            &[("p80", "TCP", 80)],
            &[("10.180.0.6", true, true, false, "node-b")],
        ),
        false,
    );
    let out = run(
        &mut RendererState::default(),
        &mut w,
        true,
        &BTreeSet::new(),
    );
    let ops = out.tx.ops();
    let set = ops
        .iter()
        .find(|o| o.starts_with("add set ip kube-proxy affinity-"))
        .expect("affinity set");
    assert!(set.ends_with("ns1/sticky/tcp/p80__10.180.0.6/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 300s ; }"), "{set}");
    let set_name = set.split_whitespace().nth(4).unwrap();
    let c = ServiceChains::new(&spn("sticky", "p80", Protocol::Tcp));
    let ep_chain = set_name.replacen("affinity-", "endpoint-", 1);
    assert_has(
        ops,
        &format!(
            "add rule ip kube-proxy {} ip saddr @{set_name} goto {ep_chain}",
            c.cluster_policy
        ),
    );
    assert_has(
        ops,
        &format!("add rule ip kube-proxy {ep_chain} update @{set_name} {{ ip saddr }}"),
    );
}

#[test]
fn partial_sync_touches_only_changed_service() {
    let mut w = World::new();
    for (name, ip, ep) in [
        ("a", "172.30.1.1", "10.1.0.1"),
        ("b", "172.30.1.2", "10.1.0.2"),
    ] {
        w.svcs.update(&service(
            "ns1",
            name,
            json!({"clusterIP": ip, "ports": [{"name": "p80", "port": 80}]}),
        ));
        w.eps.update(
            &slice(
                "ns1",
                name,
                &format!("{name}-1"),
                &[("p80", "TCP", 80)],
                &[(ep, true, true, false, "node-b")],
            ),
            false,
        );
    }
    let mut state = RendererState::default();
    let first = run(&mut state, &mut w, true, &BTreeSet::new());
    let existing = first.active_chains.clone();

    // Nothing changed: a partial sync is empty.
    let idle = run(&mut state, &mut w, false, &existing);
    assert!(
        idle.tx.is_empty(),
        "idle partial sync:\n{}",
        idle.tx.to_script()
    );

    // Change b's endpoint.
    w.eps.update(
        &slice(
            "ns1",
            "b",
            "b-1",
            &[("p80", "TCP", 80)],
            &[("10.1.0.3", true, true, false, "node-b")],
        ),
        false,
    );
    let out = run(&mut state, &mut w, false, &existing);
    let script = out.tx.to_script();
    assert!(
        !script.contains("ns1/a/"),
        "service a must not be touched:\n{script}"
    );
    assert!(
        !script.contains("add table"),
        "partial sync does not redo setup:\n{script}"
    );
    let b = ServiceChains::new(&spn("b", "p80", Protocol::Tcp)).cluster_policy;
    assert_has(out.tx.ops(), &format!("flush chain ip kube-proxy {b}"));
    assert!(script.contains("__10.1.0.3/80"), "{script}");
    // The old endpoint chain is flushed now and reported stale for later deletion.
    let stale: Vec<_> = out.stale_chains.iter().collect();
    assert_eq!(stale.len(), 1);
    assert!(stale[0].ends_with("ns1/b/tcp/p80__10.1.0.2/80"));
    assert_has(
        out.tx.ops(),
        &format!("flush chain ip kube-proxy {}", stale[0]),
    );
}

#[test]
fn partial_sync_replaces_changed_map_elements() {
    let mut w = World::new();
    w.svcs.update(&service(
        "ns1",
        "a",
        json!({"clusterIP": "172.30.1.1", "ports": [{"name": "p80", "port": 80}]}),
    ));
    w.eps.update(
        &slice(
            "ns1",
            "a",
            "a-1",
            &[("p80", "TCP", 80)],
            &[("10.1.0.1", true, true, false, "node-b")],
        ),
        false,
    );
    let mut state = RendererState::default();
    let first = run(&mut state, &mut w, true, &BTreeSet::new());
    // Endpoints disappear: dispatch element is deleted, reject element added.
    w.eps
        .update(&slice("ns1", "a", "a-1", &[("p80", "TCP", 80)], &[]), false);
    let out = run(&mut state, &mut w, false, &first.active_chains);
    let ops = out.tx.ops();
    assert_has(
        ops,
        "delete element ip kube-proxy service-ips { 172.30.1.1 . tcp . 80 }",
    );
    assert_has(
        ops,
        "add element ip kube-proxy no-endpoint-services { 172.30.1.1 . tcp . 80 comment \"ns1/a:p80\" : goto reject-chain }",
    );
    assert_eq!(out.stale_chains.len(), 2);
}

#[test]
fn load_balancer_source_ranges_use_firewall_chain() {
    let mut w = World::new();
    let mut svc = service(
        "ns1",
        "lb",
        json!({"type": "LoadBalancer", "clusterIP": "172.30.0.46",
        "loadBalancerSourceRanges": ["203.0.113.0/24", "192.168.0.0/24"],
        "ports": [{"name": "p80", "port": 80, "nodePort": 30083}]}),
    );
    svc.status =
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}))
            .unwrap();
    w.svcs.update(&svc);
    w.eps.update(
        &slice(
            "ns1",
            "lb",
            "lb-1",
            &[("p80", "TCP", 80)],
            &[("10.180.0.7", true, true, false, "node-b")],
        ),
        false,
    );
    let out = run(
        &mut RendererState::default(),
        &mut w,
        true,
        &BTreeSet::new(),
    );
    let ops = out.tx.ops();
    let c = ServiceChains::new(&spn("lb", "p80", Protocol::Tcp));
    assert_has(
        ops,
        &format!(
            "add element ip kube-proxy service-ips {{ 198.51.100.7 . tcp . 80 : goto {} }}",
            c.external
        ),
    );
    assert_has(
        ops,
        &format!(
            "add element ip kube-proxy firewall-ips {{ 198.51.100.7 . tcp . 80 : goto {} }}",
            c.firewall
        ),
    );
    // The node IP (192.168.0.10) is inside an allowed range, so the VIP is
    // allowed as a source too (hairpin through a local VIP).
    assert_has(
        ops,
        &format!(
            "add rule ip kube-proxy {} ip saddr != {{ 203.0.113.0/24, 192.168.0.0/24, 198.51.100.7 }} drop",
            c.firewall
        ),
    );
}

#[test]
fn masquerade_all_marks_every_cluster_ip_packet() {
    let mut w = World::new();
    w.svcs.update(&service(
        "ns1",
        "m",
        json!({"clusterIP": "172.30.0.47", "ports": [{"name": "p80", "port": 80}]}),
    ));
    w.eps.update(
        &slice(
            "ns1",
            "m",
            "m-1",
            &[("p80", "TCP", 80)],
            &[("10.180.0.8", true, true, false, "node-b")],
        ),
        false,
    );
    let (svcs, eps) = w.maps();
    let cfg = NftConfig {
        masquerade_all: true,
        ..config()
    };
    let out = render(
        &cfg,
        &mut RendererState::default(),
        &SyncInput {
            services: &svcs,
            endpoints: &eps,
            node_name: "node-a",
            node_labels: &BTreeMap::new(),
            full: true,
            updated: &BTreeSet::new(),
            existing_chains: &BTreeSet::new(),
            existing_sets: &BTreeSet::new(),
        },
    );
    let c = ServiceChains::new(&spn("m", "p80", Protocol::Tcp));
    assert_has(
        out.tx.ops(),
        &format!(
            "add rule ip kube-proxy {} ip daddr 172.30.0.47 tcp dport 80 jump mark-for-masquerade",
            c.cluster_policy
        ),
    );
}
