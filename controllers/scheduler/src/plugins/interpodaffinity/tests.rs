//! Cases from upstream `filtering_test.go` (TestRequiredAffinitySingleNode,
//! TestRequiredAffinityMultipleNodes) and `scoring_test.go` (TestPreferredAffinity ...),
//! re-expressed on plain objects.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Affinity, Namespace, Node, Pod, PodAffinity, PodAffinityTerm, PodAntiAffinity,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::*;
use crate::framework::{Code, CycleState, NodeInfo};
use crate::testing::{in_namespace, labeled_node, labeled_pod, node_infos, on_node};

fn sel(key: &str, op: &str, values: &[&str]) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }]),
        match_labels: None,
    }
}

fn term(selector: LabelSelector, key: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(selector),
        topology_key: key.into(),
        ..Default::default()
    }
}

fn weighted(weight: i32, t: PodAffinityTerm) -> WeightedPodAffinityTerm {
    WeightedPodAffinityTerm {
        weight,
        pod_affinity_term: t,
    }
}

#[derive(Default, Clone)]
struct Terms {
    req: Vec<PodAffinityTerm>,
    req_anti: Vec<PodAffinityTerm>,
    pref: Vec<WeightedPodAffinityTerm>,
    pref_anti: Vec<WeightedPodAffinityTerm>,
}

fn opt<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn with_affinity(mut p: Pod, t: Terms) -> Pod {
    p.spec.get_or_insert_with(Default::default).affinity = Some(Affinity {
        pod_affinity: Some(PodAffinity {
            required_during_scheduling_ignored_during_execution: opt(t.req),
            preferred_during_scheduling_ignored_during_execution: opt(t.pref),
        }),
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: opt(t.req_anti),
            preferred_during_scheduling_ignored_during_execution: opt(t.pref_anti),
        }),
        node_affinity: None,
    });
    p
}

fn req(t: PodAffinityTerm) -> Terms {
    Terms {
        req: vec![t],
        ..Default::default()
    }
}

fn req_anti(t: PodAffinityTerm) -> Terms {
    Terms {
        req_anti: vec![t],
        ..Default::default()
    }
}

fn filter_all(pl: &InterPodAffinity, pod: &Pod, nodes: &[Arc<NodeInfo>]) -> Vec<(Code, String)> {
    let mut state = CycleState::new();
    let (_, s) = pl.pre_filter(&mut state, pod, nodes);
    if s.is_skip() {
        return nodes
            .iter()
            .map(|_| (Code::Success, String::new()))
            .collect();
    }
    assert!(s.is_success(), "prefilter: {s}");
    nodes
        .iter()
        .map(|n| {
            let s = pl.filter(&state, pod, n);
            (s.code(), s.message())
        })
        .collect()
}

const OK: (Code, &str) = (Code::Success, "");

fn want(v: &[(Code, &str)]) -> Vec<(Code, String)> {
    v.iter().map(|(c, m)| (*c, m.to_string())).collect()
}

fn aff_fail() -> (Code, &'static str) {
    (
        Code::UnschedulableAndUnresolvable,
        ERR_REASON_AFFINITY_RULES_NOT_MATCH,
    )
}
fn anti_fail() -> (Code, &'static str) {
    (
        Code::Unschedulable,
        ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH,
    )
}
fn existing_fail() -> (Code, &'static str) {
    (
        Code::Unschedulable,
        ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH,
    )
}

/// name, incoming pod, existing pods, expected status.
type FilterCase = (&'static str, Pod, Vec<Pod>, (Code, &'static str));

