//! Pure DaemonSet helpers (upstream `pkg/controller/daemon/util`): the
//! tolerations every daemon pod gets, the pod template a daemon pod is
//! created from, the node-name affinity that pins it, and the rolling
//! update's surge/unavailability budgets.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec,
    PodTemplateSpec, Taint, Toleration,
};

use crate::deployment::util::scaled_value;
use crate::history::CONTROLLER_REVISION_HASH_LABEL;

/// Upstream `apps.DeprecatedTemplateGeneration`: the apiserver bumps it on
/// every template change.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// Upstream `extensions.DaemonSetTemplateGenerationKey`.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

const OBJECT_NAME_FIELD: &str = "metadata.name";

/// Upstream `GetTemplateGeneration`: `Ok(None)` without the annotation.
pub fn template_generation(ds: &DaemonSet) -> Result<Option<i64>, std::num::ParseIntError> {
    match ds
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
    {
        Some(value) => value.parse().map(Some),
        None => Ok(None),
    }
}

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// Upstream `v1helper.AddOrUpdateTolerationInPodSpec`: a toleration with
/// the same key, operator, value and effect is replaced, else appended.
fn add_or_update_toleration(spec: &mut PodSpec, toleration: Toleration) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let same = |t: &Toleration| {
        t.key == toleration.key
            && t.operator == toleration.operator
            && t.value == toleration.value
            && t.effect == toleration.effect
    };
    match tolerations.iter_mut().find(|t| same(t)) {
        Some(existing) => *existing = toleration,
        None => tolerations.push(toleration),
    }
}

/// Upstream `AddOrUpdateDaemonPodTolerations`: daemon pods survive node
/// problems (not-ready/unreachable NoExecute) and schedule onto nodes
/// tainted by condition (pressure, unschedulable, and for host-network
/// pods network-unavailable).
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    add_or_update_toleration(spec, exists("node.kubernetes.io/not-ready", "NoExecute"));
    add_or_update_toleration(spec, exists("node.kubernetes.io/unreachable", "NoExecute"));
    add_or_update_toleration(
        spec,
        exists("node.kubernetes.io/disk-pressure", "NoSchedule"),
    );
    add_or_update_toleration(
        spec,
        exists("node.kubernetes.io/memory-pressure", "NoSchedule"),
    );
    add_or_update_toleration(
        spec,
        exists("node.kubernetes.io/pid-pressure", "NoSchedule"),
    );
    add_or_update_toleration(
        spec,
        exists("node.kubernetes.io/unschedulable", "NoSchedule"),
    );
    if spec.host_network == Some(true) {
        add_or_update_toleration(
            spec,
            exists("node.kubernetes.io/network-unavailable", "NoSchedule"),
        );
    }
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = nonempty(&toleration.effect)
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = nonempty(&toleration.key)
        && key != taint.key
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Upstream `FindMatchingUntoleratedTaint`: the first taint passing
/// `filter` that no toleration tolerates.
pub fn find_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// Upstream `CreatePodTemplate`: the template plus daemon tolerations, the
/// `pod-template-generation` and `controller-revision-hash` labels.
pub fn create_pod_template(
    template: &PodTemplateSpec,
    generation: Option<i64>,
    hash: &str,
) -> PodTemplateSpec {
    let mut out = template.clone();
    add_daemon_tolerations(out.spec.get_or_insert_with(Default::default));
    let labels = out
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    if let Some(generation) = generation {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), generation.to_string());
    }
    if !hash.is_empty() {
        labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.into());
    }
    out
}

fn node_name_term(node: &str) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: OBJECT_NAME_FIELD.into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        match_expressions: None,
    }
}

/// Upstream `ReplaceDaemonSetPodNodeNameNodeAffinity`: the pod's required
/// node affinity becomes exactly "metadata.name In [node]", so the
/// scheduler binds it there (the DaemonSet already checked the rest).
pub fn replace_node_name_affinity(affinity: Option<Affinity>, node: &str) -> Affinity {
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    match &mut node_affinity.required_during_scheduling_ignored_during_execution {
        Some(required) => required.node_selector_terms = vec![node_name_term(node)],
        None => {
            node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
                node_selector_terms: vec![node_name_term(node)],
            })
        }
    }
    affinity
}

/// Upstream `GetTargetNodeName`: the node a daemon pod runs on or is
/// pinned to; `None` for a pod that names neither.
pub fn target_node_name(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(node.into());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|e| e.key == OBJECT_NAME_FIELD && e.operator == "In")
        .and_then(|e| match e.values.as_deref() {
            Some([one]) => Some(one.clone()),
            _ => None,
        })
}

/// Upstream `IsPodUpdated`. Upstream also compares the generation label,
/// but prints the generation's pointer, so in effect only the hash counts;
/// so here.
pub fn is_pod_updated(pod: &Pod, hash: &str) -> bool {
    !hash.is_empty()
        && pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL))
            .is_some_and(|h| h == hash)
}

fn rolling_update(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let strategy = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if strategy.type_.as_deref() != Some("RollingUpdate") {
        return None;
    }
    strategy.rolling_update.as_ref()
}

/// A malformed maxSurge/maxUnavailable (the apiserver validates them, so
/// only a broken object has one).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid value for {field}")]
pub struct BudgetError {
    pub field: &'static str,
}

/// Upstream `SurgeCount` (DaemonSetUpdateSurge is GA).
pub fn surge_count(ds: &DaemonSet, number_to_schedule: i32) -> Result<i32, BudgetError> {
    match rolling_update(ds).and_then(|r| r.max_surge.as_ref()) {
        None => Ok(0),
        Some(v) => {
            scaled_value(v, number_to_schedule, true).ok_or(BudgetError { field: "maxSurge" })
        }
    }
}

/// Upstream `UnavailableCount`.
pub fn unavailable_count(ds: &DaemonSet, number_to_schedule: i32) -> Result<i32, BudgetError> {
    match rolling_update(ds) {
        None => Ok(0),
        Some(r) => match &r.max_unavailable {
            None => Ok(0),
            Some(v) => scaled_value(v, number_to_schedule, true).ok_or(BudgetError {
                field: "maxUnavailable",
            }),
        },
    }
}

/// Upstream `AllowsSurge`.
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1).is_ok_and(|n| n > 0)
}
