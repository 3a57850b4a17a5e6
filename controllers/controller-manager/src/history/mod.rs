//! ControllerRevision history shared by the DaemonSet and StatefulSet
//! controllers (upstream `pkg/controller/history`): naming and hashing a
//! revision, telling equal revisions apart, ordering them, and creating one
//! with name-collision handling through `status.collisionCount`.

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use std::collections::BTreeMap;

use crate::control::ObjectControl;
use crate::error::Error;
use crate::hash::controller_revision_hash;

/// Upstream `history.ControllerRevisionHashLabel` (also
/// `apps.DefaultDaemonSetUniqueLabelKey` and
/// `apps.StatefulSetRevisionLabel`).
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// Upstream caps the parent-name prefix so `<prefix>-<hash>` stays a valid
/// name.
const MAX_PREFIX_LEN: usize = 223;

/// Upstream `ControllerRevisionName`.
pub fn controller_revision_name(prefix: &str, hash: &str) -> String {
    let prefix = match prefix.char_indices().nth(MAX_PREFIX_LEN) {
        Some((cut, _)) => &prefix[..cut],
        None => prefix,
    };
    format!("{prefix}-{hash}")
}

/// The bytes a revision's data hashes over (its raw JSON).
pub fn raw_data(revision: &ControllerRevision) -> Result<Vec<u8>, Error> {
    match &revision.data {
        Some(RawExtension(value)) => Ok(serde_json::to_vec(value)?),
        None => Ok(Vec::new()),
    }
}

/// Upstream `HashControllerRevision`.
pub fn hash_controller_revision(
    revision: &ControllerRevision,
    collision_count: Option<i32>,
) -> Result<String, Error> {
    Ok(controller_revision_hash(
        &raw_data(revision)?,
        collision_count,
    ))
}

/// Upstream `NewControllerRevision`: a revision of `parent` holding `data`,
/// labelled with the template's labels plus its hash, named after it.
pub fn new_controller_revision(
    parent: &ObjectMeta,
    owner: OwnerReference,
    template_labels: Option<&BTreeMap<String, String>>,
    data: serde_json::Value,
    revision: i64,
    collision_count: Option<i32>,
) -> Result<ControllerRevision, Error> {
    let mut cr = ControllerRevision {
        metadata: ObjectMeta {
            labels: Some(template_labels.cloned().unwrap_or_default()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    };
    let hash = hash_controller_revision(&cr, collision_count)?;
    cr.metadata.name = Some(controller_revision_name(
        parent.name.as_deref().unwrap_or_default(),
        &hash,
    ));
    cr.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash);
    Ok(cr)
}

fn label_hash(revision: &ControllerRevision) -> Option<u32> {
    let value = revision
        .metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH_LABEL)?;
    value.parse::<i32>().ok().map(|h| h as u32)
}

/// Upstream `EqualRevision`: different numeric hash labels mean different
/// revisions; otherwise the data decides.
pub fn equal_revision(lhs: &ControllerRevision, rhs: &ControllerRevision) -> bool {
    if let (Some(l), Some(r)) = (label_hash(lhs), label_hash(rhs))
        && l != r
    {
        return false;
    }
    lhs.data.as_ref().map(|d| &d.0) == rhs.data.as_ref().map(|d| &d.0)
}

/// Upstream `FindEqualRevisions`.
pub fn find_equal_revisions<'a>(
    revisions: &'a [ControllerRevision],
    needle: &ControllerRevision,
) -> Vec<&'a ControllerRevision> {
    revisions
        .iter()
        .filter(|r| equal_revision(r, needle))
        .collect()
}

/// Upstream `SortControllerRevisions`: by revision, then creation time,
/// then name.
pub fn sort_controller_revisions(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let t = |r: &ControllerRevision| r.metadata.creation_timestamp.clone().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// Upstream `NextRevision`: one past the highest (revisions sorted).
pub fn next_revision(revisions: &[ControllerRevision]) -> i64 {
    revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// Upstream `realHistory.CreateControllerRevision`: creates `revision`
/// under a name derived from its hash; on a name taken by a revision with
/// other data, bumps `collision_count` and tries the next name. Returns the
/// created (or identical existing) revision.
pub async fn create_controller_revision(
    control: &dyn ObjectControl<ControllerRevision>,
    parent: &ObjectMeta,
    revision: &ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision, Error> {
    let ns = parent.namespace.as_deref().unwrap_or_default();
    let mut clone = revision.clone();
    clone.metadata.namespace = Some(ns.to_string());
    loop {
        let hash = hash_controller_revision(revision, Some(*collision_count))?;
        let name = controller_revision_name(parent.name.as_deref().unwrap_or_default(), &hash);
        clone.metadata.name = Some(name.clone());
        match control.create(ns, &clone).await {
            Err(err) if err.is_already_exists() => {
                let existing = control.get(ns, &name).await?;
                if existing.data.as_ref().map(|d| &d.0) == clone.data.as_ref().map(|d| &d.0) {
                    return Ok(existing);
                }
                *collision_count += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests;
