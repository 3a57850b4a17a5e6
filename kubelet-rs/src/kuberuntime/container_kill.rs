//! Stopping and removing containers (upstream `kuberuntime_container.go` `killContainer`,
//! `KillPod`): preStop hooks inside the grace period, `Killing` events, removal.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::manager::{RuntimeManager, format_pod};
use super::runtime_status::{ContainerRecord, PodRuntimeStatus};
use crate::cri::CriError;
use crate::events::{container_ref, reasons};
use component_base::events::EventType;

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
        let (sidecars, others) = sidecars_last(pod, status);
        let kills = others
            .into_iter()
            .map(|c| self.kill_container(pod, c, grace));
        for r in futures::future::join_all(kills).await {
            match r {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        for c in sidecars {
            match self.kill_container(pod, c, grace).await {
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

    /// `killContainer`: runs the preStop hook (exec or sleep) inside the grace period,
    /// then stops the container with what is left of it.
    async fn kill_container(
        &self,
        pod: &Pod,
        c: &ContainerRecord,
        grace: Duration,
    ) -> Result<(), CriError> {
        let spec = pod.spec.as_ref();
        let hook = spec
            .and_then(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .find(|x| x.name == c.name)
            })
            .and_then(|x| x.lifecycle.as_ref())
            .and_then(|l| l.pre_stop.as_ref());
        self.record_killing(pod, &c.name, &c.id, "");
        let started = tokio::time::Instant::now();
        if let Some(hook) = hook {
            if let Some(cmd) = hook.exec.as_ref().and_then(|e| e.command.clone()) {
                match tokio::time::timeout(grace, self.runtime.exec_sync(&c.id, cmd, grace)).await {
                    Ok(Ok(r)) if r.exit_code != 0 => tracing::info!(
                        pod = %format_pod(pod), container = %c.name, exit_code = r.exit_code,
                        "PreStop hook failed"
                    ),
                    Ok(Err(e)) => {
                        tracing::info!(pod = %format_pod(pod), container = %c.name, error = %e, "PreStop hook failed")
                    }
                    _ => {}
                }
            } else if let Some(sleep) = &hook.sleep {
                let secs = Duration::from_secs(sleep.seconds.max(0) as u64);
                tokio::time::sleep(secs.min(grace)).await;
            }
        }
        // Upstream gives the container at least 2 seconds after the hook.
        let left = grace
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(2));
        self.runtime.stop_container(&c.id, left).await
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
