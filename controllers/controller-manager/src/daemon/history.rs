//! A DaemonSet's ControllerRevisions (upstream `update.go`
//! `constructHistory`, `snapshot`, `dedupCurHistories`, `cleanupHistory`):
//! one revision per template, the current one found by comparing the
//! stored patch with the DaemonSet's, named after the template hash.

use std::collections::{BTreeMap, HashSet};

use component_base::ownerref::{self, ClaimingController};
use component_base::selectors::Selector;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::ResourceExt;

use super::controller::Controller;
use crate::controller_utils::{self, Key};
use crate::error::Error;
use crate::hash::{pod_template_hash, template_patch};
use crate::history::{CONTROLLER_REVISION_HASH_LABEL, controller_revision_name};

/// Upstream `DaemonSetSpec.RevisionHistoryLimit` default.
const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

fn invalid(ds: &DaemonSet, reason: impl ToString) -> Error {
    Error::InvalidObject {
        object: Key::of(ds).to_string(),
        reason: reason.to_string(),
    }
}

/// Upstream `getPatch`: the revision data of the DaemonSet's template.
pub fn patch_of(ds: &DaemonSet) -> Result<serde_json::Value, Error> {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let bytes = template_patch(&template).map_err(|e| invalid(ds, e))?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Upstream `Match`: the revision stores this DaemonSet's template.
pub fn matches(patch: &serde_json::Value, revision: &ControllerRevision) -> bool {
    revision.data.as_ref().map(|d| &d.0) == Some(patch)
}

/// Upstream `snapshot`'s hash: `ComputeHash(template, collisionCount)`.
pub fn revision_hash(ds: &DaemonSet) -> String {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
    pod_template_hash(&template, collisions)
}

/// The revision `snapshot` creates for `ds` at number `revision`.
pub fn new_revision(ds: &DaemonSet, patch: serde_json::Value, revision: i64) -> ControllerRevision {
    let hash = revision_hash(ds);
    let mut labels: BTreeMap<String, String> = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(controller_revision_name(&ds.name_any(), &hash)),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![ownerref::new_controller_ref_for(ds)]),
            ..Default::default()
        },
        data: Some(RawExtension(patch)),
        revision,
    }
}

/// Upstream `cleanupHistory`'s choice: the oldest old revisions beyond
/// `revisionHistoryLimit` that no live pod still carries.
pub fn revisions_to_clean<'a>(
    ds: &DaemonSet,
    old: &'a [ControllerRevision],
    live_hashes: &HashSet<String>,
) -> Vec<&'a ControllerRevision> {
    let keep = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
        .max(0) as usize;
    let Some(mut to_kill) = old.len().checked_sub(keep).filter(|n| *n > 0) else {
        return Vec::new();
    };
    let mut sorted: Vec<&ControllerRevision> = old.iter().collect();
    sorted.sort_by_key(|r| r.revision);
    let mut out = Vec::new();
    for rev in sorted {
        if to_kill == 0 {
            break;
        }
        let live = rev
            .labels()
            .get(CONTROLLER_REVISION_HASH_LABEL)
            .is_some_and(|h| live_hashes.contains(h));
        if live {
            continue;
        }
        out.push(rev);
        to_kill -= 1;
    }
    out
}

