//! Constraint parsing and pod counting shared by filtering and scoring (upstream
//! `podtopologyspread/common.go` and `helper.DefaultSelector`).

use std::collections::BTreeMap;

use component_base::selectors::nodeaffinity::RequiredNodeAffinity;
use component_base::selectors::{Operator, Requirement, Selector, SelectorError};
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Node, Pod, ReplicationController, Service, TopologySpreadConstraint,
};

use super::PodTopologySpread;
use crate::framework::PodInfo;
use crate::plugins::helper::taint::find_untolerated;

pub const HONOR: &str = "Honor";
pub const IGNORE: &str = "Ignore";
pub const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
pub const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";

/// A constraint with its selector parsed and policies defaulted (upstream
/// `topologySpreadConstraint`).
#[derive(Debug, Clone)]
pub struct Constraint {
    pub max_skew: i32,
    pub topology_key: String,
    pub selector: Selector,
    pub min_domains: i32,
    pub node_affinity_honored: bool,
    pub node_taints_honored: bool,
}

impl Constraint {
    /// Upstream `matchNodeInclusionPolicies`.
    pub fn counts_node(&self, pod: &Pod, node: &Node, required: &RequiredNodeAffinity) -> bool {
        if self.node_affinity_honored && required.matches(node) != Ok(true) {
            return false;
        }
        if self.node_taints_honored {
            let taints = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_deref())
                .unwrap_or_default();
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or_default();
            let do_not_schedule = |t: &k8s_openapi::api::core::v1::Taint| {
                t.effect == "NoSchedule" || t.effect == "NoExecute"
            };
            if find_untolerated(taints, tolerations, do_not_schedule).is_some() {
                return false;
            }
        }
        true
    }
}

/// Upstream `filterTopologySpreadConstraints`: the constraints with `action`, matchLabelKeys
/// merged into the selector as `key in (value)` for the keys the pod carries.
pub fn filter_constraints(
    constraints: &[TopologySpreadConstraint],
    pod_labels: Option<&BTreeMap<String, String>>,
    action: &str,
) -> Result<Vec<Constraint>, SelectorError> {
    let mut out = Vec::new();
    for c in constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == action)
    {
        let mut selector = Selector::from_label_selector(c.label_selector.as_ref())?;
        let extra: Vec<Requirement> = c
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|k| pod_labels.and_then(|l| l.get(k)).map(|v| (k, v)))
            .map(|(k, v)| Requirement::new(k.clone(), Operator::In, vec![v.clone()]))
            .collect::<Result<_, _>>()?;
        if !extra.is_empty() {
            selector = selector.add_requirements(extra);
        }
        out.push(Constraint {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: c.min_domains.unwrap_or(1),
            node_affinity_honored: c.node_affinity_policy.as_deref() != Some(IGNORE),
            node_taints_honored: c.node_taints_policy.as_deref() == Some(HONOR),
        });
    }
    Ok(out)
}

/// Upstream `nodeLabelsMatchSpreadConstraints`: the node has every constraint's key.
pub fn node_has_all_keys(node: &Node, constraints: &[Constraint]) -> bool {
    let labels = node.metadata.labels.as_ref();
    constraints
        .iter()
        .all(|c| labels.is_some_and(|l| l.contains_key(&c.topology_key)))
}

/// Upstream `countPodsMatchSelector`: non-terminating pods of `namespace` matching.
pub fn count_matching<'a>(
    pods: impl IntoIterator<Item = &'a PodInfo>,
    selector: &Selector,
    namespace: &str,
) -> i64 {
    if selector.is_empty() {
        return 0;
    }
    pods.into_iter()
        .filter(|p| {
            p.pod.metadata.deletion_timestamp.is_none()
                && p.pod.metadata.namespace.as_deref().unwrap_or_default() == namespace
                && selector.matches_labels(p.pod.metadata.labels.as_ref())
        })
        .count() as i64
}

