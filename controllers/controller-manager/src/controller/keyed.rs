//! The one start-up shape of a keyed controller: subscribe, wait for the
//! caches (upstream `WaitForNamedCacheSync`), pump informer changes into the
//! queue through per-controller key functions, run the workers (kube-runtime
//! `Controller::new(..).watches(..).run(reconcile, ..)`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use component_base::informers::{
    Change, Informable, Informer, SyncedSignal, wait_for_named_cache_sync,
};
use component_base::workqueue::RateLimitingQueue;
use futures::future::BoxFuture;

use super::{ControllerContext, Key, SyncResult, run_workers};
use crate::error::Error;

/// A key a change asks to sync, now or after a delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enqueue {
    Now(Key),
    After(Key, Duration),
}

impl From<Key> for Enqueue {
    fn from(key: Key) -> Self {
        Enqueue::Now(key)
    }
}

/// The per-key half of a controller (upstream `syncHandler`).
pub trait Reconciler: Send + Sync + 'static {
    /// Brings the object behind `key` to its desired state.
    fn sync(&self, key: &Key) -> impl Future<Output = SyncResult> + Send;

    /// Every key a full pass should look at: queued at start and whenever
    /// a subscription lagged (`Change::Resync`).
    fn all_keys(&self) -> Vec<Enqueue>;
}

/// A controller's queue, the informers it waits for and the change pumps
/// feeding the queue; [`KeyedController::run`] drives them.
pub struct KeyedController<C: Reconciler> {
    name: &'static str,
    reconciler: Arc<C>,
    queue: RateLimitingQueue<Key>,
    synced: Vec<SyncedSignal>,
    pumps: Vec<BoxFuture<'static, ()>>,
}

impl<C: Reconciler> KeyedController<C> {
    pub fn new(name: &'static str, reconciler: Arc<C>, queue: RateLimitingQueue<Key>) -> Self {
        Self {
            name,
            reconciler,
            queue,
            synced: Vec::new(),
            pumps: Vec::new(),
        }
    }

    /// Waits for `informer` and feeds each of its changes through `keys`
    /// (a `Change::Resync` never reaches `keys`: it queues
    /// [`Reconciler::all_keys`]). Subscribes now, before the cache sync, so
    /// no change between the initial list and the first worker is lost.
    pub fn watches<K, F>(mut self, informer: &Informer<K>, keys: F) -> Self
    where
        K: Informable,
        F: Fn(&C, Change<K>) -> Vec<Enqueue> + Send + 'static,
    {
        self.synced.push(informer.synced());
        let mut changes = informer.subscribe();
        let reconciler = Arc::clone(&self.reconciler);
        let queue = self.queue.clone();
        self.pumps.push(Box::pin(async move {
            while let Some(change) = changes.recv().await {
                let wanted = match change {
                    Change::Resync => reconciler.all_keys(),
                    change => keys(&reconciler, change),
                };
                enqueue(&queue, wanted);
            }
        }));
        self
    }

    /// Waits for `informer` without reacting to its changes (a cache the
    /// sync only reads).
    pub fn reads<K: Informable>(mut self, informer: &Informer<K>) -> Self {
        self.synced.push(informer.synced());
        self
    }

    /// Waits for the caches, starts the pumps, queues every key, then runs
    /// `ctx.workers` workers until shutdown. Returns early (Ok) when
    /// shutdown comes before the caches sync.
    pub async fn run(self, ctx: &ControllerContext) -> Result<(), Error> {
        if !wait_for_named_cache_sync(self.name, &ctx.shutdown, &self.synced).await {
            return Ok(());
        }
        for pump in self.pumps {
            tokio::spawn(pump);
        }
        enqueue(&self.queue, self.reconciler.all_keys());
        let reconciler = self.reconciler;
        run_workers(
            self.name,
            self.queue,
            ctx.workers,
            ctx.shutdown.clone(),
            move |key| {
                let reconciler = Arc::clone(&reconciler);
                async move { reconciler.sync(&key).await }
            },
        )
        .await;
        Ok(())
    }
}

/// The key function of a controller keyed by the watched object itself:
/// every add, update and delete syncs that object.
pub fn object_key<K: kube::Resource>(change: Change<K>) -> Vec<Enqueue> {
    match change {
        Change::Added(obj) | Change::Updated { new: obj, .. } | Change::Deleted(obj) => {
            vec![Key::of(obj.as_ref()).into()]
        }
        Change::Resync => Vec::new(),
    }
}

/// Every object in `store` as a key: the full pass of a controller keyed by
/// the watched objects themselves.
pub fn store_keys<K: component_base::informers::Informable>(
    store: &kube::runtime::reflector::Store<K>,
) -> Vec<Enqueue> {
    store
        .state()
        .iter()
        .map(|obj| Key::of(obj.as_ref()).into())
        .collect()
}

fn enqueue(queue: &RateLimitingQueue<Key>, keys: Vec<Enqueue>) {
    for key in keys {
        match key {
            Enqueue::Now(key) => queue.add(key),
            Enqueue::After(key, after) => queue.add_after(key, after),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn pod(name: &str) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("ns".into());
        Arc::new(pod)
    }

    #[test]
    fn object_key_is_the_changed_object() {
        let want = vec![Enqueue::Now(Key::new(Some("ns"), "b"))];
        assert_eq!(object_key(Change::Added(pod("b"))), want);
        assert_eq!(object_key(Change::Deleted(pod("b"))), want);
        let updated = Change::Updated {
            old: pod("a"),
            new: pod("b"),
        };
        assert_eq!(object_key(updated), want);
        assert!(object_key::<Pod>(Change::Resync).is_empty());
    }

    #[tokio::test]
    async fn enqueue_adds_now_or_later() {
        let queue = RateLimitingQueue::new("test");
        let later = Duration::from_millis(30);
        enqueue(
            &queue,
            vec![
                Key::new(None, "now").into(),
                Enqueue::After(Key::new(None, "later"), later),
            ],
        );
        assert_eq!(queue.len(), 1);
        tokio::time::sleep(later * 3).await;
        assert_eq!(queue.len(), 2);
    }
}
