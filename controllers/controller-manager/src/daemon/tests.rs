//! Table tests of the DaemonSet decisions, after upstream
//! `daemon_controller_test.go` / `update_test.go` / `daemonset_util_test.go`.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    NodeSpec, Pod, PodSpec, PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::backoff::Backoff;
use super::controller::{group_by_node, should_ignore_node_update};
use super::reconcile::*;
use super::util::*;
use super::{FAILED_DAEMON_POD_REASON, history};
use crate::controller_utils::testing::{created, on_node, phase, ready_since, ts};
use crate::history::CONTROLLER_REVISION_HASH_LABEL;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ds(name: &str) -> DaemonSet {
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some("ds-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", name)])),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&[("app", name)])),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    max_surge: Some(IntOrString::Int(0)),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(&[("kubernetes.io/hostname", name)])),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn tainted(mut n: Node, key: &str, effect: &str) -> Node {
    n.spec.get_or_insert_with(NodeSpec::default).taints = Some(vec![Taint {
        key: key.into(),
        effect: effect.into(),
        ..Default::default()
    }]);
    n
}

fn daemon_pod(name: &str, node: &str, hash: &str) -> Pod {
    let mut p = on_node(crate::controller_utils::testing::pod(name), node);
    p.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.into());
    p
}

fn plan(ds: &DaemonSet, nodes: &[Node], pods: &[Pod]) -> ManagePlan {
    let nodes: Vec<&Node> = nodes.iter().collect();
    let pods: Vec<&Pod> = pods.iter().collect();
    let by_node = group_by_node(&pods);
    let mut backoff = Backoff::default();
    manage(
        ds,
        &nodes,
        &by_node,
        "h1",
        &mut backoff,
        Instant::now(),
        ts(1000),
    )
}

#[test]
fn daemon_tolerations_are_added_once() {
    let mut spec = PodSpec {
        host_network: Some(true),
        tolerations: Some(vec![Toleration {
            key: Some("node.kubernetes.io/not-ready".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(5),
            ..Default::default()
        }]),
        ..Default::default()
    };
    add_daemon_tolerations(&mut spec);
    add_daemon_tolerations(&mut spec);
    let tolerations = spec.tolerations.unwrap();
    let keys: Vec<&str> = tolerations
        .iter()
        .filter_map(|t| t.key.as_deref())
        .collect();
    assert_eq!(
        keys,
        [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/disk-pressure",
            "node.kubernetes.io/memory-pressure",
            "node.kubernetes.io/pid-pressure",
            "node.kubernetes.io/unschedulable",
            "node.kubernetes.io/network-unavailable",
        ]
    );
    // The same key/operator/effect is replaced: no infinite toleration
    // silently shortened, none duplicated.
    assert_eq!(tolerations[0].toleration_seconds, None);
}

#[test]
fn node_should_run_follows_selector_affinity_and_taints() {
    let mut d = ds("d");
    let plain = node("a");
    assert_eq!(node_should_run(&plain, &d), (true, true));

    // Unschedulable and not-ready taints are tolerated automatically.
    let unschedulable = tainted(node("a"), "node.kubernetes.io/unschedulable", "NoSchedule");
    assert_eq!(node_should_run(&unschedulable, &d), (true, true));
    let not_ready = tainted(node("a"), "node.kubernetes.io/not-ready", "NoExecute");
    assert_eq!(node_should_run(&not_ready, &d), (true, true));

    // A foreign NoSchedule taint: do not start, keep what runs.
    let no_schedule = tainted(node("a"), "dedicated", "NoSchedule");
    assert_eq!(node_should_run(&no_schedule, &d), (false, true));
    // A foreign NoExecute taint: neither.
    let no_execute = tainted(node("a"), "dedicated", "NoExecute");
    assert_eq!(node_should_run(&no_execute, &d), (false, false));
    // PreferNoSchedule never blocks.
    let prefer = tainted(node("a"), "dedicated", "PreferNoSchedule");
    assert_eq!(node_should_run(&prefer, &d), (true, true));

    // nodeSelector.
    let spec = d.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    spec.node_selector = Some(labels(&[("color", "blue")]));
    assert_eq!(node_should_run(&plain, &d), (false, false));
    let mut blue = node("b");
    blue.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("color".into(), "blue".into());
    assert_eq!(node_should_run(&blue, &d), (true, true));

    // Required node affinity.
    let spec = d.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    spec.node_selector = None;
    spec.affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "color".into(),
                        operator: "In".into(),
                        values: Some(vec!["blue".into()]),
                    }]),
                    match_fields: None,
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(node_should_run(&plain, &d), (false, false));
    assert_eq!(node_should_run(&blue, &d), (true, true));

    // spec.nodeName in the template.
    let mut d = ds("d");
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .node_name = Some("b".into());
    assert_eq!(node_should_run(&plain, &d), (false, false));
}

