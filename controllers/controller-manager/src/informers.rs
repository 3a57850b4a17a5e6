//! Shared informers: exactly one watch per resource type for the whole
//! process (upstream `SharedInformerFactory`). Each informer keeps a
//! kube-runtime reflector store and fans out add/update/delete
//! notifications to every subscribed controller; controllers read only from
//! these caches.
//!
//! kube-runtime's own `Writer::subscribe` streams carry neither deletions nor
//! the previous object, which upstream's event handlers need (deleting a
//! pod lowers a ReplicaSet's expectations; a label change must wake both
//! the old and the new owner), hence this thin layer over the same store.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Capacity of each informer's notification channel; a subscriber that
/// falls further behind gets [`Change::Resync`] instead.
const CHANNEL_CAPACITY: usize = 8192;

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

/// Bounds every informed type satisfies (all k8s-openapi resources do).
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
    /// Set after the first complete list. (kube-runtime's
    /// `Store::wait_until_ready` wakes only its last waiter, so several
    /// controllers waiting on one shared store would hang.)
    synced: watch::Receiver<bool>,
}

impl<K: Informable> Informer<K> {
    /// The read-only cache.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// A stream of changes; subscribe before [`Self::wait_synced`] so nothing
    /// between the initial list and the subscription is lost.
    pub fn subscribe(&self) -> Subscription<K> {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }

    /// Waits until the initial list has been stored.
    pub async fn wait_synced(&self) -> bool {
        let mut synced = self.synced.clone();
        synced.wait_for(|s| *s).await.is_ok()
    }
}

/// A controller's view of an informer's notifications.
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

/// Hands out one [`Informer`] per resource type, starting its watch on first
/// use; every watch stops when `shutdown` fires.
pub struct SharedInformerFactory {
    client: Client,
    shutdown: CancellationToken,
    informers: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl SharedInformerFactory {
    pub fn new(client: Client, shutdown: CancellationToken) -> Self {
        Self {
            client,
            shutdown,
            informers: Mutex::new(HashMap::new()),
        }
    }

    /// The process-wide informer for `K` (cluster-wide list/watch).
    pub fn informer<K: Informable>(&self) -> Arc<Informer<K>> {
        let mut map = self
            .informers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) = map.get(&TypeId::of::<K>())
            && let Ok(informer) = Arc::clone(existing).downcast::<Informer<K>>()
        {
            return informer;
        }
        let writer = Writer::<K>::default();
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let (synced_tx, synced) = watch::channel(false);
        let informer = Arc::new(Informer {
            store: writer.as_reader(),
            tx: tx.clone(),
            synced,
        });
        map.insert(TypeId::of::<K>(), informer.clone());
        let api: Api<K> = Api::all(self.client.clone());
        tokio::spawn(run_watch(api, writer, tx, synced_tx, self.shutdown.clone()));
        informer
    }
}

/// The single watch loop of one resource type.
async fn run_watch<K: Informable>(
    api: Api<K>,
    mut writer: Writer<K>,
    tx: broadcast::Sender<Change<K>>,
    synced: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let kind = K::kind(&());
    let stream = watcher(api).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut relist = Relist::default();
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(event)) => {
                tracing::trace!(%kind, "watch event");
                let list_done = matches!(event, Event::InitDone);
                for change in apply_event(&mut writer, &mut relist, &event) {
                    // No receivers is fine: controllers may not have subscribed yet.
                    let _ = tx.send(change);
                }
                if list_done {
                    synced.send_replace(true);
                }
            }
            Some(Err(err)) => {
                tracing::warn!(%kind, error = %err, "watch failed; retrying with backoff")
            }
            None => break,
        }
    }
    tracing::debug!(%kind, "informer stopped");
}

fn watcher<K: Informable>(
    api: Api<K>,
) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send {
    watcher::watcher(api, watcher::Config::default())
}

