//! `SyncPod` (upstream `kuberuntime_manager.go`): compute the pod's actions from its
//! runtime state (`computePodActions`, in `actions.rs`) and apply them in upstream's order —
//! kills, volumes, sandbox, init container, app containers.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::actions::{PodActions, compute_pod_actions};
use super::container_start::PodStart;
use super::manager::{RuntimeManager, format_pod};
use super::runtime_status::PodRuntimeStatus;
use super::sync_result::{SyncError, SyncResult};
use crate::cri::CriError;
use crate::events::{pod_ref, reasons};
use component_base::events::EventType;

/// The spec containers the actions start this sync, each flagged whether it is an init container.
fn containers_to_start(pod: &Pod, actions: &PodActions) -> Vec<(Container, bool)> {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut targets: Vec<(Container, bool)> = Vec::new();
    if let Some(i) = actions.next_init_container_to_start {
        targets.extend(
            spec.init_containers
                .iter()
                .flatten()
                .nth(i)
                .cloned()
                .map(|c| (c, true)),
        );
    }
    targets.extend(
        actions
            .containers_to_start
            .iter()
            .filter_map(|i| spec.containers.get(*i).cloned())
            .map(|c| (c, false)),
    );
    targets
}

impl RuntimeManager {
    /// One `SyncPod`: compute actions from the runtime state and apply them.
    pub async fn sync_pod(&self, pod: &Pod, status: &PodRuntimeStatus) -> SyncResult {
        let actions = compute_pod_actions(pod, status);
        tracing::debug!(pod = %format_pod(pod), ?actions, "computed pod actions");
        let mut result = SyncResult::default();
        if let Err(e) = self.apply_kills(pod, status, &actions).await {
            result.error = Some(SyncError::Kill(e));
            return result;
        }
        if actions.kill_pod && !actions.create_sandbox {
            return result;
        }
        if let Err(e) = self.setup_volumes(pod).await {
            result.error = Some(e);
            return result;
        }
        let sandbox_config = match self.sandbox_config(pod, actions.attempt) {
            Ok(config) => config,
            Err(e) => {
                let err = SyncError::SandboxConfig {
                    pod: format_pod(pod),
                    source: e,
                };
                self.events.record(
                    &pod_ref(pod),
                    EventType::Warning,
                    reasons::FAILED_CREATE_POD_SANDBOX,
                    &format!("Failed to create pod sandbox: {err}"),
                );
                result.error = Some(err);
                return result;
            }
        };
        let (sandbox_id, pod_ips) = if actions.create_sandbox {
            match self.create_sandbox(pod, status, &sandbox_config).await {
                Ok(created) => created,
                Err(e) => {
                    result.error = Some(e);
                    return result;
                }
            }
        } else {
            (actions.sandbox_id.clone(), status.pod_ips())
        };
        let start = PodStart {
            pod,
            status,
            sandbox_id: &sandbox_id,
            sandbox_config: &sandbox_config,
            pod_ips: &pod_ips,
        };
        for (c, init) in containers_to_start(pod, &actions) {
            match self.start_container(start, &c, init).await {
                Ok(()) => result.started.push(c.name.clone()),
                Err(f) => {
                    tracing::info!(pod = %format_pod(pod), container = %c.name, reason = %f.reason, message = %f.message, "container start failed");
                    result.failures.insert(c.name.clone(), f);
                }
            }
        }
        result
    }

    /// Mounts the pod's volumes; upstream keeps the pod in ContainerCreating and reports
    /// FailedMount once per volume (operation executor) and once for the pod (kubelet).
    async fn setup_volumes(&self, pod: &Pod) -> Result<(), SyncError> {
        let Some(volumes) = &self.volumes else {
            return Ok(());
        };
        let Err(e) = volumes.setup_pod(pod).await else {
            return Ok(());
        };
        let regarding = pod_ref(pod);
        for v in &e.0 {
            self.events.record(
                &regarding,
                EventType::Warning,
                reasons::FAILED_MOUNT_VOLUME,
                &v.to_string(),
            );
        }
        let err = SyncError::Mount(e);
        self.events.record(
            &regarding,
            EventType::Warning,
            reasons::FAILED_MOUNT_VOLUME,
            &err.to_string(),
        );
        Err(err)
    }

    async fn apply_kills(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        actions: &PodActions,
    ) -> Result<(), CriError> {
        if actions.kill_pod {
            return self.kill_pod(pod, status, Self::grace_period(pod)).await;
        }
        let pod_ips = status.pod_ips();
        for (id, (name, message)) in &actions.containers_to_kill {
            tracing::info!(pod = %format_pod(pod), container = %name, %message, "killing container");
            let pod_ip = pod_ips.first().map(String::as_str);
            self.kill_container(pod, name, id, message, Self::grace_period(pod), pod_ip)
                .await?;
        }
        Ok(())
    }
}
