//! InterPodAffinity: required pod affinity / anti-affinity of the incoming pod and existing
//! pods' required anti-affinity as a filter, preferred terms (both directions) as a score
//! (upstream `framework/plugins/interpodaffinity`).

mod filtering;
mod scoring;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use component_base::informers::Informer;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use serde::Deserialize;

use super::names;
use crate::Error;
use crate::framework::affinity_term::{AffinityTerm, PodAffinityTerms};
use crate::framework::events::{EventResource, action};
use crate::framework::{
    ClusterEvent, ClusterEventWithHint, EventObject, FilterPlugin, Handle, Plugin, PreFilterPlugin,
    PreScorePlugin, QueueingHint, ScorePlugin,
};

pub const ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
pub const ERR_REASON_AFFINITY_RULES_NOT_MATCH: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't match pod anti-affinity rules";

/// `InterPodAffinityArgs` (kubescheduler.config.k8s.io/v1).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Args {
    #[serde(default = "default_hard_weight")]
    hard_pod_affinity_weight: i32,
    #[serde(default)]
    ignore_preferred_terms_of_existing_pods: bool,
}

fn default_hard_weight() -> i32 {
    1
}

pub struct InterPodAffinity {
    hard_pod_affinity_weight: i32,
    ignore_preferred_terms_of_existing_pods: bool,
    namespaces: Namespaces,
}

/// Where namespace labels come from (upstream `nsLister`).
enum Namespaces {
    /// No apiserver: namespaceSelector matches no namespace.
    None,
    Informer(Arc<Informer<Namespace>>),
    #[cfg(test)]
    Fixed(Vec<Arc<Namespace>>),
}

impl Namespaces {
    fn list(&self) -> Vec<Arc<Namespace>> {
        match self {
            Namespaces::None => Vec::new(),
            Namespaces::Informer(i) => i.store().state(),
            #[cfg(test)]
            Namespaces::Fixed(v) => v.clone(),
        }
    }

    fn get(&self, name: &str) -> Option<Arc<Namespace>> {
        match self {
            Namespaces::None => None,
            Namespaces::Informer(i) => i
                .store()
                .get(&kube::runtime::reflector::ObjectRef::<Namespace>::new(name)),
            #[cfg(test)]
            Namespaces::Fixed(v) => v
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(name))
                .cloned(),
        }
    }
}

impl InterPodAffinity {
    /// Upstream `New` with `ValidateInterPodAffinityArgs`.
    pub fn new(args: Option<&serde_json::Value>, handle: &Handle) -> Result<Self, Error> {
        let mut pl = Self::from_args(args)?;
        if let Some(i) = handle.informer() {
            pl.namespaces = Namespaces::Informer(i);
        }
        Ok(pl)
    }

    /// The plugin without a namespace lister (namespaceSelector matches no namespace).
    pub fn from_args(args: Option<&serde_json::Value>) -> Result<Self, Error> {
        let invalid =
            |e: &dyn std::fmt::Display| Error::InvalidConfig(format!("InterPodAffinityArgs: {e}"));
        let args: Args = match args {
            Some(v) if !v.is_null() => {
                serde_json::from_value(v.clone()).map_err(|e| invalid(&e))?
            }
            _ => serde_json::from_value(serde_json::json!({})).map_err(|e| invalid(&e))?,
        };
        if !(0..=100).contains(&args.hard_pod_affinity_weight) {
            return Err(invalid(&format!(
                "hardPodAffinityWeight: Invalid value: {}: not in valid range [0-100]",
                args.hard_pod_affinity_weight
            )));
        }
        Ok(InterPodAffinity {
            hard_pod_affinity_weight: args.hard_pod_affinity_weight,
            ignore_preferred_terms_of_existing_pods: args.ignore_preferred_terms_of_existing_pods,
            namespaces: Namespaces::None,
        })
    }

