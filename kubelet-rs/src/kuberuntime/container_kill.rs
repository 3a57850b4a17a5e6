//! Stopping and removing containers (upstream `kuberuntime_container.go` `killContainer`,
//! `KillPod`): preStop hooks inside the grace period, `Killing` events, removal.

use std::time::Duration;

use k8s_openapi::api::core::v1::{LifecycleHandler, Pod};

use super::manager::{RuntimeManager, format_pod};
use super::runtime_status::{ContainerRecord, PodRuntimeStatus};
use crate::cri::CriError;
use crate::events::{container_ref, reasons};
use crate::lifecycle::{self, HookTarget};
use component_base::events::EventType;

/// `minimumGracePeriodInSeconds`: every stop gets at least this long.
const MINIMUM_GRACE_PERIOD: Duration = Duration::from_secs(2);

/// Running containers split into sidecars (restartable init containers, last spec one
/// first) and everything else (upstream `killContainersWithSyncResult`).
fn sidecars_last<'a>(
    pod: &Pod,
    status: &'a PodRuntimeStatus,
) -> (Vec<&'a ContainerRecord>, Vec<&'a ContainerRecord>) {
    let sidecar_names: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| super::actions::is_restartable_init(c))
        .map(|c| c.name.as_str())
        .collect();
    let (mut sidecars, others): (Vec<_>, Vec<_>) = status
        .running()
        .partition(|c| sidecar_names.contains(&c.name.as_str()));
    sidecars.sort_by_key(|c| std::cmp::Reverse(sidecar_names.iter().position(|n| *n == c.name)));
    (sidecars, others)
}

impl RuntimeManager {
    /// Stops running containers (with the grace period) and every sandbox of the pod.
    pub async fn kill_pod(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        grace: Duration,
    ) -> Result<(), CriError> {
        // Sidecars outlive the containers they serve: stop them last, in reverse order.
        let pod_ips = status.pod_ips();
        let pod_ip = pod_ips.first().map(String::as_str);
        let (sidecars, others) = sidecars_last(pod, status);
        let kills = others
            .into_iter()
            .map(|c| self.kill_container(pod, &c.name, &c.id, "", grace, pod_ip));
        for r in futures::future::join_all(kills).await {
            match r {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        for c in sidecars {
            match self
                .kill_container(pod, &c.name, &c.id, "", grace, pod_ip)
                .await
            {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        for sb in &status.sandboxes {
            match self.runtime.stop_pod_sandbox(&sb.id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        tracing::debug!(pod = %format_pod(pod), "killed pod");
        Ok(())
    }

    /// `killContainer`: records `Killing` (`message`, or "Stopping container <name>"),
    /// runs the preStop hook inside the grace period, then stops the container with what
    /// is left of it (at least 2 seconds).
    pub(super) async fn kill_container(
        &self,
        pod: &Pod,
        name: &str,
        id: &str,
        message: &str,
        grace: Duration,
        pod_ip: Option<&str>,
    ) -> Result<(), CriError> {
        let spec = pod.spec.as_ref().and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|x| x.name == name)
        });
        self.record_killing(pod, name, id, message);
        let mut left = grace;
        if let Some(spec) = spec
            && let Some(hook) = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
            && !grace.is_zero()
        {
            let target = HookTarget {
                pod,
                container: spec,
                container_id: id,
                pod_ip,
            };
            left = left.saturating_sub(self.execute_pre_stop_hook(hook, &target, grace).await);
        }
        // Upstream always leaves a container a minimal shutdown window.
        self.runtime
            .stop_container(id, left.max(MINIMUM_GRACE_PERIOD))
            .await
    }

    /// `executePreStopHook`: runs the hook for at most `grace`; returns the whole seconds
    /// it took.
    async fn execute_pre_stop_hook(
        &self,
        hook: &LifecycleHandler,
        target: &HookTarget<'_>,
        grace: Duration,
    ) -> Duration {
        let started = tokio::time::Instant::now();
        let run = lifecycle::run(&self.runtime, self.events.as_ref(), hook, target);
        match tokio::time::timeout(grace, run).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(pod = %format_pod(target.pod), container = %target.container.name, error = %e, "PreStop hook failed");
                // The message stays out of the event so secrets do not leak.
                self.events.record(
                    &container_ref(target.pod, &target.container.name),
                    EventType::Warning,
                    reasons::FAILED_PRE_STOP_HOOK,
                    "PreStopHook failed",
                );
            }
            Err(_) => tracing::info!(
                pod = %format_pod(target.pod), container = %target.container.name, ?grace,
                "PreStop hook not completed in grace period"
            ),
        }
        Duration::from_secs(started.elapsed().as_secs())
    }

    /// Removes all containers and sandboxes of a terminated pod.
    pub async fn remove_pod(&self, status: &PodRuntimeStatus) -> Result<(), CriError> {
        for c in &status.containers {
            match self.runtime.remove_container(&c.id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        for sb in &status.sandboxes {
            match self.runtime.remove_pod_sandbox(&sb.id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The pod's grace period, at least 2s (upstream's minimum for a kill).
    pub(super) fn grace_period(pod: &Pod) -> Duration {
        Duration::from_secs(crate::types::grace_period_seconds(pod).max(2) as u64)
    }

    /// `Killing` for a container about to be stopped; `message` defaults to
    /// upstream's "Stopping container <name>". Orphans (no API pod) get none.
    pub(super) fn record_killing(&self, pod: &Pod, name: &str, id: &str, message: &str) {
        if !crate::events::is_named(pod) {
            return;
        }
        let note = if message.is_empty() {
            format!("Stopping container {name}")
        } else {
            message.replace(id, name)
        };
        self.events.record(
            &container_ref(pod, name),
            EventType::Normal,
            reasons::KILLING_CONTAINER,
            &note,
        );
    }

    /// Stops one container with `grace` and no hook (liveness/startup probe failures).
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), CriError> {
        self.runtime.stop_container(id, grace).await
    }
}
