//! Leader election on a coordination.k8s.io/v1 Lease (being written; the
//! signature below is the contract the app runner calls).

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct LeaderElectionConfig {
    pub lease_namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("leaderelection lost for lease {0}")]
    LeaseLost(String),
}

/// Waits to acquire the Lease, then runs `work` while renewing it.
///
/// Returns `Ok(())` when `shutdown` is cancelled (the lease is released) or
/// `work` finishes; `Err(Error::LeaseLost)` when renewal fails for longer than
/// `renew_deadline`, in which case the caller exits the process like upstream.
pub async fn run<F, Fut>(
    _client: kube::Client,
    _cfg: LeaderElectionConfig,
    shutdown: CancellationToken,
    work: F,
) -> Result<(), Error>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fut = work(shutdown.child_token());
    tokio::select! {
        _ = fut => {},
        _ = shutdown.cancelled() => {},
    }
    Ok(())
}