#[test]
fn tolerations_match_as_upstream() {
    let taint = Taint {
        key: "k".into(),
        value: Some("v".into()),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    let tol = |key: Option<&str>, op: Option<&str>, value: Option<&str>, effect: Option<&str>| {
        Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            ..Default::default()
        }
    };
    assert!(tolerates(&tol(Some("k"), None, Some("v"), None), &taint));
    assert!(tolerates(
        &tol(Some("k"), Some("Equal"), Some("v"), Some("NoSchedule")),
        &taint
    ));
    assert!(!tolerates(
        &tol(Some("k"), Some("Equal"), Some("w"), None),
        &taint
    ));
    assert!(tolerates(&tol(None, Some("Exists"), None, None), &taint));
    assert!(!tolerates(
        &tol(Some("k"), Some("Exists"), None, Some("NoExecute")),
        &taint
    ));
    assert!(!tolerates(
        &tol(Some("other"), Some("Exists"), None, None),
        &taint
    ));
}

#[test]
fn pods_are_pinned_by_node_name_affinity() {
    let affinity = replace_node_name_affinity(None, "n1");
    let mut pod = crate::controller_utils::testing::pod("p");
    pod.spec.get_or_insert_with(Default::default).affinity = Some(affinity.clone());
    assert_eq!(target_node_name(&pod).as_deref(), Some("n1"));
    // An existing required affinity is replaced, preferred terms kept.
    let replaced = replace_node_name_affinity(Some(affinity), "n2");
    let terms = &replaced
        .node_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms.len(), 1);
    let field = &terms[0].match_fields.as_ref().unwrap()[0];
    assert_eq!(
        (field.key.as_str(), field.operator.as_str()),
        ("metadata.name", "In")
    );
    assert_eq!(field.values.as_deref(), Some(&["n2".to_string()][..]));
}

#[test]
fn pod_template_gets_generation_and_hash_labels() {
    let mut d = ds("d");
    d.metadata.annotations = Some(labels(&[(TEMPLATE_GENERATION_ANNOTATION, "3")]));
    let generation = template_generation(&d).unwrap();
    let template = create_pod_template(&d.spec.as_ref().unwrap().template, generation, "h1");
    let l = template.metadata.unwrap().labels.unwrap();
    assert_eq!(l[TEMPLATE_GENERATION_LABEL], "3");
    assert_eq!(l[CONTROLLER_REVISION_HASH_LABEL], "h1");
    assert_eq!(l["app"], "d");
    assert_eq!(template.spec.unwrap().tolerations.unwrap().len(), 6);
}

#[test]
fn manage_creates_on_missing_nodes_and_deletes_misscheduled() {
    let d = ds("d");
    let nodes = [node("a"), node("b"), tainted(node("c"), "x", "NoExecute")];
    let pods = [daemon_pod("p-a", "a", "h1"), daemon_pod("p-c", "c", "h1")];
    let got = plan(&d, &nodes, &pods);
    assert_eq!(got.nodes_needing_pods, ["b"]);
    assert_eq!(got.pods_to_delete, ["p-c"]);
}

