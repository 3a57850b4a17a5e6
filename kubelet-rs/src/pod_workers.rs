//! One worker per pod, serialised (upstream `pod_workers.go`): each worker syncs its pod
//! when woken (pod update, PLEG event) or on its resync timer, and on deletion kills the
//! pod, writes the final status, removes it from the runtime and deletes the API object.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::events::{container_ref, pod_ref, reasons};
use crate::kuberuntime::actions::{NoProbes, StartupResults, StartupVerdict};
use crate::kuberuntime::manager::{RuntimeManager, format_pod};
use crate::kuberuntime::runtime_status::PodRuntimeStatus;
use crate::kuberuntime::sync_result::StartFailure;
use crate::prober::ProbeResult;
use crate::prober::ProbeType;
use crate::prober::{
    ContainerExec, ContainerProbeStatus, ContainerRunState, PodProbeStatus, ProbeManager,
    ProberEvent,
};
use crate::status::deadline::{DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_MESSAGE, time_left};
use crate::status::generate::{StatusInputs, generate_pod_status};
use crate::status::status_manager::StatusManager;
use crate::types::pod_uid;
use component_base::events::EventType;

/// Where statuses go: the status manager in production, a recorder in tests.
#[async_trait::async_trait]
pub trait StatusSink: Send + Sync + 'static {
    async fn set_pod_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), crate::Error>;
    /// Called once the pod is terminated and removed from the runtime.
    async fn pod_terminated(&self, pod: &Pod) -> Result<(), crate::Error>;
}

#[async_trait::async_trait]
impl StatusSink for StatusManager {
    async fn set_pod_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), crate::Error> {
        StatusManager::set_pod_status(self, pod, status)
            .await
            .map(drop)
    }
    async fn pod_terminated(&self, pod: &Pod) -> Result<(), crate::Error> {
        // Mirror pods of static pods are removed by the file source, not here.
        if pod.metadata.deletion_timestamp.is_some() && !crate::types::is_static_pod(pod) {
            self.delete_pod(pod).await?;
        }
        self.forget(&pod_uid(pod));
        Ok(())
    }
}

/// Sidecars wait for their startup probe (upstream `startupManager.Get`).
impl StartupResults for ProbeManager {
    fn startup(&self, container_id: &str) -> StartupVerdict {
        match self.results(ProbeType::Startup).get(container_id) {
            Some(ProbeResult::Success) => StartupVerdict::Success,
            Some(ProbeResult::Failure) => StartupVerdict::Failure,
            Some(ProbeResult::Unknown) | None => StartupVerdict::Pending,
        }
    }
}

/// What a worker needs besides its pod.
pub struct WorkerContext {
    pub manager: Arc<RuntimeManager>,
    pub status: Arc<dyn StatusSink>,
    pub runtime_name: String,
    pub host_ips: Vec<String>,
    pub resync: Duration,
    /// Probe workers and results; `None` runs pods without probes (every running
    /// container counts as started and ready).
    pub probes: Option<Arc<ProbeManager>>,
    /// The runtime exec hook handed to exec probes.
    pub exec: Option<Arc<dyn ContainerExec>>,
}

/// The prober's view of a generated status (`UpdatePodStatus` input).
fn probe_status(pod: &Pod, status: &PodStatus, rt: &PodRuntimeStatus) -> PodProbeStatus {
    let phase = status.phase.as_deref().unwrap_or_default();
    let mut containers = HashMap::new();
    for cs in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        let id = rt.find(&cs.name).map(|r| r.id.clone()).unwrap_or_default();
        let state = cs.state.clone().unwrap_or_default();
        let run = if let Some(r) = state.running {
            ContainerRunState::Running {
                started_at: r.started_at.map_or_else(Timestamp::now, |t| t.0),
            }
        } else if let Some(t) = state.terminated {
            ContainerRunState::Terminated {
                exit_code: t.exit_code,
            }
        } else {
            ContainerRunState::Waiting
        };
        containers.insert(
            cs.name.clone(),
            ContainerProbeStatus {
                container_id: id,
                state: run,
                started: cs.started,
            },
        );
    }
    PodProbeStatus {
        terminal: phase == "Succeeded" || phase == "Failed",
        deleting: pod.metadata.deletion_timestamp.is_some(),
        pod_ip: status.pod_ip.clone(),
        containers,
    }
}

struct Handle {
    pod: watch::Sender<Option<Pod>>,
    wake: Arc<Notify>,
}

/// The set of pod workers, keyed by pod uid.
#[derive(Clone)]
pub struct PodWorkers {
    ctx: Arc<WorkerContext>,
    workers: Arc<Mutex<HashMap<String, Handle>>>,
    shutdown: CancellationToken,
}

