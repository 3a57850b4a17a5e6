//! Pure parts of namespace deletion (upstream
//! `pkg/controller/namespace/deletion`): status conditions, per-resource
//! outcomes, the graceful-termination estimate for pods and the finalize
//! step. The runner in `mod.rs` does the API calls around them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The finalizer this controller owns (`v1.FinalizerKubernetes`).
pub const FINALIZER_KUBERNETES: &str = "kubernetes";
/// Upstream `finalizerEstimateSeconds`.
pub const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
pub const GV_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// Condition types in upstream order with their all-clear reason/message.
const CONDITION_TYPES: [(&str, &str, &str); 5] = [
    (
        DISCOVERY_FAILURE,
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        GV_PARSING_FAILURE,
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        CONTENT_FAILURE,
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        CONTENT_REMAINING,
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        FINALIZERS_REMAINING,
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
];

/// What was left of the namespace's content after one pass
/// (upstream `allGVRDeletionMetadata`); keys are `resource.group`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContentTotals {
    pub remaining_by_resource: BTreeMap<String, usize>,
    pub remaining_by_finalizer: BTreeMap<String, usize>,
}

/// One resource type's result (upstream `gvrDeletionMetadata`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceOutcome {
    pub estimate_seconds: i64,
    pub remaining: usize,
    pub remaining_by_finalizer: BTreeMap<String, usize>,
}

/// Upstream tail of `deleteAllContentForGroupVersionResource`: given the
/// finalizers of each item still listed after deletion, decide the estimate
/// and whether the leftovers are an error (items without finalizers and no
/// graceful estimate should be gone already).
pub fn resource_outcome(
    resource: &str,
    namespace: &str,
    leftover_finalizers: &[Vec<String>],
    estimate: i64,
) -> (ResourceOutcome, Option<String>) {
    if leftover_finalizers.is_empty() {
        return (ResourceOutcome::default(), None);
    }
    let mut by_finalizer = BTreeMap::new();
    for finalizers in leftover_finalizers {
        for f in finalizers {
            *by_finalizer.entry(f.clone()).or_insert(0) += 1;
        }
    }
    let remaining = leftover_finalizers.len();
    if estimate != 0 {
        let outcome = ResourceOutcome {
            estimate_seconds: estimate,
            remaining,
            remaining_by_finalizer: by_finalizer,
        };
        return (outcome, None);
    }
    if !by_finalizer.is_empty() {
        let outcome = ResourceOutcome {
            estimate_seconds: FINALIZER_ESTIMATE_SECONDS,
            remaining,
            remaining_by_finalizer: by_finalizer,
        };
        return (outcome, None);
    }
    let outcome = ResourceOutcome {
        estimate_seconds: estimate,
        remaining,
        ..Default::default()
    };
    let err =
        format!("unexpected items still remain in namespace: {namespace} for gvr: {resource}");
    (outcome, Some(err))
}

impl ContentTotals {
    pub fn add(&mut self, resource: &str, outcome: &ResourceOutcome) {
        if outcome.remaining == 0 {
            return;
        }
        self.remaining_by_resource
            .insert(resource.to_string(), outcome.remaining);
        for (f, n) in &outcome.remaining_by_finalizer {
            if *n > 0 {
                *self.remaining_by_finalizer.entry(f.clone()).or_insert(0) += n;
            }
        }
    }
}

/// A pod as far as the estimate cares.
pub struct PodGrace {
    pub terminal: bool,
    pub termination_grace_period_seconds: Option<i64>,
    pub deletion_grace_period_seconds: Option<i64>,
}

