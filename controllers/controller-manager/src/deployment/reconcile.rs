//! Upstream `syncDeployment` and the strategies (`rolling.go`,
//! `recreate.go`, `sync.go` scale/pause, `progress.go`) on the [`Model`].

use std::time::Duration;

use k8s_openapi::api::apps::v1::DeploymentStatus;

use super::model::{Model, Plan, deployment_complete, new_rs_new_replicas};
use super::util::*;
use crate::events::EventSpec;

/// Decides everything one sync of a Deployment does.
pub fn sync_deployment(mut m: Model<'_>) -> Plan {
    let selector =
        m.d.spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
    let selects_all = selector.match_labels.as_ref().is_none_or(|l| l.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    if selects_all {
        m.event(EventSpec::warning(
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.",
        ));
        let mut status = m.status();
        let generation = m.d.metadata.generation.unwrap_or(0);
        if status.observed_generation.unwrap_or(0) < generation {
            status.observed_generation = Some(generation);
            m.set_status(status);
            m.write_status();
        }
        return m.plan;
    }
    if m.d.metadata.deletion_timestamp.is_some() {
        let (new, _) = m.sync_revision(false);
        m.sync_deployment_status(new);
        return m.plan;
    }
    if check_paused_conditions(&mut m) {
        // Upstream writes the paused/resumed condition and carries on.
        m.write_status();
    }
    if is_paused(&m.d) {
        scale_sync(&mut m);
        return m.plan;
    }
    if is_scaling_event(&mut m) {
        scale_sync(&mut m);
        return m.plan;
    }
    if is_recreate(&m.d) {
        rollout_recreate(&mut m);
    } else {
        rollout_rolling(&mut m);
    }
    m.plan
}

/// Upstream `checkPausedConditions`; true if the status changed.
fn check_paused_conditions(m: &mut Model<'_>) -> bool {
    if progress_deadline_seconds(&m.d).is_none() {
        return false;
    }
    let mut status = m.status();
    let cond = get_condition(&status, CONDITION_PROGRESSING);
    let reason = cond.and_then(|c| c.reason.as_deref());
    if reason == Some(TIMED_OUT_REASON) {
        return false;
    }
    let paused_cond = reason == Some(PAUSED_DEPLOY_REASON);
    let paused = is_paused(&m.d);
    let new = if paused && !paused_cond {
        new_condition(
            CONDITION_PROGRESSING,
            "Unknown",
            PAUSED_DEPLOY_REASON,
            "Deployment is paused".into(),
            m.now,
        )
    } else if !paused && paused_cond {
        new_condition(
            CONDITION_PROGRESSING,
            "Unknown",
            RESUMED_DEPLOY_REASON,
            "Deployment is resumed".into(),
            m.now,
        )
    } else {
        return false;
    };
    set_condition(&mut status, new);
    m.set_status(status);
    true
}

/// Upstream `isScalingEvent`: an active RS was sized for another
/// `spec.replicas`.
fn is_scaling_event(m: &mut Model<'_>) -> bool {
    let (new, old) = m.sync_revision(false);
    let mut all = old;
    all.extend(new);
    let want = replicas(&m.d);
    m.active(&all)
        .into_iter()
        .filter_map(|i| desired_replicas_annotation(&m.rss[i]))
        .any(|desired| desired != want)
}

/// Upstream `sync`: scale proportionally, clean up when paused, status.
fn scale_sync(m: &mut Model<'_>) {
    let (new, old) = m.sync_revision(false);
    scale(m, new, &old);
    if is_paused(&m.d) {
        m.cleanup(&old);
    }
    m.sync_deployment_status(new);
}

/// Upstream `scale` (proportional scaling during a rollout).
fn scale(m: &mut Model<'_>, new: Option<usize>, old: &[usize]) {
    let want = replicas(&m.d);
    if let Some(i) = find_active_or_latest(m, new, old) {
        if rs_replicas(&m.rss[i]) != want {
            m.scale_replica_set(i, want, false);
        }
        return;
    }
    if let Some(n) = new
        && is_saturated(m, n)
    {
        for i in m.active(old) {
            m.scale_replica_set(i, 0, false);
        }
        return;
    }
    if !is_rolling_update(&m.d) {
        return;
    }
    let mut all = old.to_vec();
    all.extend(new);
    let mut all = m.active(&all);
    let total = m.replica_count(&all);
    let allowed = if want > 0 { want + max_surge(&m.d) } else { 0 };
    let to_add = allowed - total;
    if to_add > 0 {
        all.sort_by(|a, b| by_size_newer(&m.rss[*a], &m.rss[*b]));
    } else if to_add < 0 {
        all.sort_by(|a, b| by_size_older(&m.rss[*a], &m.rss[*b]));
    }
    let mut added = 0;
    let mut sizes = Vec::with_capacity(all.len());
    for &i in &all {
        let current = rs_replicas(&m.rss[i]);
        if to_add != 0 {
            let p = proportion(m, i, to_add, added);
            sizes.push(current + p);
            added += p;
        } else {
            sizes.push(current);
        }
    }
    for (k, &i) in all.iter().enumerate() {
        if k == 0 && to_add != 0 {
            sizes[0] = (sizes[0] + to_add - added).max(0);
        }
        m.scale_replica_set(i, sizes[k], true);
    }
}

/// Upstream `FindActiveOrLatest`.
fn find_active_or_latest(m: &Model<'_>, new: Option<usize>, old: &[usize]) -> Option<usize> {
    if new.is_none() && old.is_empty() {
        return None;
    }
    let mut olds = old.to_vec();
    olds.sort_by(|a, b| by_creation(&m.rss[*b], &m.rss[*a]));
    let mut all = olds.clone();
    all.extend(new);
    let active = m.active(&all);
    match active.len() {
        0 => new.or_else(|| olds.first().copied()),
        1 => Some(active[0]),
        _ => None,
    }
}

/// Upstream `IsSaturated`.
fn is_saturated(m: &Model<'_>, i: usize) -> bool {
    let rs = &m.rss[i];
    let want = replicas(&m.d);
    rs_replicas(rs) == want
        && desired_replicas_annotation(rs) == Some(want)
        && rs_available(rs) == want
}

/// Upstream `GetReplicaSetProportion` + `getReplicaSetFraction`.
fn proportion(m: &Model<'_>, i: usize, to_add: i32, added: i32) -> i32 {
    let rs = &m.rss[i];
    let size = rs_replicas(rs);
    if size == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = {
        let want = replicas(&m.d);
        if want == 0 {
            -size
        } else {
            let max_now = want + max_surge(&m.d);
            let before = match max_replicas_annotation(rs) {
                Some(v) if v != 0 => v,
                _ => m.status().replicas.unwrap_or(0),
            };
            if before == 0 {
                0
            } else {
                let scaled = f64::from(size) * f64::from(max_now) / f64::from(before);
                // Go's integer.RoundToInt32 rounds half away from zero.
                scaled.round() as i32 - size
            }
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Upstream `rolloutRolling`.
fn rollout_rolling(m: &mut Model<'_>) {
    let (new, old) = m.sync_revision(true);
    let Some(new_i) = new else {
        return;
    };
    if reconcile_new_rs(m, new_i, &old) || reconcile_old_rss(m, new_i, &old) {
        sync_rollout_status(m, Some(new_i));
        return;
    }
    if deployment_complete(&m.d, &m.status()) {
        m.cleanup(&old);
    }
    sync_rollout_status(m, Some(new_i));
}

/// Upstream `reconcileNewReplicaSet`.
fn reconcile_new_rs(m: &mut Model<'_>, new_i: usize, old: &[usize]) -> bool {
    let want = replicas(&m.d);
    let current = rs_replicas(&m.rss[new_i]);
    if current == want {
        return false;
    }
    if current > want {
        return m.scale_replica_set(new_i, want, false);
    }
    let mut all: Vec<_> = old.iter().map(|i| m.rss[*i].clone()).collect();
    all.push(m.rss[new_i].clone());
    let count = new_rs_new_replicas(&m.d, &all, &m.rss[new_i]);
    m.scale_replica_set(new_i, count, false)
}

/// Upstream `reconcileOldReplicaSets`.
fn reconcile_old_rss(m: &mut Model<'_>, new_i: usize, old: &[usize]) -> bool {
    let active_old = m.active(old);
    if m.replica_count(&active_old) == 0 {
        return false;
    }
    let mut all = old.to_vec();
    all.push(new_i);
    let all_pods = m.replica_count(&all);
    let min_available = replicas(&m.d) - max_unavailable(&m.d);
    let new_rs = &m.rss[new_i];
    let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return false;
    }
    let cleaned = cleanup_unhealthy_replicas(m, &active_old, max_scaled_down);
    let scaled = scale_down_old_for_rolling_update(m, new_i, &active_old);
    cleaned + scaled > 0
}

/// Upstream `cleanupUnhealthyReplicas`: scale away unavailable old pods first.
fn cleanup_unhealthy_replicas(m: &mut Model<'_>, old: &[usize], max_cleanup: i32) -> i32 {
    let mut olds = old.to_vec();
    olds.sort_by(|a, b| by_creation(&m.rss[*a], &m.rss[*b]));
    let mut total = 0;
    for i in olds {
        if total >= max_cleanup {
            break;
        }
        let size = rs_replicas(&m.rss[i]);
        let available = rs_available(&m.rss[i]);
        if size == 0 || size == available {
            continue;
        }
        let down = (max_cleanup - total).min(size - available);
        m.scale_replica_set(i, size - down, false);
        total += down;
    }
    total
}

/// Upstream `scaleDownOldReplicaSetsForRollingUpdate`.
fn scale_down_old_for_rolling_update(m: &mut Model<'_>, new_i: usize, old: &[usize]) -> i32 {
    let min_available = replicas(&m.d) - max_unavailable(&m.d);
    let mut all = old.to_vec();
    all.push(new_i);
    let available = m.available_count(&all);
    if available <= min_available {
        return 0;
    }
    let mut olds = old.to_vec();
    olds.sort_by(|a, b| by_creation(&m.rss[*a], &m.rss[*b]));
    let budget = available - min_available;
    let mut total = 0;
    for i in olds {
        if total >= budget {
            break;
        }
        let size = rs_replicas(&m.rss[i]);
        if size == 0 {
            continue;
        }
        let down = size.min(budget - total);
        m.scale_replica_set(i, size - down, false);
        total += down;
    }
    total
}

/// Upstream `rolloutRecreate`.
fn rollout_recreate(m: &mut Model<'_>) {
    let (mut new, mut old) = m.sync_revision(false);
    let mut scaled_down = false;
    for i in m.active(&old) {
        scaled_down |= m.scale_replica_set(i, 0, false);
    }
    if scaled_down || old_pods_running(m, new, &old) {
        sync_rollout_status(m, new);
        return;
    }
    if new.is_none() {
        (new, old) = m.sync_revision(true);
    }
    if let Some(n) = new {
        let want = replicas(&m.d);
        m.scale_replica_set(n, want, false);
    }
    if deployment_complete(&m.d, &m.status()) {
        m.cleanup(&old);
    }
    sync_rollout_status(m, new);
}

/// Upstream `oldPodsRunning`.
fn old_pods_running(m: &Model<'_>, new: Option<usize>, old: &[usize]) -> bool {
    if m.actual_count(old) > 0 {
        return true;
    }
    let new_uid = new.and_then(|i| m.rss[i].metadata.uid.clone());
    m.pods_by_rs
        .iter()
        .filter(|(uid, _)| Some(*uid) != new_uid.as_ref())
        .flat_map(|(_, pods)| pods.iter())
        .any(|p| {
            !matches!(
                crate::controller_utils::pod_phase(p),
                "Failed" | "Succeeded"
            )
        })
}

/// Upstream `syncRolloutStatus` (+ `requeueStuckDeployment`).
fn sync_rollout_status(m: &mut Model<'_>, new: Option<usize>) {
    let mut status = m.calculate_status(new);
    let deadline = progress_deadline_seconds(&m.d);
    if deadline.is_none() {
        remove_condition(&mut status, CONDITION_PROGRESSING);
    }
    let current = m.status();
    let current_cond = get_condition(&current, CONDITION_PROGRESSING).cloned();
    let complete_already = status.replicas == status.updated_replicas
        && current_cond.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE_REASON);
    let name = m.d.metadata.name.clone().unwrap_or_default();
    let subject = match new {
        Some(i) => format!(
            "ReplicaSet {:?}",
            m.rss[i].metadata.name.clone().unwrap_or_default()
        ),
        None => format!("Deployment {name:?}"),
    };
    if deadline.is_some() && !complete_already {
        if deployment_complete(&m.d, &status) {
            let c = new_condition(
                CONDITION_PROGRESSING,
                "True",
                NEW_RS_AVAILABLE_REASON,
                format!("{subject} has successfully progressed."),
                m.now,
            );
            set_condition(&mut status, c);
        } else if deployment_progressing(&current, &status) {
            let mut c = new_condition(
                CONDITION_PROGRESSING,
                "True",
                REPLICA_SET_UPDATED_REASON,
                format!("{subject} is progressing."),
                m.now,
            );
            if let Some(cur) = &current_cond {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut status, CONDITION_PROGRESSING);
            }
            set_condition(&mut status, c);
        } else if deployment_timed_out(m, &status) {
            let c = new_condition(
                CONDITION_PROGRESSING,
                "False",
                TIMED_OUT_REASON,
                format!("{subject} has timed out progressing."),
                m.now,
            );
            set_condition(&mut status, c);
        }
    }
    match replica_failure(m, new) {
        Some(c) => set_condition(&mut status, c),
        None => remove_condition(&mut status, CONDITION_REPLICA_FAILURE),
    }
    if m.d.status.as_ref() == Some(&status) {
        m.plan.requeue_after = requeue_stuck(m, &status);
        return;
    }
    m.set_status(status);
    m.write_status();
}

/// Upstream `DeploymentProgressing`.
fn deployment_progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let v = |x: Option<i32>| x.unwrap_or(0);
    let old_old = v(old.replicas) - v(old.updated_replicas);
    let new_old = v(new.replicas) - v(new.updated_replicas);
    v(new.updated_replicas) > v(old.updated_replicas)
        || new_old < old_old
        || v(new.ready_replicas) > v(old.ready_replicas)
        || v(new.available_replicas) > v(old.available_replicas)
}

