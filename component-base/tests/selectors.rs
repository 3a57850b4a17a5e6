//! Label and field selector behaviour, ported from upstream
//! `labels/selector_test.go`, `fields/selector_test.go` and
//! `metav1/helpers_test.go`.

use std::collections::BTreeMap;

use component_base::selectors::{
    FieldSelector, Operator, Requirement, Selector, SelectorError, object_meta_fields, pod_fields,
};
use k8s_openapi::api::core::v1::{Pod, PodIP, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse(s: &str) -> Selector {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn req(key: &str, op: Operator, values: &[&str]) -> Requirement {
    Requirement::new(key, op, values.iter().map(|v| v.to_string()).collect())
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[test]
fn label_selector_parse_good_and_bad() {
    // Upstream TestSelectorParse: good strings re-print unchanged (after
    // trimming spaces).
    for good in [
        "x=a,y=b,z=c",
        "",
        "x!=a,y=b",
        "x=",
        "x= ",
        "x=,z= ",
        "x= ,z= ",
        "!x",
        "x>1",
        "x>1,z<5",
        "x>1,z<5,a==b",
    ] {
        let printed = parse(good).to_string();
        let expected = if good == "x>1,z<5,a==b" {
            "a==b,x>1,z<5".to_string()
        } else {
            good.replace(' ', "")
        };
        assert_eq!(printed, expected, "{good:?}");
    }
    for bad in ["x=a||y=b", "x==a==b", "!x=a", "x<a"] {
        assert!(bad.parse::<Selector>().is_err(), "{bad:?} should fail");
    }
}

#[test]
fn label_selector_parse_is_deterministic() {
    assert_eq!(parse("x=a,a=x").to_string(), parse("a=x,x=a").to_string());
    assert_eq!(parse("x=a,a=x").to_string(), "a=x,x=a");
}

#[test]
fn set_based_selector_parser() {
    // Upstream TestSetSelectorParser: (input, canonical string) for valid
    // selectors.
    let good = [
        ("", ""),
        ("\rx", "x"),
        (
            "this-is-a-dns.domain.com/key-with-dash",
            "this-is-a-dns.domain.com/key-with-dash",
        ),
        (
            "this-is-another-dns.domain.com/key-with-dash in (so,what)",
            "this-is-another-dns.domain.com/key-with-dash in (so,what)",
        ),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
            "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
        ),
        ("foo  in\t (abc)", "foo in (abc)"),
        ("x notin\n (abc)", "x notin (abc)"),
        ("x  notin\t\t\t(abc,def)", "x notin (abc,def)"),
        ("x in (abc,def)", "x in (abc,def)"),
        ("x in (abc,)", "x in (,abc)"),
        ("x in ()", "x in ()"),
        (
            "x notin (abc,,def),bar,z in (),w",
            "bar,w,x notin (,abc,def),z in ()",
        ),
        ("x,y in (a)", "x,y in (a)"),
        ("x=a", "x=a"),
        ("x>1", "x>1"),
        ("x<7", "x<7"),
        ("x=a,y!=b", "x=a,y!=b"),
        ("x=a,y!=b,z in (h,i,j)", "x=a,y!=b,z in (h,i,j)"),
        ("x notin ( )", "x notin ()"),
        ("x notin (, a)", "x notin (,a)"),
        ("a ", "a"),
        ("a in (x,y,notin, z,in)", "a in (in,notin,x,y,z)"),
        ("notin=in", "notin=in"),
    ];
    for (input, canonical) in good {
        assert_eq!(parse(input).to_string(), canonical, "{input:?}");
    }
    for bad in [
        "x=a||y=b",
        "x,,y",
        ",x,y",
        "x nott in (y)",
        "a in (xyz),",
        "a in (xyz)b notin ()",
        "a in (xyz abc)",
        "a notin(",
        "a (",
        "(",
        "x=a b",
        "x in (a",
        "Bad_Key!",
        "-x",
        "x in (a b)",
    ] {
        assert!(bad.parse::<Selector>().is_err(), "{bad:?} should fail");
    }
}

#[test]
fn parse_errors_read_like_upstream() {
    let err = "x=a,".parse::<Selector>().err();
    assert_eq!(
        err,
        Some(SelectorError::Parse(
            "found '', expected: identifier after ','".to_string()
        ))
    );
    let err = "x in (a".parse::<Selector>().err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("unable to parse requirement: found '', expected: ',' or ')'")
    );
    let err = "x<a"
        .parse::<Selector>()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("the value must be an integer"), "{err}");
}