#[test]
fn manage_keeps_the_oldest_of_duplicate_pods() {
    let d = ds("d");
    let pods = [
        created(daemon_pod("newer", "a", "h1"), 20),
        created(daemon_pod("older", "a", "h1"), 10),
    ];
    let got = plan(&d, &[node("a")], &pods);
    assert_eq!(got.pods_to_delete, ["newer"]);
    assert!(got.nodes_needing_pods.is_empty());
}

#[test]
fn failed_pods_are_deleted_with_backoff_and_an_event() {
    let d = ds("d");
    let nodes = [node("a")];
    let pods = [phase(daemon_pod("failed", "a", "h1"), "Failed")];
    let node_refs: Vec<&Node> = nodes.iter().collect();
    let pod_refs: Vec<&Pod> = pods.iter().collect();
    let by_node = group_by_node(&pod_refs);
    let mut backoff = Backoff::default();
    let now = Instant::now();
    let first = manage(&d, &node_refs, &by_node, "h1", &mut backoff, now, ts(1));
    assert_eq!(first.pods_to_delete, ["failed"]);
    assert_eq!(first.events[0].reason, FAILED_DAEMON_POD_REASON);
    assert_eq!(
        first.events[0].message,
        "Found failed daemon pod ns/failed on node a, will try to kill it"
    );
    // Seen again within the back-off: not deleted, requeued.
    let second = manage(&d, &node_refs, &by_node, "h1", &mut backoff, now, ts(1));
    assert!(second.pods_to_delete.is_empty());
    assert_eq!(second.requeue_after, Some(super::backoff::INITIAL));
}

#[test]
fn unscheduled_pods_on_vanished_nodes_are_deleted() {
    let d = ds("d");
    let mut pinned = crate::controller_utils::testing::pod("ghost");
    pinned.spec.get_or_insert_with(Default::default).affinity =
        Some(replace_node_name_affinity(None, "gone"));
    let got = plan(&d, &[node("a")], &[daemon_pod("p-a", "a", "h1"), pinned]);
    assert_eq!(got.pods_to_delete, ["ghost"]);
}

#[test]
fn rolling_update_respects_max_unavailable() {
    let d = ds("d");
    let nodes = [node("a"), node("b"), node("c")];
    let pods = [
        ready_since(daemon_pod("old-a", "a", "h0"), 0),
        ready_since(daemon_pod("old-b", "b", "h0"), 0),
        ready_since(daemon_pod("new-c", "c", "h1"), 0),
    ];
    let node_refs: Vec<&Node> = nodes.iter().collect();
    let pod_refs: Vec<&Pod> = pods.iter().collect();
    let plan = rolling_update(&d, &node_refs, &group_by_node(&pod_refs), "h1", ts(100)).unwrap();
    assert_eq!(plan.pods_to_delete, ["old-a"]);
    assert!(plan.nodes_needing_pods.is_empty());

    // An unavailable old pod is replaced regardless of the budget.
    let pods = [
        daemon_pod("old-a", "a", "h0"),
        ready_since(daemon_pod("old-b", "b", "h0"), 0),
        daemon_pod("new-c", "c", "h1"),
    ];
    let pod_refs: Vec<&Pod> = pods.iter().collect();
    let plan = rolling_update(&d, &node_refs, &group_by_node(&pod_refs), "h1", ts(100)).unwrap();
    assert_eq!(plan.pods_to_delete, ["old-a"]);
}

