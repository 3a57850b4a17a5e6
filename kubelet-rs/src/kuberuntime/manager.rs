//! `kubeGenericRuntimeManager`: reads a pod's runtime state and drives it toward the
//! spec (`SyncPod`, `KillPod`) through the CRI wrappers.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::ListParams;
use kube::{Api, Client};

use super::actions::{PodActions, compute_pod_actions};
use super::backoff::Backoff;
use super::container::{ContainerParams, generate_container_config};
use super::dns::{ClusterDns, HostResolv, pod_dns};
use super::env::{CREATE_CONTAINER_CONFIG_ERROR, EnvInputs, make_environment_variables};
use super::labels;
use super::runtime_status::{ContainerRecord, ContainerState, PodRuntimeStatus};
use super::sandbox::{SandboxParams, generate_pod_sandbox_config, pod_log_dir};
use crate::cri::{CriError, ImageService, RuntimeService, api};
use crate::events::{EventSink, container_ref, pod_ref, reasons};
use crate::volumemanager::{MountPropagation, VolumeManager};
use component_base::events::EventType;

pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
pub const IMAGE_PULL_BACKOFF: &str = "ImagePullBackOff";
pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
pub const CRASH_LOOP_BACKOFF: &str = "CrashLoopBackOff";
pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";

/// Node-level settings the runtime manager needs.
#[derive(Clone, Debug, Default)]
pub struct RuntimeSettings {
    pub log_root: PathBuf,
    pub cluster_dns: ClusterDns,
    pub host_resolv: HostResolv,
    pub memory_capacity: i64,
    pub cpu_cfs_quota: bool,
    pub host_ips: Vec<String>,
    pub node_allocatable: BTreeMap<String, String>,
    /// `--cgroups-per-qos` with the cgroupfs driver: `/kubepods/<qos>/pod<uid>` parents.
    pub cgroups_per_qos: bool,
    pub cgroup_root: String,
}

/// Why a container could not be started this sync (becomes its waiting reason).
#[derive(Clone, Debug, PartialEq)]
pub struct StartFailure {
    pub reason: String,
    pub message: String,
}

/// The outcome of one `SyncPod`.
#[derive(Clone, Debug, Default)]
pub struct SyncResult {
    pub failures: BTreeMap<String, StartFailure>,
    /// Containers started successfully this sync (their cached reasons are cleared).
    pub started: Vec<String>,
    pub error: Option<String>,
}

pub struct RuntimeManager {
    pub runtime: RuntimeService,
    pub images: ImageService,
    pub client: Option<Client>,
    pub settings: RuntimeSettings,
    /// Pod volumes; without one, pods with volumes are still started (tests, no mounts).
    pub volumes: Option<Arc<VolumeManager>>,
    /// Where container, image and sandbox events go (nowhere by default).
    pub events: Arc<dyn EventSink>,
    crash_backoff: Mutex<Backoff>,
    image_backoff: Mutex<Backoff>,
}

/// Volume mounts → CRI mounts.
fn cri_mounts(mounts: Vec<crate::volumemanager::Mount>) -> Vec<api::Mount> {
    mounts
        .into_iter()
        .map(|m| api::Mount {
            container_path: m.container_path,
            host_path: m.host_path.display().to_string(),
            readonly: m.read_only,
            propagation: match m.propagation {
                MountPropagation::Private => api::MountPropagation::PropagationPrivate,
                MountPropagation::HostToContainer => {
                    api::MountPropagation::PropagationHostToContainer
                }
                MountPropagation::Bidirectional => api::MountPropagation::PropagationBidirectional,
            } as i32,
            ..Default::default()
        })
        .collect()
}

/// `format.Pod`: `name_namespace(uid)`.
pub fn format_pod(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

fn pod_uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Upstream default pull policy: `Always` for `:latest` or untagged, else `IfNotPresent`.
pub fn effective_pull_policy(c: &Container) -> String {
    if let Some(p) = c.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    let image = c.image.as_deref().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent".into();
    }
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always".into(),
        Some(_) => "IfNotPresent".into(),
    }
}

