//! Cases from upstream `filtering_test.go` / `scoring_test.go` (TestSingleConstraint,
//! TestPodTopologySpreadScore ...), re-expressed on plain objects.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, TopologySpreadConstraint};

use super::*;
use crate::framework::{Code, NodeInfo};
use crate::testing::{
    exists_selector, in_namespace, labeled_node, labeled_pod, node_infos, on_node, taint,
    with_taints,
};

const HOST: &str = "kubernetes.io/hostname";

fn spread(skew: i32, key: &str, when: &str, sel: &str) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: skew,
        topology_key: key.into(),
        when_unsatisfiable: when.into(),
        label_selector: Some(exists_selector(sel)),
        ..Default::default()
    }
}

fn with_spread(mut p: Pod, cs: Vec<TopologySpreadConstraint>) -> Pod {
    p.spec
        .get_or_insert_with(Default::default)
        .topology_spread_constraints = Some(cs);
    p
}

fn foo(name: &str, node: &str) -> Pod {
    on_node(labeled_pod(name, &[("foo", "")]), node)
}

fn zoned(name: &str, zone: &str) -> Node {
    labeled_node(name, &[("zone", zone), (HOST, name)])
}

fn host(name: &str) -> Node {
    labeled_node(name, &[(HOST, name)])
}

/// Runs PreFilter over `nodes` and Filter on each; returns per node (code).
fn filter_all(pl: &PodTopologySpread, pod: &Pod, nodes: &[Arc<NodeInfo>]) -> Vec<Code> {
    let mut state = CycleState::new();
    let (_, s) = pl.pre_filter(&mut state, pod, nodes);
    assert!(s.is_success(), "prefilter: {s}");
    nodes
        .iter()
        .map(|n| pl.filter(&state, pod, n).code())
        .collect()
}

const OK: Code = Code::Success;
const NO: Code = Code::Unschedulable;
const UNRES: Code = Code::UnschedulableAndUnresolvable;

fn four_zoned() -> Vec<Node> {
    vec![
        zoned("node-a", "zone1"),
        zoned("node-b", "zone1"),
        zoned("node-x", "zone2"),
        zoned("node-y", "zone2"),
    ]
}

