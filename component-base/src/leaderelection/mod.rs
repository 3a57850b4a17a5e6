//! Leader election on a `coordination.k8s.io/v1` Lease, compatible with
//! client-go's `leaderelection.LeaderElector` + `resourcelock.LeaseLock`, so
//! our binaries and stock components can contend for the same Lease (e.g.
//! `kube-system/kube-scheduler`) and never lead at the same time.
//!
//! Writes are plain updates carrying the resourceVersion we last read, so a
//! concurrent writer makes ours fail with 409 and we retry next period.

mod health;
mod record;

pub use health::{LeaderElectionHealth, LeaderElectionUnhealthy};
pub use record::{Attempt, ElectorState, LeaderElectionRecord};

use health::ElectionMetrics;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::future::Future;
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, trace};

/// client-go `JitterFactor`: acquire retries wait between 1x and 2.2x the
/// retry period.
pub const JITTER_FACTOR: f64 = 1.2;

/// The `maxTolerableExpiredLease` kube-scheduler and kube-controller-manager
/// give their leader election health check.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct LeaderElectionConfig {
    pub lease_namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// The checks of client-go `NewLeaderElector`.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |why: &str| Err(Error::InvalidConfig(why.to_string()));
        if self.lease_duration <= self.renew_deadline {
            return invalid("leaseDuration must be greater than renewDeadline");
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return invalid("renewDeadline must be greater than retryPeriod*JitterFactor");
        }
        if self.retry_period.is_zero() {
            return invalid("retryPeriod must be greater than zero");
        }
        if self.identity.is_empty() {
            return invalid("Lock identity is empty");
        }
        if self.lease_name.is_empty() || self.lease_namespace.is_empty() {
            return invalid("lease namespace and name must not be empty");
        }
        Ok(())
    }

    /// `namespace/name`, as client-go's `LeaseLock.Describe` prints it.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.lease_namespace, self.lease_name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("leaderelection lost for lease {0}")]
    LeaseLost(String),
    #[error("invalid leader election configuration: {0}")]
    InvalidConfig(String),
    #[error("the work run under lease {0} panicked")]
    WorkPanicked(String),
}

/// Waits to acquire the Lease, then runs `work` while renewing it.
///
/// Returns `Ok(())` when `shutdown` is cancelled (the lease is released) or
/// `work` finishes; `Err(Error::LeaseLost)` when renewal fails for longer than
/// `renew_deadline`, in which case the caller exits the process like upstream.
pub async fn run<F, Fut>(
    client: kube::Client,
    cfg: LeaderElectionConfig,
    shutdown: CancellationToken,
    work: F,
) -> Result<(), Error>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let health = LeaderElectionHealth::new(DEFAULT_HEALTH_TIMEOUT);
    run_with_health(client, cfg, health, shutdown, work).await
}

/// [`run`], publishing the leadership state to `health` for `/healthz`.
///
/// On shutdown `work`'s token is cancelled and the lease is kept renewed
/// until `work` returns (at most `renew_deadline`), then released, so the
/// next leader never overlaps with our work.
pub async fn run_with_health<F, Fut>(
    client: kube::Client,
    cfg: LeaderElectionConfig,
    health: LeaderElectionHealth,
    shutdown: CancellationToken,
    work: F,
) -> Result<(), Error>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    cfg.validate()?;
    let mut elector = Elector::new(client, cfg, health);
    if !elector.acquire(&shutdown).await {
        return Ok(());
    }
    let work_token = shutdown.child_token();
    let mut task = WorkTask {
        handle: tokio::spawn(work(work_token.clone())),
        token: work_token.clone(),
    };
    let desc = elector.cfg.describe();
    let renew_deadline = elector.cfg.renew_deadline;

    let outcome = {
        let renew = elector.keep_renewed();
        tokio::pin!(renew);
        let mut stop_by: Option<Instant> = None;
        loop {
            let grace_over = async {
                match stop_by {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut renew => break Outcome::Lost,
                res = &mut task.handle => break Outcome::WorkDone(res.is_err_and(|e| e.is_panic())),
                () = shutdown.cancelled(), if stop_by.is_none() => {
                    stop_by = Some(Instant::now() + renew_deadline);
                }
                () = grace_over => {
                    error!("work under lease {desc} did not stop within {renew_deadline:?} of shutdown; aborting it");
                    task.stop().await;
                    break Outcome::WorkDone(false);
                }
            }
        }
    };

    match outcome {
        Outcome::Lost => {
            task.stop().await;
            elector.release().await;
            Err(Error::LeaseLost(desc))
        }
        Outcome::WorkDone(panicked) => {
            work_token.cancel();
            elector.release().await;
            if panicked {
                return Err(Error::WorkPanicked(desc));
            }
            Ok(())
        }
    }
}

/// The spawned work. Dropping it (leadership lost, or the caller dropped
/// our future) stops the work at once: it must never outlive our lease.
struct WorkTask {
    handle: tokio::task::JoinHandle<()>,
    token: CancellationToken,
}

