//! Waiting for several informers at once (upstream
//! `cache.WaitForNamedCacheSync`).

use tokio_util::sync::CancellationToken;

use super::SyncedSignal;

/// Waits until every informer in `signals` has stored its initial list, with
/// upstream's log lines. False when shutdown comes first (or an informer
/// stopped), in which case the caller should return without starting work.
pub async fn wait_for_named_cache_sync(
    controller: &str,
    shutdown: &CancellationToken,
    signals: &[SyncedSignal],
) -> bool {
    tracing::info!(controller, "Waiting for caches to sync for {controller}");
    let all = async {
        for signal in signals {
            if !signal.wait().await {
                return false;
            }
        }
        true
    };
    let synced = tokio::select! {
        _ = shutdown.cancelled() => false,
        synced = all => synced,
    };
    if synced {
        tracing::info!(controller, "Caches are synced for {controller}");
    } else {
        tracing::info!(controller, "Unable to sync caches for {controller}");
    }
    synced
}