#[test]
fn parsed_values_are_sorted_and_deduplicated() {
    let s = parse("x in (b,a,b)");
    let reqs = s.requirements().unwrap_or_default();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].values(), ["a".to_string(), "b".to_string()]);
    assert_eq!(reqs[0].operator(), Operator::In);
}

#[test]
fn label_selector_matching() {
    // Upstream TestSelectorMatches.
    let matches = [
        ("", set(&[("x", "y")])),
        ("x=y", set(&[("x", "y")])),
        ("x=y,z=w", set(&[("x", "y"), ("z", "w")])),
        ("x!=y,z!=w", set(&[("x", "z"), ("z", "a")])),
        ("notin=in", set(&[("notin", "in")])),
        ("x", set(&[("x", "z")])),
        ("!x", set(&[("y", "z")])),
        ("x>1", set(&[("x", "2")])),
        ("x<1", set(&[("x", "0")])),
        ("x notin (a)", set(&[])),
        ("x in (a,b)", set(&[("x", "b")])),
    ];
    for (selector, labels) in matches {
        assert!(
            parse(selector).matches(&labels),
            "{selector} should match {labels:?}"
        );
    }
    let no_matches = [
        ("x=z", set(&[])),
        ("x=y", set(&[("x", "z")])),
        ("x=y,z=w", set(&[("x", "w"), ("z", "w")])),
        ("x!=y,z!=w", set(&[("x", "z"), ("z", "w")])),
        ("x", set(&[("y", "z")])),
        ("!x", set(&[("x", "z")])),
        ("x>1", set(&[("x", "0")])),
        ("x<1", set(&[("x", "2")])),
        ("x>1", set(&[("x", "notanumber")])),
        ("x>1", set(&[])),
        ("x in (a,b)", set(&[("x", "c")])),
        ("x notin (a)", set(&[("x", "a")])),
    ];
    for (selector, labels) in no_matches {
        assert!(
            !parse(selector).matches(&labels),
            "{selector} should not match {labels:?}"
        );
    }
    let labelset = set(&[("foo", "bar"), ("baz", "blah")]);
    assert!(parse("foo=bar").matches(&labelset));
    assert!(parse("baz=blah").matches(&labelset));
    assert!(parse("foo=bar,baz=blah").matches(&labelset));
    assert!(!parse("foo=blah").matches(&labelset));
    assert!(!parse("baz=bar").matches(&labelset));
    assert!(!parse("foo=bar,foobar=bar,baz=blah").matches(&labelset));
}

#[test]
fn everything_and_nothing() {
    let labels = set(&[("x", "y")]);
    assert!(Selector::everything().matches(&labels));
    assert!(Selector::everything().is_empty());
    assert!(!Selector::nothing().matches(&labels));
    assert!(!Selector::nothing().matches(&set(&[])));
    assert!(!Selector::nothing().is_empty());
    assert!(Selector::nothing().matches_nothing());
    assert_eq!(Selector::nothing().to_string(), "");
    assert!(Selector::nothing().requirements().is_none());
    assert!(parse("").is_empty());
    assert!(!parse("x").is_empty());
    assert!(Selector::everything().matches_labels(None));
    assert!(!parse("x").matches_labels(None));
}

