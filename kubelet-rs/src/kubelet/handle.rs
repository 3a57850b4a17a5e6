//! [`KubeletHandle`]: the running kubelet's pod view for the :10250 server
//! (upstream `GetPods`, `GetRunningPods`, `LatestLoopEntryTime`).
//!
//! The handle owns no pod state of its own: it reads the pod workers (the pod
//! manager's view), the status manager's latest statuses and the CRI, all of
//! which `run_with` attaches once it has built them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cri::{RuntimeService, api};
use crate::kuberuntime::labels::{POD_NAME, POD_NAMESPACE, POD_UID};
use crate::pod_workers::PodWorkers;
use crate::server::{PodProvider, RunningPodsError};
use crate::status::status_manager::StatusManager;

/// What `run_with` attaches once the kubelet's parts exist.
pub(crate) struct Attached {
    pub workers: PodWorkers,
    pub status: Arc<StatusManager>,
    pub runtime: RuntimeService,
}

/// A cheap-to-clone view of a running kubelet; before `run_with` attached
/// its parts it reports no pods.
#[derive(Clone, Default)]
pub struct KubeletHandle {
    attached: Arc<OnceLock<Attached>>,
    /// When the sync loop last entered an iteration (`None`: not yet).
    loop_entry: Arc<Mutex<Option<Instant>>>,
}

/// The sync loop has not entered an iteration in time (upstream's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sync Loop took longer than expected")]
pub struct SyncLoopStalled;

/// upstream `syncLoopHealthCheck`: unhealthy once the loop has not entered an
/// iteration for `max(2*resync, 5m)`; healthy before its first iteration.
pub fn sync_loop_health(
    last_entry: Option<Instant>,
    now: Instant,
    resync_interval: Duration,
) -> Result<(), SyncLoopStalled> {
    let allowed = (resync_interval * 2).max(Duration::from_secs(5 * 60));
    match last_entry {
        Some(t) if now.saturating_duration_since(t) > allowed => Err(SyncLoopStalled),
        _ => Ok(()),
    }
}

impl KubeletHandle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches the kubelet's parts; a handle serves one kubelet only.
    pub(crate) fn attach(&self, parts: Attached) -> Result<(), crate::Error> {
        self.attached
            .set(parts)
            .map_err(|_| crate::Error::HandleInUse)
    }

    /// Records that the sync loop entered an iteration (`syncLoopMonitor.Store`).
    pub(crate) fn mark_loop_entry(&self) {
        *self.loop_entry.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// upstream `LatestLoopEntryTime`.
    pub fn latest_loop_entry(&self) -> Option<Instant> {
        *self.loop_entry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `syncloop` health check for a kubelet with `syncFrequency` `resync_interval`.
    pub fn sync_loop_health_check(&self, resync_interval: Duration) -> Result<(), SyncLoopStalled> {
        sync_loop_health(self.latest_loop_entry(), Instant::now(), resync_interval)
    }
}

/// upstream `kubecontainer.Pod.ToAPIPod` over `GetPods(all=false)`: ready
/// sandboxes and running containers grouped by pod uid, carrying only the
/// pod's identity and its containers' names and images.
pub fn running_pods_from(sandboxes: &[api::PodSandbox], containers: &[api::Container]) -> Vec<Pod> {
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    for sb in sandboxes
        .iter()
        .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
    {
        running_pod_entry(&mut pods, &sb.labels);
    }
    for c in containers
        .iter()
        .filter(|c| c.state == api::ContainerState::ContainerRunning as i32)
    {
        if let Some(pod) = running_pod_entry(&mut pods, &c.labels) {
            pod.spec
                .get_or_insert_with(PodSpec::default)
                .containers
                .push(Container {
                    name: c
                        .metadata
                        .as_ref()
                        .map(|m| m.name.clone())
                        .unwrap_or_default(),
                    image: c.image.as_ref().map(|i| i.image.clone()),
                    ..Container::default()
                });
        }
    }
    pods.into_values().collect()
}

/// The pod a labelled sandbox or container belongs to; `None` for objects
/// the kubelet did not create (no pod uid label).
fn running_pod_entry<'a>(
    pods: &'a mut BTreeMap<String, Pod>,
    labels: &HashMap<String, String>,
) -> Option<&'a mut Pod> {
    let uid = labels.get(POD_UID)?;
    Some(pods.entry(uid.clone()).or_insert_with(|| Pod {
        metadata: ObjectMeta {
            name: labels.get(POD_NAME).cloned(),
            namespace: labels.get(POD_NAMESPACE).cloned(),
            uid: Some(uid.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec::default()),
        status: None,
    }))
}

