//! Pure StatefulSet helpers (upstream `stateful_set_utils.go`): pod
//! identity (name, ordinal, labels, hostname), storage (PVCs from
//! volumeClaimTemplates), revisions and pod predicates.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

use crate::controller_utils::{is_pod_available, is_pod_ready, pod_from_template, pod_phase};
use crate::error::Error;
use crate::hash::template_patch;
use crate::history::{CONTROLLER_REVISION_HASH_LABEL, new_controller_revision};

/// Upstream `apps.StatefulSetPodNameLabel`.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Upstream `apps.PodIndexLabel` (PodIndexLabel is GA).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// Upstream `getParentNameAndOrdinal`: `<parent>-<ordinal>`, ordinal -1
/// when the name does not end in one.
pub fn parent_and_ordinal(name: &str) -> (Option<&str>, i32) {
    let Some((parent, ordinal)) = name.rsplit_once('-') else {
        return (None, -1);
    };
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return (None, -1);
    }
    match ordinal.parse::<i32>() {
        Ok(o) => (Some(parent), o),
        Err(_) => (None, -1),
    }
}

/// Upstream `getOrdinal`.
pub fn ordinal(pod: &Pod) -> i32 {
    parent_and_ordinal(pod.metadata.name.as_deref().unwrap_or_default()).1
}

/// Upstream `getStartOrdinal` (`.spec.ordinals.start`).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Upstream `getEndOrdinal`.
pub fn end_ordinal(set: &StatefulSet) -> i32 {
    start_ordinal(set) + replicas(set) - 1
}

/// Upstream `podInOrdinalRange`.
pub fn in_ordinal_range(pod: &Pod, set: &StatefulSet) -> bool {
    let o = ordinal(pod);
    o >= start_ordinal(set) && o <= end_ordinal(set)
}

/// Upstream `getPodName`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.name_any())
}

/// Upstream `isMemberOf`.
pub fn is_member_of(set: &StatefulSet, pod: &Pod) -> bool {
    parent_and_ordinal(pod.metadata.name.as_deref().unwrap_or_default()).0
        == Some(set.name_any().as_str())
}

/// Upstream `getPersistentVolumeClaimName`.
pub fn claim_name(set: &StatefulSet, template: &PersistentVolumeClaim, ordinal: i32) -> String {
    format!("{}-{}-{ordinal}", template.name_any(), set.name_any())
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default()
}

/// Upstream `getPersistentVolumeClaims`: the pod's claims, keyed by
/// template name, labelled with the set's selector labels.
pub fn claims_for(set: &StatefulSet, pod: &Pod) -> Vec<(String, PersistentVolumeClaim)> {
    let o = ordinal(pod);
    let selector_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|template| {
            let mut claim = template.clone();
            claim.metadata.name = Some(claim_name(set, template, o));
            claim.metadata.namespace = set.metadata.namespace.clone();
            let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(selector_labels.clone());
            claim.status = None;
            (template.name_any(), claim)
        })
        .collect()
}

/// Upstream `updateIdentity`.
pub fn update_identity(set: &StatefulSet, pod: &mut Pod) {
    let o = ordinal(pod);
    let name = pod_name(set, o);
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = set.metadata.namespace.clone();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name);
    labels.insert(POD_INDEX_LABEL.into(), o.to_string());
}

/// Upstream `identityMatches`.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let (parent, o) = parent_and_ordinal(name);
    let label = |k: &str| pod.metadata.labels.as_ref().and_then(|l| l.get(k)).cloned();
    o >= 0
        && parent == Some(set.name_any().as_str())
        && name == pod_name(set, o)
        && pod.metadata.namespace == set.metadata.namespace
        && label(POD_NAME_LABEL).as_deref() == Some(name)
        && label(POD_INDEX_LABEL) == Some(o.to_string())
}

/// Upstream `updateStorage`: one PVC volume per claim template, replacing
/// template volumes of the same name.
pub fn update_storage(set: &StatefulSet, pod: &mut Pod) {
    let claims = claims_for(set, pod);
    let spec = pod.spec.get_or_insert_with(Default::default);
    let current = spec.volumes.take().unwrap_or_default();
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(name, claim)| Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.name_any(),
                read_only: Some(false),
            }),
            ..Default::default()
        })
        .collect();
    volumes.extend(
        current
            .into_iter()
            .filter(|v| !claims.iter().any(|(name, _)| *name == v.name)),
    );
    spec.volumes = Some(volumes);
}

/// Upstream `storageMatches`.
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let o = ordinal(pod);
    if o < 0 {
        return false;
    }
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    claim_templates(set).iter().all(|template| {
        volumes
            .iter()
            .find(|v| v.name == template.name_any())
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .is_some_and(|pvc| pvc.claim_name == claim_name(set, template, o))
    })
}

