//! Starting containers (upstream `kuberuntime_container.go` `startContainer`): crash-loop
//! back-off, image, environment, mounts, `CreateContainer` and `StartContainer`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, LifecycleHandler, Pod, Secret, Service};
use kube::Api;
use kube::api::ListParams;

use super::container::{ContainerParams, generate_container_config};
use super::env::{CREATE_CONTAINER_CONFIG_ERROR, EnvInputs, make_environment_variables};
use super::image::{ERR_IMAGE_NEVER_PULL, ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF};
use super::manager::{RuntimeManager, format_pod};
use super::runtime_status::{ContainerRecord, ContainerState, PodRuntimeStatus};
use super::sync_result::{
    CRASH_LOOP_BACKOFF, CREATE_CONTAINER_ERROR, POST_START_HOOK_ERROR, RUN_CONTAINER_ERROR,
    StartFailure,
};
use crate::cri::api;
use crate::events::{container_ref, reasons};
use crate::lifecycle::{self, HookTarget};
use component_base::events::EventType;

/// What every container start of one sync shares: the pod, its runtime state and sandbox.
#[derive(Clone, Copy)]
pub(super) struct PodStart<'a> {
    pub pod: &'a Pod,
    pub status: &'a PodRuntimeStatus,
    pub sandbox_id: &'a str,
    pub sandbox_config: &'a api::PodSandboxConfig,
    pub pod_ips: &'a [String],
}

impl RuntimeManager {
    fn backoff_key(pod: &Pod, c: &Container) -> String {
        format!("{}_{}", crate::types::pod_uid(pod), c.name)
    }

    /// `doBackOff`: refuses a restart inside the crash-loop window.
    fn crash_loop_check(
        &self,
        pod: &Pod,
        c: &Container,
        previous: Option<&ContainerRecord>,
    ) -> Result<(), StartFailure> {
        let Some(prev) = previous.filter(|p| p.state == ContainerState::Exited) else {
            return Ok(());
        };
        let finished = Timestamp::from_nanosecond(i128::from(prev.finished_at))
            .unwrap_or_else(|_| Timestamp::now());
        let key = Self::backoff_key(pod, c);
        let mut b = self.crash_backoff.lock().unwrap_or_else(|p| p.into_inner());
        if b.is_in_backoff_since(&key, finished, Timestamp::now()) {
            self.events.record(
                &container_ref(pod, &c.name),
                EventType::Warning,
                reasons::BACK_OFF_START_CONTAINER,
                &format!(
                    "Back-off restarting failed container {} in pod {}",
                    c.name,
                    format_pod(pod)
                ),
            );
            let delay = b.get(&key);
            return Err(StartFailure {
                reason: CRASH_LOOP_BACKOFF.into(),
                message: format!(
                    "back-off {} restarting failed container={} pod={}",
                    component_base::config::format_duration(delay),
                    c.name,
                    format_pod(pod)
                ),
            });
        }
        b.next(&key, finished);
        Ok(())
    }

