//! Clearing stale `DisruptionTarget` pod conditions (upstream
//! `syncStalePodDisruption`, `nonTerminatingPodHasStaleDisruptionCondition`):
//! a pod marked for disruption that was not deleted within two minutes
//! gets the condition set back to False.

use std::sync::Arc;
use std::time::Duration;

use component_base::informers::Change;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::control::ObjectControl;
use crate::controller::{Enqueue, Key, Reconciler, SyncResult};

/// Upstream `stalePodDisruptionTimeout`.
pub const STALE_POD_DISRUPTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Upstream `v1.DisruptionTarget`.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
/// Upstream `v1.PodReasonTerminationByKubelet`: never stale.
pub const TERMINATION_BY_KUBELET: &str = "TerminationByKubelet";

/// Upstream `nonTerminatingPodHasStaleDisruptionCondition`: `Some(wait)`
/// when `pod` carries a `DisruptionTarget=True` condition that becomes
/// stale after `wait` (zero: stale now).
pub fn stale_disruption_wait(pod: &Pod, now: Timestamp, timeout: Duration) -> Option<Duration> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let cond = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_TARGET)?;
    let phase = status.phase.as_deref().unwrap_or_default();
    if cond.status != "True"
        || cond.reason.as_deref() == Some(TERMINATION_BY_KUBELET)
        || matches!(phase, "Succeeded" | "Failed")
    {
        return None;
    }
    let since = cond.last_transition_time.as_ref().map_or(now, |t| t.0);
    let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or_default();
    Some(timeout.saturating_sub(elapsed))
}

/// Upstream `apipod.UpdatePodCondition` with `DisruptionTarget=False`:
/// the new condition replaces the old one (reason and message cleared);
/// `None` when nothing would change.
pub fn cleared_condition(pod: &Pod, now: Timestamp) -> Option<Pod> {
    let mut pod = pod.clone();
    let conds = pod.status.as_mut()?.conditions.as_mut()?;
    let cond = conds.iter_mut().find(|c| c.type_ == DISRUPTION_TARGET)?;
    if cond.status == "False" && cond.reason.is_none() && cond.message.is_none() {
        return None;
    }
    let transition = if cond.status == "False" {
        cond.last_transition_time.clone()
    } else {
        Some(Time(now))
    };
    *cond = PodCondition {
        type_: DISRUPTION_TARGET.to_string(),
        status: "False".to_string(),
        last_transition_time: transition,
        ..Default::default()
    };
    Some(pod)
}

/// The stale-condition half of the controller, keyed by pod (upstream's
/// `stale_pod_disruption` queue and worker).
pub(crate) struct StalePodCleaner {
    pub(crate) pods: Store<Pod>,
    pub(crate) pod_control: Arc<dyn ObjectControl<Pod>>,
}

impl StalePodCleaner {
    /// Upstream `addPod`/`updatePod`: a pod with the condition is looked at
    /// again when it turns stale.
    pub(crate) fn pod_changed(&self, change: Change<Pod>) -> Vec<Enqueue> {
        match change {
            Change::Added(pod) | Change::Updated { new: pod, .. } => when_stale(&pod),
            Change::Deleted(_) | Change::Resync => Vec::new(),
        }
    }
}

fn when_stale(pod: &Pod) -> Vec<Enqueue> {
    stale_disruption_wait(pod, Timestamp::now(), STALE_POD_DISRUPTION_TIMEOUT)
        .map(|wait| Enqueue::After(Key::of(pod), wait))
        .into_iter()
        .collect()
}

impl Reconciler for StalePodCleaner {
    /// Upstream `syncStalePodDisruption`.
    async fn sync(&self, key: &Key) -> SyncResult {
        let ns = key.namespace.as_deref().unwrap_or_default();
        let Some(pod) = self.pods.get(&ObjectRef::new(&key.name).within(ns)) else {
            return Ok(None);
        };
        let now = Timestamp::now();
        match stale_disruption_wait(&pod, now, STALE_POD_DISRUPTION_TIMEOUT) {
            None => Ok(None),
            Some(wait) if !wait.is_zero() => Ok(Some(wait)),
            Some(_) => {
                let Some(updated) = cleared_condition(&pod, now) else {
                    return Ok(None);
                };
                self.pod_control.update_status(ns, &updated).await?;
                tracing::info!(pod = %key, "Reset stale DisruptionTarget condition to False");
                Ok(None)
            }
        }
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.pods
            .state()
            .iter()
            .flat_map(|p| when_stale(p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodStatus;

    use super::*;

    fn pod_with(status: &str, reason: Option<&str>, phase: &str, since: Timestamp) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: DISRUPTION_TARGET.into(),
                status: status.into(),
                reason: reason.map(Into::into),
                message: Some("Eviction API: evicting".into()),
                last_transition_time: Some(Time(since)),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn which_conditions_are_stale_and_when() {
        let now = Timestamp::from_second(1_000).expect("ts");
        let ago = |s: i64| now - jiff::SignedDuration::from_secs(s);
        let t = STALE_POD_DISRUPTION_TIMEOUT;
        let cases = [
            (
                "fresh",
                pod_with("True", Some("EvictionByEvictionAPI"), "Running", ago(30)),
                Some(Duration::from_secs(90)),
            ),
            (
                "stale",
                pod_with("True", Some("EvictionByEvictionAPI"), "Running", ago(300)),
                Some(Duration::ZERO),
            ),
            ("false", pod_with("False", None, "Running", ago(300)), None),
            (
                "by kubelet",
                pod_with("True", Some(TERMINATION_BY_KUBELET), "Running", ago(300)),
                None,
            ),
            (
                "terminal",
                pod_with("True", Some("EvictionByEvictionAPI"), "Failed", ago(300)),
                None,
            ),
        ];
        for (name, pod, want) in cases {
            assert_eq!(stale_disruption_wait(&pod, now, t), want, "{name}");
        }
        let mut deleting = pod_with("True", None, "Running", ago(300));
        deleting.metadata.deletion_timestamp = Some(Time(now));
        assert_eq!(stale_disruption_wait(&deleting, now, t), None);
    }

    #[test]
    fn clearing_sets_false_and_drops_reason() {
        let now = Timestamp::from_second(1_000).expect("ts");
        let pod = pod_with(
            "True",
            Some("EvictionByEvictionAPI"),
            "Running",
            Timestamp::UNIX_EPOCH,
        );
        let cleared = cleared_condition(&pod, now).expect("changed");
        let cond = &cleared.status.expect("status").conditions.expect("conds")[0];
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_deref()),
            ("False", None)
        );
        assert_eq!(cond.last_transition_time, Some(Time(now)));
        let again = cleared_condition(&pod_with("False", None, "Running", now), now);
        assert!(again.is_some(), "a message still differs");
    }
}