/// The cgroup parent for the pod sandbox under the QoS hierarchy.
pub fn cgroup_parent(settings: &RuntimeSettings, pod: &Pod) -> String {
    if !settings.cgroups_per_qos {
        return String::new();
    }
    let root = settings.cgroup_root.trim_end_matches('/');
    let qos = match crate::qos::pod_qos(pod) {
        crate::qos::GUARANTEED => String::new(),
        crate::qos::BURSTABLE => "/burstable".into(),
        _ => "/besteffort".into(),
    };
    format!("{root}/kubepods{qos}/pod{}", pod_uid(pod))
}

impl RuntimeManager {
    pub fn new(
        runtime: RuntimeService,
        images: ImageService,
        client: Option<Client>,
        settings: RuntimeSettings,
    ) -> Self {
        Self {
            runtime,
            images,
            client,
            settings,
            volumes: None,
            events: crate::events::noop(),
            crash_backoff: Mutex::new(Backoff::crash_loop()),
            image_backoff: Mutex::new(Backoff::crash_loop()),
        }
    }

    /// Everything the runtime knows about the pod with `uid`, newest first.
    pub async fn get_pod_status(&self, uid: &str) -> Result<PodRuntimeStatus, CriError> {
        let selector = HashMap::from([(labels::POD_UID.to_string(), uid.to_string())]);
        let sandboxes = self
            .runtime
            .list_pod_sandbox(Some(api::PodSandboxFilter {
                label_selector: selector.clone(),
                ..Default::default()
            }))
            .await?;
        let mut status = PodRuntimeStatus::default();
        for sb in sandboxes {
            match self.runtime.pod_sandbox_status(&sb.id).await {
                Ok(s) => status.sandboxes.push(s),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let containers = self
            .runtime
            .list_containers(Some(api::ContainerFilter {
                label_selector: selector,
                ..Default::default()
            }))
            .await?;
        for c in containers {
            match self.runtime.container_status(&c.id).await {
                Ok(s) => status.containers.push(ContainerRecord::from_cri(&s)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(status.normalise())
    }

    /// Stops running containers (with the grace period) and every sandbox of the pod.
    pub async fn kill_pod(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        grace: Duration,
    ) -> Result<(), CriError> {
        let kills = status.running().map(|c| self.kill_container(pod, c, grace));
        for r in futures::future::join_all(kills).await {
            match r {
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

    fn grace_period(pod: &Pod) -> Duration {
        let secs = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        Duration::from_secs(secs.max(2) as u64)
    }

    /// One `SyncPod`: compute actions from the runtime state and apply them.
    pub async fn sync_pod(&self, pod: &Pod, status: &PodRuntimeStatus) -> SyncResult {
        let actions = compute_pod_actions(pod, status);
        tracing::debug!(pod = %format_pod(pod), ?actions, "computed pod actions");
        let mut result = SyncResult::default();
        if let Err(e) = self.apply_kills(pod, status, &actions).await {
            result.error = Some(e.to_string());
            return result;
        }
        if actions.kill_pod && !actions.create_sandbox {
            return result;
        }
        if let Some(volumes) = &self.volumes
            && let Err(e) = volumes.setup_pod(pod).await
        {
            // Upstream keeps the pod in ContainerCreating and reports FailedMount,
            // once per volume (operation executor) and once for the pod (kubelet).
            let regarding = pod_ref(pod);
            for v in &e.0 {
                self.events.record(
                    &regarding,
                    EventType::Warning,
                    reasons::FAILED_MOUNT_VOLUME,
                    &v.to_string(),
                );
            }
            let message = format!("Unable to attach or mount volumes: {e}");
            self.events.record(
                &regarding,
                EventType::Warning,
                reasons::FAILED_MOUNT_VOLUME,
                &message,
            );
            result.error = Some(message);
            return result;
        }
        let mut sandbox_id = actions.sandbox_id.clone();
        let sandbox_config = self.sandbox_config(pod, actions.attempt);
        let mut pod_ips = status.pod_ips();
        if actions.create_sandbox {
            if !status.sandboxes.is_empty() {
                self.events.record(
                    &pod_ref(pod),
                    EventType::Normal,
                    reasons::SANDBOX_CHANGED,
                    "Pod sandbox changed, it will be killed and re-created.",
                );
            }
            if let Err(e) = std::fs::create_dir_all(pod_log_dir(&self.settings.log_root, pod)) {
                result.error = Some(format!("create pod log directory: {e}"));
                return result;
            }
            match self
                .runtime
                .run_pod_sandbox(sandbox_config.clone(), String::new())
                .await
            {
                Ok(id) => sandbox_id = id,
                Err(e) => {
                    let message = format!("Failed to create pod sandbox: {e}");
                    self.events.record(
                        &pod_ref(pod),
                        EventType::Warning,
                        reasons::FAILED_CREATE_POD_SANDBOX,
                        &message,
                    );
                    result.error = Some(message);
                    return result;
                }
            }
            pod_ips = match self.runtime.pod_sandbox_status(&sandbox_id).await {
                Ok(s) => PodRuntimeStatus {
                    sandboxes: vec![s],
                    containers: vec![],
                }
                .pod_ips(),
                Err(_) => Vec::new(),
            };
        }
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
        for (c, init) in targets {
            match self
                .start_container(
                    pod,
                    &c,
                    init,
                    status,
                    &sandbox_id,
                    &sandbox_config,
                    &pod_ips,
                )
                .await
            {
                Ok(()) => result.started.push(c.name.clone()),
                Err(f) => {
                    tracing::info!(pod = %format_pod(pod), container = %c.name, reason = %f.reason, message = %f.message, "container start failed");
                    result.failures.insert(c.name.clone(), f);
                }
            }
        }
        result
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
        for (id, (name, message)) in &actions.containers_to_kill {
            tracing::info!(pod = %format_pod(pod), container = %name, %message, "killing container");
            self.record_killing(pod, name, id, message);
            self.runtime
                .stop_container(id, Self::grace_period(pod))
                .await?;
        }
        Ok(())
    }

    fn sandbox_config(&self, pod: &Pod, attempt: u32) -> api::PodSandboxConfig {
        let params = SandboxParams {
            log_root: &self.settings.log_root,
            cluster_domain: &self.settings.cluster_dns.domain,
            dns: pod_dns(pod, &self.settings.cluster_dns, &self.settings.host_resolv),
            cgroup_parent: cgroup_parent(&self.settings, pod),
            attempt,
        };
        generate_pod_sandbox_config(pod, &params)
    }

    fn backoff_key(pod: &Pod, c: &Container) -> String {
        format!("{}_{}", pod_uid(pod), c.name)
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

    /// `EnsureImageExists`: returns the image ref to run.
    async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
        sandbox: &api::PodSandboxConfig,
    ) -> Result<String, StartFailure> {
        let image = c.image.clone().unwrap_or_default();
        let policy = effective_pull_policy(c);
        let regarding = container_ref(pod, &c.name);
        let present = self.images.image_status(&image).await.ok().flatten();
        if policy != "Always"
            && let Some(img) = &present
        {
            // Upstream v1.36 has KubeletEnsureSecretPulledImages on by default.
            self.events.record(
                &regarding,
                EventType::Normal,
                reasons::PULLED_IMAGE,
                &format!(
                    "Container image \"{image}\" already present on machine and can be accessed by the pod"
                ),
            );
            return Ok(img.id.clone());
        }
        if policy == "Never" {
            self.events.record(
                &regarding,
                EventType::Warning,
                reasons::ERR_IMAGE_NEVER_PULL_POLICY,
                &format!("Container image \"{image}\" is not present with pull policy of Never"),
            );
            return Err(StartFailure {
                reason: ERR_IMAGE_NEVER_PULL.into(),
                message: format!(
                    "Container image \"{image}\" is not present with pull policy of Never"
                ),
            });
        }
        let key = format!("{}_{image}", pod_uid(pod));
        let now = Timestamp::now();
        {
            let b = self.image_backoff.lock().unwrap_or_else(|p| p.into_inner());
            if b.is_in_backoff_since(&key, now, now) {
                self.events.record(
                    &regarding,
                    EventType::Normal,
                    reasons::BACK_OFF_PULL_IMAGE,
                    &format!("Back-off pulling image \"{image}\""),
                );
                return Err(StartFailure {
                    reason: IMAGE_PULL_BACKOFF.into(),
                    message: format!("Back-off pulling image \"{image}\""),
                });
            }
        }
        self.events.record(
            &regarding,
            EventType::Normal,
            reasons::PULLING_IMAGE,
            &format!("Pulling image \"{image}\""),
        );
        let pull_started = tokio::time::Instant::now();
        match self
            .images
            .pull_image(&image, None, Some(sandbox.clone()))
            .await
        {
            Ok(r) => {
                let took = component_base::config::format_duration(pull_started.elapsed());
                let size = match self.images.image_status(&r).await {
                    Ok(Some(img)) => img.size,
                    _ => 0,
                };
                self.events.record(
                    &regarding,
                    EventType::Normal,
                    reasons::PULLED_IMAGE,
                    &format!(
                        "Successfully pulled image \"{image}\" in {took} ({took} including waiting). Image size: {size} bytes."
                    ),
                );
                Ok(r)
            }
            Err(e) => {
                self.events.record(
                    &regarding,
                    EventType::Warning,
                    reasons::FAILED_TO_PULL_IMAGE,
                    &format!("Failed to pull image \"{image}\": {e}"),
                );
                self.image_backoff
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .next(&key, now);
                Err(StartFailure {
                    reason: ERR_IMAGE_PULL.into(),
                    message: format!("failed to pull and unpack image \"{image}\": {e}"),
                })
            }
        }
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

    #[allow(clippy::too_many_arguments)]
    async fn start_container(
        &self,
        pod: &Pod,
        c: &Container,
        init: bool,
        status: &PodRuntimeStatus,
        sandbox_id: &str,
        sandbox_config: &api::PodSandboxConfig,
        pod_ips: &[String],
    ) -> Result<(), StartFailure> {
        let previous = status.find(&c.name);
        self.crash_loop_check(pod, c, previous)?;
        let created = self
            .create_and_start(pod, c, init, status, sandbox_id, sandbox_config, pod_ips)
            .await;
        if let Err(f) = &created {
            // Upstream reports image errors by their reason, the rest by message.
            let image_error = [ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF, ERR_IMAGE_NEVER_PULL]
                .contains(&f.reason.as_str());
            let detail = if image_error { &f.reason } else { &f.message };
            self.events.record(
                &container_ref(pod, &c.name),
                EventType::Warning,
                reasons::FAILED_TO_CREATE_CONTAINER,
                &format!("Error: {detail}"),
            );
        }
        created
    }

    /// Image, config, `CreateContainer`, `StartContainer`, recording `Created` and
    /// `Started` as each step succeeds.
    #[allow(clippy::too_many_arguments)]
    async fn create_and_start(
        &self,
        pod: &Pod,
        c: &Container,
        init: bool,
        status: &PodRuntimeStatus,
        sandbox_id: &str,
        sandbox_config: &api::PodSandboxConfig,
        pod_ips: &[String],
    ) -> Result<(), StartFailure> {
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
        if let Some(volumes) = &self.volumes {
            let mounts = volumes.container_mounts(pod, c).map_err(|e| StartFailure {
                reason: CREATE_CONTAINER_CONFIG_ERROR.into(),
                message: e.to_string(),
            })?;
            config.mounts = cri_mounts(mounts);
        }
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
        Ok(())
    }

    /// `Killing` for a container about to be stopped; `message` defaults to
    /// upstream's "Stopping container <name>". Orphans (no API pod) get none.
    fn record_killing(&self, pod: &Pod, name: &str, id: &str, message: &str) {
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

    /// Unmounts and deletes the pod's volumes once its containers are gone.
    pub fn teardown_volumes(&self, uid: &str) {
        if let Some(volumes) = &self.volumes
            && let Err(e) = volumes.teardown_pod(uid)
        {
            tracing::warn!(uid, error = %e, "tearing down pod volumes");
        }
    }

    /// Forgets back-off state of a pod that is gone.
    pub fn forget_pod(&self, uid: &str) {
        self.crash_backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(uid);
        self.image_backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults() {
        let c = |image: &str| Container {
            name: "c".into(),
            image: Some(image.into()),
            ..Default::default()
        };
        assert_eq!(effective_pull_policy(&c("busybox")), "Always");
        assert_eq!(effective_pull_policy(&c("busybox:latest")), "Always");
        assert_eq!(effective_pull_policy(&c("busybox:1.36")), "IfNotPresent");
        assert_eq!(
            effective_pull_policy(&c("localhost:5000/busybox")),
            "Always"
        );
        assert_eq!(
            effective_pull_policy(&c("busybox@sha256:abc")),
            "IfNotPresent"
        );
    }
}