impl WorkTask {
    /// Cancels and aborts the work and waits (briefly) until it is gone.
    async fn stop(&mut self) {
        self.token.cancel();
        self.handle.abort();
        // An aborted task ends at its next await point; only a task stuck in
        // blocking code could take longer, and then we stop waiting.
        let _ = timeout(Duration::from_secs(1), &mut self.handle).await;
    }
}

impl Drop for WorkTask {
    fn drop(&mut self) {
        self.token.cancel();
        self.handle.abort();
    }
}

enum Outcome {
    Lost,
    /// `true` when the work panicked.
    WorkDone(bool),
}

/// The I/O side of one candidate: reads and writes the Lease and feeds the
/// pure [`ElectorState`].
struct Elector {
    api: Api<Lease>,
    cfg: LeaderElectionConfig,
    state: ElectorState,
    /// The Lease as last read or written; updates carry its resourceVersion.
    lease: Option<Lease>,
    reported_leader: String,
    health: LeaderElectionHealth,
    metrics: ElectionMetrics,
}

impl Elector {
    fn new(client: kube::Client, cfg: LeaderElectionConfig, health: LeaderElectionHealth) -> Self {
        Self {
            api: Api::namespaced(client, &cfg.lease_namespace),
            state: ElectorState::new(cfg.identity.clone(), cfg.lease_duration),
            lease: None,
            reported_leader: String::new(),
            metrics: ElectionMetrics::new(&cfg.lease_name),
            health,
            cfg,
        }
    }

    /// Retries every retry period (jittered) until we hold the lease; `false`
    /// if `shutdown` came first.
    async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        let desc = self.cfg.describe();
        info!("attempting to acquire leader lease {desc}...");
        loop {
            let attempt = timeout(self.cfg.renew_deadline, self.try_acquire_or_renew());
            let acquired = tokio::select! {
                () = shutdown.cancelled() => return false,
                res = attempt => res.unwrap_or_else(|_| {
                    error!("timed out trying to acquire lease {desc}");
                    false
                }),
            };
            self.maybe_report_transition();
            if acquired {
                self.metrics.leader_on();
                info!("successfully acquired lease {desc}");
                return true;
            }
            debug!("failed to acquire lease {desc}");
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = sleep(jittered(self.cfg.retry_period, JITTER_FACTOR)) => {}
            }
        }
    }

    /// Renews every retry period; returns once a renewal has not succeeded
    /// within the renew deadline (leadership is lost).
    async fn keep_renewed(&mut self) {
        let desc = self.cfg.describe();
        loop {
            let renewed = self.renew_before_deadline().await;
            self.maybe_report_transition();
            if !renewed {
                self.metrics.leader_off();
                info!("failed to renew lease {desc}: timed out waiting for the condition");
                return;
            }
            trace!("successfully renewed lease {desc}");
            sleep(self.cfg.retry_period).await;
        }
    }

    /// client-go's `PollImmediateUntil(retryPeriod, tryAcquireOrRenew)` under
    /// a renew-deadline timeout.
    async fn renew_before_deadline(&mut self) -> bool {
        let deadline = Instant::now() + self.cfg.renew_deadline;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return false;
            }
            if let Ok(true) = timeout(remaining, self.try_acquire_or_renew()).await {
                return true;
            }
            let next = Instant::now() + self.cfg.retry_period;
            if next >= deadline {
                tokio::time::sleep_until(deadline).await;
                return false;
            }
            tokio::time::sleep_until(next).await;
        }
    }

    /// One client-go `tryAcquireOrRenew`: `true` if we hold the lease after it.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let wall_now = now_micros();
        let now = Instant::now();
        let ok = self.try_once(wall_now, now).await;
        self.publish_health();
        ok
    }

    async fn try_once(&mut self, wall_now: Timestamp, now: Instant) -> bool {
        // 1. Fast path: renew on top of our own last write.
        if let (Some(rec), Some(lease)) =
            (self.state.fast_renewal(wall_now, now), self.lease.clone())
        {
            match self.update(lease, &rec).await {
                Ok(()) => {
                    self.state.record_written(rec, now);
                    return true;
                }
                Err(e) => {
                    error!("Failed to update lock optimistically: {e}, falling back to slow path")
                }
            }
        }
        // 2. Read the lease (or learn that it does not exist).
        let current = match self.api.get_opt(&self.cfg.lease_name).await {
            Ok(Some(lease)) => {
                let rec = lease
                    .spec
                    .as_ref()
                    .map(LeaderElectionRecord::from_spec)
                    .unwrap_or_default();
                self.lease = Some(lease);
                Some(rec)
            }
            Ok(None) => None,
            Err(e) => {
                error!(
                    "error retrieving resource lock {}: {e}",
                    self.cfg.describe()
                );
                return false;
            }
        };
        // 3. Decide, then write.
        let was_leader = self.state.is_leader();
        match self.state.decide(current.as_ref(), wall_now, now) {
            Attempt::HeldByOther { holder } => {
                debug!("lock is held by {holder} and has not yet expired");
                false
            }
            Attempt::Create(rec) => match self.create(&rec).await {
                Ok(()) => {
                    self.state.record_written(rec, now);
                    true
                }
                Err(e) => {
                    error!("error initially creating leader election record: {e}");
                    false
                }
            },
            Attempt::Update(rec) => {
                if was_leader && self.state.is_leader() {
                    self.metrics.slowpath_exercised();
                }
                let Some(lease) = self.lease.clone() else {
                    return false;
                };
                match self.update(lease, &rec).await {
                    Ok(()) => {
                        self.state.record_written(rec, now);
                        true
                    }
                    Err(e) => {
                        error!("Failed to update lock: {e}");
                        false
                    }
                }
            }
        }
    }

    async fn create(&mut self, rec: &LeaderElectionRecord) -> Result<(), kube::Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.cfg.lease_name.clone()),
                namespace: Some(self.cfg.lease_namespace.clone()),
                ..Default::default()
            },
            spec: Some(rec.to_spec()),
        };
        self.lease = Some(self.api.create(&PostParams::default(), &lease).await?);
        Ok(())
    }

    /// Replaces the spec of `lease` (as last read, with its resourceVersion).
    async fn update(
        &mut self,
        mut lease: Lease,
        rec: &LeaderElectionRecord,
    ) -> Result<(), kube::Error> {
        lease.spec = Some(rec.to_spec());
        self.lease = Some(
            self.api
                .replace(&self.cfg.lease_name, &PostParams::default(), &lease)
                .await?,
        );
        Ok(())
    }

    /// client-go `release` (ReleaseOnCancel): if we hold the lease, hand it
    /// back so a standby need not wait for it to expire.
    async fn release(&mut self) {
        self.metrics.leader_off();
        let desc = self.cfg.describe();
        match timeout(self.cfg.renew_deadline, self.try_release()).await {
            Ok(Ok(true)) => info!("released lease {desc}"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => error!("Failed to release lock: {e}"),
            Err(_) => error!("Failed to release lock {desc}: timed out"),
        }
        self.publish_health();
    }

    /// Clears the holder if we hold the lease. A renewal cut off by shutdown
    /// may have landed after we cached the Lease, making our resourceVersion
    /// stale; on a conflict we re-read and retry once, still only if the
    /// lease is ours.
    async fn try_release(&mut self) -> Result<bool, kube::Error> {
        let Some(lease) = self.lease.clone() else {
            return Ok(false);
        };
        let Some(rec) = self.state.release_record(now_micros()) else {
            return Ok(false);
        };
        match self.update(lease, &rec).await {
            Ok(()) => {
                self.state.record_written(rec, Instant::now());
                return Ok(true);
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                debug!(
                    "release of lease {} conflicted, re-reading it",
                    self.cfg.describe()
                );
            }
            Err(e) => return Err(e),
        }
        let Some(fresh) = self.api.get_opt(&self.cfg.lease_name).await? else {
            return Ok(false);
        };
        let current = fresh
            .spec
            .as_ref()
            .map(LeaderElectionRecord::from_spec)
            .unwrap_or_default();
        if current.holder_identity != self.cfg.identity {
            return Ok(false);
        }
        let Some(rec) = self.state.release_record(now_micros()) else {
            return Ok(false);
        };
        self.update(fresh, &rec).await?;
        self.state.record_written(rec, Instant::now());
        Ok(true)
    }

    fn maybe_report_transition(&mut self) {
        let holder = &self.state.observed().holder_identity;
        if *holder == self.reported_leader {
            return;
        }
        self.reported_leader = holder.clone();
        if !holder.is_empty() {
            info!(
                "new leader elected for lease {}: {holder}",
                self.cfg.describe()
            );
        }
    }

    fn publish_health(&self) {
        self.health.update(
            &self.cfg.lease_name,
            self.cfg.lease_duration,
            self.state.is_leader(),
            self.state.observed_time(),
        );
    }
}

