//! The scheduling loop (upstream `scheduler.go` + `schedule_one.go`): pop a pod, run the
//! scheduling cycle synchronously, then bind asynchronously so the next pod can start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::time::Instant;

use crate::Error;
use crate::cache::Cache;
use crate::cache::snapshot::Snapshot;
use crate::config::SchedulerConfig;
use crate::framework::{CycleState, Framework, PostFilterResult, Status};
use crate::framework::{Handle, Registry};
use crate::metrics::{self, Metrics};
use crate::pod::{key, scheduler_name};
use crate::queue::{QueuedPodInfo, SchedulingQueue};
use crate::reporter::{REASON_SCHEDULER_ERROR, REASON_UNSCHEDULABLE, Reporter};
use crate::schedule_one::{Algorithm, ScheduleError};

/// State shared by the loop, the binding tasks and the event handlers.
pub struct Shared {
    pub cache: Arc<Cache>,
    pub queue: Arc<SchedulingQueue>,
    /// The pod informer's store (upstream's pod lister): the failure handler checks it so a
    /// pod deleted or bound meanwhile is not requeued.
    pub pods: Store<Pod>,
    pub profiles: HashMap<String, Arc<Framework>>,
    pub reporter: Arc<dyn Reporter>,
    pub metrics: Arc<Metrics>,
}

pub struct Scheduler {
    pub shared: Arc<Shared>,
    algorithm: Algorithm,
    snapshot: Snapshot,
}

/// Outcome of one attempt, for tests and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Scheduling cycle succeeded; binding continues in the background.
    Assumed(String),
    Failed {
        reason: &'static str,
        message: String,
    },
    Skipped,
}

impl Scheduler {
    pub fn new(
        config: &SchedulerConfig,
        registry: &Registry,
        handle: &Handle,
        reporter: Arc<dyn Reporter>,
        pods: Store<Pod>,
    ) -> Result<Self, Error> {
        let mut profiles = HashMap::new();
        for p in &config.profiles {
            let fw = Framework::new(p, registry, handle)?;
            tracing::info!(profile = %p.scheduler_name, framework = ?fw, "scheduling profile ready");
            profiles.insert(p.scheduler_name.clone(), Arc::new(fw));
        }
        let queue = Arc::new(SchedulingQueue::new(
            profiles.clone(),
            config.pod_initial_backoff,
            config.pod_max_backoff,
        ));
        Ok(Scheduler {
            shared: Arc::new(Shared {
                cache: Arc::new(Cache::new(None)),
                queue,
                pods,
                profiles,
                reporter,
                metrics: Metrics::global(),
            }),
            algorithm: Algorithm::new(config.percentage_of_nodes_to_score, config.parallelism),
            snapshot: Snapshot::default(),
        })
    }

    /// Pops and schedules one pod; `None` when the queue is closed.
    pub async fn schedule_one(&mut self) -> Option<Attempt> {
        let (pinfo, cycle) = self.shared.queue.pop().await?;
        let start = Instant::now();
        let pod = pinfo.pod.clone();
        let uid = pinfo.uid().to_string();
        let Some(fw) = self.shared.profiles.get(scheduler_name(&pod)).cloned() else {
            tracing::error!(pod = %key(&pod), "no profile for pod's scheduler name");
            self.shared.queue.done(&uid);
            return Some(Attempt::Skipped);
        };
        if pod.metadata.deletion_timestamp.is_some() || self.shared.cache.has_pod(&uid) {
            tracing::debug!(pod = %key(&pod), "skipping pod: being deleted or already assumed");
            self.shared.queue.done(&uid);
            return Some(Attempt::Skipped);
        }
        self.shared.cache.update_snapshot(&mut self.snapshot);
        self.snapshot
            .set_nominated(self.shared.queue.nominated_pods());
        let mut state = CycleState::new();
        let (algorithm, snapshot) = (&mut self.algorithm, &self.snapshot);
        let mut run = || algorithm.schedule_pod(&fw, &mut state, &pod, snapshot);
        // Filtering runs on scoped threads and can take a while on big clusters; keep the
        // runtime's other tasks (informers, binding) moving meanwhile.
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let result = if multi_thread {
            tokio::task::block_in_place(run)
        } else {
            run()
        };
        let host = match result {
            Ok(r) => r.suggested_host,
            Err(err) => {
                let (attempt, pinfo, nominated) = self.cycle_failure(&fw, &state, pinfo, err);
                handle_failure(&self.shared, &fw, pinfo, cycle, &attempt, start, nominated).await;
                return Some(attempt);
            }
        };
        // Assume: account the pod on the node before the binding exists.
        let mut assumed = (*pod).clone();
        assumed.spec.get_or_insert_with(Default::default).node_name = Some(host.clone());
        let assumed = Arc::new(assumed);
        if let Err(e) = self.shared.cache.assume_pod(assumed.clone()) {
            let attempt = failed(REASON_SCHEDULER_ERROR, e.to_string());
            self.finish_failed(&fw, pinfo, cycle, &attempt, start).await;
            return Some(attempt);
        }
        let s = fw.run_reserve(&mut state, &assumed, &host);
        if !s.is_success() {
            fw.run_unreserve(&mut state, &assumed, &host);
            self.forget(&uid);
            let attempt = status_failure(&s);
            self.finish_failed(&fw, plugin_rejected(pinfo, &s), cycle, &attempt, start)
                .await;
            return Some(attempt);
        }
        let (permit, wait) = fw.run_permit(&state, &assumed, &host);
        if !permit.is_success() && !permit.is_wait() {
            fw.run_unreserve(&mut state, &assumed, &host);
            self.forget(&uid);
            let attempt = status_failure(&permit);
            self.finish_failed(&fw, plugin_rejected(pinfo, &permit), cycle, &attempt, start)
                .await;
            return Some(attempt);
        }
        let waiting = permit.is_wait().then_some(wait);
        let binding = BindingCycle {
            shared: self.shared.clone(),
            fw,
            state,
            pinfo,
            assumed,
            host: host.clone(),
            cycle,
            start,
            waiting,
        };
        tokio::spawn(binding.run());
        Some(Attempt::Assumed(host))
    }

