//! Parsed pod (anti-)affinity terms (upstream `framework.AffinityTerm`, `WeightedAffinityTerm`
//! and the affinity part of `framework.NewPodInfo`), computed once per pod.

use std::collections::{BTreeMap, HashSet};

use component_base::selectors::{Selector, SelectorError};
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};

/// One required or preferred term, resolved against the pod that carries it.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub namespaces: HashSet<String>,
    pub selector: Selector,
    pub topology_key: String,
    pub namespace_selector: Selector,
}

impl AffinityTerm {
    /// Upstream `newAffinityTerm`: no namespaces and no namespaceSelector mean the owner's
    /// namespace; a nil namespaceSelector selects no namespace.
    pub fn new(owner: &Pod, term: &PodAffinityTerm) -> Result<Self, SelectorError> {
        let selector = Selector::from_label_selector(term.label_selector.as_ref())?;
        let namespace_selector = Selector::from_label_selector(term.namespace_selector.as_ref())?;
        let listed = term.namespaces.as_deref().unwrap_or_default();
        let namespaces = if listed.is_empty() && term.namespace_selector.is_none() {
            HashSet::from([owner.metadata.namespace.clone().unwrap_or_default()])
        } else {
            listed.iter().cloned().collect()
        };
        Ok(AffinityTerm {
            namespaces,
            selector,
            topology_key: term.topology_key.clone(),
            namespace_selector,
        })
    }

    /// Upstream `AffinityTerm.Matches`: `pod` is in one of the term's namespaces (by name or by
    /// `ns_labels`, the labels of the pod's namespace) and its labels match the selector.
    pub fn matches(&self, pod: &Pod, ns_labels: &BTreeMap<String, String>) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        (self.namespaces.contains(ns) || self.namespace_selector.matches(ns_labels))
            && self.selector.matches_labels(pod.metadata.labels.as_ref())
    }
}

#[derive(Debug, Clone)]
pub struct WeightedAffinityTerm {
    pub term: AffinityTerm,
    pub weight: i32,
}

/// The four term lists of a pod (upstream `PodInfo.Required*/Preferred*Terms`).
#[derive(Debug, Clone, Default)]
pub struct PodAffinityTerms {
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
}

fn required(
    pod: &Pod,
    terms: Option<&Vec<PodAffinityTerm>>,
) -> Result<Vec<AffinityTerm>, SelectorError> {
    terms
        .into_iter()
        .flatten()
        .map(|t| AffinityTerm::new(pod, t))
        .collect()
}

fn preferred(
    pod: &Pod,
    terms: Option<&Vec<WeightedPodAffinityTerm>>,
) -> Result<Vec<WeightedAffinityTerm>, SelectorError> {
    terms
        .into_iter()
        .flatten()
        .map(|t| {
            Ok(WeightedAffinityTerm {
                term: AffinityTerm::new(pod, &t.pod_affinity_term)?,
                weight: t.weight,
            })
        })
        .collect()
}

impl PodAffinityTerms {
    /// `Ok(None)` when the pod has neither podAffinity nor podAntiAffinity; the first parse
    /// error otherwise (upstream `NewPodInfo` for the pod being scheduled).
    pub fn of(pod: &Pod) -> Result<Option<Self>, SelectorError> {
        match Self::parse(pod) {
            None => Ok(None),
            Some((_, Some(e))) => Err(e),
            Some((t, None)) => Ok(Some(t)),
        }
    }

    /// Like [`PodAffinityTerms::of`] but keeps the lists that parsed (upstream keeps an
    /// existing pod's PodInfo with the failing list empty).
    pub fn of_lossy(pod: &Pod) -> Option<Self> {
        Self::parse(pod).map(|(t, _)| t)
    }

    fn parse(pod: &Pod) -> Option<(Self, Option<SelectorError>)> {
        let affinity = pod.spec.as_ref()?.affinity.as_ref()?;
        let (aff, anti) = (&affinity.pod_affinity, &affinity.pod_anti_affinity);
        if aff.is_none() && anti.is_none() {
            return None;
        }
        let mut err = None;
        let mut keep = |r: Result<Vec<_>, SelectorError>| -> Vec<_> {
            r.unwrap_or_else(|e| {
                err.get_or_insert(e);
                Vec::new()
            })
        };
        let req_aff = aff.as_ref().and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
        let req_anti = anti.as_ref().and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
        let pref_aff = aff.as_ref().and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
        let pref_anti = anti.as_ref().and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
        let required_affinity = keep(required(pod, req_aff));
        let required_anti_affinity = keep(required(pod, req_anti));
        let preferred_affinity = preferred(pod, pref_aff).unwrap_or_else(|e| {
            err.get_or_insert(e);
            Vec::new()
        });
        let preferred_anti_affinity = preferred(pod, pref_anti).unwrap_or_else(|e| {
            err.get_or_insert(e);
            Vec::new()
        });
        let terms = PodAffinityTerms {
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
        };
        Some((terms, err))
    }
}