/// The wall clock at the microsecond precision a Lease stores.
fn now_micros() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

/// `period` stretched by a random fraction of up to `factor` (client-go
/// `wait.Jitter`), so candidates restarted together do not retry in lockstep.
fn jittered(period: Duration, factor: f64) -> Duration {
    period.mul_f64(1.0 + rand::random::<f64>() * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lease: u64, renew: u64, retry: u64) -> LeaderElectionConfig {
        LeaderElectionConfig {
            lease_namespace: "kube-system".into(),
            lease_name: "kube-scheduler".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn validate_matches_client_go() {
        assert!(cfg(15, 10, 2).validate().is_ok());
        assert!(
            cfg(10, 10, 2).validate().is_err(),
            "lease must exceed renew deadline"
        );
        assert!(
            cfg(15, 12, 10).validate().is_err(),
            "renew deadline must exceed 1.2 * retry"
        );
        assert!(cfg(15, 10, 0).validate().is_err());
        let mut no_id = cfg(15, 10, 2);
        no_id.identity.clear();
        assert!(no_id.validate().is_err());
    }

    #[test]
    fn jitter_stays_within_factor() {
        let period = Duration::from_secs(2);
        for _ in 0..1000 {
            let d = jittered(period, JITTER_FACTOR);
            assert!(
                d >= period && d <= period.mul_f64(1.0 + JITTER_FACTOR),
                "{d:?}"
            );
        }
    }
}