    fn forget(&self, uid: &str) {
        if let Err(e) = self.shared.cache.forget_pod(uid) {
            tracing::error!(%e, "scheduler cache ForgetPod failed");
        }
    }

    /// Turns a failed scheduling algorithm run into an attempt, running PostFilter on fit errors.
    fn cycle_failure(
        &self,
        fw: &Framework,
        state: &CycleState,
        mut pinfo: QueuedPodInfo,
        err: ScheduleError,
    ) -> (Attempt, QueuedPodInfo, Option<String>) {
        match err {
            ScheduleError::NoNodesAvailable => {
                pinfo.unschedulable_plugins.clear();
                (failed(REASON_UNSCHEDULABLE, err.to_string()), pinfo, None)
            }
            ScheduleError::Fit(mut fit) => {
                let mut nominated = None;
                if fw.has_post_filter_plugins() {
                    let (result, s) = fw.run_post_filter(
                        state,
                        &pinfo.pod,
                        &fit.diagnosis.node_to_status,
                        self.snapshot.list(),
                    );
                    fit.diagnosis.post_filter_msg = s.message();
                    if let Some(r) = result {
                        nominated = Some(r.nominated_node_name.clone().unwrap_or_default());
                        self.spawn_eviction(&pinfo.pod, r);
                    }
                }
                pinfo.unschedulable_plugins = fit.diagnosis.unschedulable_plugins.clone();
                (
                    failed(REASON_UNSCHEDULABLE, fit.to_string()),
                    pinfo,
                    nominated,
                )
            }
            ScheduleError::Internal(s) => {
                pinfo.unschedulable_plugins.clear();
                (failed(REASON_SCHEDULER_ERROR, s.message()), pinfo, None)
            }
        }
    }

    /// Victims are evicted off the scheduling path (like upstream's async preemption).
    fn spawn_eviction(&self, preemptor: &Arc<Pod>, result: PostFilterResult) {
        let (Some(node), false) = (result.nominated_node_name, result.victims.is_empty()) else {
            return;
        };
        tracing::info!(pod = %key(preemptor), %node, victims = result.victims.len(), "preempting pods");
        let reporter = self.shared.reporter.clone();
        let preemptor = preemptor.clone();
        tokio::spawn(async move { reporter.preempt(&preemptor, &node, &result.victims).await });
    }

    async fn finish_failed(
        &self,
        fw: &Framework,
        pinfo: QueuedPodInfo,
        cycle: u64,
        attempt: &Attempt,
        start: Instant,
    ) {
        handle_failure(&self.shared, fw, pinfo, cycle, attempt, start, None).await;
    }

    /// Runs until the queue closes.
    pub async fn run(mut self) {
        while let Some(attempt) = self.schedule_one().await {
            self.shared.metrics.set_pending(self.shared.queue.pending());
            tracing::trace!(?attempt, "scheduling attempt finished");
        }
    }
}

fn failed(reason: &'static str, message: String) -> Attempt {
    Attempt::Failed { reason, message }
}

fn status_failure(s: &Status) -> Attempt {
    let reason = if s.is_rejected() {
        REASON_UNSCHEDULABLE
    } else {
        REASON_SCHEDULER_ERROR
    };
    failed(reason, s.message())
}

fn plugin_rejected(mut pinfo: QueuedPodInfo, s: &Status) -> QueuedPodInfo {
    pinfo.unschedulable_plugins.clear();
    if s.is_rejected() && !s.plugin().is_empty() {
        pinfo.unschedulable_plugins.insert(s.plugin());
    }
    pinfo
}

