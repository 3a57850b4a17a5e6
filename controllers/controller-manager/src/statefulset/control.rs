//! The StatefulSet update algorithm (upstream `stateful_set_control.go`
//! `updateStatefulSet`, `processReplica`, `processCondemned`,
//! `updateStatefulSetAfterInvariantEstablished`, `computeReplicaStatus`),
//! driving pod writes through [`StatefulPodOps`] so it is tested with a
//! fake.

use futures::future::BoxFuture;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

use super::utils::*;
use crate::deployment::util::scaled_value;
use crate::error::Error;

/// The pod and claim writes the algorithm needs (upstream
/// `StatefulPodControl`); events are the implementation's.
pub trait StatefulPodOps: Send + Sync {
    /// Creates the pod's missing claims, then the pod.
    fn create_stateful_pod<'a>(
        &'a self,
        set: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// Brings identity, storage and claim owner references in line and
    /// updates the pod if needed.
    fn update_stateful_pod<'a>(
        &'a self,
        set: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>>;
    fn delete_stateful_pod<'a>(
        &'a self,
        set: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// Upstream `createMissingPersistentVolumeClaims` (for pending pods).
    fn create_missing_claims<'a>(
        &'a self,
        set: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// Upstream `ClaimsMatchRetentionPolicy`.
    fn claims_match_retention_policy(&self, set: &StatefulSet, pod: &Pod) -> Result<bool, Error>;
    /// Upstream `UpdatePodClaimForRetentionPolicy`.
    fn update_claims_for_retention_policy<'a>(
        &'a self,
        set: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// Upstream `PodClaimIsStale`: a claim still owned by an earlier pod of
    /// the same name (its deletion is pending).
    fn pod_claim_is_stale(&self, set: &StatefulSet, pod: &Pod) -> Result<bool, Error>;
    /// Records a Warning/Normal event on the set.
    fn record(&self, set: &StatefulSet, warning: bool, reason: &str, message: String);
}

/// The revisions a sync works with.
pub struct Revisions<'a> {
    pub current: &'a ControllerRevision,
    pub update: &'a ControllerRevision,
    pub collision_count: i32,
}

fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Upstream `allowsBurst`.
pub fn allows_burst(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

/// Upstream `computeReplicaStatus` + `updateStatus` over every list.
pub fn update_status_counts(
    status: &mut StatefulSetStatus,
    min_ready_seconds: i32,
    revisions: &Revisions<'_>,
    lists: &[&[Pod]],
    now: Timestamp,
) {
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for pod in lists.iter().flat_map(|l| l.iter()) {
        if is_created(pod) {
            replicas += 1;
        }
        if is_running_and_ready(pod) {
            ready += 1;
            if is_running_and_available(pod, min_ready_seconds, now) {
                available += 1;
            }
        }
        if is_created(pod) && !is_terminating(pod) {
            let revision = pod_revision(pod);
            if revision == revisions.current.name_any() {
                current += 1;
            }
            if revision == revisions.update.name_any() {
                updated += 1;
            }
        }
    }
    status.replicas = replicas;
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(current);
    status.updated_replicas = Some(updated);
}

/// Upstream `getStatefulSetMaxUnavailable`: at least one.
pub fn max_unavailable(set: &StatefulSet, replicas: i32) -> Result<i32, Error> {
    let value = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref());
    let Some(value) = value else {
        return Ok(1);
    };
    let n = scaled_value(value, replicas, false).ok_or_else(|| Error::InvalidObject {
        object: set.name_any(),
        reason: "invalid value for maxUnavailable".into(),
    })?;
    Ok(n.max(1))
}