    /// Upstream `GetNamespaceLabelsSnapshot`: the labels of `ns`, empty when unknown.
    fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(ns)
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default()
    }

    /// Upstream `mergeAffinityTermNamespacesIfNotEmpty`: resolve a non-empty namespaceSelector
    /// into namespace names now, so existing pods are matched without their namespace labels.
    fn merge_term_namespaces(&self, term: &mut AffinityTerm) {
        if term.namespace_selector.is_empty() {
            return;
        }
        for ns in self.namespaces.list() {
            if term
                .namespace_selector
                .matches_labels(ns.metadata.labels.as_ref())
                && let Some(name) = &ns.metadata.name
            {
                term.namespaces.insert(name.clone());
            }
        }
        term.namespace_selector = component_base::selectors::Selector::nothing();
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        names::INTER_POD_AFFINITY
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
        vec![
            ClusterEventWithHint::hinted(
                EventResource::Pod,
                action::ADD | action::UPDATE_POD_LABEL | action::DELETE,
                "PodChange",
            ),
            ClusterEventWithHint::hinted(
                EventResource::Node,
                action::ADD | action::UPDATE_NODE_LABEL,
                "NodeAddOrLabelChange",
            ),
        ]
    }
    fn queueing_hint(
        &self,
        pod: &Pod,
        _event: &ClusterEvent,
        old: Option<EventObject<'_>>,
        new: Option<EventObject<'_>>,
    ) -> QueueingHint {
        match (old, new) {
            (o, Some(EventObject::Node(n))) => {
                let o = match o {
                    Some(EventObject::Node(o)) => Some(o),
                    _ => None,
                };
                self.hint_node(pod, o, n)
            }
            (o, n) => self.hint_pod(pod, as_pod(o), as_pod(n)),
        }
    }
}

fn as_pod(x: Option<EventObject<'_>>) -> Option<&Pod> {
    match x {
        Some(EventObject::Pod(p)) => Some(p),
        _ => None,
    }
}

/// Upstream `podMatchesAllAffinityTerms` (false for no terms; namespace labels not consulted).
fn matches_all(terms: &[AffinityTerm], pod: &Pod) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, &BTreeMap::new()))
}

fn has_pod_affinity(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
}

fn label<'a>(n: &'a Node, key: &str) -> Option<&'a String> {
    n.metadata.labels.as_ref()?.get(key)
}

impl InterPodAffinity {
    /// Upstream `isSchedulableAfterPodChange`.
    fn hint_pod(&self, pod: &Pod, old: Option<&Pod>, new: Option<&Pod>) -> QueueingHint {
        if [old, new]
            .into_iter()
            .flatten()
            .any(|p| !crate::pod::assigned(p))
        {
            return QueueingHint::QueueSkip;
        }
        let Ok(terms) = PodAffinityTerms::of(pod) else {
            return QueueingHint::Queue;
        };
        let terms = terms.unwrap_or_default();
        let (aff, anti) = (&terms.required_affinity, &terms.required_anti_affinity);
        let queue = match (old, new) {
            (Some(o), Some(n)) => {
                (!matches_all(aff, o) && matches_all(aff, n))
                    || (matches_all(anti, o) && !matches_all(anti, n))
            }
            (None, Some(n)) => matches_all(aff, n),
            (Some(o), None) => has_pod_affinity(o) || matches_all(anti, o),
            (None, None) => false,
        };
        if queue {
            QueueingHint::Queue
        } else {
            QueueingHint::QueueSkip
        }
    }

    /// Upstream `isSchedulableAfterNodeChange`: the node gained (or changed) an affinity
    /// topology key, or lost (or changed) an anti-affinity one, or is new.
    fn hint_node(&self, pod: &Pod, old: Option<&Node>, new: &Node) -> QueueingHint {
        let Ok(terms) = PodAffinityTerms::of(pod) else {
            return QueueingHint::Queue;
        };
        let terms = terms.unwrap_or_default();
        for t in &terms.required_affinity {
            let (o, n) = (
                old.and_then(|o| label(o, &t.topology_key)),
                label(new, &t.topology_key),
            );
            let queue = match old {
                None => n.is_some(),
                Some(_) => n.is_some() && o != n,
            };
            if queue {
                return QueueingHint::Queue;
            }
        }
        for t in &terms.required_anti_affinity {
            let Some(old) = old else {
                return QueueingHint::Queue;
            };
            let (o, n) = (label(old, &t.topology_key), label(new, &t.topology_key));
            if o.is_some() && o != n {
                return QueueingHint::Queue;
            }
        }
        QueueingHint::QueueSkip
    }
}