#[test]
fn requirement_constructor_validation() {
    // Upstream TestRequirementConstructor: (key, op, values, error fragment).
    let long = "a".repeat(254);
    let cases: Vec<(&str, Operator, Vec<&str>, Option<&str>)> = vec![
        (
            "x1",
            Operator::In,
            vec![],
            Some("values set can't be empty"),
        ),
        (
            "x2",
            Operator::NotIn,
            vec![],
            Some("values set can't be empty"),
        ),
        ("x3", Operator::In, vec!["foo"], None),
        ("x4", Operator::NotIn, vec!["foo"], None),
        (
            "x5",
            Operator::Equals,
            vec!["foo", "bar"],
            Some("exact-match compatibility requires one single value"),
        ),
        ("x6", Operator::Exists, vec![], None),
        ("x7", Operator::DoesNotExist, vec![], None),
        (
            "x8",
            Operator::Exists,
            vec!["foo"],
            Some("values set must be empty for exists and does not exist"),
        ),
        ("x9", Operator::In, vec!["bar"], None),
        ("x11", Operator::GreaterThan, vec!["1"], None),
        ("x12", Operator::LessThan, vec!["6"], None),
        (
            "x13",
            Operator::GreaterThan,
            vec![],
            Some("exactly one value is required"),
        ),
        (
            "x14",
            Operator::GreaterThan,
            vec!["bar"],
            Some("the value must be an integer"),
        ),
        (
            "x15",
            Operator::LessThan,
            vec!["bar"],
            Some("the value must be an integer"),
        ),
        (
            long.as_str(),
            Operator::Exists,
            vec![],
            Some("name part must be no more than 63 characters"),
        ),
        (
            "x16",
            Operator::Equals,
            vec![long.as_str()],
            Some("must be no more than 63 characters"),
        ),
        (
            "x17",
            Operator::Equals,
            vec!["a b"],
            Some("a valid label must be an empty string"),
        ),
    ];
    for (key, op, values, want_err) in cases {
        let got = Requirement::new(key, op, values.iter().map(|v| v.to_string()).collect());
        match (got, want_err) {
            (Ok(_), None) => {}
            (Err(e), Some(fragment)) => {
                assert!(
                    e.to_string().contains(fragment),
                    "{key}: {e} lacks {fragment:?}"
                )
            }
            (got, want) => panic!("{key}: got {got:?}, want error {want:?}"),
        }
    }
}

#[test]
fn requirement_strings() {
    // Upstream TestToString.
    let cases = [
        (
            vec![
                req("x", Operator::In, &["abc", "def"]),
                req("y", Operator::NotIn, &["jkl"]),
                req("z", Operator::Exists, &[]),
            ],
            "x in (abc,def),y notin (jkl),z",
        ),
        (
            vec![
                req("x", Operator::NotIn, &["abc", "def"]),
                req("y", Operator::NotEquals, &["jkl"]),
                req("z", Operator::DoesNotExist, &[]),
            ],
            "x notin (abc,def),y!=jkl,!z",
        ),
        (
            vec![
                req("x", Operator::Equals, &["abc"]),
                req("y", Operator::DoubleEquals, &["jkl"]),
                req("z", Operator::NotEquals, &["a"]),
                req("z", Operator::Exists, &[]),
            ],
            "x=abc,y==jkl,z!=a,z",
        ),
        (
            vec![
                req("x", Operator::GreaterThan, &["2"]),
                req("y", Operator::LessThan, &["8"]),
                req("z", Operator::Exists, &[]),
            ],
            "x>2,y<8,z",
        ),
        (
            vec![req("x", Operator::In, &["def", "abc"])],
            "x in (abc,def)",
        ),
    ];
    for (reqs, want) in cases {
        assert_eq!(
            Selector::everything().add_requirements(reqs).to_string(),
            want
        );
    }
}

#[test]
fn requires_exact_match() {
    let s = parse("a=b,c in (d),e in (f,g),h!=i");
    assert_eq!(s.requires_exact_match("a"), Some("b"));
    assert_eq!(s.requires_exact_match("c"), Some("d"));
    assert_eq!(s.requires_exact_match("e"), None);
    assert_eq!(s.requires_exact_match("h"), None);
    assert_eq!(s.requires_exact_match("z"), None);
}

#[test]
fn from_set() {
    let s = Selector::from_set(&set(&[("b", "2"), ("a", "1")]));
    assert_eq!(s.to_string(), "a=1,b=2");
    assert!(s.matches(&set(&[("a", "1"), ("b", "2"), ("c", "3")])));
    assert!(Selector::from_set(&set(&[])).is_empty());
    assert!(Selector::from_validated_set(&set(&[("a", "bad value")])).is_err());
}