/// Upstream `updateStatefulSet`: creates, recreates, deletes and updates
/// pods toward `set` at `revisions`; returns the status to write (also on
/// error, with the error).
pub async fn update_stateful_set(
    ops: &dyn StatefulPodOps,
    set: &StatefulSet,
    revisions: &Revisions<'_>,
    pods: &[&Pod],
    owner: OwnerReference,
    now: Timestamp,
) -> (StatefulSetStatus, Result<(), Error>) {
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(revisions.current.name_any()),
        update_revision: Some(revisions.update.name_any()),
        collision_count: Some(revisions.collision_count),
        ..Default::default()
    };
    let (current_set, update_set) = match (
        apply_revision(set, revisions.current),
        apply_revision(set, revisions.update),
    ) {
        (Ok(c), Ok(u)) => (c, u),
        (Err(e), _) | (_, Err(e)) => return (status, Err(e)),
    };
    let min_ready = min_ready_seconds(set);
    let start = start_ordinal(set);
    let count = replicas(set).max(0) as usize;
    let mut slots: Vec<Option<Pod>> = vec![None; count];
    let mut condemned: Vec<Pod> = Vec::new();
    for pod in pods {
        if in_ordinal_range(pod, set) {
            slots[(ordinal(pod) - start) as usize] = Some((*pod).clone());
        } else if ordinal(pod) >= 0 {
            condemned.push((*pod).clone());
        }
    }
    let current_name = revisions.current.name_any();
    let update_name = revisions.update.name_any();
    let versioned = |ord: i32| {
        new_versioned_pod(
            &current_set,
            &update_set,
            &current_name,
            &update_name,
            ord,
            owner.clone(),
        )
    };
    let mut replicas_list: Vec<Pod> = slots
        .into_iter()
        .enumerate()
        .map(|(i, p)| p.unwrap_or_else(|| versioned(start + i as i32)))
        .collect();
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    update_status_counts(
        &mut status,
        min_ready,
        revisions,
        &[&replicas_list, &condemned],
        now,
    );

    let first_unhealthy = replicas_list
        .iter()
        .chain(condemned.iter().rev())
        .find(|p| !is_healthy(p))
        .and_then(|p| p.metadata.name.clone());

    if set.metadata.deletion_timestamp.is_some() {
        return (status, Ok(()));
    }
    let monotonic = !allows_burst(set);

    // Living replicas first, in ordinal order.
    // Upstream `runForAll`: in monotonic mode the first replica that
    // cannot progress ends the round; in burst mode only an error does.
    let mut result = Ok(());
    let mut exited = false;
    for i in 0..replicas_list.len() {
        match process_replica(
            ops,
            set,
            &update_set,
            &mut replicas_list,
            i,
            monotonic,
            &versioned,
            revisions,
            &mut status,
            now,
        )
        .await
        {
            Ok(true) if monotonic => {
                exited = true;
                break;
            }
            Ok(_) => {}
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }
    if result.is_err() || exited {
        update_status_counts(
            &mut status,
            min_ready,
            revisions,
            &[&replicas_list, &condemned],
            now,
        );
        return (status, result);
    }

    // Condemned pods get their claims' owner references per policy first.
    for pod in &condemned {
        let outcome = match ops.claims_match_retention_policy(&update_set, pod) {
            Ok(true) => Ok(()),
            Ok(false) => {
                ops.update_claims_for_retention_policy(&update_set, pod)
                    .await
            }
            Err(err) => Err(err),
        };
        if let Err(err) = outcome {
            update_status_counts(
                &mut status,
                min_ready,
                revisions,
                &[&replicas_list, &condemned],
                now,
            );
            return (status, Err(err));
        }
    }

    // Scale down from the highest ordinal.
    for pod in &condemned {
        if is_terminating(pod) {
            if monotonic {
                break;
            }
            continue;
        }
        if monotonic
            && !is_running_and_available(pod, min_ready, now)
            && pod.metadata.name != first_unhealthy
        {
            break;
        }
        tracing::info!(statefulset = %set.name_any(), pod = %pod.name_any(), "Pod of StatefulSet is terminating for scale down");
        if let Err(err) = ops.delete_stateful_pod(set, pod).await {
            update_status_counts(
                &mut status,
                min_ready,
                revisions,
                &[&replicas_list, &condemned],
                now,
            );
            return (status, Err(err));
        }
        if monotonic {
            break;
        }
    }
    update_status_counts(
        &mut status,
        min_ready,
        revisions,
        &[&replicas_list, &condemned],
        now,
    );

    if is_on_delete(set) {
        return (status, Ok(()));
    }
    let result = rolling_update(ops, set, &replicas_list, &update_name, &mut status, now).await;
    (status, result)
}

