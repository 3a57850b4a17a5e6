//! NodeAffinity: `spec.nodeSelector` and required node affinity as a filter, preferred node
//! affinity as a score, plus the profile's `addedAffinity` from NodeAffinityArgs.

use std::collections::HashSet;
use std::sync::Arc;

use component_base::selectors::nodeaffinity::{
    NodeSelector, PreferredSchedulingTerms, RequiredNodeAffinity,
};
use k8s_openapi::api::core::v1::{NodeAffinity as V1NodeAffinity, Pod};
use serde::Deserialize;

use super::helper::default_normalize_score;
use super::names;
use crate::Error;
use crate::framework::events::{EventResource, action};
use crate::framework::{
    ClusterEvent, ClusterEventWithHint, CycleState, EventObject, FilterPlugin, MAX_NODE_SCORE,
    NodeInfo, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin, QueueingHint, ScorePlugin,
    Status,
};

pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";
pub const ERR_REASON_CONFLICT: &str = "pod affinity terms conflict";

const PRE_FILTER_STATE_KEY: &str = "PreFilterNodeAffinity";
const PRE_SCORE_STATE_KEY: &str = "PreScoreNodeAffinity";
const OBJECT_NAME_FIELD: &str = "metadata.name";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArgs {
    #[serde(default)]
    added_affinity: Option<V1NodeAffinity>,
}

pub struct NodeAffinity {
    added_node_selector: Option<NodeSelector>,
    added_pref_terms: Option<PreferredSchedulingTerms>,
}

struct PreFilterState(RequiredNodeAffinity);
struct PreScoreState(Option<PreferredSchedulingTerms>);

fn node_affinity(pod: &Pod) -> Option<&V1NodeAffinity> {
    pod.spec.as_ref()?.affinity.as_ref()?.node_affinity.as_ref()
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::InvalidConfig(format!("NodeAffinityArgs.addedAffinity: {e}"))
}

impl NodeAffinity {
    pub fn from_args(args: Option<&serde_json::Value>) -> Result<Self, Error> {
        let raw: RawArgs = match args {
            Some(v) if !v.is_null() => serde_json::from_value(v.clone()).map_err(invalid)?,
            _ => RawArgs::default(),
        };
        let added = raw.added_affinity.unwrap_or_default();
        let added_node_selector = added
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .map(NodeSelector::new)
            .transpose()
            .map_err(invalid)?;
        let added_pref_terms = added
            .preferred_during_scheduling_ignored_during_execution
            .as_deref()
            .map(PreferredSchedulingTerms::new)
            .transpose()
            .map_err(invalid)?;
        Ok(NodeAffinity {
            added_node_selector,
            added_pref_terms,
        })
    }

    fn matches_added(&self, node: &k8s_openapi::api::core::v1::Node) -> bool {
        self.added_node_selector
            .as_ref()
            .is_none_or(|s| s.matches(node))
    }
}

/// What the required terms' `matchFields: metadata.name In [...]` leave eligible.
enum Pinned {
    /// Some term leaves every node eligible.
    Any,
    Nodes(HashSet<String>),
    /// The terms pin no node at all (`ERR_REASON_CONFLICT`).
    Conflict,
}

/// Node names pinned by `matchFields: metadata.name In [...]` in every required term
/// (upstream PreFilter).
fn pinned_node_names(pod: &Pod) -> Pinned {
    let Some(terms) = node_affinity(pod)
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| &r.node_selector_terms)
        .filter(|t| !t.is_empty())
    else {
        return Pinned::Any;
    };
    let mut union: HashSet<String> = HashSet::new();
    for term in terms {
        let mut term_names: Option<HashSet<String>> = None;
        for r in term.match_fields.iter().flatten() {
            if r.key == OBJECT_NAME_FIELD && r.operator == "In" {
                let s: HashSet<String> = r.values.iter().flatten().cloned().collect();
                term_names = Some(match term_names {
                    None => s,
                    Some(prev) => prev.intersection(&s).cloned().collect(),
                });
            }
        }
        match term_names {
            None => return Pinned::Any,
            Some(n) => union.extend(n),
        }
    }
    if union.is_empty() {
        Pinned::Conflict
    } else {
        Pinned::Nodes(union)
    }
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        names::NODE_AFFINITY
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![ClusterEventWithHint::hinted(
            EventResource::Node,
            action::ADD | action::UPDATE_NODE_LABEL,
            "NodeAddOrLabelChange",
        )]
    }
    /// Requeue only when the node newly matches the pod's required affinity.
    fn queueing_hint(
        &self,
        pod: &Pod,
        _event: &ClusterEvent,
        old: Option<EventObject<'_>>,
        new: Option<EventObject<'_>>,
    ) -> QueueingHint {
        let Some(EventObject::Node(n)) = new else {
            return QueueingHint::Queue;
        };
        if !self.matches_added(n) {
            return QueueingHint::QueueSkip;
        }
        let required = RequiredNodeAffinity::from_pod(pod);
        if required.matches(n) != Ok(true) {
            return QueueingHint::QueueSkip;
        }
        match old {
            Some(EventObject::Node(o)) if required.matches(o) == Ok(true) => {
                QueueingHint::QueueSkip
            }
            _ => QueueingHint::Queue,
        }
    }
}