/// Upstream `DeploymentTimedOut`.
fn deployment_timed_out(m: &Model<'_>, status: &DeploymentStatus) -> bool {
    let Some(deadline) = progress_deadline_seconds(&m.d) else {
        return false;
    };
    let Some(c) = get_condition(status, CONDITION_PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => false,
        Some(TIMED_OUT_REASON) => true,
        _ => c
            .last_update_time
            .as_ref()
            .and_then(|t| {
                t.0.checked_add(jiff::SignedDuration::from_secs(deadline.into()))
                    .ok()
            })
            .is_some_and(|limit| limit < m.now),
    }
}

/// Upstream `getReplicaFailures`: the new RS's failure, else any RS's.
fn replica_failure(
    m: &Model<'_>,
    new: Option<usize>,
) -> Option<k8s_openapi::api::apps::v1::DeploymentCondition> {
    let failure = |i: usize| {
        m.rss[i]
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == CONDITION_REPLICA_FAILURE))
            .map(rs_condition_to_deployment)
    };
    new.and_then(failure)
        .or_else(|| (0..m.rss.len()).find_map(failure))
}

/// Upstream `requeueStuckDeployment`: check again when the deadline passes.
fn requeue_stuck(m: &Model<'_>, status: &DeploymentStatus) -> Option<Duration> {
    let deadline = progress_deadline_seconds(&m.d)?;
    let current = m.status();
    let cond = get_condition(&current, CONDITION_PROGRESSING)?;
    if deployment_complete(&m.d, status) || cond.reason.as_deref() == Some(TIMED_OUT_REASON) {
        return None;
    }
    let updated = cond.last_update_time.as_ref()?.0;
    let at = updated
        .checked_add(jiff::SignedDuration::from_secs(deadline.into()))
        .ok()?;
    let after = Duration::try_from(at.duration_since(m.now)).unwrap_or(Duration::ZERO);
    if after < Duration::from_secs(1) {
        Some(Duration::from_secs(1))
    } else {
        Some(after + Duration::from_secs(1))
    }
}
