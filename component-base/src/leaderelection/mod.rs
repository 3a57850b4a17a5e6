//! Leader election on a `coordination.k8s.io/v1` Lease, compatible with
//! client-go's `leaderelection.LeaderElector` + `resourcelock.LeaseLock`, so
//! our binaries and stock components can contend for the same Lease (e.g.
//! `kube-system/kube-scheduler`) and never lead at the same time.
//!
//! Writes are plain updates carrying the resourceVersion we last read, so a
//! concurrent writer makes ours fail with 409 and we retry next period.

mod elector;
mod health;
mod record;

pub use health::{LeaderElectionHealth, LeaderElectionUnhealthy};
pub use record::{Attempt, ElectorState, LeaderElectionRecord};

use elector::Elector;
use std::future::Future;
use std::time::Duration;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::error;

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
}