/// (key, operator, values) of one matchExpressions entry.
type Expr<'a> = (&'a str, &'a str, Option<Vec<&'a str>>);

fn label_selector(
    match_labels: Option<&[(&str, &str)]>,
    exprs: Option<Vec<Expr<'_>>>,
) -> LabelSelector {
    LabelSelector {
        match_labels: match_labels.map(set),
        match_expressions: exprs.map(|exprs| {
            exprs
                .into_iter()
                .map(|(key, op, values)| LabelSelectorRequirement {
                    key: key.to_string(),
                    operator: op.to_string(),
                    values: values.map(|vs| vs.into_iter().map(String::from).collect()),
                })
                .collect()
        }),
    }
}

#[test]
fn label_selector_as_selector() {
    // Upstream TestLabelSelectorAsSelector.
    assert_eq!(Selector::from_label_selector(None), Ok(Selector::nothing()));
    let empty = LabelSelector::default();
    assert_eq!(Selector::try_from(&empty), Ok(Selector::everything()));
    let empty_collections = label_selector(Some(&[]), Some(vec![]));
    assert_eq!(
        Selector::try_from(&empty_collections),
        Ok(Selector::everything())
    );

    let both = label_selector(Some(&[("foo", "bar")]), Some(vec![("baz", "Exists", None)]));
    let selector = Selector::try_from(&both).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(selector.to_string(), "baz,foo=bar");
    assert!(selector.matches(&set(&[("foo", "bar"), ("baz", "")])));
    assert!(!selector.matches(&set(&[("foo", "bar")])));

    let lowercase_op = label_selector(None, Some(vec![("baz", "exists", None)]));
    assert_eq!(
        Selector::try_from(&lowercase_op)
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("\"exists\" is not a valid label selector operator")
    );

    let set_based = label_selector(
        None,
        Some(vec![
            ("tier", "In", Some(vec!["web", "api"])),
            ("env", "NotIn", Some(vec!["dev"])),
            ("legacy", "DoesNotExist", None),
        ]),
    );
    let selector = Selector::try_from(&set_based).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        selector.to_string(),
        "env notin (dev),!legacy,tier in (api,web)"
    );
    assert!(selector.matches(&set(&[("tier", "api")])));
    assert!(!selector.matches(&set(&[("tier", "api"), ("legacy", "y")])));
    assert!(!selector.matches(&set(&[("tier", "api"), ("env", "dev")])));

    let in_without_values = label_selector(None, Some(vec![("tier", "In", None)]));
    assert!(Selector::try_from(&in_without_values).is_err());
    let bad_key = label_selector(Some(&[("bad key", "x")]), None);
    assert!(Selector::try_from(&bad_key).is_err());
}

fn field_parse(s: &str) -> FieldSelector {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

#[test]
fn field_selector_parse() {
    // Upstream fields TestSelectorParse.
    for good in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
        assert_eq!(field_parse(good).to_string(), good);
    }
    for bad in [
        "x=a||y=b",
        "x==a==b",
        "x=a,b",
        "x in (a)",
        "x in (a,b,c)",
        "x",
    ] {
        assert!(bad.parse::<FieldSelector>().is_err(), "{bad:?} should fail");
    }
    assert_eq!(
        field_parse("x=a,a=x").to_string(),
        field_parse("a=x,x=a").to_string()
    );
    assert_eq!(field_parse("x==a").to_string(), "x=a");
    let err = "x=a,b"
        .parse::<FieldSelector>()
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("invalid selector: 'x=a,b'; can't understand 'b'")
    );
}