/// Upstream `handleSchedulingFailure`: requeue (unless the pod vanished or got bound), record
/// the FailedScheduling event and the PodScheduled condition.
async fn handle_failure(
    shared: &Shared,
    fw: &Framework,
    mut pinfo: QueuedPodInfo,
    cycle: u64,
    attempt: &Attempt,
    start: Instant,
    nominated: Option<String>,
) {
    let Attempt::Failed { reason, message } = attempt else {
        return;
    };
    let result = if *reason == REASON_UNSCHEDULABLE {
        metrics::RESULT_UNSCHEDULABLE
    } else {
        metrics::RESULT_ERROR
    };
    shared
        .metrics
        .observe_attempt(result, fw.profile_name(), start.elapsed().as_secs_f64());
    let uid = pinfo.uid().to_string();
    // The same name may meanwhile hold a recreated pod: that one is not this pod.
    let latest = shared
        .pods
        .get(&ObjectRef::from_obj(pinfo.pod.as_ref()))
        .filter(|p| crate::pod::uid(p) == uid);
    let pod = match latest {
        None => {
            tracing::debug!(pod = %key(&pinfo.pod), "pod no longer exists; not requeueing");
            shared.queue.done(&uid);
            return;
        }
        Some(p) if crate::pod::assigned(&p) => {
            tracing::debug!(pod = %key(&p), "pod was assigned meanwhile; not requeueing");
            shared.queue.done(&uid);
            return;
        }
        Some(p) => p,
    };
    tracing::info!(pod = %key(&pod), %message, "unable to schedule pod; waiting");
    pinfo.pod = pod.clone();
    if let Some(node) = nominated.as_deref() {
        shared.queue.add_nominated(pod.clone(), node);
    }
    shared.queue.add_unschedulable_if_not_present(pinfo, cycle);
    shared
        .reporter
        .failed(&pod, reason, message, nominated.as_deref())
        .await;
}

/// The asynchronous half of an attempt (upstream `bindingCycle`).
struct BindingCycle {
    shared: Arc<Shared>,
    fw: Arc<Framework>,
    state: CycleState,
    pinfo: QueuedPodInfo,
    assumed: Arc<Pod>,
    host: String,
    cycle: u64,
    start: Instant,
    waiting: Option<Duration>,
}

impl BindingCycle {
    async fn run(mut self) {
        let status = self.bind().await;
        let uid = self.pinfo.uid().to_string();
        if status.is_success() {
            self.shared
                .cache
                .finish_binding(&uid, std::time::Instant::now());
            self.shared.metrics.observe_attempt(
                metrics::RESULT_SCHEDULED,
                self.fw.profile_name(),
                self.start.elapsed().as_secs_f64(),
            );
            tracing::info!(pod = %key(&self.assumed), node = %self.host, "successfully bound pod to node");
            self.shared
                .reporter
                .scheduled(&self.assumed, &self.host)
                .await;
            self.fw
                .run_post_bind(&self.state, &self.assumed, &self.host)
                .await;
            self.shared.queue.done(&uid);
            return;
        }
        self.fw
            .run_unreserve(&mut self.state, &self.assumed, &self.host);
        if let Err(e) = self.shared.cache.forget_pod(&uid) {
            tracing::error!(%e, "scheduler cache ForgetPod failed");
        }
        // Another pod may fit where this one was assumed.
        self.shared.queue.move_all_to_active_or_backoff(
            &crate::framework::ClusterEvent::new(
                crate::framework::EventResource::AssignedPod,
                crate::framework::events::action::DELETE,
                "AssignedPodDelete",
            ),
            Some(crate::framework::EventObject::Pod(&self.assumed)),
            None,
        );
        let pinfo = plugin_rejected(self.pinfo.clone(), &status);
        let attempt = status_failure(&status);
        handle_failure(
            &self.shared,
            &self.fw,
            pinfo,
            self.cycle,
            &attempt,
            self.start,
            None,
        )
        .await;
    }

    async fn bind(&self) -> Status {
        if let Some(wait) = self.waiting {
            // No plugin in this build can approve a waiting pod, so waiting always ends in the
            // upstream timeout rejection.
            tokio::time::sleep(wait).await;
            return Status::unschedulable(format!(
                "rejected due to timeout after waiting {wait:?} at plugin"
            ));
        }
        let s = self
            .fw
            .run_pre_bind(&self.state, &self.assumed, &self.host)
            .await;
        if !s.is_success() {
            return if s.is_rejected() {
                s
            } else {
                Status::error(format!("running PreBind plugin {:?}: {s}", s.plugin()))
            };
        }
        let s = self
            .fw
            .run_bind(&self.state, &self.assumed, &self.host)
            .await;
        if s.is_skip() {
            return Status::error("no bind plugin bound the pod");
        }
        if !s.is_success() {
            return Status::error(format!(
                "binding rejected: running Bind plugin {:?}: {s}",
                s.plugin()
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests;
