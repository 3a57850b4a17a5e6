//! One informer: the read-only cache, its change notifications and its
//! has-synced signal.

use std::fmt::Debug;
use std::sync::Arc;

use kube::Resource;
use kube::runtime::reflector::{Store, store::Writer};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

/// Capacity of each informer's notification channel; a subscriber that
/// falls further behind gets [`Change::Resync`] instead.
pub(super) const CHANNEL_CAPACITY: usize = 8192;

/// A notification from an informer.
#[derive(Debug)]
pub enum Change<K> {
    Added(Arc<K>),
    Updated {
        old: Arc<K>,
        new: Arc<K>,
    },
    Deleted(Arc<K>),
    /// The subscriber missed notifications: re-examine the whole cache.
    Resync,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Added(o) => Change::Added(Arc::clone(o)),
            Change::Updated { old, new } => Change::Updated {
                old: Arc::clone(old),
                new: Arc::clone(new),
            },
            Change::Deleted(o) => Change::Deleted(Arc::clone(o)),
            Change::Resync => Change::Resync,
        }
    }
}

/// Bounds every informed type satisfies (all k8s-openapi resources do, and
/// `PartialObjectMeta` of each).
pub trait Informable:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Informable for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// One resource type's cache plus its notification fan-out.
pub struct Informer<K: Informable> {
    store: Store<K>,
    tx: broadcast::Sender<Change<K>>,
    synced: SyncedSignal,
}

/// The writing half the watch loop owns.
pub(super) struct Feed<K: Informable> {
    pub writer: Writer<K>,
    pub tx: broadcast::Sender<Change<K>>,
    pub synced: watch::Sender<bool>,
}

impl<K: Informable> Informer<K> {
    pub(super) fn new() -> (Self, Feed<K>) {
        let writer = Writer::<K>::default();
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let (synced_tx, synced) = watch::channel(false);
        let informer = Self {
            store: writer.as_reader(),
            tx: tx.clone(),
            synced: SyncedSignal(synced),
        };
        let feed = Feed {
            writer,
            tx,
            synced: synced_tx,
        };
        (informer, feed)
    }

    /// The read-only cache.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// A stream of changes; subscribe before waiting for the sync so nothing
    /// between the initial list and the subscription is lost.
    pub fn subscribe(&self) -> Subscription<K> {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }

    /// Resolves once the initial list has been stored.
    pub fn synced(&self) -> SyncedSignal {
        self.synced.clone()
    }

    /// Waits until the initial list has been stored; false if the informer
    /// stopped first.
    pub async fn wait_synced(&self) -> bool {
        self.synced.wait().await
    }
}

/// An informer's "has synced" flag, the same type for every resource type
/// so one wait can cover several (upstream `cache.InformerSynced`).
/// (kube-runtime's `Store::wait_until_ready` wakes only its last waiter, so
/// several consumers waiting on one shared store would hang.)
#[derive(Clone, Debug)]
pub struct SyncedSignal(watch::Receiver<bool>);

impl SyncedSignal {
    /// Whether the initial list is in the store now.
    pub fn has_synced(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits for the initial list; false if the informer stopped first.
    pub async fn wait(&self) -> bool {
        let mut rx = self.0.clone();
        rx.wait_for(|s| *s).await.is_ok()
    }
}

/// A consumer's view of an informer's notifications.
pub struct Subscription<K> {
    rx: broadcast::Receiver<Change<K>>,
}

impl<K: Clone> Subscription<K> {
    /// The next change; `None` when the informer stopped.
    pub async fn recv(&mut self) -> Option<Change<K>> {
        match self.rx.recv().await {
            Ok(change) => Some(change),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
