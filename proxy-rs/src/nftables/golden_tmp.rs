use super::render::{RendererState, SyncInput, render};
use super::render_tests::config;
use crate::model::{EndpointsChangeTracker, IpFamily, ServiceChangeTracker};
use crate::testutil::{service, slice};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn golden_dump() {
    let mut out = String::new();
    for masq_all in [false, true] {
        let mut cfg = config();
        cfg.masquerade_all = masq_all;
    if masq_all { cfg.node_port_addresses = crate::proxy_util::NodePortAddresses::Ips(vec!["127.0.0.1".parse().unwrap(), "192.168.0.10".parse().unwrap()]); cfg.local_detector = crate::proxy_util::LocalDetector::NoOp; }
        cfg.service_cidrs = vec!["172.30.0.0/16".parse().unwrap()];
        let mut svcs = ServiceChangeTracker::new(IpFamily::V4);
        let mut eps = EndpointsChangeTracker::new("node-a", IpFamily::V4);
        let mut state = RendererState::default();
        let lb = |name: &str, ip: &str, extra: serde_json::Value| {
            let mut spec = json!({"type": "LoadBalancer", "clusterIP": ip, "externalIPs": ["192.0.2.9"],
            "loadBalancerSourceRanges": ["203.0.113.0/24", "192.168.0.0/24"],
            "ports": [{"name": "p80", "port": 80, "nodePort": 30083}, {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]});
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            let mut s = service("ns1", name, spec);
            s.status = serde_json::from_value(
                json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}),
            )
            .unwrap();
            s
        };
        let variants = [
            ("plain", json!({})),
            (
                "loc",
                json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 32000}),
            ),
            ("iloc", json!({"internalTrafficPolicy": "Local"})),
            (
                "both",
                json!({"externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local", "healthCheckNodePort": 32001}),
            ),
            (
                "sticky",
                json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}}}),
            ),
            ("noranges", json!({"loadBalancerSourceRanges": []})),
        ];
        for (i, (name, extra)) in variants.iter().enumerate() {
            svcs.update(&lb(name, &format!("172.30.0.{}", 50 + i), extra.clone()));
            eps.update(
                &slice(
                    "ns1",
                    name,
                    &format!("{name}-1"),
                    &[("p80", "TCP", 8080), ("dns", "UDP", 5353)],
                    &[
                        ("10.180.0.1", true, true, false, "node-a"),
                        ("10.180.0.2", true, true, false, "node-b"),
                        ("10.180.0.3", false, true, true, "node-a"),
                    ],
                ),
                false,
            );
        }
        svcs.update(&lb("empty", "172.30.0.70", json!({})));
        svcs.update(&lb(
            "emptyloc",
            "172.30.0.71",
            json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 32002}),
        ));
        svcs.update(&lb(
            "remote",
            "172.30.0.72",
            json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 32003}),
        ));
        eps.update(
            &slice(
                "ns1",
                "remote",
                "remote-1",
                &[("p80", "TCP", 8080)],
                &[("10.180.0.9", true, true, false, "node-b")],
            ),
            false,
        );
        let mut step = |svcs: &mut ServiceChangeTracker,
                        eps: &mut EndpointsChangeTracker,
                        full: bool,
                        existing: &BTreeSet<String>,
                        out: &mut String| {
            let (s, e) = (svcs.port_map(), eps.endpoints_map());
            let mut updated = svcs.take_updated();
            updated.extend(eps.take_updated().updated_services);
            let o = render(
                &cfg,
                &mut state,
                &SyncInput {
                    services: &s,
                    endpoints: &e,
                    node_name: "node-a",
                    node_labels: &BTreeMap::new(),
                    full,
                    updated: &updated,
                    existing_chains: existing,
                    existing_sets: &BTreeSet::new(),
                },
            );
            out.push_str(&o.tx.to_script());
            out.push_str(&format!(
                "\n--- active {:?}\nstale {:?}\n{} {}\n",
                o.active_chains,
                o.stale_chains,
                o.no_local_endpoints_internal,
                o.no_local_endpoints_external
            ));
            o.active_chains
        };
        let active = step(&mut svcs, &mut eps, true, &BTreeSet::new(), &mut out);
        eps.update(
            &slice(
                "ns1",
                "plain",
                "plain-1",
                &[("p80", "TCP", 8080)],
                &[("10.180.0.4", true, true, false, "node-a")],
            ),
            false,
        );
        svcs.delete(&lb("sticky", "172.30.0.54", json!({})));
        step(&mut svcs, &mut eps, false, &active, &mut out);
        step(&mut svcs, &mut eps, true, &active, &mut out);
    }
    std::fs::write(std::env::var("GOLDEN_OUT").unwrap(), out).unwrap();
}