#[test]
fn filter_single_node_table() {
    let node1 = labeled_node(
        "node1",
        &[
            ("region", "r1"),
            ("zone", "z11"),
            ("kubernetes.io/hostname", "node1"),
        ],
    );
    let scan = |name: &str| on_node(labeled_pod(name, &[("service", "securityscan")]), "node1");
    let incoming = labeled_pod("p", &[]);
    let mut diff_ns = term(sel("service", "In", &["securityscan", "value2"]), "region");
    diff_ns.namespaces = Some(vec!["DiffNameSpace".into()]);
    let existing_anti = with_affinity(
        scan("e"),
        req_anti(term(sel("service", "In", &["securityscan"]), "zone")),
    );
    #[rustfmt::skip]
    let cases: Vec<FilterCase> = vec![
        ("no required pod affinity, no existing pods", incoming.clone(), vec![], OK),
        ("affinity In operator matches the existing pod", with_affinity(incoming.clone(), req(term(sel("service", "In", &["securityscan", "value2"]), "region"))), vec![scan("e")], OK),
        ("affinity NotIn operator matches the existing pod", with_affinity(incoming.clone(), req(term(sel("service", "NotIn", &["securityscan3", "value3"]), "region"))), vec![scan("e")], OK),
        ("affinity does not match because of a different namespace", with_affinity(incoming.clone(), req(diff_ns)), vec![scan("e")], aff_fail()),
        ("affinity selector does not match the existing pod", with_affinity(incoming.clone(), req(term(sel("service", "In", &["antivirusscan", "value2"]), "region"))), vec![scan("e")], aff_fail()),
        ("affinity term's topology key missing on the node", with_affinity(incoming.clone(), req(term(sel("service", "Exists", &[]), "rack"))), vec![scan("e")], aff_fail()),
        ("anti-affinity of the incoming pod matches an existing pod", with_affinity(incoming.clone(), req_anti(term(sel("service", "In", &["securityscan"]), "zone"))), vec![scan("e")], anti_fail()),
        ("anti-affinity of the incoming pod, other selector", with_affinity(incoming.clone(), req_anti(term(sel("service", "In", &["antivirusscan"]), "zone"))), vec![scan("e")], OK),
        ("existing pod's anti-affinity rejects the incoming pod (symmetry)", labeled_pod("p", &[("service", "securityscan")]), vec![existing_anti.clone()], existing_fail()),
        ("existing pod's anti-affinity does not match the incoming pod", labeled_pod("p", &[("service", "other")]), vec![existing_anti], OK),
        ("first pod of a group: affinity matching itself, no matching pods", with_affinity(labeled_pod("p", &[("service", "securityscan")]), req(term(sel("service", "In", &["securityscan"]), "region"))), vec![], OK),
        ("affinity not matching itself and no matching pods", with_affinity(labeled_pod("p", &[("service", "x")]), req(term(sel("service", "In", &["securityscan"]), "region"))), vec![], aff_fail()),
        ("existing pods in other namespaces do not satisfy affinity", with_affinity(incoming.clone(), req(term(sel("service", "Exists", &[]), "region"))), vec![in_namespace(scan("e"), "other")], aff_fail()),
    ];
    let pl = InterPodAffinity::from_args(None).expect("args");
    for (name, pod, pods, expected) in cases {
        let infos = node_infos(std::slice::from_ref(&node1), &pods);
        assert_eq!(filter_all(&pl, &pod, &infos), want(&[expected]), "{name}");
    }
}

fn zoned(name: &str, zone: &str) -> Node {
    labeled_node(name, &[("zone", zone), ("kubernetes.io/hostname", name)])
}

#[test]
fn filter_multiple_nodes_zone_anti_affinity() {
    let pl = InterPodAffinity::from_args(None).expect("args");
    let nodes = [zoned("n1", "z1"), zoned("n2", "z1"), zoned("n3", "z2")];
    let app = |name: &str, node: &str| on_node(labeled_pod(name, &[("app", "web")]), node);
    let anti = req_anti(term(sel("app", "In", &["web"]), "zone"));
    // A replica of a deployment with zone anti-affinity: one zone is taken.
    let infos = node_infos(&nodes, &[with_affinity(app("w1", "n1"), anti.clone())]);
    let incoming = with_affinity(labeled_pod("w2", &[("app", "web")]), anti.clone());
    assert_eq!(
        filter_all(&pl, &incoming, &infos),
        want(&[anti_fail(), anti_fail(), OK])
    );
    // Symmetry only: the incoming pod has no terms but matches the existing pod's.
    let plain = labeled_pod("w2", &[("app", "web")]);
    assert_eq!(
        filter_all(&pl, &plain, &infos),
        want(&[existing_fail(), existing_fail(), OK])
    );
    // Affinity to a zone: both nodes of that zone pass.
    let follower = with_affinity(
        labeled_pod("f", &[]),
        req(term(sel("app", "In", &["web"]), "zone")),
    );
    let infos = node_infos(&nodes, &[app("w1", "n1")]);
    assert_eq!(
        filter_all(&pl, &follower, &infos),
        want(&[OK, OK, aff_fail()])
    );
}