/// What the store held when a relist started, to diff against its result.
struct Relist<K: Informable> {
    before: Option<HashMap<ObjectRef<K>, Arc<K>>>,
}

impl<K: Informable> Default for Relist<K> {
    fn default() -> Self {
        Self { before: None }
    }
}

/// Applies one watch event to the store and returns the notifications it
/// implies. A relist is diffed against the previous contents so deletions
/// missed while disconnected are still reported.
fn apply_event<K: Informable>(
    writer: &mut Writer<K>,
    relist: &mut Relist<K>,
    event: &Event<K>,
) -> Vec<Change<K>> {
    let store = writer.as_reader();
    match event {
        Event::Apply(obj) => {
            let old = store.get(&ObjectRef::from_obj(obj));
            writer.apply_watcher_event(event);
            let new = Arc::new(obj.clone());
            vec![match old {
                Some(old) => Change::Updated { old, new },
                None => Change::Added(new),
            }]
        }
        Event::Delete(obj) => {
            let last = store
                .get(&ObjectRef::from_obj(obj))
                .unwrap_or_else(|| Arc::new(obj.clone()));
            writer.apply_watcher_event(event);
            vec![Change::Deleted(last)]
        }
        Event::Init => {
            relist.before = Some(
                store
                    .state()
                    .into_iter()
                    .map(|o| (ObjectRef::from_obj(o.as_ref()), o))
                    .collect(),
            );
            writer.apply_watcher_event(event);
            Vec::new()
        }
        Event::InitApply(_) => {
            writer.apply_watcher_event(event);
            Vec::new()
        }
        Event::InitDone => {
            writer.apply_watcher_event(event);
            let mut before = relist.before.take().unwrap_or_default();
            let mut changes = Vec::new();
            for new in store.state() {
                let key = ObjectRef::from_obj(new.as_ref());
                changes.push(match before.remove(&key) {
                    Some(old) => Change::Updated { old, new },
                    None => Change::Added(new),
                });
            }
            changes.extend(before.into_values().map(Change::Deleted));
            changes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ObjectMeta;

    fn pod(name: &str, rv: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn describe(changes: &[Change<Pod>]) -> Vec<String> {
        let name = |p: &Arc<Pod>| p.metadata.name.clone().unwrap_or_default();
        changes
            .iter()
            .map(|c| match c {
                Change::Added(p) => format!("add {}", name(p)),
                Change::Updated { old, new } => format!(
                    "update {} {}->{}",
                    name(new),
                    old.metadata.resource_version.clone().unwrap_or_default(),
                    new.metadata.resource_version.clone().unwrap_or_default()
                ),
                Change::Deleted(p) => format!("delete {}", name(p)),
                Change::Resync => "resync".into(),
            })
            .collect()
    }

    #[test]
    fn watch_events_become_add_update_delete_and_relists_are_diffed() {
        let mut writer = Writer::<Pod>::default();
        let mut relist = Relist::default();
        let mut run = |ev: Event<Pod>| describe(&apply_event(&mut writer, &mut relist, &ev));
        assert!(run(Event::Init).is_empty());
        assert!(run(Event::InitApply(pod("a", "1"))).is_empty());
        assert!(run(Event::InitApply(pod("b", "1"))).is_empty());
        let mut initial = run(Event::InitDone);
        initial.sort();
        assert_eq!(initial, vec!["add a", "add b"]);
        assert_eq!(run(Event::Apply(pod("a", "2"))), vec!["update a 1->2"]);
        assert_eq!(run(Event::Apply(pod("c", "3"))), vec!["add c"]);
        assert_eq!(run(Event::Delete(pod("c", "4"))), vec!["delete c"]);
        // Relist after a disconnect: b vanished, a changed.
        run(Event::Init);
        run(Event::InitApply(pod("a", "5")));
        assert_eq!(run(Event::InitDone), vec!["update a 2->5", "delete b"]);
    }
}
