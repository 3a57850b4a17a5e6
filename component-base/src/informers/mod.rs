//! Shared informers for all four binaries: one watch per (resource type,
//! scope) for the whole process (upstream `SharedInformerFactory`, kube-runtime
//! `reflect_shared`). Each informer keeps a kube-runtime reflector store and
//! fans out add/update/delete notifications to every subscriber; consumers
//! read only from these caches.
//!
//! kube-runtime's own `Writer::subscribe` streams carry neither deletions nor
//! the previous object, which upstream's event handlers need (deleting a
//! pod lowers a ReplicaSet's expectations; a label change must wake both the
//! old and the new owner), hence this thin layer over the same store.
//!
//! A watch relists on 410 Gone and backs off on errors (kube-runtime's
//! watcher with the default backoff); objects that vanished across a relist
//! are reported as deletions, and a subscriber that falls behind is told to
//! resync from the store rather than silently missing changes.

mod informer;
mod sync;
mod watch;

pub use informer::{Change, Informable, Informer, Subscription, SyncedSignal};
pub use sync::wait_for_named_cache_sync;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::Stream;
use kube::Client;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

/// What part of a resource type an informer lists and watches. The default
/// is every object in every namespace (one namespace is the field selector
/// `metadata.namespace=<ns>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WatchScope {
    /// A field selector, e.g. the kubelet's `spec.nodeName=<node>`.
    pub fields: Option<String>,
    /// A label selector.
    pub labels: Option<String>,
}

impl WatchScope {
    /// Every object of the type.
    pub fn all() -> Self {
        Self::default()
    }

    /// Objects matching a field selector.
    pub fn fields(selector: impl Into<String>) -> Self {
        Self {
            fields: Some(selector.into()),
            ..Self::default()
        }
    }

    /// Objects matching a label selector.
    pub fn labels(selector: impl Into<String>) -> Self {
        Self {
            labels: Some(selector.into()),
            ..Self::default()
        }
    }

    fn watcher_config(&self) -> watcher::Config {
        let mut config = watcher::Config::default();
        if let Some(fields) = &self.fields {
            config = config.fields(fields);
        }
        if let Some(labels) = &self.labels {
            config = config.labels(labels);
        }
        config
    }
}

/// Whether an informer holds whole objects or only their metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Payload {
    Object,
    Metadata,
}

type InformerKey = (TypeId, Payload, WatchScope);

/// Hands out one [`Informer`] per (type, scope), starting its watch on first
/// use; every watch stops when `shutdown` fires.
pub struct SharedInformerFactory {
    client: Client,
    shutdown: CancellationToken,
    informers: Mutex<HashMap<InformerKey, Arc<dyn Any + Send + Sync>>>,
}

impl SharedInformerFactory {
    pub fn new(client: Client, shutdown: CancellationToken) -> Self {
        Self {
            client,
            shutdown,
            informers: Mutex::new(HashMap::new()),
        }
    }

    /// The process-wide informer for every `K` in the cluster.
    pub fn informer<K: Informable>(&self) -> Arc<Informer<K>> {
        self.scoped(WatchScope::all())
    }

    /// The process-wide informer for the `K`s in `scope`.
    pub fn scoped<K: Informable>(&self, scope: WatchScope) -> Arc<Informer<K>> {
        // A watcher stream does nothing until polled, so building one that
        // an existing informer makes unnecessary costs nothing.
        let events = watcher::watcher(Api::<K>::all(self.client.clone()), scope.watcher_config());
        self.get_or_start(Payload::Object, scope, events)
    }

    /// The process-wide metadata-only informer for `K` (upstream's
    /// metadata informers): for consumers that need only names, labels,
    /// owners and finalizers, at a fraction of the memory.
    pub fn metadata<K: Informable>(
        &self,
        scope: WatchScope,
    ) -> Arc<Informer<PartialObjectMeta<K>>> {
        // An `Api` of `PartialObjectMeta` makes metadata-only requests.
        let api = Api::<PartialObjectMeta<K>>::all(self.client.clone());
        let events = watcher::watcher(api, scope.watcher_config());
        self.get_or_start(Payload::Metadata, scope, events)
    }

    fn get_or_start<T, S>(&self, payload: Payload, scope: WatchScope, events: S) -> Arc<Informer<T>>
    where
        T: Informable,
        S: Stream<Item = Result<watcher::Event<T>, watcher::Error>> + Send + 'static,
    {
        let key = (TypeId::of::<T>(), payload, scope);
        let mut map = self
            .informers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) = map.get(&key)
            && let Ok(informer) = Arc::clone(existing).downcast::<Informer<T>>()
        {
            return informer;
        }
        let (informer, feed) = Informer::<T>::new();
        let informer = Arc::new(informer);
        map.insert(key, informer.clone());
        tokio::spawn(watch::run(events, feed, self.shutdown.clone()));
        informer
    }
}