#[test]
fn filter_namespace_selector() {
    let mut pl = InterPodAffinity::from_args(None).expect("args");
    let ns = |name: &str, team: &str| {
        let mut n = Namespace::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some(BTreeMap::from([("team".to_string(), team.to_string())]));
        Arc::new(n)
    };
    pl.namespaces = Namespaces::Fixed(vec![ns("subteam", "team1"), ns("other", "team2")]);
    let node = zoned("n1", "z1");
    let existing = in_namespace(on_node(labeled_pod("e", &[("app", "db")]), "n1"), "subteam");
    let mut t = term(sel("app", "In", &["db"]), "zone");
    t.namespace_selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([("team".to_string(), "team1".to_string())])),
        match_expressions: None,
    });
    let infos = node_infos(std::slice::from_ref(&node), &[existing]);
    let pod = with_affinity(labeled_pod("p", &[]), req(t.clone()));
    assert_eq!(filter_all(&pl, &pod, &infos), want(&[OK]));
    t.namespace_selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([("team".to_string(), "team2".to_string())])),
        match_expressions: None,
    });
    let pod = with_affinity(labeled_pod("p", &[]), req(t.clone()));
    assert_eq!(filter_all(&pl, &pod, &infos), want(&[aff_fail()]));
    // An empty namespaceSelector selects every namespace.
    t.namespace_selector = Some(LabelSelector::default());
    let pod = with_affinity(labeled_pod("p", &[]), req(t));
    assert_eq!(filter_all(&pl, &pod, &infos), want(&[OK]));
}

fn scores(pl: &InterPodAffinity, pod: &Pod, nodes: &[Node], pods: &[Pod]) -> Vec<i64> {
    let infos = node_infos(nodes, pods);
    let mut state = CycleState::new();
    let _ = pl.pre_filter(&mut state, pod, &infos);
    let s = pl.pre_score(&mut state, pod, &infos);
    if s.is_skip() {
        return vec![0; nodes.len()];
    }
    assert!(s.is_success(), "prescore {s}");
    let mut out: Vec<i64> = infos
        .iter()
        .map(|n| pl.score(&state, pod, n).expect("score"))
        .collect();
    assert!(pl.normalize_score(&state, pod, &mut out).is_success());
    out
}

#[test]
fn score_table() {
    let nodes = vec![
        labeled_node("machine1", &[("region", "China")]),
        labeled_node("machine2", &[("region", "India")]),
        labeled_node("machine3", &[("az", "az1")]),
    ];
    let s =
        |name: &str, node: &str, sec: &str| on_node(labeled_pod(name, &[("security", sec)]), node);
    let existing = vec![
        s("a", "machine1", "S1"),
        s("b", "machine2", "S2"),
        s("c", "machine3", "S1"),
    ];
    let pref = |w, v: &str| Terms {
        pref: vec![weighted(w, term(sel("security", "In", &[v]), "region"))],
        ..Default::default()
    };
    let pref_anti = |w, v: &str| Terms {
        pref_anti: vec![weighted(w, term(sel("security", "In", &[v]), "region"))],
        ..Default::default()
    };
    let two = Terms {
        pref: vec![
            weighted(8, term(sel("security", "In", &["S1"]), "region")),
            weighted(2, term(sel("security", "In", &["S2"]), "region")),
        ],
        ..Default::default()
    };
    let mixed = Terms {
        pref: vec![weighted(5, term(sel("security", "In", &["S1"]), "region"))],
        pref_anti: vec![weighted(5, term(sel("security", "In", &["S2"]), "region"))],
        ..Default::default()
    };
    let pl = InterPodAffinity::from_args(None).expect("args");
    #[rustfmt::skip]
    let cases: Vec<(&str, Pod, Vec<i64>)> = vec![
        ("no affinity: all equal", labeled_pod("p", &[]), vec![0, 0, 0]),
        ("affinity to S1 by region", with_affinity(labeled_pod("p", &[]), pref(5, "S1")), vec![100, 0, 0]),
        ("anti-affinity to S1 by region", with_affinity(labeled_pod("p", &[]), pref_anti(5, "S1")), vec![0, 100, 100]),
        ("two weighted affinity terms", with_affinity(labeled_pod("p", &[]), two), vec![100, 25, 0]),
        ("affinity and anti-affinity", with_affinity(labeled_pod("p", &[]), mixed), vec![100, 0, 50]),
    ];
    for (name, pod, want) in cases {
        assert_eq!(scores(&pl, &pod, &nodes, &existing), want, "{name}");
    }
}

