//! `SyncPod` (upstream `kuberuntime_manager.go`): compute the pod's actions from its
//! runtime state (`computePodActions`, in `actions.rs`) and apply them in upstream's order —
//! kills, volumes, sandbox, init container, app containers.

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod};

use super::actions::{ActionContext, PodActions, StartupResults, compute_pod_actions};
use super::container_start::PodStart;
use super::manager::{RuntimeManager, format_pod};
use super::runtime_status::PodRuntimeStatus;
use super::sync_result::{SyncError, SyncResult};
use crate::cri::CriError;
use crate::events::{pod_ref, reasons};
use component_base::events::EventType;

/// What kind of spec container a start is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ephemeral,
    Init,
    Regular,
}

/// The spec containers the actions start this sync, in upstream's order: ephemeral,
/// init (sidecars included), regular.
fn containers_to_start(pod: &Pod, actions: &PodActions) -> Vec<(Container, Kind)> {
    let spec = pod.spec.clone().unwrap_or_default();
    let ephemeral: Vec<Container> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(ephemeral_as_container)
        .collect();
    let inits = spec.init_containers.unwrap_or_default();
    let pick = |list: &[Container], idx: &[usize], kind: Kind| -> Vec<(Container, Kind)> {
        idx.iter()
            .filter_map(|i| list.get(*i).cloned())
            .map(|c| (c, kind))
            .collect()
    };
    let mut targets = pick(
        &ephemeral,
        &actions.ephemeral_containers_to_start,
        Kind::Ephemeral,
    );
    targets.extend(pick(&inits, &actions.init_containers_to_start, Kind::Init));
    targets.extend(pick(
        &spec.containers,
        &actions.containers_to_start,
        Kind::Regular,
    ));
    targets
}

/// An ephemeral container runs as a plain container (upstream converts the common part).
pub fn ephemeral_as_container(e: &EphemeralContainer) -> Container {
    Container {
        name: e.name.clone(),
        image: e.image.clone(),
        command: e.command.clone(),
        args: e.args.clone(),
        working_dir: e.working_dir.clone(),
        ports: e.ports.clone(),
        env_from: e.env_from.clone(),
        env: e.env.clone(),
        resources: e.resources.clone(),
        resize_policy: e.resize_policy.clone(),
        restart_policy: e.restart_policy.clone(),
        restart_policy_rules: e.restart_policy_rules.clone(),
        volume_mounts: e.volume_mounts.clone(),
        volume_devices: e.volume_devices.clone(),
        liveness_probe: e.liveness_probe.clone(),
        readiness_probe: e.readiness_probe.clone(),
        startup_probe: e.startup_probe.clone(),
        lifecycle: e.lifecycle.clone(),
        termination_message_path: e.termination_message_path.clone(),
        termination_message_policy: e.termination_message_policy.clone(),
        image_pull_policy: e.image_pull_policy.clone(),
        security_context: e.security_context.clone(),
        stdin: e.stdin,
        stdin_once: e.stdin_once,
        tty: e.tty,
    }
}

impl RuntimeManager {
    /// One `SyncPod`: compute actions from the runtime state and apply them.
    pub async fn sync_pod(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        startup: &dyn StartupResults,
    ) -> SyncResult {
        let ctx = ActionContext {
            startup,
            cpu_cfs_quota: self.settings.cpu_cfs_quota,
        };
        let actions = compute_pod_actions(pod, status, ctx);
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
        let mut init_failed = false;
        let mut resized = false;
        for (c, kind) in containers_to_start(pod, &actions) {
            if kind == Kind::Regular && !resized {
                // Resizes go before new regular containers, as upstream's SyncPod.
                self.apply_resizes(pod, &actions, &mut result).await;
                resized = true;
            }
            if init_failed && kind != Kind::Ephemeral {
                continue;
            }
            match self.start_container(start, &c, kind == Kind::Init).await {
                Ok(()) => result.started.push(c.name.clone()),
                Err(f) => {
                    tracing::info!(pod = %format_pod(pod), container = %c.name, reason = %f.reason, message = %f.message, "container start failed");
                    result.failures.insert(c.name.clone(), f);
                    // A failed init container stops this sync; a failed sidecar does not.
                    if kind == Kind::Init && !super::actions::is_restartable_init(&c) {
                        init_failed = true;
                    }
                }
            }
        }
        if !resized {
            self.apply_resizes(pod, &actions, &mut result).await;
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

    /// `doPodResizeAction`: hands each running container its new resources.
    async fn apply_resizes(&self, pod: &Pod, actions: &PodActions, result: &mut SyncResult) {
        for update in &actions.containers_to_update {
            tracing::info!(pod = %format_pod(pod), container = %update.name, "resizing container in place");
            if let Err(e) = self
                .runtime
                .update_container_resources(&update.container_id, update.resources.clone())
                .await
            {
                tracing::error!(pod = %format_pod(pod), container = %update.name, error = %e, "UpdateContainerResources failed");
                result.error = Some(SyncError::Resize {
                    container: update.name.clone(),
                    source: e,
                });
                return;
            }
        }
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
