//! A StatefulSet's current and update revisions (upstream
//! `getStatefulSetRevisions` and `truncateHistory`).

use std::collections::HashSet;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

use super::Controller;
use super::utils::{new_revision, pod_revision};
use crate::error::Error;
use crate::history::{create_controller_revision, equal_revision, next_revision};

/// What to do for the update revision, given the sorted revisions and the
/// one the set's template makes.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateRevision {
    /// The newest revision already holds the template.
    Latest(usize),
    /// An older equal revision: renumber it as the newest (a rollback).
    Renumber(usize),
    /// No equal revision: create it.
    Create,
}

/// Upstream `getStatefulSetRevisions`' choice.
pub fn choose_update_revision(
    sorted: &[ControllerRevision],
    candidate: &ControllerRevision,
) -> UpdateRevision {
    let equal: Vec<usize> = sorted
        .iter()
        .enumerate()
        .filter(|(_, r)| equal_revision(r, candidate))
        .map(|(i, _)| i)
        .collect();
    match (equal.last(), sorted.last()) {
        (Some(&i), Some(latest)) if equal_revision(latest, &sorted[i]) => {
            UpdateRevision::Latest(sorted.len() - 1)
        }
        (Some(&i), _) => UpdateRevision::Renumber(i),
        (None, _) => UpdateRevision::Create,
    }
}

/// Upstream `truncateHistory`'s choice: names of non-live revisions, oldest
/// first, beyond `limit`.
pub fn to_truncate(
    sorted: &[ControllerRevision],
    pods: &[&Pod],
    current: Option<&ControllerRevision>,
    update: Option<&ControllerRevision>,
    limit: usize,
) -> Vec<String> {
    let mut live: HashSet<String> = pods.iter().map(|p| pod_revision(p).to_string()).collect();
    live.extend(current.map(|r| r.name_any()));
    live.extend(update.map(|r| r.name_any()));
    let history: Vec<String> = sorted
        .iter()
        .map(|r| r.name_any())
        .filter(|n| !live.contains(n))
        .collect();
    let excess = history.len().saturating_sub(limit);
    history.into_iter().take(excess).collect()
}

impl Controller {
    /// Upstream `getStatefulSetRevisions`: (current, update, collisionCount).
    pub(super) async fn set_revisions(
        &self,
        set: &StatefulSet,
        sorted: &[ControllerRevision],
        owner: OwnerReference,
    ) -> Result<(ControllerRevision, ControllerRevision, i32), Error> {
        let mut collision_count = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let candidate = new_revision(set, owner, next_revision(sorted), collision_count)?;
        let ns = set.namespace().unwrap_or_default();
        let update = match choose_update_revision(sorted, &candidate) {
            UpdateRevision::Latest(i) => sorted[i].clone(),
            UpdateRevision::Renumber(i) => {
                let mut renumbered = sorted[i].clone();
                if renumbered.revision != candidate.revision {
                    renumbered.revision = candidate.revision;
                    renumbered = self.cr_control.update(&ns, &renumbered).await?;
                }
                renumbered
            }
            UpdateRevision::Create => {
                create_controller_revision(
                    self.cr_control.as_ref(),
                    &set.metadata,
                    &candidate,
                    &mut collision_count,
                )
                .await?
            }
        };
        let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
        let current = sorted
            .iter()
            .find(|r| Some(r.name_any()) == current_name)
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collision_count))
    }
}