#[test]
fn score_existing_pods_terms_and_hard_weight() {
    let nodes = vec![
        labeled_node("machine1", &[("region", "China")]),
        labeled_node("machine2", &[("region", "India")]),
    ];
    let incoming = labeled_pod("p", &[("security", "S1")]);
    let hard = with_affinity(
        on_node(labeled_pod("e", &[]), "machine1"),
        req(term(sel("security", "In", &["S1"]), "region")),
    );
    let pl = InterPodAffinity::from_args(None).expect("args");
    assert_eq!(
        scores(&pl, &incoming, &nodes, std::slice::from_ref(&hard)),
        vec![100, 0]
    );
    let zero = InterPodAffinity::from_args(Some(&serde_json::json!({"hardPodAffinityWeight": 0})))
        .expect("args");
    assert_eq!(
        scores(&zero, &incoming, &nodes, std::slice::from_ref(&hard)),
        vec![0, 0]
    );
    // Existing pod's preferred anti-affinity against the incoming pod pushes it away.
    let soft_anti = with_affinity(
        on_node(labeled_pod("e", &[]), "machine1"),
        Terms {
            pref_anti: vec![weighted(10, term(sel("security", "In", &["S1"]), "region"))],
            ..Default::default()
        },
    );
    assert_eq!(
        scores(&pl, &incoming, &nodes, std::slice::from_ref(&soft_anti)),
        vec![0, 100]
    );
    let ignore = InterPodAffinity::from_args(Some(
        &serde_json::json!({"ignorePreferredTermsOfExistingPods": true}),
    ))
    .expect("args");
    assert_eq!(scores(&ignore, &incoming, &nodes, &[soft_anti]), vec![0, 0]);
    assert!(
        InterPodAffinity::from_args(Some(&serde_json::json!({"hardPodAffinityWeight": 101})))
            .is_err()
    );
}

#[test]
fn hints() {
    let pl = InterPodAffinity::from_args(None).expect("args");
    let pod = with_affinity(
        labeled_pod("p", &[]),
        req(term(sel("app", "In", &["web"]), "zone")),
    );
    let ev = ClusterEvent::new(EventResource::AssignedPod, action::ADD, "");
    let web = on_node(labeled_pod("w", &[("app", "web")]), "n1");
    let other = on_node(labeled_pod("o", &[("app", "db")]), "n1");
    assert_eq!(
        pl.queueing_hint(&pod, &ev, None, Some(EventObject::Pod(&web))),
        QueueingHint::Queue
    );
    assert_eq!(
        pl.queueing_hint(&pod, &ev, None, Some(EventObject::Pod(&other))),
        QueueingHint::QueueSkip
    );
    let nev = ClusterEvent::new(EventResource::Node, action::ADD, "");
    assert_eq!(
        pl.queueing_hint(&pod, &nev, None, Some(EventObject::Node(&zoned("n", "z")))),
        QueueingHint::Queue
    );
    assert_eq!(
        pl.queueing_hint(
            &pod,
            &nev,
            None,
            Some(EventObject::Node(&labeled_node("n", &[])))
        ),
        QueueingHint::QueueSkip
    );
}

/// Preemption filters a copy of the node without its victims; nominated pods are filtered on a
/// copy with them added (upstream PreFilterExtensions.RemovePod/AddPod).
#[test]
fn filter_counts_pods_removed_or_added_after_prefilter() {
    let pl = InterPodAffinity::from_args(None).expect("args");
    let nodes = [zoned("n1", "z1"), zoned("n2", "z2")];
    let anti = req_anti(term(sel("app", "In", &["web"]), "zone"));
    let blocker = with_affinity(
        on_node(labeled_pod("w1", &[("app", "web")]), "n1"),
        anti.clone(),
    );
    let infos = node_infos(&nodes, std::slice::from_ref(&blocker));
    let incoming = with_affinity(labeled_pod("w2", &[("app", "web")]), anti);
    let mut state = CycleState::new();
    let (_, s) = pl.pre_filter(&mut state, &incoming, &infos);
    assert!(s.is_success());
    assert_eq!(
        pl.filter(&state, &incoming, &infos[0]).message(),
        ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH
    );
    let mut without = (*infos[0]).clone();
    without.remove_pod("uid-w1");
    assert!(pl.filter(&state, &incoming, &without).is_success());
    let mut with = (*infos[1]).clone();
    with.add_pod(Arc::new(on_node(
        labeled_pod("w3", &[("app", "web")]),
        "n2",
    )));
    assert_eq!(
        pl.filter(&state, &incoming, &with).message(),
        ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH
    );
    assert!(pl.filter(&state, &incoming, &infos[1]).is_success());
}
