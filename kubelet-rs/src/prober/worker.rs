//! One probe worker per (pod, container, probe type), after upstream `prober/worker.go`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::events::ProberEvent;
use super::probe::{ProbeOutcome, ProbeType, kill_message, run_probe};
use super::results::{ProbeResult, ResultsManager};
use super::target::{ContainerExec, ContainerRunState, PodProbeStatus, ProbeTarget};

/// Upstream `maxProbeRetries`: probe *errors* are retried this many times in one run.
const MAX_PROBE_RETRIES: usize = 3;

/// A probe's timing and thresholds with upstream's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    pub initial_delay_seconds: i64,
    pub period: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// Probe-level `terminationGracePeriodSeconds`, overriding the pod's on a probe kill.
    pub termination_grace_period_seconds: Option<i64>,
}

impl ProbeSettings {
    pub fn from_probe(probe: &Probe) -> Self {
        let positive =
            |v: Option<i32>, default: i32| u32::try_from(v.unwrap_or(default).max(1)).unwrap_or(1);
        ProbeSettings {
            initial_delay_seconds: i64::from(probe.initial_delay_seconds.unwrap_or(0)),
            period: Duration::from_secs(u64::from(positive(probe.period_seconds, 10))),
            success_threshold: positive(probe.success_threshold, 1),
            failure_threshold: positive(probe.failure_threshold, 3),
            termination_grace_period_seconds: probe.termination_grace_period_seconds,
        }
    }
}

/// Counts consecutive equal results; a result is published only once it has been seen
/// `successThreshold` / `failureThreshold` times in a row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThresholdTracker {
    last: Option<ProbeResult>,
    run: u32,
}

impl ThresholdTracker {
    /// Records `result`; returns it when it crossed its threshold and should be published.
    pub fn observe(
        &mut self,
        result: ProbeResult,
        settings: &ProbeSettings,
    ) -> Option<ProbeResult> {
        if self.last == Some(result) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(result);
            self.run = 1;
        }
        let below = match result {
            ProbeResult::Failure => self.run < settings.failure_threshold,
            ProbeResult::Success => self.run < settings.success_threshold,
            ProbeResult::Unknown => false,
        };
        (!below).then_some(result)
    }

    /// Forgets the current run (upstream resets it when a worker goes on hold).
    pub fn reset_run(&mut self) {
        self.run = 0;
    }
}

pub(crate) struct Worker {
    pub pod_uid: String,
    pub pod_name: String,
    pub container_name: String,
    pub probe_type: ProbeType,
    pub probe: Probe,
    pub settings: ProbeSettings,
    /// The container is not restarted after it exits (pod `restartPolicy: Never`,
    /// and not a restartable init container).
    pub never_restarted: bool,
    pub named_ports: std::collections::HashMap<String, i32>,
    pub exec: Arc<dyn ContainerExec>,
    pub status: watch::Receiver<Arc<PodProbeStatus>>,
    pub results: Arc<ResultsManager>,
    pub events: mpsc::UnboundedSender<ProberEvent>,
    pub container_id: String,
    pub on_hold: bool,
    pub tracker: ThresholdTracker,
}

impl Worker {
    /// Upstream `initialValue`: readiness starts failed, liveness passed, startup unknown.
    fn initial_value(&self) -> ProbeResult {
        match self.probe_type {
            ProbeType::Liveness => ProbeResult::Success,
            ProbeType::Readiness => ProbeResult::Failure,
            ProbeType::Startup => ProbeResult::Unknown,
        }
    }

