//! Owner references: upstream `metav1.GetControllerOf` / `IsControlledBy` /
//! `NewControllerRef`, and the adopt/release logic of
//! `pkg/controller/controller_ref_manager.go` as pure functions plus the exact
//! strategic-merge patch bodies upstream sends.

mod claim;
mod patch;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

pub use claim::{
    ClaimDecision, ClaimPlan, ClaimingController, OwnerRefError, adoption_error_is_ignorable,
    claim_decision, plan_claims, plan_claims_by_selector, recheck_deletion_timestamp,
    release_error_is_ignorable,
};
pub use patch::{AdoptPatch, ReleasePatch, adopt_patch, release_patch};

/// The owner reference marked `controller: true`, if any (upstream
/// `GetControllerOfNoCopy`: the first one wins).
pub fn get_controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Upstream `IsControlledBy`: the controller reference points at `owner_uid`.
pub fn is_controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    get_controller_of(meta).is_some_and(|r| r.uid == owner_uid)
}

/// Upstream `NewControllerRef`: controller and blockOwnerDeletion set.
pub fn new_controller_ref(
    owner: &ObjectMeta,
    api_version: impl Into<String>,
    kind: impl Into<String>,
) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        block_owner_deletion: Some(true),
        controller: Some(true),
    }
}

/// [`new_controller_ref`] with the owner's statically known group/version/kind.
pub fn new_controller_ref_for<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    new_controller_ref(owner.meta(), K::api_version(&()), K::kind(&()))
}