#[test]
fn field_selector_matching() {
    // Upstream fields TestSelectorMatches.
    let cases = [
        ("", set(&[("x", "y")]), true),
        ("x=y", set(&[("x", "y")]), true),
        ("x=y,z=w", set(&[("x", "y"), ("z", "w")]), true),
        ("x!=y,z!=w", set(&[("x", "z"), ("z", "a")]), true),
        ("notin=in", set(&[("notin", "in")]), true),
        ("x=", set(&[]), true),
        ("x=y", set(&[("x", "z")]), false),
        ("x=y,z=w", set(&[("x", "w"), ("z", "w")]), false),
        ("x!=y,z!=w", set(&[("x", "z"), ("z", "w")]), false),
    ];
    for (selector, fields, want) in cases {
        assert_eq!(
            field_parse(selector).matches(&fields),
            want,
            "{selector} vs {fields:?}"
        );
    }
    let fieldset = set(&[("foo", "bar"), ("baz", "blah"), ("complex", r"=value\,\")]);
    assert!(field_parse("foo=bar").matches(&fieldset));
    assert!(field_parse("baz=blah").matches(&fieldset));
    assert!(field_parse("foo=bar,baz=blah").matches(&fieldset));
    assert!(field_parse(r"foo=bar,baz=blah,complex=\=value\\\,\\").matches(&fieldset));
    assert!(!field_parse("foo=blah").matches(&fieldset));
    assert!(!field_parse("baz=bar").matches(&fieldset));
    assert!(!field_parse("foo=bar,foobar=bar,baz=blah").matches(&fieldset));
}

#[test]
fn field_value_escaping() {
    use component_base::selectors::fields_escape::{escape_value, unescape_value};
    let cases = [
        ("", ""),
        ("a", "a"),
        ("=", r"\="),
        (",", r"\,"),
        (r"\", r"\\"),
        (r"\=\,\", r"\\\=\\\,\\"),
    ];
    for (raw, escaped) in cases {
        assert_eq!(escape_value(raw), escaped);
        assert_eq!(unescape_value(escaped).as_deref(), Ok(raw));
    }
    for bad in [r"\", r"\a", "=", ","] {
        assert!(unescape_value(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn field_selector_exact_match() {
    let s = field_parse("spec.nodeName=node-1,status.phase!=Failed");
    assert_eq!(s.requires_exact_match("spec.nodeName"), Some("node-1"));
    assert_eq!(s.requires_exact_match("status.phase"), None);
    assert!(FieldSelector::everything().is_empty());
}

#[test]
fn pod_and_object_meta_field_sets() {
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("web-0".into()),
            namespace: Some("prod".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-a".into()),
            restart_policy: Some("Always".into()),
            scheduler_name: Some("default-scheduler".into()),
            service_account_name: Some("default".into()),
            host_network: Some(true),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ips: Some(vec![
                PodIP {
                    ip: "10.0.0.5".into(),
                },
                PodIP {
                    ip: "fd00::5".into(),
                },
            ]),
            nominated_node_name: Some("node-b".into()),
            ..Default::default()
        }),
    };
    let fields = pod_fields(&pod);
    let want = set(&[
        ("metadata.name", "web-0"),
        ("metadata.namespace", "prod"),
        ("spec.nodeName", "node-a"),
        ("spec.restartPolicy", "Always"),
        ("spec.schedulerName", "default-scheduler"),
        ("spec.serviceAccountName", "default"),
        ("spec.hostNetwork", "true"),
        ("status.phase", "Running"),
        ("status.podIP", "10.0.0.5"),
        ("status.nominatedNodeName", "node-b"),
    ]);
    assert_eq!(fields, want);
    assert!(field_parse("spec.nodeName=node-a,status.phase!=Succeeded").matches(&fields));

    // Unset fields are present and empty; hostNetwork defaults to false.
    let bare = pod_fields(&Pod::default());
    assert_eq!(
        bare.get("spec.hostNetwork").map(String::as_str),
        Some("false")
    );
    assert_eq!(bare.get("spec.nodeName").map(String::as_str), Some(""));
    assert!(field_parse("spec.nodeName=").matches(&bare));
    assert_eq!(bare.len(), 10);

    let meta = ObjectMeta {
        name: Some("n1".into()),
        namespace: Some("ns".into()),
        ..Default::default()
    };
    assert_eq!(
        object_meta_fields(&meta, true),
        set(&[("metadata.name", "n1"), ("metadata.namespace", "ns")])
    );
    assert_eq!(
        object_meta_fields(&meta, false),
        set(&[("metadata.name", "n1")])
    );
}