impl PodTopologySpread {
    /// The pod's own constraints with `action`, or the default ones when it has none.
    pub(super) fn constraints(
        &self,
        pod: &Pod,
        action: &str,
    ) -> Result<Vec<Constraint>, SelectorError> {
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or_default();
        let labels = pod.metadata.labels.as_ref();
        if !own.is_empty() {
            return filter_constraints(own, labels, action);
        }
        self.default_constraints_for(pod, action)
    }

    /// Upstream `buildDefaultConstraints`.
    fn default_constraints_for(
        &self,
        pod: &Pod,
        action: &str,
    ) -> Result<Vec<Constraint>, SelectorError> {
        let mut cs = filter_constraints(
            &self.default_constraints,
            pod.metadata.labels.as_ref(),
            action,
        )?;
        if cs.is_empty() {
            return Ok(cs);
        }
        let selector = self.default_selector(pod);
        if selector.is_empty() {
            return Ok(Vec::new());
        }
        for c in &mut cs {
            c.selector = selector.clone();
        }
        Ok(cs)
    }

    /// Upstream `helper.DefaultSelector`: the selectors of the pod's Services and of its
    /// controlling ReplicationController, ReplicaSet or StatefulSet, ANDed.
    pub(super) fn default_selector(&self, pod: &Pod) -> Selector {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let mut set: BTreeMap<String, String> = BTreeMap::new();
        if let Some(services) = &self.listers.services {
            for svc in services.store().state() {
                if svc.metadata.namespace.as_deref() != Some(ns) {
                    continue;
                }
                let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
                    continue;
                };
                if Selector::from_set(sel).matches_labels(pod.metadata.labels.as_ref()) {
                    set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut selector = Selector::from_set(&set);
        let Some(owner) = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
        else {
            return selector;
        };
        let group = owner.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let get = |name: &str| -> Option<Selector> {
            match (group, owner.kind.as_str()) {
                ("", "ReplicationController") => {
                    let rc = find::<ReplicationController>(self.listers.rcs.as_deref(), ns, name)?;
                    let mut merged = set.clone();
                    merged.extend(rc.spec.as_ref()?.selector.clone().unwrap_or_default());
                    Some(Selector::from_set(&merged))
                }
                ("apps", "ReplicaSet") => {
                    let rs = find::<ReplicaSet>(self.listers.rss.as_deref(), ns, name)?;
                    let other =
                        Selector::from_label_selector(Some(&rs.spec.as_ref()?.selector)).ok()?;
                    Some(
                        selector
                            .clone()
                            .add_requirements(other.requirements()?.to_vec()),
                    )
                }
                ("apps", "StatefulSet") => {
                    let ss = find::<StatefulSet>(self.listers.sss.as_deref(), ns, name)?;
                    let other =
                        Selector::from_label_selector(Some(&ss.spec.as_ref()?.selector)).ok()?;
                    Some(
                        selector
                            .clone()
                            .add_requirements(other.requirements()?.to_vec()),
                    )
                }
                _ => None,
            }
        };
        if let Some(s) = get(&owner.name) {
            selector = s;
        }
        selector
    }
}

fn find<K>(
    informer: Option<&component_base::informers::Informer<K>>,
    ns: &str,
    name: &str,
) -> Option<std::sync::Arc<K>>
where
    K: component_base::informers::Informable,
{
    let key = kube::runtime::reflector::ObjectRef::<K>::new(name).within(ns);
    informer?.store().get(&key)
}

/// Lister handles for the default selector; all `None` without an apiserver.
#[derive(Default)]
pub struct Listers {
    pub services: Option<std::sync::Arc<component_base::informers::Informer<Service>>>,
    pub rcs: Option<std::sync::Arc<component_base::informers::Informer<ReplicationController>>>,
    pub rss: Option<std::sync::Arc<component_base::informers::Informer<ReplicaSet>>>,
    pub sss: Option<std::sync::Arc<component_base::informers::Informer<StatefulSet>>>,
}
