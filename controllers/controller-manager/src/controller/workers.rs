//! Keyed workers (upstream `wait.UntilWithContext(ctx, worker, time.Second)`
//! with `processNextWorkItem`).

use std::future::Future;
use std::sync::Arc;

use component_base::workqueue::RateLimitingQueue;
use tokio_util::sync::CancellationToken;

use super::{Key, SyncResult};

/// Runs `workers` loops pulling keys from `queue` until shutdown, like
/// upstream's `processNextWorkItem`: success forgets the key's backoff (and
/// optionally re-adds it after a delay), failure re-adds it rate-limited.
pub async fn run_workers<F, Fut>(
    controller: &'static str,
    queue: RateLimitingQueue<Key>,
    workers: usize,
    shutdown: CancellationToken,
    sync: F,
) where
    F: Fn(Key) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SyncResult> + Send + 'static,
{
    let sync = Arc::new(sync);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = Arc::clone(&sync);
        set.spawn(async move {
            while let Some(key) = queue.get().await {
                let result = sync(key.clone()).await;
                handle_result(controller, &queue, &key, result);
                queue.done(&key);
            }
        });
    }
    shutdown.cancelled().await;
    queue.shut_down();
    while set.join_next().await.is_some() {}
}

fn handle_result(
    controller: &'static str,
    queue: &RateLimitingQueue<Key>,
    key: &Key,
    result: SyncResult,
) {
    match result {
        Ok(requeue) => {
            queue.forget(key);
            if let Some(after) = requeue {
                queue.add_after(key.clone(), after);
            }
        }
        Err(err) if err.is_conflict() => {
            tracing::debug!(controller, %key, "conflict; requeueing");
            queue.add_rate_limited(key.clone());
        }
        Err(err) => {
            tracing::warn!(controller, %key, error = %err, retriable = err.is_retriable(), "error syncing; requeueing");
            queue.add_rate_limited(key.clone());
        }
    }
}