    async fn env_inputs(
        &self,
        pod: &Pod,
        c: &Container,
        pod_ips: &[String],
    ) -> Result<EnvInputs, StartFailure> {
        let mut inputs = EnvInputs {
            host_ips: self.settings.host_ips.clone(),
            pod_ips: pod_ips.to_vec(),
            node_allocatable: self.settings.node_allocatable.clone(),
            ..Default::default()
        };
        let Some(client) = &self.client else {
            return Ok(inputs);
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let fail = |e: kube::Error| StartFailure {
            reason: CREATE_CONTAINER_CONFIG_ERROR.into(),
            message: e.to_string(),
        };
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let mut cm_names = Vec::new();
        let mut secret_names = Vec::new();
        for f in c.env_from.iter().flatten() {
            cm_names.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
            secret_names.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for v in c.env.iter().flatten() {
            let from = v.value_from.as_ref();
            cm_names.extend(
                from.and_then(|f| f.config_map_key_ref.as_ref())
                    .map(|r| r.name.clone()),
            );
            secret_names.extend(
                from.and_then(|f| f.secret_key_ref.as_ref())
                    .map(|r| r.name.clone()),
            );
        }
        for name in cm_names {
            let obj = cms.get_opt(&name).await.map_err(fail)?;
            inputs.config_maps.insert(name, obj);
        }
        for name in secret_names {
            let obj = secrets.get_opt(&name).await.map_err(fail)?;
            inputs.secrets.insert(name, obj);
        }
        for namespace in [ns.as_str(), "default"] {
            let api: Api<Service> = Api::namespaced(client.clone(), namespace);
            inputs
                .services
                .extend(api.list(&ListParams::default()).await.map_err(fail)?.items);
        }
        Ok(inputs)
    }

    pub(super) async fn start_container(
        &self,
        start: PodStart<'_>,
        c: &Container,
        init: bool,
    ) -> Result<(), StartFailure> {
        let pod = start.pod;
        let previous = start.status.find(&c.name);
        self.crash_loop_check(pod, c, previous)?;
        let created = self.create_and_start(start, c, init).await;
        if let Err(f) = &created {
            // Upstream reports image errors by their reason, the rest by message.
            let image_error = [ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF, ERR_IMAGE_NEVER_PULL]
                .contains(&f.reason.as_str());
            let detail = if image_error { &f.reason } else { &f.message };
            // A failed postStart hook has its own event (FailedPostStartHook).
            if f.reason != POST_START_HOOK_ERROR {
                self.events.record(
                    &container_ref(pod, &c.name),
                    EventType::Warning,
                    reasons::FAILED_TO_CREATE_CONTAINER,
                    &format!("Error: {detail}"),
                );
            }
        }
        created
    }

    /// Image, config, `CreateContainer`, `StartContainer`, recording `Created` and
    /// `Started` as each step succeeds.
    async fn create_and_start(
        &self,
        start: PodStart<'_>,
        c: &Container,
        init: bool,
    ) -> Result<(), StartFailure> {
        let PodStart {
            pod,
            status,
            sandbox_id,
            sandbox_config,
            pod_ips,
        } = start;
        let previous = status.find(&c.name);
        let image_ref = self.ensure_image(pod, c, sandbox_config).await?;
        let restart_count = previous.map_or(0, |p| p.restart_count + 1);
        let inputs = self.env_inputs(pod, c, pod_ips).await?;
        let env = make_environment_variables(pod, c, &inputs).map_err(|e| StartFailure {
            reason: CREATE_CONTAINER_CONFIG_ERROR.into(),
            message: e.to_string(),
        })?;
        let params = ContainerParams {
            env: &env,
            restart_count,
            init,
            memory_capacity: self.settings.memory_capacity,
            cpu_cfs_quota: self.settings.cpu_cfs_quota,
            image_ref: &image_ref,
        };
        let mut config = generate_container_config(pod, c, &params);
        config.mounts = self.make_mounts(pod, c, &env, pod_ips)?;
        let id = self
            .runtime
            .create_container(sandbox_id, config, sandbox_config.clone())
            .await
            .map_err(|e| StartFailure {
                reason: CREATE_CONTAINER_ERROR.into(),
                message: e.to_string(),
            })?;
        let regarding = container_ref(pod, &c.name);
        self.events.record(
            &regarding,
            EventType::Normal,
            reasons::CREATED_CONTAINER,
            "Container created",
        );
        self.runtime
            .start_container(&id)
            .await
            .map_err(|e| StartFailure {
                reason: RUN_CONTAINER_ERROR.into(),
                // Container ids defeat event de-duplication; upstream names it instead.
                message: e.to_string().replace(&id, &c.name),
            })?;
        self.events.record(
            &regarding,
            EventType::Normal,
            reasons::STARTED_CONTAINER,
            "Container started",
        );
        // Keep only the previous instance (for lastState); older ones are garbage.
        for old in status
            .containers
            .iter()
            .filter(|o| o.name == c.name)
            .skip(1)
        {
            if let Err(e) = self.runtime.remove_container(&old.id).await {
                tracing::debug!(error = %e, id = %old.id, "removing old container instance");
            }
        }
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            self.run_post_start_hook(pod, c, &id, hook, pod_ips.first().map(String::as_str))
                .await?;
        }
        Ok(())
    }

    /// Step 4 of `startContainer`: a failed postStart hook kills the container.
    async fn run_post_start_hook(
        &self,
        pod: &Pod,
        c: &Container,
        id: &str,
        hook: &LifecycleHandler,
        pod_ip: Option<&str>,
    ) -> Result<(), StartFailure> {
        let target = HookTarget {
            pod,
            container: c,
            container_id: id,
            pod_ip,
        };
        let Err(e) = lifecycle::run(&self.runtime, self.events.as_ref(), hook, &target).await
        else {
            return Ok(());
        };
        tracing::error!(pod = %format_pod(pod), container = %c.name, error = %e, "Failed to execute PostStartHook");
        // The message stays out of the event so secrets do not leak.
        self.events.record(
            &container_ref(pod, &c.name),
            EventType::Warning,
            reasons::FAILED_POST_START_HOOK,
            "PostStartHook failed",
        );
        let kill = self.kill_container(
            pod,
            &c.name,
            id,
            reasons::FAILED_POST_START_HOOK,
            Self::grace_period(pod),
            pod_ip,
        );
        if let Err(kill_error) = kill.await {
            tracing::error!(pod = %format_pod(pod), container = %c.name, error = %kill_error, "Failed to kill container");
        }
        Err(StartFailure {
            reason: POST_START_HOOK_ERROR.into(),
            message: e.to_string(),
        })
    }
}