/// Upstream `processReplica`; `Ok(true)` means "stop here this round".
#[allow(clippy::too_many_arguments)]
async fn process_replica(
    ops: &dyn StatefulPodOps,
    set: &StatefulSet,
    update_set: &StatefulSet,
    replicas: &mut [Pod],
    i: usize,
    monotonic: bool,
    versioned: &(dyn Fn(i32) -> Pod + Sync),
    revisions: &Revisions<'_>,
    status: &mut StatefulSetStatus,
    now: Timestamp,
) -> Result<bool, Error> {
    let min_ready = min_ready_seconds(set);
    // Pods that finished (failed, evicted, or exited) are recreated.
    if is_failed(&replicas[i]) || is_succeeded(&replicas[i]) {
        let (warning, reason, what) = if is_failed(&replicas[i]) {
            (true, "RecreatingFailedPod", "failed")
        } else {
            (false, "RecreatingTerminatedPod", "terminated")
        };
        let msg = format!(
            "StatefulSet {}/{} is recreating {what} Pod {}",
            set.namespace().unwrap_or_default(),
            set.name_any(),
            replicas[i].name_any()
        );
        ops.record(set, warning, reason, msg);
        ops.delete_stateful_pod(set, &replicas[i]).await?;
        replicas[i] = versioned(start_ordinal(set) + i as i32);
    }
    if !is_created(&replicas[i]) {
        if ops.pod_claim_is_stale(set, &replicas[i])? {
            // The previous pod's claims are still being cleaned up.
            return Ok(true);
        }
        ops.create_stateful_pod(set, &replicas[i]).await?;
        let revision = pod_revision(&replicas[i]).to_string();
        if revision == revisions.current.name_any() {
            status.current_replicas = Some(status.current_replicas.unwrap_or(0) + 1);
        }
        if revision == revisions.update.name_any() {
            status.updated_replicas = Some(status.updated_replicas.unwrap_or(0) + 1);
        }
        return Ok(monotonic);
    }
    if is_pending(&replicas[i]) {
        ops.create_missing_claims(set, &replicas[i]).await?;
    }
    if is_terminating(&replicas[i]) && monotonic {
        return Ok(true);
    }
    if !is_running_and_available(&replicas[i], min_ready, now) && monotonic {
        return Ok(true);
    }
    // An error means the pod is not yet updated: treated as matching.
    let retention_matches = ops
        .claims_match_retention_policy(update_set, &replicas[i])
        .unwrap_or(true);
    if identity_matches(set, &replicas[i])
        && storage_matches(set, &replicas[i])
        && retention_matches
    {
        return Ok(false);
    }
    ops.update_stateful_pod(update_set, &replicas[i]).await?;
    Ok(false)
}

/// Upstream `updateStatefulSetAfterInvariantEstablished`
/// (MaxUnavailableStatefulSet): while fewer than maxUnavailable replicas
/// are unavailable, delete outdated pods from the highest ordinal down to
/// the partition.
async fn rolling_update(
    ops: &dyn StatefulPodOps,
    set: &StatefulSet,
    replicas: &[Pod],
    update_revision: &str,
    status: &mut StatefulSetStatus,
    now: Timestamp,
) -> Result<(), Error> {
    let count = super::utils::replicas(set);
    let update_min = partition(set).unwrap_or(0).max(0) as usize;
    let max_unavailable = if partition(set).is_some() {
        max_unavailable(set, count)?
    } else {
        1
    };
    let min_ready = min_ready_seconds(set);
    let unavailable = replicas
        .iter()
        .filter(|p| !is_running_and_available(p, min_ready, now) || is_terminating(p))
        .count() as i32;
    if unavailable >= max_unavailable {
        return Ok(());
    }
    let mut to_delete = max_unavailable - unavailable;
    for pod in replicas.iter().skip(update_min).rev() {
        if to_delete == 0 {
            break;
        }
        if pod_revision(pod) != update_revision && !is_terminating(pod) {
            tracing::info!(statefulset = %set.name_any(), pod = %pod.name_any(), "StatefulSet terminating Pod for update");
            match ops.delete_stateful_pod(set, pod).await {
                Err(err) if !err.is_not_found() => return Err(err),
                _ => {}
            }
            to_delete -= 1;
            status.current_replicas = Some(status.current_replicas.unwrap_or(0) - 1);
        }
    }
    Ok(())
}

/// Upstream `completeRollingUpdate`: once every replica is updated and
/// ready, the update revision becomes current.
pub fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    if is_rolling_update(set) && updated == status.replicas && ready == status.replicas {
        status.current_replicas = Some(updated);
        status.current_revision = status.update_revision.clone();
    }
}

/// Upstream `inconsistentStatus`.
pub fn inconsistent_status(set: &StatefulSet, status: &StatefulSetStatus) -> bool {
    let cur = set.status.clone().unwrap_or_default();
    status.observed_generation.unwrap_or(0) > cur.observed_generation.unwrap_or(0)
        || status.replicas != cur.replicas
        || status.current_replicas.unwrap_or(0) != cur.current_replicas.unwrap_or(0)
        || status.ready_replicas.unwrap_or(0) != cur.ready_replicas.unwrap_or(0)
        || status.updated_replicas.unwrap_or(0) != cur.updated_replicas.unwrap_or(0)
        || status.current_revision != cur.current_revision
        || status.available_replicas.unwrap_or(0) != cur.available_replicas.unwrap_or(0)
        || status.update_revision != cur.update_revision
}
