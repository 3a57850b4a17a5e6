//! Upstream `BaseControllerRefManager.ClaimObject` as a decision function:
//! which candidates a controller already owns, should adopt, or should release.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::get_controller_of;
use crate::selectors::Selector;

/// The controller doing the claiming (upstream `m.Controller` plus
/// `m.controllerKind`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimingController {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// Empty for cluster-scoped controllers (they may claim in any namespace).
    pub namespace: String,
    pub uid: String,
    /// `metadata.deletionTimestamp` is set.
    pub being_deleted: bool,
}

impl ClaimingController {
    pub fn from_resource<K: Resource<DynamicType = ()>>(controller: &K) -> Self {
        let meta = controller.meta();
        ClaimingController {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            being_deleted: meta.deletion_timestamp.is_some(),
        }
    }

    /// The controller reference this controller sets on what it adopts.
    pub fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            block_owner_deletion: Some(true),
            controller: Some(true),
        }
    }
}

/// What to do with one candidate object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Ours and still matching: claimed, no action (even while the
    /// controller is being deleted).
    Owned,
    /// A matching orphan: send the adoption patch; claimed once it succeeds.
    Adopt,
    /// Ours but no longer matching: send the release patch.
    Release,
    /// Someone else's, or an orphan we must not adopt: leave it alone.
    Ignore,
}

/// Upstream `ClaimObject` for one object, given whether it matches the
/// controller's selector.
pub fn claim_decision(
    controller: &ClaimingController,
    obj: &ObjectMeta,
    matches: bool,
) -> ClaimDecision {
    if let Some(controller_ref) = get_controller_of(obj) {
        if controller_ref.uid != controller.uid {
            return ClaimDecision::Ignore;
        }
        if matches {
            return ClaimDecision::Owned;
        }
        // Releasing is an action; a controller being deleted takes none.
        if controller.being_deleted {
            return ClaimDecision::Ignore;
        }
        return ClaimDecision::Release;
    }
    let obj_namespace = obj.namespace.as_deref().unwrap_or_default();
    let adoptable = !controller.being_deleted
        && matches
        && obj.deletion_timestamp.is_none()
        && (controller.namespace.is_empty() || controller.namespace == obj_namespace);
    if adoptable {
        ClaimDecision::Adopt
    } else {
        ClaimDecision::Ignore
    }
}

/// Candidates sorted by decision (ignored ones are dropped).
#[derive(Debug)]
pub struct ClaimPlan<'a, K> {
    pub owned: Vec<&'a K>,
    pub adopt: Vec<&'a K>,
    pub release: Vec<&'a K>,
}

impl<K> Default for ClaimPlan<'_, K> {
    fn default() -> Self {
        ClaimPlan {
            owned: Vec::new(),
            adopt: Vec::new(),
            release: Vec::new(),
        }
    }
}

/// Decides every candidate with a custom match function (upstream passes
/// e.g. StatefulSet's `isMemberOf` in addition to the selector).
pub fn plan_claims<'a, K: Resource>(
    controller: &ClaimingController,
    candidates: impl IntoIterator<Item = &'a K>,
    matches: impl Fn(&K) -> bool,
) -> ClaimPlan<'a, K> {
    let mut plan = ClaimPlan::default();
    for obj in candidates {
        match claim_decision(controller, obj.meta(), matches(obj)) {
            ClaimDecision::Owned => plan.owned.push(obj),
            ClaimDecision::Adopt => plan.adopt.push(obj),
            ClaimDecision::Release => plan.release.push(obj),
            ClaimDecision::Ignore => {}
        }
    }
    plan
}

/// [`plan_claims`] matching candidates' labels against `selector`
/// (upstream `ClaimPods` / `ClaimReplicaSets` / `ClaimControllerRevisions`).
pub fn plan_claims_by_selector<'a, K: Resource>(
    controller: &ClaimingController,
    selector: &Selector,
    candidates: impl IntoIterator<Item = &'a K>,
) -> ClaimPlan<'a, K> {
    plan_claims(controller, candidates, |obj| {
        selector.matches_labels(obj.meta().labels.as_ref())
    })
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OwnerRefError {
    /// The controller seen in the cache was deleted and re-created.
    #[error("original {namespace}/{name} is gone: got uid {got}, wanted {wanted}")]
    ControllerReplaced {
        namespace: String,
        name: String,
        got: String,
        wanted: String,
    },
    /// The controller started terminating after the cache saw it.
    #[error("{namespace}/{name} has just been deleted at {deleted_at}")]
    ControllerDeleted {
        namespace: String,
        name: String,
        deleted_at: String,
    },
}

/// Upstream `RecheckDeletionTimestamp` (the `CanAdopt` guard run once before
/// the first adoption): `fresh` is the controller read directly from the
/// apiserver, bypassing the cache.
pub fn recheck_deletion_timestamp(
    controller: &ClaimingController,
    fresh: &ObjectMeta,
) -> Result<(), OwnerRefError> {
    let namespace = fresh.namespace.clone().unwrap_or_default();
    let name = fresh.name.clone().unwrap_or_default();
    let fresh_uid = fresh.uid.clone().unwrap_or_default();
    if fresh_uid != controller.uid {
        return Err(OwnerRefError::ControllerReplaced {
            namespace,
            name,
            got: fresh_uid,
            wanted: controller.uid.clone(),
        });
    }
    if let Some(ts) = &fresh.deletion_timestamp {
        return Err(OwnerRefError::ControllerDeleted {
            namespace,
            name,
            deleted_at: ts.0.to_string(),
        });
    }
    Ok(())
}

fn api_status(err: &kube::Error) -> Option<&kube::core::Status> {
    match err {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

/// An adoption patch failing with NotFound means the object is gone: not
/// claimed, but not an error either.
pub fn adoption_error_is_ignorable(err: &kube::Error) -> bool {
    api_status(err).is_some_and(|s| s.is_not_found())
}

/// A release patch failing with NotFound (object gone) or Invalid (the uid
/// precondition failed: recreated, or no owner reference left) is fine.
pub fn release_error_is_ignorable(err: &kube::Error) -> bool {
    api_status(err).is_some_and(|s| s.is_not_found() || s.is_invalid())
}