    /// Probes until cancelled or until the pod no longer needs this probe.
    pub async fn run(mut self, cancel: CancellationToken, jitter: Option<Duration>) {
        if let Some(jitter) = jitter {
            tokio::select! {
                _ = cancel.cancelled() => return self.finish(&cancel),
                _ = tokio::time::sleep(jitter) => {}
            }
        }
        let mut ticker = tokio::time::interval(self.settings.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        while self.do_probe().await {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
        }
        self.finish(&cancel);
    }

    fn finish(&self, cancel: &CancellationToken) {
        super::metrics::forget(self.probe_type, &self.container_name, &self.pod_uid);
        if !self.container_id.is_empty() {
            self.results.remove(&self.container_id);
        }
        // Lets the manager see that this worker is gone and start a new one if asked.
        cancel.cancel();
        tracing::debug!(pod = %self.pod_name, container = %self.container_name, probe = %self.probe_type, "probe worker stopped");
    }

    /// One tick; `false` means the worker should stop.
    pub(crate) async fn do_probe(&mut self) -> bool {
        let status = self.status.borrow().clone();
        if status.terminal {
            return false;
        }
        let Some(c) = status
            .containers
            .get(&self.container_name)
            .filter(|c| !c.container_id.is_empty())
        else {
            return true; // not created yet, or deleted
        };
        if c.container_id != self.container_id {
            if !self.container_id.is_empty() {
                self.results.remove(&self.container_id);
            }
            self.container_id = c.container_id.clone();
            self.results
                .set(&self.container_id, self.initial_value(), &self.pod_uid);
            self.on_hold = false;
        }
        if self.on_hold {
            return true;
        }
        let started_at = match c.state {
            ContainerRunState::Running { started_at } => started_at,
            ContainerRunState::Waiting => {
                self.results
                    .set(&self.container_id, ProbeResult::Failure, &self.pod_uid);
                return true;
            }
            ContainerRunState::Terminated { .. } => {
                self.results
                    .set(&self.container_id, ProbeResult::Failure, &self.pod_uid);
                return !self.never_restarted;
            }
        };
        if status.deleting && matches!(self.probe_type, ProbeType::Liveness | ProbeType::Startup) {
            // Quiet shutdown: a terminating pod is not restarted for failed probes.
            self.results
                .set(&self.container_id, ProbeResult::Success, &self.pod_uid);
            return false;
        }
        let running_for = jiff::Timestamp::now().duration_since(started_at).as_secs();
        if running_for < self.settings.initial_delay_seconds {
            return true;
        }
        let started = c.started == Some(true);
        if started == (self.probe_type == ProbeType::Startup) {
            // Startup probes stop once started; the others wait for it.
            return true;
        }
        let target = ProbeTarget {
            pod_ip: status.pod_ip.clone(),
            named_ports: self.named_ports.clone(),
            exec: self.exec.clone(),
        };
        let Some(result) = self.probe_with_retries(&target).await else {
            return true; // probe error: the result is thrown away
        };
        let (namespace, pod) = self
            .pod_name
            .split_once('/')
            .unwrap_or(("", self.pod_name.as_str()));
        super::metrics::record(
            self.probe_type,
            result,
            &self.container_name,
            pod,
            namespace,
            &self.pod_uid,
        );
        if let Some(result) = self.tracker.observe(result, &self.settings) {
            self.publish(result);
        }
        true
    }

    fn publish(&mut self, result: ProbeResult) {
        self.results.set(&self.container_id, result, &self.pod_uid);
        let restarts = (self.probe_type == ProbeType::Liveness && result == ProbeResult::Failure)
            || self.probe_type == ProbeType::Startup;
        if !restarts {
            return;
        }
        // Hold until a new container id appears: no probing a container being killed.
        self.on_hold = true;
        self.tracker.reset_run();
        if result == ProbeResult::Failure {
            let _ = self.events.send(ProberEvent::RestartContainer {
                pod_uid: self.pod_uid.clone(),
                container_name: self.container_name.clone(),
                container_id: self.container_id.clone(),
                probe_type: self.probe_type,
                message: kill_message(&self.container_name, self.probe_type),
                termination_grace_period_seconds: self.settings.termination_grace_period_seconds,
            });
        }
    }

    /// Runs the probe, retrying probe errors; maps the outcome and records events.
    async fn probe_with_retries(&self, target: &ProbeTarget) -> Option<ProbeResult> {
        let mut last_error = String::new();
        for _ in 0..MAX_PROBE_RETRIES {
            match run_probe(&self.probe, target, &self.container_id).await {
                Ok((outcome, output)) => return Some(self.record(outcome, &output)),
                Err(e) => last_error = e.to_string(),
            }
        }
        tracing::debug!(pod = %self.pod_name, container = %self.container_name, probe = %self.probe_type, error = %last_error, "probe errored");
        self.event(
            "Unhealthy",
            format!(
                "{} probe errored and resulted in unknown state: {last_error}",
                self.probe_type
            ),
        );
        None
    }

    fn record(&self, outcome: ProbeOutcome, output: &str) -> ProbeResult {
        match outcome {
            ProbeOutcome::Success => ProbeResult::Success,
            ProbeOutcome::Warning => {
                self.event(
                    "ProbeWarning",
                    format!("{} probe warning: {output}", self.probe_type),
                );
                ProbeResult::Success
            }
            ProbeOutcome::Failure => {
                tracing::debug!(pod = %self.pod_name, container = %self.container_name, probe = %self.probe_type, output, "probe failed");
                self.event(
                    "Unhealthy",
                    format!("{} probe failed: {output}", self.probe_type),
                );
                ProbeResult::Failure
            }
            ProbeOutcome::Unknown => ProbeResult::Failure,
        }
    }

    fn event(&self, reason: &'static str, message: String) {
        let _ = self.events.send(ProberEvent::ContainerEvent {
            pod_uid: self.pod_uid.clone(),
            container_name: self.container_name.clone(),
            event_type: "Warning",
            reason,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(success: u32, failure: u32) -> ProbeSettings {
        ProbeSettings {
            initial_delay_seconds: 0,
            period: Duration::from_secs(10),
            success_threshold: success,
            failure_threshold: failure,
            termination_grace_period_seconds: None,
        }
    }

    #[test]
    fn thresholds_need_consecutive_results() {
        use ProbeResult::{Failure as F, Success as S};
        // (observed results, successThreshold, failureThreshold, published after each)
        type Case<'a> = (&'a [ProbeResult], u32, u32, &'a [Option<ProbeResult>]);
        let cases: [Case; 3] = [
            (&[F, F, F, F], 1, 3, &[None, None, Some(F), Some(F)]),
            (
                &[F, S, F, F, F],
                1,
                3,
                &[None, Some(S), None, None, Some(F)],
            ),
            (
                &[S, S, F, S, S],
                2,
                1,
                &[None, Some(S), Some(F), None, Some(S)],
            ),
        ];
        for (inputs, success, failure, want) in cases {
            let mut t = ThresholdTracker::default();
            let got: Vec<_> = inputs
                .iter()
                .map(|r| t.observe(*r, &settings(success, failure)))
                .collect();
            assert_eq!(got, want, "{inputs:?}");
        }
    }

    #[test]
    fn fills_upstream_defaults() {
        let s = ProbeSettings::from_probe(&Probe::default());
        assert_eq!(
            s,
            ProbeSettings {
                termination_grace_period_seconds: None,
                ..settings(1, 3)
            }
        );
    }
}
