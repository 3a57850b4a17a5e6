//! Starts and stops probe workers as pods come and go (upstream `prober_manager.go`),
//! and answers the status manager's "is this container started / ready?".

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::events::ProberEvent;
use super::probe::ProbeType;
use super::results::{ProbeResult, ResultsManager};
use super::target::{ContainerExec, PodProbeStatus};
use super::worker::{ProbeSettings, ThresholdTracker, Worker};

struct PodEntry {
    status: watch::Sender<Arc<PodProbeStatus>>,
    workers: HashMap<(String, ProbeType), CancellationToken>,
}

/// Owns all probe workers and the three results caches.
pub struct ProbeManager {
    liveness: Arc<ResultsManager>,
    readiness: Arc<ResultsManager>,
    startup: Arc<ResultsManager>,
    events: mpsc::UnboundedSender<ProberEvent>,
    start: tokio::time::Instant,
    pods: Mutex<HashMap<String, PodEntry>>,
}

impl ProbeManager {
    /// The receiver carries events and restart requests for the pod workers.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<ProberEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let manager = ProbeManager {
            liveness: Arc::new(ResultsManager::new(ProbeType::Liveness)),
            readiness: Arc::new(ResultsManager::new(ProbeType::Readiness)),
            startup: Arc::new(ResultsManager::new(ProbeType::Startup)),
            events,
            start: tokio::time::Instant::now(),
            pods: Mutex::new(HashMap::new()),
        };
        (manager, rx)
    }

    pub fn results(&self, probe_type: ProbeType) -> &Arc<ResultsManager> {
        match probe_type {
            ProbeType::Liveness => &self.liveness,
            ProbeType::Readiness => &self.readiness,
            ProbeType::Startup => &self.startup,
        }
    }

    /// Starts workers for every probe of the pod's containers and sidecars (restartable
    /// init containers) that has none running. Must be called inside a tokio runtime.
    pub fn add_pod(&self, pod: &Pod, exec: Arc<dyn ContainerExec>) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let Some(spec) = &pod.spec else { return };
        let pod_name = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let pod_never_restarts = spec.restart_policy.as_deref() == Some("Never");
        let containers = spec
            .containers
            .iter()
            .map(|c| (c, pod_never_restarts))
            .chain(sidecars.map(|c| (c, false)));

        let mut pods = self.lock();
        let entry = pods.entry(uid.clone()).or_insert_with(|| PodEntry {
            status: watch::channel(Arc::new(PodProbeStatus::default())).0,
            workers: HashMap::new(),
        });
        for (container, never_restarted) in containers {
            for probe_type in ProbeType::ALL {
                let Some(probe) = probe_type.spec(container) else {
                    continue;
                };
                let key = (container.name.clone(), probe_type);
                if entry.workers.get(&key).is_some_and(|t| !t.is_cancelled()) {
                    continue;
                }
                let settings = ProbeSettings::from_probe(probe);
                let worker = Worker {
                    pod_uid: uid.clone(),
                    pod_name: pod_name.clone(),
                    container_name: container.name.clone(),
                    probe_type,
                    probe: probe.clone(),
                    never_restarted,
                    named_ports: named_ports(container),
                    exec: exec.clone(),
                    status: entry.status.subscribe(),
                    results: self.results(probe_type).clone(),
                    events: self.events.clone(),
                    container_id: String::new(),
                    on_hold: false,
                    tracker: ThresholdTracker::default(),
                    settings,
                };
                let jitter = self.first_run_jitter(worker.settings.period);
                let cancel = CancellationToken::new();
                entry.workers.insert(key, cancel.clone());
                tokio::spawn(worker.run(cancel, jitter));
            }
        }
    }

    /// A freshly started kubelet would probe every container at once; upstream spreads the
    /// first runs over one period.
    fn first_run_jitter(&self, period: Duration) -> Option<Duration> {
        (self.start.elapsed() < period).then(|| period.mul_f64(rand::rng().random::<f64>()))
    }

    /// Publishes the pod's latest container states to its workers.
    pub fn update_pod_status(&self, pod_uid: &str, status: PodProbeStatus) {
        if let Some(entry) = self.lock().get(pod_uid) {
            entry.status.send_replace(Arc::new(status));
        }
    }

    /// Stops all workers of a pod.
    pub fn remove_pod(&self, pod_uid: &str) {
        if let Some(entry) = self.lock().remove(pod_uid) {
            for token in entry.workers.values() {
                token.cancel();
            }
        }
    }

    /// Stops workers of pods not in `desired` (upstream `CleanupPods`).
    pub fn cleanup_pods(&self, desired: &HashSet<String>) {
        let stale: Vec<String> = self
            .lock()
            .keys()
            .filter(|uid| !desired.contains(*uid))
            .cloned()
            .collect();
        for uid in stale {
            self.remove_pod(&uid);
        }
    }

    /// Number of live workers of a pod (for tests and debugging).
    pub fn worker_count(&self, pod_uid: &str) -> usize {
        self.lock().get(pod_uid).map_or(0, |e| {
            e.workers.values().filter(|t| !t.is_cancelled()).count()
        })
    }

    /// `containerStatuses[].started` (upstream `UpdatePodStatus`).
    pub fn container_started(
        &self,
        container: &Container,
        container_id: &str,
        running: bool,
    ) -> bool {
        running
            && (container.startup_probe.is_none()
                || self.startup.get(container_id) == Some(ProbeResult::Success))
    }

    /// `containerStatuses[].ready` (upstream `UpdatePodStatus`).
    pub fn container_ready(
        &self,
        container: &Container,
        container_id: &str,
        running: bool,
        started: bool,
    ) -> bool {
        running
            && started
            && (container.readiness_probe.is_none()
                || self.readiness.get(container_id) == Some(ProbeResult::Success))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodEntry>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn named_ports(container: &Container) -> HashMap<String, i32> {
    container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone().map(|n| (n, p.container_port)))
        .collect()
}