#[test]
fn rolling_update_with_surge_creates_then_deletes() {
    let mut d = ds("d");
    let ru = d.spec.as_mut().unwrap().update_strategy.as_mut().unwrap();
    ru.rolling_update = Some(RollingUpdateDaemonSet {
        max_unavailable: Some(IntOrString::Int(0)),
        max_surge: Some(IntOrString::Int(1)),
    });
    let nodes = [node("a"), node("b")];
    let node_refs: Vec<&Node> = nodes.iter().collect();
    let pods = [
        ready_since(daemon_pod("old-a", "a", "h0"), 0),
        ready_since(daemon_pod("old-b", "b", "h0"), 0),
    ];
    let pod_refs: Vec<&Pod> = pods.iter().collect();
    let plan = rolling_update(&d, &node_refs, &group_by_node(&pod_refs), "h1", ts(100)).unwrap();
    assert_eq!(plan.nodes_needing_pods, ["a"]);
    assert!(plan.pods_to_delete.is_empty());

    // Once the new pod on a is available, the old one goes.
    let pods = [
        ready_since(daemon_pod("old-a", "a", "h0"), 0),
        ready_since(daemon_pod("new-a", "a", "h1"), 50),
        ready_since(daemon_pod("old-b", "b", "h0"), 0),
    ];
    let pod_refs: Vec<&Pod> = pods.iter().collect();
    let plan = rolling_update(&d, &node_refs, &group_by_node(&pod_refs), "h1", ts(100)).unwrap();
    assert_eq!(plan.pods_to_delete, ["old-a"]);
    assert_eq!(plan.nodes_needing_pods, ["b"]);
}

#[test]
fn status_counts_oldest_pod_per_node() {
    let d = ds("d");
    let nodes = [
        node("a"),
        node("b"),
        node("c"),
        tainted(node("x"), "k", "NoSchedule"),
    ];
    let pods = [
        ready_since(daemon_pod("p-a", "a", "h1"), 0),
        daemon_pod("p-b", "b", "h0"),
        daemon_pod("p-x", "x", "h1"),
    ];
    let node_refs: Vec<&Node> = nodes.iter().collect();
    let pod_refs: Vec<&Pod> = pods.iter().collect();
    let got = calculate_status(&d, &node_refs, &group_by_node(&pod_refs), "h1", ts(100));
    assert_eq!(
        got,
        StatusCounts {
            desired_number_scheduled: 3,
            current_number_scheduled: 2,
            // p-x runs where the DaemonSet may no longer start pods.
            number_misscheduled: 1,
            number_ready: 1,
            updated_number_scheduled: 1,
            number_available: 1,
            number_unavailable: 2,
        }
    );
    assert!(status_changed(&d, &got));
}

#[test]
fn heartbeat_only_node_updates_are_ignored() {
    let old = node("a");
    let mut new = node("a");
    new.metadata.resource_version = Some("2".into());
    assert!(should_ignore_node_update(&old, &new));
    new.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("color".into(), "blue".into());
    assert!(!should_ignore_node_update(&old, &new));
}

#[test]
fn revisions_beyond_the_limit_are_cleaned_unless_live() {
    let mut d = ds("d");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let patch = serde_json::json!({});
    let mut old: Vec<_> = (1..=3)
        .map(|i| {
            let mut r = history::new_revision(&d, patch.clone(), i);
            r.metadata.name = Some(format!("r{i}"));
            r.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert(CONTROLLER_REVISION_HASH_LABEL.into(), format!("h{i}"));
            r
        })
        .collect();
    old.reverse();
    let live = ["h1".to_string()].into_iter().collect();
    let gone: Vec<String> = history::revisions_to_clean(&d, &old, &live)
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(gone, ["r2", "r3"]);
}

#[test]
fn revision_matches_only_its_template() {
    let d = ds("d");
    let patch = history::patch_of(&d).unwrap();
    let rev = history::new_revision(&d, patch.clone(), 1);
    assert!(history::matches(&patch, &rev));
    let mut changed = ds("d");
    changed
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .host_network = Some(true);
    assert!(!history::matches(
        &history::patch_of(&changed).unwrap(),
        &rev
    ));
    assert_eq!(
        rev.metadata.labels.as_ref().unwrap()[CONTROLLER_REVISION_HASH_LABEL],
        history::revision_hash(&d)
    );
    assert_eq!(
        rev.metadata.name.as_deref(),
        Some(format!("d-{}", history::revision_hash(&d)).as_str())
    );
}