#[async_trait::async_trait]
impl PodProvider for KubeletHandle {
    /// upstream `GetPods`: the pod manager's pods, each with the status
    /// manager's latest status when it has one.
    fn pods(&self) -> Vec<Pod> {
        let Some(parts) = self.attached.get() else {
            return Vec::new();
        };
        let mut pods = parts.workers.pods();
        for pod in &mut pods {
            if let Some(status) = pod
                .metadata
                .uid
                .as_deref()
                .and_then(|uid| parts.status.pod_status(uid))
            {
                pod.status = Some(status);
            }
        }
        pods.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        pods
    }

    async fn running_pods(&self) -> Result<Vec<Pod>, RunningPodsError> {
        let Some(parts) = self.attached.get() else {
            return Err(RunningPodsError::NotStarted);
        };
        let sandboxes = parts.runtime.list_pod_sandbox(None).await?;
        let containers = parts.runtime.list_containers(None).await?;
        Ok(running_pods_from(&sandboxes, &containers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_loop_health_matches_upstream_window() {
        let now = Instant::now();
        let min = Duration::from_secs(300);
        let cases: &[(&str, Option<Duration>, Duration, bool)] = &[
            ("never entered", None, Duration::from_secs(60), true),
            (
                "just entered",
                Some(Duration::ZERO),
                Duration::from_secs(60),
                true,
            ),
            (
                "within the 5m floor",
                Some(min),
                Duration::from_secs(60),
                true,
            ),
            (
                "past the 5m floor",
                Some(min + Duration::from_secs(1)),
                Duration::from_secs(60),
                false,
            ),
            (
                "2*resync above the floor",
                Some(Duration::from_secs(500)),
                Duration::from_secs(300),
                true,
            ),
            (
                "past 2*resync",
                Some(Duration::from_secs(601)),
                Duration::from_secs(300),
                false,
            ),
        ];
        for (name, ago, resync, healthy) in cases {
            let Some(last) = ago.map_or(Some(None), |a| now.checked_sub(a).map(Some)) else {
                // The monotonic clock started too recently to go back this far.
                continue;
            };
            assert_eq!(
                sync_loop_health(last, now, *resync).is_ok(),
                *healthy,
                "{name}"
            );
        }
    }

    /// A container's name and image.
    type NameImage = (String, Option<String>);

    fn labels(uid: &str, name: &str) -> HashMap<String, String> {
        HashMap::from([
            (POD_UID.to_string(), uid.to_string()),
            (POD_NAME.to_string(), name.to_string()),
            (POD_NAMESPACE.to_string(), "default".to_string()),
        ])
    }

    #[test]
    fn running_pods_keep_ready_sandboxes_and_running_containers() {
        let sandbox = |uid: &str, name: &str, state: api::PodSandboxState| api::PodSandbox {
            id: format!("sb-{uid}"),
            labels: labels(uid, name),
            state: state as i32,
            ..Default::default()
        };
        let container =
            |uid: &str, name: &str, c: &str, state: api::ContainerState| api::Container {
                id: format!("{uid}-{c}"),
                labels: labels(uid, name),
                metadata: Some(api::ContainerMetadata {
                    name: c.to_string(),
                    attempt: 0,
                }),
                image: Some(api::ImageSpec {
                    image: "busybox:1.0".to_string(),
                    ..Default::default()
                }),
                state: state as i32,
                ..Default::default()
            };
        let sandboxes = vec![
            sandbox("u1", "a", api::PodSandboxState::SandboxReady),
            sandbox("u2", "b", api::PodSandboxState::SandboxNotready),
        ];
        let containers = vec![
            container("u1", "a", "main", api::ContainerState::ContainerRunning),
            container("u1", "a", "done", api::ContainerState::ContainerExited),
            container("u2", "b", "x", api::ContainerState::ContainerExited),
            container("u3", "c", "side", api::ContainerState::ContainerRunning),
        ];
        let pods = running_pods_from(&sandboxes, &containers);
        let summary: Vec<(String, Vec<NameImage>)> = pods
            .iter()
            .map(|p| {
                (
                    p.metadata.name.clone().unwrap_or_default(),
                    p.spec
                        .iter()
                        .flat_map(|s| &s.containers)
                        .map(|c| (c.name.clone(), c.image.clone()))
                        .collect(),
                )
            })
            .collect();
        let busybox = Some("busybox:1.0".to_string());
        assert_eq!(
            summary,
            vec![
                ("a".to_string(), vec![("main".to_string(), busybox.clone())]),
                ("c".to_string(), vec![("side".to_string(), busybox)]),
            ]
        );
        assert_eq!(pods[0].metadata.uid.as_deref(), Some("u1"));
        assert_eq!(pods[0].metadata.namespace.as_deref(), Some("default"));
    }
}
