//! Drives a handler from its informer's notifications (upstream's `ResourceEventHandler`
//! registration): catch up with the whole store once it has synced, then per changed object,
//! and with the whole store again whenever the subscription lagged.

use std::sync::Arc;

use component_base::informers::{Change, Informable, Informer};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Something that applies one informer's objects to the scheduler's state.
pub trait Handler {
    type Object: Informable;

    /// Applies whatever changed about the object under `key`.
    fn catch_up(&mut self, key: &ObjectRef<Self::Object>);

    /// Every object the store or the handler knows.
    fn known_keys(&self) -> Vec<ObjectRef<Self::Object>>;

    /// Applies every object the store or the handler knows.
    fn catch_up_all(&mut self) {
        for key in self.known_keys() {
            self.catch_up(&key);
        }
    }
}

/// Runs `handler` until `shutdown` or the informer stops; flips `handled` once the initial list
/// has been applied (upstream `WaitForHandlersSync`).
pub async fn run<H: Handler>(
    mut handler: H,
    informer: Arc<Informer<H::Object>>,
    handled: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    // Subscribe before reading the store so nothing after that read is missed.
    let mut changes = informer.subscribe();
    let synced = tokio::select! {
        _ = shutdown.cancelled() => false,
        synced = informer.wait_synced() => synced,
    };
    if !synced {
        return;
    }
    handler.catch_up_all();
    handled.send_replace(true);
    loop {
        let change = tokio::select! {
            _ = shutdown.cancelled() => return,
            change = changes.recv() => change,
        };
        match change {
            None => return,
            Some(Change::Resync) => handler.catch_up_all(),
            Some(Change::Added(o) | Change::Updated { new: o, .. } | Change::Deleted(o)) => {
                handler.catch_up(&ObjectRef::from_obj(o.as_ref()))
            }
        }
    }
}