impl PodWorkers {
    pub fn new(ctx: WorkerContext, shutdown: CancellationToken) -> Self {
        Self {
            ctx: Arc::new(ctx),
            workers: Arc::new(Mutex::new(HashMap::new())),
            shutdown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `UpdatePod`: hands the newest pod to its worker, starting one if needed.
    pub fn update_pod(&self, pod: Pod) {
        let id = pod_uid(&pod);
        let mut workers = self.lock();
        if let Some(h) = workers.get(&id) {
            h.pod.send_replace(Some(pod));
            h.wake.notify_one();
            return;
        }
        let (tx, rx) = watch::channel(Some(pod));
        let wake = Arc::new(Notify::new());
        workers.insert(
            id.clone(),
            Handle {
                pod: tx,
                wake: wake.clone(),
            },
        );
        let me = self.clone();
        tokio::spawn(async move {
            me.worker_loop(rx, wake).await;
            me.lock().remove(&id);
        });
    }

    /// The pod disappeared from its source: terminate it with the pod's grace period.
    pub fn remove_pod(&self, pod: &Pod) {
        let mut gone = pod.clone();
        if gone.metadata.deletion_timestamp.is_none() {
            gone.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
            );
        }
        self.update_pod(gone);
    }

    /// Wakes the worker of `uid` (PLEG saw a change).
    pub fn wake(&self, uid: &str) {
        if let Some(h) = self.lock().get(uid) {
            h.wake.notify_one();
        }
    }

    /// The newest pod each worker holds (the pod manager's view, upstream `GetPods`).
    pub fn pods(&self) -> Vec<Pod> {
        self.lock()
            .values()
            .filter_map(|h| h.pod.borrow().clone())
            .collect()
    }

    pub fn known_uids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn pod(&self, uid: &str) -> Option<Pod> {
        self.lock().get(uid).and_then(|h| h.pod.borrow().clone())
    }

    /// Acts on the prober's verdicts until `shutdown`: records its events and
    /// kills containers whose liveness/startup probe failed (the worker then
    /// restarts them per restart policy).
    pub async fn run_prober_events(
        self,
        mut events: tokio::sync::mpsc::UnboundedReceiver<ProberEvent>,
        shutdown: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.recv() => e,
            };
            match event {
                None => return,
                Some(e) => self.handle_prober_event(e).await,
            }
        }
    }

    async fn handle_prober_event(&self, event: ProberEvent) {
        let sink = self.ctx.manager.events();
        match event {
            ProberEvent::ContainerEvent {
                pod_uid,
                container_name,
                event_type,
                reason,
                message,
            } => {
                tracing::info!(pod_uid, container = %container_name, event_type, reason, %message, "probe event");
                let Some(pod) = self.pod(&pod_uid) else {
                    return;
                };
                let event_type = if event_type == "Normal" {
                    EventType::Normal
                } else {
                    EventType::Warning
                };
                sink.record(
                    &container_ref(&pod, &container_name),
                    event_type,
                    reason,
                    &message,
                );
            }
            ProberEvent::RestartContainer {
                pod_uid,
                container_name,
                container_id,
                message,
                termination_grace_period_seconds,
                ..
            } => {
                tracing::info!(pod_uid, container = %container_name, %message, "Killing container");
                let pod = self.pod(&pod_uid);
                if let Some(pod) = &pod {
                    sink.record(
                        &container_ref(pod, &container_name),
                        EventType::Normal,
                        reasons::KILLING_CONTAINER,
                        &message.replace(&container_id, &container_name),
                    );
                }
                // The probe's own grace period wins, then the pod's, then 30s.
                let grace = termination_grace_period_seconds
                    .or_else(|| {
                        pod.as_ref()
                            .and_then(|p| p.spec.as_ref())
                            .and_then(|s| s.termination_grace_period_seconds)
                    })
                    .unwrap_or(30)
                    .max(0) as u64;
                if let Err(e) = self
                    .ctx
                    .manager
                    .stop_container(&container_id, Duration::from_secs(grace))
                    .await
                {
                    tracing::error!(pod_uid, container = %container_name, error = %e, "killing container after probe failure");
                }
                self.wake(&pod_uid);
            }
        }
    }

    async fn worker_loop(&self, rx: watch::Receiver<Option<Pod>>, wake: Arc<Notify>) {
        let mut reasons: BTreeMap<String, StartFailure> = BTreeMap::new();
        if let (Some(probes), Some(exec), Some(pod)) =
            (&self.ctx.probes, &self.ctx.exec, rx.borrow().clone())
        {
            probes.add_pod(&pod, exec.clone());
        }
        loop {
            let Some(pod) = rx.borrow().clone() else {
                return;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                self.terminate(&pod, &reasons).await;
                return;
            }
            let wait = self.sync(&pod, &mut reasons).await;
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn status_for(
        &self,
        pod: &Pod,
        reasons: &BTreeMap<String, StartFailure>,
        terminal: bool,
    ) -> Option<(
        PodStatus,
        crate::kuberuntime::runtime_status::PodRuntimeStatus,
    )> {
        let rt = match self.ctx.manager.get_pod_status(&pod_uid(pod)).await {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(pod = %format_pod(pod), error = %e, "failed to read pod runtime status");
                return None;
            }
        };
        let probes = self.ctx.probes.clone();
        let readiness = move |c: &k8s_openapi::api::core::v1::Container, id: &str| match &probes {
            Some(p) => {
                let started = p.container_started(c, id, true);
                (started, p.container_ready(c, id, true, started))
            }
            None => (true, true),
        };
        let status = generate_pod_status(&StatusInputs {
            pod,
            runtime: &rt,
            reasons,
            runtime_name: &self.ctx.runtime_name,
            host_ips: &self.ctx.host_ips,
            pod_is_terminal: terminal,
            now: Timestamp::now(),
            probes: Some(&readiness),
            cpu_cfs_quota: self.ctx.manager.cpu_cfs_quota(),
        });
        if let Some(p) = &self.ctx.probes {
            p.update_pod_status(&pod_uid(pod), probe_status(pod, &status, &rt));
        }
        Some((status, rt))
    }

    /// `SyncPod`; returns how long to wait before the next resync.
    async fn sync(&self, pod: &Pod, reasons: &mut BTreeMap<String, StartFailure>) -> Duration {
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        let Some((_, rt)) = self.status_for(pod, reasons, false).await else {
            return Duration::from_secs(1);
        };
        let terminal_already = matches!(phase.as_deref(), Some("Succeeded" | "Failed"));
        let deadline_left = time_left(pod, Timestamp::now());
        let past_deadline = deadline_left.is_some_and(|d| d.is_zero());
        if past_deadline && !terminal_already {
            // upstream activeDeadlineHandler.ShouldEvict
            self.ctx.manager.events().record(
                &pod_ref(pod),
                EventType::Normal,
                DEADLINE_EXCEEDED,
                DEADLINE_EXCEEDED_MESSAGE,
            );
        }
        // Wake up when the deadline passes, not a resync later.
        let mut retry = deadline_left
            .filter(|d| !d.is_zero())
            .map_or(self.ctx.resync, |d| d.min(self.ctx.resync));
        if !terminal_already && !past_deadline {
            let startup: &dyn StartupResults = match &self.ctx.probes {
                Some(p) => p.as_ref(),
                None => &NoProbes,
            };
            let result = self.ctx.manager.sync_pod(pod, &rt, startup).await;
            for name in &result.started {
                reasons.remove(name);
            }
            if let Some(e) = &result.error {
                tracing::error!(pod = %format_pod(pod), error = %e, "Error syncing pod, skipping");
                retry = Duration::from_secs(2);
            }
            if !result.failures.is_empty() {
                retry = Duration::from_secs(2);
            }
            reasons.extend(result.failures);
        }
        let Some((mut status, rt)) = self.status_for(pod, reasons, false).await else {
            return Duration::from_secs(1);
        };
        let phase = status.phase.clone().unwrap_or_default();
        if (phase == "Succeeded" || phase == "Failed")
            && (!rt.sandboxes.is_empty()
                && rt
                    .sandboxes
                    .iter()
                    .any(|s| s.state == crate::cri::api::PodSandboxState::SandboxReady as i32))
        {
            // Terminal: stop the sandbox (containers are all done), keep the status.
            if let Err(e) = self
                .ctx
                .manager
                .kill_pod(pod, &rt, Duration::from_secs(2))
                .await
            {
                tracing::error!(pod = %format_pod(pod), error = %e, "killing terminal pod");
            }
            if let Some((s, _)) = self.status_for(pod, reasons, true).await {
                status = s;
            }
        }
        if let Err(e) = self.ctx.status.set_pod_status(pod, &status).await {
            tracing::error!(pod = %format_pod(pod), error = %e, retriable = e.is_retriable(), "failed to update pod status");
            retry = retry.min(Duration::from_secs(2));
        }
        retry
    }

    /// Kill, final status, removal from the runtime, then deletion of the API object.
    async fn terminate(&self, pod: &Pod, reasons: &BTreeMap<String, StartFailure>) {
        let grace = crate::types::grace_period_seconds(pod).max(0) as u64;
        let mut delay = Duration::from_millis(500);
        loop {
            let rt = match self.ctx.manager.get_pod_status(&pod_uid(pod)).await {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(pod = %format_pod(pod), error = %e, "reading runtime status for termination");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            let killed = self
                .ctx
                .manager
                .kill_pod(pod, &rt, Duration::from_secs(grace))
                .await;
            let final_status = self.status_for(pod, reasons, true).await;
            let removed = match self.ctx.manager.get_pod_status(&pod_uid(pod)).await {
                Ok(rt) => self.ctx.manager.remove_pod(&rt).await,
                Err(e) => Err(e),
            };
            if let (Ok(()), Ok(()), Some((status, _))) = (killed, removed, final_status) {
                if let Err(e) = self.ctx.status.set_pod_status(pod, &status).await {
                    tracing::error!(pod = %format_pod(pod), error = %e, "writing final pod status");
                }
                if let Err(e) = self.ctx.status.pod_terminated(pod).await {
                    tracing::error!(pod = %format_pod(pod), error = %e, "deleting terminated pod");
                } else {
                    self.ctx.manager.teardown_volumes(&pod_uid(pod));
                    if let Some(p) = &self.ctx.probes {
                        p.remove_pod(&pod_uid(pod));
                    }
                    self.ctx.manager.forget_pod(&pod_uid(pod));
                    return;
                }
            }
            if self.shutdown.is_cancelled() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}
