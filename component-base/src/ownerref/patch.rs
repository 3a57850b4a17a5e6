//! The strategic-merge patch bodies upstream's controller_ref_manager sends
//! (`ownerRefControllerPatch`, `GenerateDeleteOwnerRefStrategicMergeBytes`),
//! field for field and in the same order. Both carry `metadata.uid` of the
//! dependent as a precondition: the apiserver rejects the patch (Invalid) if
//! the object was deleted and re-created under the same name.

use serde::Serialize;

use super::claim::ClaimingController;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ControllerRefForPatch {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
    controller: bool,
    block_owner_deletion: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct AdoptMetadata {
    owner_references: [ControllerRefForPatch; 1],
    uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    finalizers: Vec<String>,
}

/// Adds the controller reference (merged by uid into ownerReferences) and
/// optional finalizers. Send as `Patch::Strategic`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdoptPatch {
    metadata: AdoptMetadata,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct DeleteOwnerRef {
    #[serde(rename = "$patch")]
    patch: &'static str,
    uid: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct ReleaseMetadata {
    uid: String,
    #[serde(rename = "ownerReferences")]
    owner_references: Option<Vec<DeleteOwnerRef>>,
    #[serde(
        rename = "$deleteFromPrimitiveList/finalizers",
        skip_serializing_if = "Vec::is_empty"
    )]
    delete_finalizers: Vec<String>,
}

/// Deletes the given owners' references (and optional finalizers). Send as
/// `Patch::Strategic`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReleasePatch {
    metadata: ReleaseMetadata,
}

impl AdoptPatch {
    /// The JSON body, byte-identical to upstream's.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

impl ReleasePatch {
    /// The JSON body, byte-identical to upstream's.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

/// Upstream `ownerRefControllerPatch`.
pub fn adopt_patch(
    controller: &ClaimingController,
    dependent_uid: &str,
    finalizers: &[String],
) -> AdoptPatch {
    AdoptPatch {
        metadata: AdoptMetadata {
            owner_references: [ControllerRefForPatch {
                api_version: controller.api_version.clone(),
                kind: controller.kind.clone(),
                name: controller.name.clone(),
                uid: controller.uid.clone(),
                controller: true,
                block_owner_deletion: true,
            }],
            uid: dependent_uid.to_string(),
            finalizers: finalizers.to_vec(),
        },
    }
}

/// Upstream `GenerateDeleteOwnerRefStrategicMergeBytes`.
pub fn release_patch(
    dependent_uid: &str,
    owner_uids: &[&str],
    finalizers: &[String],
) -> ReleasePatch {
    // Go marshals an empty owner list as null; keep the same bytes.
    let owner_references = (!owner_uids.is_empty()).then(|| {
        owner_uids
            .iter()
            .map(|uid| DeleteOwnerRef {
                patch: "delete",
                uid: uid.to_string(),
            })
            .collect()
    });
    ReleasePatch {
        metadata: ReleaseMetadata {
            uid: dependent_uid.to_string(),
            owner_references,
            delete_finalizers: finalizers.to_vec(),
        },
    }
}
