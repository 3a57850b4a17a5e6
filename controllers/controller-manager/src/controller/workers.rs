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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::error::Error;

    /// A failed sync comes back (rate-limited), a successful one is
    /// forgotten, and `Ok(Some(after))` asks for another pass later.
    #[tokio::test]
    async fn failures_are_retried_and_requeues_honoured() {
        let queue = RateLimitingQueue::new("test");
        let shutdown = CancellationToken::new();
        let calls = Arc::new(AtomicUsize::new(0));
        queue.add(Key::new(None, "k"));
        let counted = Arc::clone(&calls);
        let workers = tokio::spawn(run_workers(
            "test",
            queue.clone(),
            2,
            shutdown.clone(),
            move |_key| {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        0 => Err(Error::Controller {
                            name: "test",
                            reason: "first try fails".into(),
                        }),
                        1 => Ok(Some(Duration::from_millis(20))),
                        _ => Ok(None),
                    }
                }
            },
        ));
        for _ in 0..200 {
            if calls.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        assert!(workers.await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3, "fail, requeue, done");
    }
}
