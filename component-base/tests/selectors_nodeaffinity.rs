//! Node selector matching, after upstream
//! `component-helpers/scheduling/corev1/nodeaffinity/nodeaffinity_test.go`.

use std::collections::BTreeMap;

use component_base::selectors::nodeaffinity::{
    LazyErrorNodeSelector, NodeSelector, PreferredSchedulingTerms, RequiredNodeAffinity,
    match_node_selector_terms,
};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector as V1NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, Pod, PodSpec, PreferredSchedulingTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn node(name: &str, labels: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: (!name.is_empty()).then(|| name.to_string()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn r(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.to_string(),
        operator: op.to_string(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

fn term(
    exprs: Vec<NodeSelectorRequirement>,
    fields: Vec<NodeSelectorRequirement>,
) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: (!exprs.is_empty()).then_some(exprs),
        match_fields: (!fields.is_empty()).then_some(fields),
    }
}

fn selector(terms: Vec<NodeSelectorTerm>) -> V1NodeSelector {
    V1NodeSelector {
        node_selector_terms: terms,
    }
}

#[test]
fn node_selector_match_table() {
    let n = node("node_1", &[("foo", "bar"), ("zone", "a"), ("cpus", "8")]);
    struct Case {
        name: &'static str,
        terms: Vec<NodeSelectorTerm>,
        want: bool,
    }
    let cases = vec![
        Case {
            name: "no terms",
            terms: vec![],
            want: false,
        },
        Case {
            name: "empty term matches nothing",
            terms: vec![term(vec![], vec![])],
            want: false,
        },
        Case {
            name: "In matches",
            terms: vec![term(vec![r("foo", "In", &["bar", "baz"])], vec![])],
            want: true,
        },
        Case {
            name: "In misses",
            terms: vec![term(vec![r("foo", "In", &["baz"])], vec![])],
            want: false,
        },
        Case {
            name: "NotIn on value",
            terms: vec![term(vec![r("foo", "NotIn", &["bar"])], vec![])],
            want: false,
        },
        Case {
            name: "NotIn on missing key",
            terms: vec![term(vec![r("gpu", "NotIn", &["x"])], vec![])],
            want: true,
        },
        Case {
            name: "Exists",
            terms: vec![term(vec![r("zone", "Exists", &[])], vec![])],
            want: true,
        },
        Case {
            name: "DoesNotExist",
            terms: vec![term(vec![r("zone", "DoesNotExist", &[])], vec![])],
            want: false,
        },
        Case {
            name: "Gt",
            terms: vec![term(vec![r("cpus", "Gt", &["4"])], vec![])],
            want: true,
        },
        Case {
            name: "Gt equal is false",
            terms: vec![term(vec![r("cpus", "Gt", &["8"])], vec![])],
            want: false,
        },
        Case {
            name: "Lt",
            terms: vec![term(vec![r("cpus", "Lt", &["16"])], vec![])],
            want: true,
        },
        Case {
            name: "Lt on missing key",
            terms: vec![term(vec![r("mem", "Lt", &["16"])], vec![])],
            want: false,
        },
        Case {
            name: "requirements are ANDed",
            terms: vec![term(
                vec![r("foo", "In", &["bar"]), r("zone", "In", &["b"])],
                vec![],
            )],
            want: false,
        },
        Case {
            name: "terms are ORed",
            terms: vec![
                term(vec![r("zone", "In", &["b"])], vec![]),
                term(vec![r("foo", "In", &["bar"])], vec![]),
            ],
            want: true,
        },
        Case {
            name: "empty term among others is skipped",
            terms: vec![
                term(vec![], vec![]),
                term(vec![r("foo", "Exists", &[])], vec![]),
            ],
            want: true,
        },
        Case {
            name: "matchFields name In",
            terms: vec![term(vec![], vec![r("metadata.name", "In", &["node_1"])])],
            want: true,
        },
        Case {
            name: "matchFields name In other",
            terms: vec![term(vec![], vec![r("metadata.name", "In", &["node_2"])])],
            want: false,
        },
        Case {
            name: "matchFields name NotIn",
            terms: vec![term(vec![], vec![r("metadata.name", "NotIn", &["node_1"])])],
            want: false,
        },
        Case {
            name: "matchFields unknown field",
            terms: vec![term(vec![], vec![r("metadata.uid", "In", &["x"])])],
            want: false,
        },
        Case {
            name: "labels and fields both required",
            terms: vec![term(
                vec![r("foo", "In", &["bar"])],
                vec![r("metadata.name", "In", &["node_2"])],
            )],
            want: false,
        },
        Case {
            name: "labels and fields both match",
            terms: vec![term(
                vec![r("foo", "In", &["bar"])],
                vec![r("metadata.name", "In", &["node_1"])],
            )],
            want: true,
        },
    ];
    for case in cases {
        let ns = selector(case.terms);
        let strict = NodeSelector::new(&ns).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(strict.matches(&n), case.want, "{}", case.name);
        assert_eq!(
            match_node_selector_terms(&n, &ns),
            Ok(case.want),
            "{}",
            case.name
        );
    }
}

#[test]
fn match_fields_are_ignored_for_a_node_without_name() {
    let unnamed = node("", &[("foo", "bar")]);
    let ns = selector(vec![term(
        vec![],
        vec![r("metadata.name", "In", &["node_1"])],
    )]);
    assert_eq!(match_node_selector_terms(&unnamed, &ns), Ok(true));
}

#[test]
fn invalid_terms_fail_strictly_but_lazily() {
    let n = node("node_1", &[("foo", "bar")]);
    let bad_op = term(vec![r("foo", "BadOp", &["bar"])], vec![]);
    let bad_field = term(vec![], vec![r("metadata.name", "In", &["a", "b"])]);
    let bad_field_op = term(vec![], vec![r("metadata.name", "Exists", &[])]);
    let bad_gt = term(vec![r("foo", "Gt", &["bar"])], vec![]);
    let bad_value = term(vec![r("foo", "In", &["not a label"])], vec![]);
    let good = term(vec![r("foo", "In", &["bar"])], vec![]);

    for bad in [&bad_op, &bad_field, &bad_field_op, &bad_gt, &bad_value] {
        let only_bad = selector(vec![bad.clone()]);
        assert!(NodeSelector::new(&only_bad).is_err(), "{bad:?}");
        assert!(
            LazyErrorNodeSelector::new(&only_bad).matches(&n).is_err(),
            "{bad:?}"
        );
        // A later valid term that matches wins over the earlier error.
        let mixed = selector(vec![bad.clone(), good.clone()]);
        assert!(NodeSelector::new(&mixed).is_err());
        assert_eq!(LazyErrorNodeSelector::new(&mixed).matches(&n), Ok(true));
    }
    let err = NodeSelector::new(&selector(vec![bad_op]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        err,
        r#"nodeSelectorTerms[0].matchExpressions[0].operator: Unsupported value: "BadOp": supported values: "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt""#
    );
    let err = NodeSelector::new(&selector(vec![bad_field]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with("nodeSelectorTerms[0].matchFields[0].values: Invalid value"),
        "{err}"
    );
}

#[test]
fn preferred_terms_score_sums_matching_weights() {
    let n = node("node_1", &[("foo", "bar"), ("zone", "a")]);
    let pref = |weight, t| PreferredSchedulingTerm {
        weight,
        preference: t,
    };
    let terms = vec![
        pref(10, term(vec![r("foo", "In", &["bar"])], vec![])),
        pref(5, term(vec![r("zone", "In", &["b"])], vec![])),
        pref(3, term(vec![], vec![r("metadata.name", "In", &["node_1"])])),
        pref(0, term(vec![r("foo", "Exists", &[])], vec![])),
        pref(7, term(vec![], vec![])),
    ];
    let scorer = PreferredSchedulingTerms::new(&terms).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scorer.score(&n), 13);
    assert!(
        PreferredSchedulingTerms::new(&[pref(1, term(vec![r("foo", "Nope", &[])], vec![]))])
            .is_err()
    );
}

fn pod(node_selector: &[(&str, &str)], required: Option<V1NodeSelector>) -> Pod {
    Pod {
        spec: Some(PodSpec {
            node_selector: Some(
                node_selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            affinity: required.map(|ns| Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(ns),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn required_node_affinity_combines_node_selector_and_affinity() {
    let n = node("node_1", &[("foo", "bar"), ("zone", "a")]);
    let zone_a = selector(vec![term(vec![r("zone", "In", &["a"])], vec![])]);
    let zone_b = selector(vec![term(vec![r("zone", "In", &["b"])], vec![])]);
    let cases = [
        (pod(&[], None), Ok(true)),
        (pod(&[("foo", "bar")], None), Ok(true)),
        (pod(&[("foo", "baz")], None), Ok(false)),
        (pod(&[("foo", "bar")], Some(zone_a.clone())), Ok(true)),
        (pod(&[("foo", "bar")], Some(zone_b.clone())), Ok(false)),
        (pod(&[("foo", "baz")], Some(zone_a)), Ok(false)),
        (pod(&[], Some(selector(vec![]))), Ok(false)),
    ];
    for (i, (p, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            RequiredNodeAffinity::from_pod(&p).matches(&n),
            want,
            "case {i}"
        );
    }
    let invalid = pod(
        &[],
        Some(selector(vec![term(vec![r("zone", "Bad", &[])], vec![])])),
    );
    assert!(
        RequiredNodeAffinity::from_pod(&invalid)
            .matches(&n)
            .is_err()
    );
    assert_eq!(
        RequiredNodeAffinity::from_pod(&Pod::default()).matches(&n),
        Ok(true)
    );
}