/// Upstream `estimateGracefulTermination` for pods: the longest grace
/// period of non-terminal pods, or 0 once that long has passed since the
/// namespace was deleted.
pub fn estimate_for_pods(
    pods: &[PodGrace],
    namespace_deleted_at: Timestamp,
    now: Timestamp,
) -> i64 {
    let estimate = pods
        .iter()
        .filter(|p| !p.terminal)
        .map(|p| {
            p.deletion_grace_period_seconds
                .or(p.termination_grace_period_seconds)
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    let elapsed = now.as_second() - namespace_deleted_at.as_second();
    if elapsed >= estimate { 0 } else { estimate }
}

/// Upstream requeue after `ResourcesRemainingError`: half the estimate plus one second.
pub fn requeue_after_seconds(estimate: i64) -> u64 {
    (estimate / 2 + 1).max(1) as u64
}

/// Upstream `finalizeNamespace`: the spec finalizers without ours, sorted and de-duplicated.
pub fn finalizers_after_finalize(finalizers: &[String]) -> Vec<String> {
    let mut rest: Vec<String> = finalizers
        .iter()
        .filter(|f| *f != FINALIZER_KUBERNETES)
        .cloned()
        .collect();
    rest.sort();
    rest.dedup();
    rest
}

/// Collects failures during one pass and turns them into conditions
/// (upstream `namespaceConditionUpdater`).
#[derive(Debug, Default)]
pub struct ConditionUpdater {
    new_conditions: Vec<(String, String, String)>,
    delete_content_errors: Vec<String>,
}

impl ConditionUpdater {
    pub fn discovery_failed(&mut self, message: String) {
        self.new_conditions
            .push((DISCOVERY_FAILURE.into(), "DiscoveryFailed".into(), message));
    }

    pub fn group_version_failed(&mut self, message: String) {
        self.new_conditions.push((
            GV_PARSING_FAILURE.into(),
            "GroupVersionParsingFailed".into(),
            message,
        ));
    }

    pub fn delete_content_failed(&mut self, message: String) {
        self.delete_content_errors.push(message);
    }

    pub fn content_totals(&mut self, totals: &ContentTotals) {
        if !totals.remaining_by_resource.is_empty() {
            let mut parts: Vec<String> = totals
                .remaining_by_resource
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| format!("{r} has {n} resource instances"))
                .collect();
            parts.sort();
            self.new_conditions.push((
                CONTENT_REMAINING.into(),
                "SomeResourcesRemain".into(),
                format!("Some resources are remaining: {}", parts.join(", ")),
            ));
        }
        if !totals.remaining_by_finalizer.is_empty() {
            let mut parts: Vec<String> = totals
                .remaining_by_finalizer
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(f, n)| format!("{f} in {n} resource instances"))
                .collect();
            parts.sort();
            self.new_conditions.push((
                FINALIZERS_REMAINING.into(),
                "SomeFinalizersRemain".into(),
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    parts.join(", ")
                ),
            ));
        }
    }

    /// Upstream `Update`: writes all five conditions into `status`;
    /// `true` when anything changed (the runner then writes the status).
    pub fn update(mut self, status: &mut NamespaceStatus, now: Timestamp) -> bool {
        if !self.new_conditions.iter().any(|c| c.0 == CONTENT_FAILURE)
            && !self.delete_content_errors.is_empty()
        {
            let mut msgs = self.delete_content_errors.clone();
            msgs.sort();
            self.new_conditions.push((
                CONTENT_FAILURE.into(),
                "ContentDeletionFailed".into(),
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    msgs.len(),
                    msgs.join(", ")
                ),
            ));
        }
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        let mut changed = false;
        for (ty, ok_reason, ok_message) in CONDITION_TYPES {
            let (cond_status, reason, message) =
                match self.new_conditions.iter().find(|c| c.0 == ty) {
                    Some((_, reason, message)) => ("True", reason.as_str(), message.as_str()),
                    None => ("False", ok_reason, ok_message),
                };
            match conditions.iter_mut().find(|c| c.type_ == ty) {
                None => {
                    conditions.push(NamespaceCondition {
                        type_: ty.to_string(),
                        status: cond_status.to_string(),
                        reason: Some(reason.to_string()),
                        message: Some(message.to_string()),
                        last_transition_time: Some(Time(now)),
                    });
                    changed = true;
                }
                Some(old) => {
                    let differs = old.status != cond_status
                        || old.reason.as_deref() != Some(reason)
                        || old.message.as_deref() != Some(message);
                    if differs {
                        if old.status != cond_status {
                            old.last_transition_time = Some(Time(now));
                        }
                        old.status = cond_status.to_string();
                        old.reason = Some(reason.to_string());
                        old.message = Some(message.to_string());
                        changed = true;
                    }
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn find<'a>(status: &'a NamespaceStatus, ty: &str) -> &'a NamespaceCondition {
        let found = status.conditions.iter().flatten().find(|c| c.type_ == ty);
        found.unwrap_or_else(|| panic!("no {ty} condition"))
    }

    #[test]
    fn clean_pass_sets_all_five_conditions_false() {
        let mut status = NamespaceStatus::default();
        assert!(ConditionUpdater::default().update(&mut status, ts(1)));
        assert_eq!(status.conditions.as_ref().map(Vec::len), Some(5));
        let c = find(&status, CONTENT_REMAINING);
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some("ContentRemoved"))
        );
        // Nothing changes on a second identical pass.
        assert!(!ConditionUpdater::default().update(&mut status, ts(2)));
    }

    #[test]
    fn remaining_content_and_failures_become_true_conditions() {
        let mut totals = ContentTotals::default();
        let (pods, err) = resource_outcome("pods", "team", &[vec![], vec![]], 30);
        assert_eq!(err, None);
        totals.add("pods.", &pods);
        let (cms, err) =
            resource_outcome("configmaps", "team", &[vec!["example.com/keep".into()]], 0);
        assert_eq!(
            (cms.estimate_seconds, err),
            (FINALIZER_ESTIMATE_SECONDS, None)
        );
        totals.add("configmaps.", &cms);
        let mut updater = ConditionUpdater::default();
        updater.content_totals(&totals);
        updater.delete_content_failed("boom b".into());
        updater.delete_content_failed("boom a".into());
        updater.discovery_failed("Discovery failed for some groups, 1 failing: x".into());
        let mut status = NamespaceStatus::default();
        assert!(updater.update(&mut status, ts(1)));
        let c = find(&status, CONTENT_REMAINING);
        assert_eq!(c.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            c.message.as_deref(),
            Some(
                "Some resources are remaining: configmaps. has 1 resource instances, pods. has 2 resource instances"
            )
        );
        let f = find(&status, FINALIZERS_REMAINING);
        assert_eq!(
            f.message.as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: example.com/keep in 1 resource instances"
            )
        );
        let d = find(&status, CONTENT_FAILURE);
        assert_eq!(
            d.message.as_deref(),
            Some("Failed to delete all resource types, 2 remaining: boom a, boom b")
        );
        assert_eq!(
            find(&status, DISCOVERY_FAILURE).reason.as_deref(),
            Some("DiscoveryFailed")
        );
        assert_eq!(find(&status, GV_PARSING_FAILURE).status, "False");
    }

    #[test]
    fn leftovers_without_finalizers_or_estimate_are_an_error() {
        let (outcome, err) = resource_outcome("secrets", "team", &[vec![]], 0);
        assert_eq!(outcome.remaining, 1);
        assert_eq!(
            err.as_deref(),
            Some("unexpected items still remain in namespace: team for gvr: secrets")
        );
        assert_eq!(
            resource_outcome("secrets", "team", &[], 0),
            (ResourceOutcome::default(), None)
        );
    }

    #[test]
    fn pod_estimate_uses_longest_grace_until_it_has_passed() {
        let pods = [
            PodGrace {
                terminal: false,
                termination_grace_period_seconds: Some(30),
                deletion_grace_period_seconds: None,
            },
            PodGrace {
                terminal: false,
                termination_grace_period_seconds: Some(30),
                deletion_grace_period_seconds: Some(45),
            },
            PodGrace {
                terminal: true,
                termination_grace_period_seconds: Some(600),
                deletion_grace_period_seconds: None,
            },
        ];
        assert_eq!(estimate_for_pods(&pods, ts(100), ts(110)), 45);
        assert_eq!(estimate_for_pods(&pods, ts(100), ts(145)), 0);
        assert_eq!(estimate_for_pods(&[], ts(100), ts(100)), 0);
        assert_eq!(requeue_after_seconds(45), 23);
        assert_eq!(requeue_after_seconds(0), 1);
    }

    #[test]
    fn finalize_removes_only_kubernetes() {
        let got = finalizers_after_finalize(&[
            "kubernetes".into(),
            "z/x".into(),
            "a/b".into(),
            "a/b".into(),
        ]);
        assert_eq!(got, vec!["a/b".to_string(), "z/x".to_string()]);
    }
}