impl Controller {
    /// Upstream `controlledHistories`: the revisions this DaemonSet
    /// controls after adopting matching orphans and releasing strays.
    async fn controlled_histories(
        &self,
        ds: &DaemonSet,
        selector: &Selector,
    ) -> Result<Vec<ControllerRevision>, Error> {
        let ns = ds.namespace().unwrap_or_default();
        let candidates: Vec<ControllerRevision> = self
            .revisions
            .state()
            .iter()
            .filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()))
            .map(|r| r.as_ref().clone())
            .collect();
        let me = ClaimingController::from_resource(ds);
        let plan = ownerref::plan_claims_by_selector(&me, selector, candidates.iter());
        let mut owned: Vec<ControllerRevision> = plan.owned.into_iter().cloned().collect();
        if !plan.adopt.is_empty() && self.can_adopt(ds, &me).await {
            for rev in plan.adopt {
                let patch = controller_utils::adopt_patch(&me, controller_utils::uid_of(rev))?;
                let result = self.cr_control.patch(&ns, &rev.name_any(), patch).await;
                if let Some(adopted) = controller_utils::adopted(result)? {
                    owned.push(adopted);
                }
            }
        }
        for rev in plan.release {
            let patch = controller_utils::release_patch(&me, controller_utils::uid_of(rev))?;
            controller_utils::released(self.cr_control.patch(&ns, &rev.name_any(), patch).await)?;
        }
        Ok(owned)
    }

    /// Upstream `constructHistory`: (current revision, old revisions),
    /// creating the current one or renumbering it as the newest.
    pub(super) async fn construct_history(
        &self,
        ds: &DaemonSet,
        selector: &Selector,
        pods: &[&Pod],
    ) -> Result<(ControllerRevision, Vec<ControllerRevision>), Error> {
        let ns = ds.namespace().unwrap_or_default();
        let patch = patch_of(ds)?;
        let mut current = Vec::new();
        let mut old = Vec::new();
        for mut rev in self.controlled_histories(ds, selector).await? {
            if !rev.labels().contains_key(CONTROLLER_REVISION_HASH_LABEL) {
                // The name stands in for the hash, so a collision cannot bite.
                let name = rev.name_any();
                rev.labels_mut()
                    .insert(CONTROLLER_REVISION_HASH_LABEL.into(), name);
                rev = self.cr_control.update(&ns, &rev).await?;
            }
            if matches(&patch, &rev) {
                current.push(rev);
            } else {
                old.push(rev);
            }
        }
        let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
        let cur = if current.is_empty() {
            self.snapshot(ds, patch, next).await?
        } else {
            let mut cur = self.dedup_current(ds, current, pods).await?;
            if cur.revision < next {
                cur.revision = next;
                cur = self.cr_control.update(&ns, &cur).await?;
            }
            cur
        };
        Ok((cur, old))
    }

    /// Upstream `snapshot`: creates the current revision; a name taken by
    /// another template bumps `status.collisionCount` and fails the sync
    /// (the next one uses the new hash).
    async fn snapshot(
        &self,
        ds: &DaemonSet,
        patch: serde_json::Value,
        revision: i64,
    ) -> Result<ControllerRevision, Error> {
        let ns = ds.namespace().unwrap_or_default();
        let history = new_revision(ds, patch.clone(), revision);
        match self.cr_control.create(&ns, &history).await {
            Err(err) if err.is_already_exists() => {
                let existing = self.cr_control.get(&ns, &history.name_any()).await?;
                if matches(&patch, &existing) {
                    return Ok(existing);
                }
                let mut fresh = self.ds_control.get(&ns, &ds.name_any()).await?;
                let status = fresh.status.get_or_insert_with(Default::default);
                let count = status.collision_count.unwrap_or(0) + 1;
                status.collision_count = Some(count);
                self.ds_control.update_status(&ns, &fresh).await?;
                tracing::info!(daemonset = %Key::of(ds), collision_count = count,
                    "found a hash collision for DaemonSet, bumping collisionCount to resolve it");
                Err(err)
            }
            other => other,
        }
    }

    /// Upstream `dedupCurHistories`: keep the highest-numbered equal
    /// revision, move pods onto its hash, delete the others.
    async fn dedup_current(
        &self,
        ds: &DaemonSet,
        mut current: Vec<ControllerRevision>,
        pods: &[&Pod],
    ) -> Result<ControllerRevision, Error> {
        let ns = ds.namespace().unwrap_or_default();
        // The last of the highest revision wins, as upstream's `>=` scan.
        let keep_at = current
            .iter()
            .enumerate()
            .max_by(|(ia, a), (ib, b)| a.revision.cmp(&b.revision).then(ia.cmp(ib)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let keep = current.swap_remove(keep_at);
        let keep_hash = keep
            .labels()
            .get(CONTROLLER_REVISION_HASH_LABEL)
            .cloned()
            .unwrap_or_default();
        for dup in current {
            for pod in pods {
                if pod.labels().get(CONTROLLER_REVISION_HASH_LABEL) != Some(&keep_hash) {
                    let patch = serde_json::json!({
                        "metadata": {"labels": {CONTROLLER_REVISION_HASH_LABEL: keep_hash}}
                    });
                    self.pod_control
                        .patch_pod(&ns, &pod.name_any(), patch)
                        .await?;
                }
            }
            match self.cr_control.delete(&ns, &dup.name_any()).await {
                Err(err) if !err.is_not_found() => return Err(err),
                _ => {}
            }
        }
        Ok(keep)
    }

    /// Upstream `cleanupHistory`.
    pub(super) async fn cleanup_history(
        &self,
        ds: &DaemonSet,
        old: &[ControllerRevision],
        pods: &[&Pod],
    ) -> Result<(), Error> {
        let ns = ds.namespace().unwrap_or_default();
        let live: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.labels().get(CONTROLLER_REVISION_HASH_LABEL).cloned())
            .filter(|h| !h.is_empty())
            .collect();
        for rev in revisions_to_clean(ds, old, &live) {
            match self.cr_control.delete(&ns, &rev.name_any()).await {
                Err(err) if !err.is_not_found() => return Err(err),
                _ => {}
            }
        }
        Ok(())
    }
}
