//! `kubeGenericRuntimeManager` (upstream `kuberuntime_manager.go`): the manager's state,
//! built whole by [`RuntimeManager::new`], and what it reads back from the runtime. The
//! rest of it lives by concern: `sync.rs` (SyncPod), `image.rs` (image pulls),
//! `sandbox.rs` (sandboxes), `container_start.rs` and `container_kill.rs` (containers).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;

use super::backoff::Backoff;
use super::dns::{ClusterDns, HostResolv};
use super::labels;
use super::runtime_status::PodRuntimeStatus;
use super::termination_message::record_with_termination_message;
use crate::cri::{CriError, ImageService, RuntimeService, api};
use crate::events::EventSink;
use crate::volumemanager::VolumeManager;

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

/// Everything [`RuntimeManager::new`] needs; nothing is set after construction.
pub struct RuntimeDeps {
    pub runtime: RuntimeService,
    pub images: ImageService,
    /// For env sources (ConfigMaps, Secrets, Services); `None` in tests without an apiserver.
    pub client: Option<Client>,
    pub settings: RuntimeSettings,
    /// Pod volumes; without one, pods with volumes are still started (tests, no mounts).
    pub volumes: Option<Arc<VolumeManager>>,
    /// Where container, image and sandbox events go ([`crate::events::noop`] for nowhere).
    pub events: Arc<dyn EventSink>,
}

pub struct RuntimeManager {
    pub(super) runtime: RuntimeService,
    pub(super) images: ImageService,
    pub(super) client: Option<Client>,
    pub(super) settings: RuntimeSettings,
    pub(super) volumes: Option<Arc<VolumeManager>>,
    pub(super) events: Arc<dyn EventSink>,
    pub(super) crash_backoff: Mutex<Backoff>,
    pub(super) image_backoff: Mutex<Backoff>,
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

impl RuntimeManager {
    pub fn new(deps: RuntimeDeps) -> Self {
        let RuntimeDeps {
            runtime,
            images,
            client,
            settings,
            volumes,
            events,
        } = deps;
        Self {
            runtime,
            images,
            client,
            settings,
            volumes,
            events,
            crash_backoff: Mutex::new(Backoff::crash_loop()),
            image_backoff: Mutex::new(Backoff::crash_loop()),
        }
    }

    /// `--cpu-cfs-quota`: CPU limits are applied as CFS quota.
    pub fn cpu_cfs_quota(&self) -> bool {
        self.settings.cpu_cfs_quota
    }

    /// Where this manager's events go (the pod workers record probe events there too).
    pub fn events(&self) -> &Arc<dyn EventSink> {
        &self.events
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
                Ok(s) => status.containers.push(record_with_termination_message(&s)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(status.normalise())
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