impl PreFilterPlugin for NodeAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        let no_required = node_affinity(pod)
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_none();
        let no_selector = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.as_ref())
            .is_none();
        if no_required && self.added_node_selector.is_none() && no_selector {
            return (None, Status::skip());
        }
        state.write(
            PRE_FILTER_STATE_KEY,
            PreFilterState(RequiredNodeAffinity::from_pod(pod)),
        );
        match pinned_node_names(pod) {
            Pinned::Any => (None, Status::success()),
            Pinned::Nodes(names) => (
                Some(PreFilterResult {
                    node_names: Some(names),
                }),
                Status::success(),
            ),
            Pinned::Conflict => (None, Status::unresolvable(ERR_REASON_CONFLICT)),
        }
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(n) = node.node() else {
            return Status::error("node not found");
        };
        if !self.matches_added(n) {
            return Status::unresolvable(ERR_REASON_ENFORCED);
        }
        let matched = match state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) {
            Some(s) => s.0.matches(n),
            None => RequiredNodeAffinity::from_pod(pod).matches(n),
        };
        if matched == Ok(true) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, _nodes: &[Arc<NodeInfo>]) -> Status {
        let preferred = node_affinity(pod).and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        });
        let terms = match preferred.map(PreferredSchedulingTerms::new).transpose() {
            Ok(t) => t,
            Err(e) => return Status::error(format!("parsing pod's preferred node affinity: {e}")),
        };
        if terms.is_none() && self.added_pref_terms.is_none() {
            return Status::skip();
        }
        state.write(PRE_SCORE_STATE_KEY, PreScoreState(terms));
        Status::success()
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let Some(n) = node.node() else {
            return Err(Status::error("node not found"));
        };
        let mut count = self.added_pref_terms.as_ref().map_or(0, |t| t.score(n));
        if let Some(PreScoreState(Some(t))) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) {
            count += t.score(n);
        }
        Ok(count)
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &Pod, scores: &mut [i64]) -> Status {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod_named, with_labels};
    use k8s_openapi::api::core::v1::{
        Affinity, NodeSelector as V1NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
        PreferredSchedulingTerm,
    };
    use serde_json::json;
    use std::collections::BTreeMap;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn with_required(mut p: Pod, terms: Vec<NodeSelectorTerm>) -> Pod {
        let spec = p.spec.get_or_insert_with(Default::default);
        spec.affinity
            .get_or_insert_with(Affinity::default)
            .node_affinity
            .get_or_insert_with(Default::default)
            .required_during_scheduling_ignored_during_execution = Some(V1NodeSelector {
            node_selector_terms: terms,
        });
        p
    }

    fn plugin() -> NodeAffinity {
        match NodeAffinity::from_args(None) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn run_filter(pl: &NodeAffinity, p: &Pod, n: &NodeInfo) -> Status {
        let mut state = CycleState::new();
        let (_, s) = pl.pre_filter(&mut state, p, &[]);
        if s.is_skip() {
            return Status::success();
        }
        pl.filter(&state, p, n)
    }

    #[test]
    fn filter_table() {
        let ssd = NodeInfo::new(Arc::new(with_labels(
            node("n1", "1", "1Gi", "10"),
            &[("disk", "ssd")],
        )));
        let expr = |op, v: &[&str]| NodeSelectorTerm {
            match_expressions: Some(vec![req("disk", op, v)]),
            match_fields: None,
        };
        let mut selector_ok = pod_named("a", vec![]);
        if let Some(s) = selector_ok.spec.as_mut() {
            s.node_selector = Some(BTreeMap::from([("disk".into(), "ssd".into())]));
        }
        let mut selector_bad = pod_named("b", vec![]);
        if let Some(s) = selector_bad.spec.as_mut() {
            s.node_selector = Some(BTreeMap::from([("disk".into(), "hdd".into())]));
        }
        let cases = [
            ("no constraints", pod_named("p", vec![]), true),
            ("nodeSelector match", selector_ok, true),
            ("nodeSelector mismatch", selector_bad, false),
            (
                "In match",
                with_required(pod_named("p", vec![]), vec![expr("In", &["ssd"])]),
                true,
            ),
            (
                "NotIn",
                with_required(pod_named("p", vec![]), vec![expr("NotIn", &["ssd"])]),
                false,
            ),
            (
                "terms are ORed",
                with_required(
                    pod_named("p", vec![]),
                    vec![expr("In", &["hdd"]), expr("Exists", &[])],
                ),
                true,
            ),
        ];
        let pl = plugin();
        for (name, p, ok) in cases {
            let s = run_filter(&pl, &p, &ssd);
            assert_eq!(s.is_success(), ok, "{name}: {s}");
            if !ok {
                assert_eq!(s.message(), ERR_REASON_POD, "{name}");
                assert_eq!(
                    s.code(),
                    crate::framework::Code::UnschedulableAndUnresolvable
                );
            }
        }
    }

    #[test]
    fn prefilter_narrows_to_pinned_node_names() {
        let by_name = |names: &[&str]| NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req(OBJECT_NAME_FIELD, "In", names)]),
        };
        let p = with_required(
            pod_named("p", vec![]),
            vec![by_name(&["n1"]), by_name(&["n2"])],
        );
        let (res, s) = plugin().pre_filter(&mut CycleState::new(), &p, &[]);
        assert!(s.is_success());
        let got = res.and_then(|r| r.node_names).map(|n| n.len());
        assert_eq!(got, Some(2));

        let mut conflict_term = by_name(&["n1"]);
        conflict_term
            .match_fields
            .get_or_insert_with(Vec::new)
            .push(req(OBJECT_NAME_FIELD, "In", &["n2"]));
        let p = with_required(pod_named("p", vec![]), vec![conflict_term]);
        let (_, s) = plugin().pre_filter(&mut CycleState::new(), &p, &[]);
        assert_eq!(s.message(), ERR_REASON_CONFLICT);
    }

    #[test]
    fn added_affinity_is_enforced() {
        let pl = NodeAffinity::from_args(Some(
            &json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}]
            }}}),
        ));
        let Ok(pl) = pl else { panic!("args rejected") };
        let n = NodeInfo::new(Arc::new(node("n1", "1", "1Gi", "10")));
        let s = run_filter(&pl, &pod_named("p", vec![]), &n);
        assert_eq!(s.message(), ERR_REASON_ENFORCED);
    }

    #[test]
    fn preferred_terms_score_and_normalize() {
        let mut p = pod_named("p", vec![]);
        p.spec.get_or_insert_with(Default::default).affinity = Some(Affinity {
            node_affinity: Some(V1NodeAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    PreferredSchedulingTerm {
                        weight: 10,
                        preference: NodeSelectorTerm {
                            match_expressions: Some(vec![req("disk", "In", &["ssd"])]),
                            match_fields: None,
                        },
                    },
                    PreferredSchedulingTerm {
                        weight: 30,
                        preference: NodeSelectorTerm {
                            match_expressions: Some(vec![req("zone", "In", &["z1"])]),
                            match_fields: None,
                        },
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        });
        let nodes = [
            NodeInfo::new(Arc::new(with_labels(
                node("a", "1", "1Gi", "10"),
                &[("disk", "ssd")],
            ))),
            NodeInfo::new(Arc::new(with_labels(
                node("b", "1", "1Gi", "10"),
                &[("disk", "ssd"), ("zone", "z1")],
            ))),
            NodeInfo::new(Arc::new(node("c", "1", "1Gi", "10"))),
        ];
        let pl = plugin();
        let mut state = CycleState::new();
        assert!(pl.pre_score(&mut state, &p, &[]).is_success());
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| pl.score(&state, &p, n).unwrap_or(-1))
            .collect();
        assert_eq!(scores, [10, 40, 0]);
        let _ = pl.normalize_score(&state, &p, &mut scores);
        assert_eq!(scores, [25, 100, 0]);
        assert!(
            pl.pre_score(&mut CycleState::new(), &pod_named("q", vec![]), &[])
                .is_skip()
        );
    }
}