/// Upstream `newStatefulSetPod`: the pod for `ordinal`, with its identity
/// (hostname and subdomain only at creation) and storage.
pub fn new_pod(set: &StatefulSet, ordinal: i32, owner: OwnerReference) -> Pod {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = pod_from_template(&template, &set.name_any(), Some(owner));
    pod.metadata.name = Some(pod_name(set, ordinal));
    update_identity(set, &mut pod);
    let service = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = pod.metadata.name.clone();
    spec.subdomain = service;
    update_storage(set, &mut pod);
    pod
}

/// Upstream `getPodRevision`.
pub fn pod_revision(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL))
        .map(String::as_str)
        .unwrap_or_default()
}

/// Upstream `setPodRevision`.
pub fn set_pod_revision(pod: &mut Pod, revision: &str) {
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(CONTROLLER_REVISION_HASH_LABEL.into(), revision.into());
}

fn strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

pub fn is_on_delete(set: &StatefulSet) -> bool {
    strategy_type(set) == "OnDelete"
}

pub fn is_rolling_update(set: &StatefulSet) -> bool {
    strategy_type(set) == "RollingUpdate"
}

/// The RollingUpdate partition, when one is set.
pub fn partition(set: &StatefulSet) -> Option<i32> {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .map(|r| r.partition.unwrap_or(0))
}

/// Upstream `newVersionedStatefulSetPod`: ordinals below the partition (or
/// below currentReplicas without one) stay at the current revision.
pub fn new_versioned_pod(
    current_set: &StatefulSet,
    update_set: &StatefulSet,
    current_revision: &str,
    update_revision: &str,
    ordinal: i32,
    owner: OwnerReference,
) -> Pod {
    let current_replicas = current_set
        .status
        .as_ref()
        .map(|s| s.current_replicas.unwrap_or(0))
        .unwrap_or(0);
    let start = start_ordinal(current_set);
    // Upstream's condition, precedence included: `a && b || c`.
    let stays_current = (is_rolling_update(current_set)
        && partition(current_set).is_none()
        && ordinal < start + current_replicas)
        || partition(current_set).is_some_and(|p| ordinal < start + p);
    let (set, revision) = if stays_current {
        (current_set, current_revision)
    } else {
        (update_set, update_revision)
    };
    let mut pod = new_pod(set, ordinal, owner);
    set_pod_revision(&mut pod, revision);
    pod
}

/// Upstream `getPatch`: the revision data of the set's template.
pub fn patch_of(set: &StatefulSet) -> Result<serde_json::Value, Error> {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let bytes = template_patch(&template).map_err(|e| Error::InvalidObject {
        object: set.name_any(),
        reason: e.to_string(),
    })?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Upstream `newRevision`: the set's template as revision `revision`,
/// carrying the set's annotations.
pub fn new_revision(
    set: &StatefulSet,
    owner: OwnerReference,
    revision: i64,
    collision_count: i32,
) -> Result<ControllerRevision, Error> {
    let labels = set
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let mut cr = new_controller_revision(
        &set.metadata,
        owner,
        labels,
        patch_of(set)?,
        revision,
        Some(collision_count),
    )?;
    let annotations = cr.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if let Some(set_annotations) = &set.metadata.annotations {
        annotations.extend(set_annotations.clone());
    }
    Ok(cr)
}

/// Upstream `ApplyRevision`: the set with the revision's template (the
/// revision is a `$patch: replace` of `spec.template`).
pub fn apply_revision(
    set: &StatefulSet,
    revision: &ControllerRevision,
) -> Result<StatefulSet, Error> {
    let mut out = set.clone();
    let Some(mut template) = revision
        .data
        .as_ref()
        .and_then(|d| d.0.get("spec"))
        .and_then(|s| s.get("template"))
        .cloned()
    else {
        return Ok(out);
    };
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    let template: PodTemplateSpec = serde_json::from_value(template)?;
    if let Some(spec) = out.spec.as_mut() {
        spec.template = template;
    }
    Ok(out)
}

// --- pod predicates -------------------------------------------------------

/// Upstream `isCreated`: a pod we only constructed has no phase.
pub fn is_created(pod: &Pod) -> bool {
    !pod_phase(pod).is_empty()
}

pub fn is_pending(pod: &Pod) -> bool {
    pod_phase(pod) == "Pending"
}

pub fn is_failed(pod: &Pod) -> bool {
    pod_phase(pod) == "Failed"
}

pub fn is_succeeded(pod: &Pod) -> bool {
    pod_phase(pod) == "Succeeded"
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Upstream `isRunningAndReady`.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    pod_phase(pod) == "Running" && is_pod_ready(pod)
}

/// Upstream `isRunningAndAvailable`.
pub fn is_running_and_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    pod_phase(pod) == "Running" && is_pod_available(pod, min_ready_seconds, now)
}

/// Upstream `isHealthy`.
pub fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}
