//! The I/O side of one candidate: reads and writes the Lease with the
//! apiserver and feeds the pure [`ElectorState`], following client-go's
//! `acquire`, `renew`, `tryAcquireOrRenew` and `release`.

use super::health::{ElectionMetrics, LeaderElectionHealth};
use super::record::{Attempt, ElectorState, LeaderElectionRecord};
use super::{JITTER_FACTOR, LeaderElectionConfig};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, trace};

/// The I/O side of one candidate: reads and writes the Lease and feeds the
/// pure [`ElectorState`].
pub(super) struct Elector {
    api: Api<Lease>,
    pub(super) cfg: LeaderElectionConfig,
    state: ElectorState,
    /// The Lease as last read or written; updates carry its resourceVersion.
    lease: Option<Lease>,
    reported_leader: String,
    health: LeaderElectionHealth,
    metrics: ElectionMetrics,
}

impl Elector {
    pub(super) fn new(
        client: kube::Client,
        cfg: LeaderElectionConfig,
        health: LeaderElectionHealth,
    ) -> Self {
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
    pub(super) async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
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
    pub(super) async fn keep_renewed(&mut self) {
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
    pub(super) async fn release(&mut self) {
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