/// name, incoming pod, nodes, existing pods, expected code per node.
type FilterCase = (&'static str, Pod, Vec<Node>, Vec<Pod>, Vec<Code>);
/// name, incoming pod, filtered nodes, failed nodes, existing pods, expected scores.
type ScoreCase = (&'static str, Pod, Vec<Node>, Vec<Node>, Vec<Pod>, Vec<i64>);

#[test]
fn filter_single_constraint_table() {
    let hard_zone = |p: Pod| with_spread(p, vec![spread(1, "zone", DO_NOT_SCHEDULE, "foo")]);
    let hard_host = |p: Pod| with_spread(p, vec![spread(1, HOST, DO_NOT_SCHEDULE, "foo")]);
    let incoming = labeled_pod("p", &[("foo", "")]);
    let mut b_no_zone = four_zoned();
    b_no_zone[1] = host("node-b");
    let mut terminating = foo("t", "node-a");
    terminating.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
    );
    let cases: Vec<FilterCase> = vec![
        (
            "no existing pods",
            hard_zone(incoming.clone()),
            four_zoned(),
            vec![],
            vec![OK, OK, OK, OK],
        ),
        (
            "no existing pods, incoming pod doesn't match itself",
            hard_zone(labeled_pod("p", &[("bar", "")])),
            four_zoned(),
            vec![],
            vec![OK, OK, OK, OK],
        ),
        (
            "existing pods in a different namespace do not count",
            hard_zone(incoming.clone()),
            four_zoned(),
            vec![
                in_namespace(foo("a1", "node-a"), "ns1"),
                foo("b1", "node-b"),
                foo("x1", "node-x"),
                foo("x2", "node-x"),
                foo("y1", "node-y"),
            ],
            vec![OK, OK, NO, NO],
        ),
        (
            "pods spread across zones as 3/3, all nodes fit",
            hard_zone(incoming.clone()),
            four_zoned(),
            vec![
                foo("a1", "node-a"),
                foo("b1", "node-b"),
                foo("b2", "node-b"),
                foo("x1", "node-x"),
                foo("y1", "node-y"),
                foo("y2", "node-y"),
            ],
            vec![OK, OK, OK, OK],
        ),
        (
            "pods spread across zones as 1/2 due to absence of label 'zone' on node-b",
            hard_zone(incoming.clone()),
            b_no_zone,
            vec![
                foo("a1", "node-a"),
                foo("b1", "node-b"),
                foo("x1", "node-x"),
                foo("y1", "node-y"),
            ],
            vec![OK, UNRES, NO, NO],
        ),
        (
            "pod cannot be scheduled as all nodes don't have label 'rack'",
            with_spread(
                incoming.clone(),
                vec![spread(1, "rack", DO_NOT_SCHEDULE, "foo")],
            ),
            vec![zoned("node-a", "zone1"), zoned("node-x", "zone2")],
            vec![],
            vec![UNRES, UNRES],
        ),
        (
            "pods spread across nodes as 2/1/0/3, only node-x fits",
            hard_host(incoming.clone()),
            four_zoned(),
            vec![
                foo("a1", "node-a"),
                foo("a2", "node-a"),
                foo("b1", "node-b"),
                foo("y1", "node-y"),
                foo("y2", "node-y"),
                foo("y3", "node-y"),
            ],
            vec![NO, NO, OK, NO],
        ),
        (
            "pods spread across nodes as 2/1/0/3, maxSkew is 2, node-b and node-x fit",
            with_spread(
                incoming.clone(),
                vec![spread(2, HOST, DO_NOT_SCHEDULE, "foo")],
            ),
            four_zoned(),
            vec![
                foo("a1", "node-a"),
                foo("a2", "node-a"),
                foo("b1", "node-b"),
                foo("y1", "node-y"),
                foo("y2", "node-y"),
                foo("y3", "node-y"),
            ],
            vec![NO, OK, OK, NO],
        ),
        (
            "terminating pods are excluded",
            hard_host(incoming.clone()),
            vec![host("node-a"), host("node-b")],
            vec![terminating, foo("b1", "node-b")],
            vec![OK, NO],
        ),
    ];
    let pl = PodTopologySpread::from_args(None).expect("args");
    for (name, pod, nodes, pods, want) in cases {
        let infos = node_infos(&nodes, &pods);
        assert_eq!(filter_all(&pl, &pod, &infos), want, "{name}");
    }
}

#[test]
fn filter_reasons() {
    let pl = PodTopologySpread::from_args(None).expect("args");
    let pod = with_spread(
        labeled_pod("p", &[("foo", "")]),
        vec![spread(1, "zone", DO_NOT_SCHEDULE, "foo")],
    );
    let infos = node_infos(
        &[
            zoned("node-a", "zone1"),
            host("node-b"),
            zoned("node-x", "zone2"),
        ],
        &[foo("a1", "node-a")],
    );
    let mut state = CycleState::new();
    let _ = pl.pre_filter(&mut state, &pod, &infos);
    assert_eq!(
        pl.filter(&state, &pod, &infos[0]).message(),
        ERR_REASON_CONSTRAINTS_NOT_MATCH
    );
    assert_eq!(
        pl.filter(&state, &pod, &infos[1]).message(),
        ERR_REASON_NODE_LABEL_NOT_MATCH
    );
    assert!(pl.filter(&state, &pod, &infos[2]).is_success());
    // No hard constraint: PreFilter skips.
    let (_, s) = pl.pre_filter(&mut CycleState::new(), &labeled_pod("q", &[]), &infos);
    assert!(s.is_skip());
}

#[test]
fn filter_min_domains_and_policies() {
    let pl = PodTopologySpread::from_args(None).expect("args");
    let incoming = labeled_pod("p", &[("foo", "")]);
    // 1/1 across the only 2 zones; minDomains 3 makes the global minimum 0.
    let mut c = spread(1, "zone", DO_NOT_SCHEDULE, "foo");
    c.min_domains = Some(3);
    let pods = vec![foo("a1", "node-a"), foo("x1", "node-x")];
    let infos = node_infos(&four_zoned(), &pods);
    assert_eq!(
        filter_all(&pl, &with_spread(incoming.clone(), vec![c.clone()]), &infos),
        vec![NO; 4]
    );
    c.min_domains = Some(2);
    assert_eq!(
        filter_all(&pl, &with_spread(incoming.clone(), vec![c]), &infos),
        vec![OK; 4]
    );

    // node-y (no pods) does not match the pod's nodeSelector: Honor leaves it out of the
    // minimum, Ignore counts it.
    let mut nodes: Vec<Node> = ["node-a", "node-b", "node-x"]
        .iter()
        .map(|n| labeled_node(n, &[(HOST, n), ("sel", "")]))
        .collect();
    nodes.push(host("node-y"));
    let pods = vec![
        foo("a1", "node-a"),
        foo("b1", "node-b"),
        foo("x1", "node-x"),
    ];
    let infos = node_infos(&nodes, &pods);
    let mut selected = incoming.clone();
    selected
        .spec
        .get_or_insert_with(Default::default)
        .node_selector = Some([("sel".to_string(), String::new())].into());
    let mut c = spread(1, HOST, DO_NOT_SCHEDULE, "foo");
    assert_eq!(
        filter_all(&pl, &with_spread(selected.clone(), vec![c.clone()]), &infos)[0],
        OK
    );
    c.node_affinity_policy = Some("Ignore".into());
    assert_eq!(
        filter_all(&pl, &with_spread(selected, vec![c]), &infos)[0],
        NO
    );

    // node-y tainted: default Ignore counts it, Honor leaves it out.
    let mut nodes: Vec<Node> = ["node-a", "node-b", "node-x"]
        .iter()
        .map(|n| host(n))
        .collect();
    nodes.push(with_taints(
        host("node-y"),
        vec![taint("k", "v", "NoSchedule")],
    ));
    let infos = node_infos(&nodes, &pods);
    let mut c = spread(1, HOST, DO_NOT_SCHEDULE, "foo");
    assert_eq!(
        filter_all(&pl, &with_spread(incoming.clone(), vec![c.clone()]), &infos)[0],
        NO
    );
    c.node_taints_policy = Some("Honor".into());
    assert_eq!(
        filter_all(&pl, &with_spread(incoming, vec![c]), &infos)[0],
        OK
    );
}

#[test]
fn filter_match_label_keys() {
    let pl = PodTopologySpread::from_args(None).expect("args");
    let v1 = |n: &str| on_node(labeled_pod(n, &[("foo", ""), ("version", "v1")]), "node-a");
    let infos = node_infos(&[host("node-a"), host("node-b")], &[v1("a1"), v1("a2")]);
    let incoming = labeled_pod("p", &[("foo", ""), ("version", "v2")]);
    let mut c = spread(1, HOST, DO_NOT_SCHEDULE, "foo");
    assert_eq!(
        filter_all(&pl, &with_spread(incoming.clone(), vec![c.clone()]), &infos),
        vec![NO, OK]
    );
    c.match_label_keys = Some(vec!["version".into()]);
    assert_eq!(
        filter_all(&pl, &with_spread(incoming, vec![c]), &infos),
        vec![OK, OK]
    );
}

/// PreScore on the filtered nodes (with all nodes known from PreFilter), Score, Normalize.
fn scores(
    pl: &PodTopologySpread,
    pod: &Pod,
    nodes: &[Node],
    failed: &[Node],
    pods: &[Pod],
) -> Vec<i64> {
    let mut every = nodes.to_vec();
    every.extend_from_slice(failed);
    let all = node_infos(&every, pods);
    let filtered = &all[..nodes.len()];
    let mut state = CycleState::new();
    let _ = pl.pre_filter(&mut state, pod, &all);
    let s = pl.pre_score(&mut state, pod, filtered);
    assert!(s.is_success(), "prescore {s}");
    let mut out: Vec<i64> = filtered
        .iter()
        .map(|n| pl.score(&state, pod, n).expect("score"))
        .collect();
    assert!(pl.normalize_score(&state, pod, &mut out).is_success());
    out
}

#[test]
fn score_table() {
    let pl = PodTopologySpread::from_args(None).expect("args");
    let soft = |skew, key: &str, sel| spread(skew, key, SCHEDULE_ANYWAY, sel);
    let p = |cs| with_spread(labeled_pod("p", &[("foo", ""), ("bar", "")]), cs);
    let hosts = |ns: &[&str]| ns.iter().map(|n| host(n)).collect::<Vec<_>>();
    let spread_2103 = vec![
        foo("a1", "node-a"),
        foo("a2", "node-a"),
        foo("b1", "node-b"),
        foo("d1", "node-d"),
        foo("d2", "node-d"),
        foo("d3", "node-d"),
    ];
    let spread_4321: Vec<Pod> = [("a", 4), ("b", 3), ("c", 2), ("d", 1)]
        .iter()
        .flat_map(|(n, k)| (0..*k).map(move |i| foo(&format!("p-{n}{i}"), &format!("node-{n}"))))
        .collect();
    let spread_4213: Vec<Pod> = [("a", 4), ("b", 2), ("x", 1), ("y", 3)]
        .iter()
        .flat_map(|(n, k)| (0..*k).map(move |i| foo(&format!("p-{n}{i}"), &format!("node-{n}"))))
        .collect();
    let label = |name: &str, node: &str, ls: &[(&str, &str)]| on_node(labeled_pod(name, ls), node);
    #[rustfmt::skip]
    let cases: Vec<ScoreCase> = vec![
        ("one constraint on node, no existing pods", p(vec![soft(1, HOST, "foo")]), hosts(&["node-a", "node-b"]), vec![], vec![], vec![100, 100]),
        ("one constraint on node, only one node is candidate", p(vec![soft(1, HOST, "foo")]), hosts(&["node-a"]), hosts(&["node-b"]), vec![foo("a1", "node-a"), foo("a2", "node-a"), foo("b1", "node-b")], vec![100]),
        ("all nodes have the same number of matching pods", p(vec![soft(1, HOST, "foo")]), hosts(&["node-a", "node-b"]), vec![], vec![foo("a1", "node-a"), foo("b1", "node-b")], vec![100, 100]),
        ("maxSkew=2, 2/1/0/3", p(vec![soft(2, HOST, "foo")]), hosts(&["node-a", "node-b", "node-c", "node-d"]), vec![], spread_2103, vec![33, 66, 100, 16]),
        ("maxSkew=3, 4/3/2/1", p(vec![soft(3, HOST, "foo")]), hosts(&["node-a", "node-b", "node-c", "node-d"]), vec![], spread_4321, vec![44, 66, 77, 100]),
        ("3 out of 4 nodes are candidates", p(vec![soft(1, HOST, "foo")]), hosts(&["node-a", "node-b", "node-x"]), hosts(&["node-y"]), spread_4213.clone(), vec![33, 83, 100]),
        ("one node doesn't match topology key", p(vec![soft(1, HOST, "foo")]), vec![host("node-a"), labeled_node("node-b", &[("n", "node-b")]), host("node-x")], hosts(&["node-y"]), spread_4213.clone(), vec![16, 0, 100]),
        ("one constraint on zone, 3 out of 4 nodes are candidates", p(vec![soft(1, "zone", "foo")]), vec![zoned("node-a", "zone1"), zoned("node-b", "zone1"), zoned("node-x", "zone2")], vec![zoned("node-y", "zone2")], spread_4213, vec![75, 75, 100]),
        ("two constraints with different selectors", p(vec![soft(1, "zone", "foo"), soft(1, HOST, "bar")]), four_zoned(), vec![],
            vec![label("a1", "node-a", &[("foo", "")]), label("b1", "node-b", &[("foo", ""), ("bar", "")]), label("y1", "node-y", &[("foo", "")]), label("y2", "node-y", &[("bar", "")])],
            vec![60, 20, 100, 60]),
        ("two constraints, some nodes have 0 pods", p(vec![soft(1, "zone", "foo"), soft(1, HOST, "bar")]), four_zoned(), vec![],
            vec![label("b1", "node-b", &[("bar", "")]), label("x1", "node-x", &[("foo", "")]), label("y1", "node-y", &[("foo", ""), ("bar", "")])],
            vec![100, 60, 40, 0]),
    ];
    for (name, pod, nodes, failed, pods, want) in cases {
        assert_eq!(scores(&pl, &pod, &nodes, &failed, &pods), want, "{name}");
    }
}

#[test]
fn system_default_selector_from_service_owner() {
    // Without listers the default selector is empty: no default constraints apply.
    let pl = PodTopologySpread::from_args(None).expect("args");
    let pod = labeled_pod("p", &[("foo", "")]);
    assert!(
        pl.constraints(&pod, SCHEDULE_ANYWAY)
            .expect("ok")
            .is_empty()
    );
    let infos = node_infos(&[host("a")], &[]);
    assert!(pl.pre_score(&mut CycleState::new(), &pod, &infos).is_skip());
}

#[test]
fn args_validation() {
    assert!(PodTopologySpread::from_args(Some(&serde_json::json!({"defaultingType": "List",
        "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}))).is_ok());
    assert!(PodTopologySpread::from_args(Some(&serde_json::json!({"defaultingType": "System",
        "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}))).is_err());
    assert!(
        PodTopologySpread::from_args(Some(&serde_json::json!({"defaultingType": "Bogus"})))
            .is_err()
    );
    let pl = PodTopologySpread::from_args(None).expect("args");
    assert!(pl.system_defaulted);
    assert_eq!(pl.default_constraints.len(), 2);
}

#[test]
fn hints() {
    let pl = PodTopologySpread::from_args(None).expect("args");
    let pod = with_spread(
        labeled_pod("p", &[("foo", "")]),
        vec![spread(1, "zone", DO_NOT_SCHEDULE, "foo")],
    );
    let ev = ClusterEvent::new(EventResource::AssignedPod, action::ADD, "");
    let matching = foo("m", "node-a");
    let other = on_node(labeled_pod("o", &[("bar", "")]), "node-a");
    assert_eq!(
        pl.queueing_hint(&pod, &ev, None, Some(EventObject::Pod(&matching))),
        QueueingHint::Queue
    );
    assert_eq!(
        pl.queueing_hint(&pod, &ev, None, Some(EventObject::Pod(&other))),
        QueueingHint::QueueSkip
    );
    let nev = ClusterEvent::new(EventResource::Node, action::ADD, "");
    let with_zone = zoned("n", "z");
    assert_eq!(
        pl.queueing_hint(&pod, &nev, None, Some(EventObject::Node(&with_zone))),
        QueueingHint::Queue
    );
    assert_eq!(
        pl.queueing_hint(&pod, &nev, None, Some(EventObject::Node(&host("n")))),
        QueueingHint::QueueSkip
    );
}

/// Preemption filters a copy of the node without its victims; nominated pods are filtered on a
/// copy with them added (upstream PreFilterExtensions.RemovePod/AddPod).
#[test]
fn filter_counts_pods_removed_or_added_after_prefilter() {
    let pl = PodTopologySpread::from_args(None).expect("args");
    let pod = with_spread(
        labeled_pod("p", &[("foo", "")]),
        vec![spread(1, HOST, DO_NOT_SCHEDULE, "foo")],
    );
    let infos = node_infos(
        &[host("node-a"), host("node-b")],
        &[foo("a1", "node-a"), foo("a2", "node-a")],
    );
    let mut state = CycleState::new();
    let _ = pl.pre_filter(&mut state, &pod, &infos);
    assert!(!pl.filter(&state, &pod, &infos[0]).is_success());
    let mut fewer = (*infos[0]).clone();
    fewer.remove_pod("uid-a1");
    // 1 + 1 - 0 = 2 > 1 still; without both victims node-a fits.
    assert!(!pl.filter(&state, &pod, &fewer).is_success());
    fewer.remove_pod("uid-a2");
    assert!(pl.filter(&state, &pod, &fewer).is_success());
    let mut more = (*infos[1]).clone();
    more.add_pod(Arc::new(foo("b1", "node-b")));
    assert!(pl.filter(&state, &pod, &more).is_success());
    more.add_pod(Arc::new(foo("b2", "node-b")));
    more.add_pod(Arc::new(foo("b3", "node-b")));
    // node-b now holds 3 against node-a's 2: skew 3 + 1 - 2 = 2 > 1.
    assert!(!pl.filter(&state, &pod, &more).is_success());
}
