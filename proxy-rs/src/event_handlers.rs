//! Informer notifications → [`Provider`] calls (upstream `pkg/proxy/config`:
//! `ServiceConfig`, `EndpointSliceConfig`, `NodeConfig`, `ServiceCIDRConfig`).
//! Each [`Feed`] turns one shared informer's changes into deliveries,
//! re-reading the store when the subscriber lagged so no deletion is missed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use component_base::informers::{Change, Informable, Informer, Subscription, SyncedSignal};
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::runtime::reflector::ObjectRef;

#[cfg(doc)]
use crate::Provider;
use crate::model::Cidr;

/// One notification as a handler sees it.
#[derive(Debug)]
pub enum Delivery<K> {
    Add(Arc<K>),
    Update {
        old: Arc<K>,
        new: Arc<K>,
    },
    Delete(Arc<K>),
    /// The initial list has been delivered (upstream `On*Synced`); once.
    Synced,
}

/// One informer seen through one subscription, remembering what it handed
/// out so that a resync can tell updates from additions and find deletions.
pub struct Feed<K: Informable> {
    informer: Arc<Informer<K>>,
    changes: Subscription<K>,
    synced: Option<SyncedSignal>,
    delivered: HashMap<ObjectRef<K>, Arc<K>>,
}

impl<K: Informable> Feed<K> {
    /// Subscribes now, so nothing between the initial list and the first
    /// `next` is lost.
    pub fn new(informer: Arc<Informer<K>>) -> Self {
        Self {
            changes: informer.subscribe(),
            synced: Some(informer.synced()),
            informer,
            delivered: HashMap::new(),
        }
    }

    /// The next batch of deliveries; `None` once the informer stopped.
    pub async fn next(&mut self) -> Option<Vec<Delivery<K>>> {
        let synced = self.synced.clone();
        tokio::select! {
            ok = async { synced?.wait().await.then_some(()) }, if synced.is_some() => {
                ok?;
                self.synced = None;
                Some(self.initial_list())
            }
            change = self.changes.recv() => change.map(|c| self.deliver(c)),
        }
    }

    /// Everything in the cache now, i.e. the objects the proxier sees.
    pub fn store_state(&self) -> Vec<Arc<K>> {
        self.informer.store().state()
    }

    /// The informer queues every change of the initial list before it flips
    /// its synced flag, so draining the queue, then squaring up with the
    /// store, delivers the whole list before `Synced`.
    fn initial_list(&mut self) -> Vec<Delivery<K>> {
        let mut out = Vec::new();
        while let Some(Some(change)) = self.changes.recv().now_or_never() {
            out.extend(self.deliver(change));
        }
        out.extend(self.resync());
        out.push(Delivery::Synced);
        out
    }

    fn deliver(&mut self, change: Change<K>) -> Vec<Delivery<K>> {
        match change {
            Change::Added(new) | Change::Updated { new, .. } => {
                self.upsert(new).into_iter().collect()
            }
            Change::Deleted(gone) => {
                self.delivered.remove(&ObjectRef::from_obj(gone.as_ref()));
                vec![Delivery::Delete(gone)]
            }
            Change::Resync => self.resync(),
        }
    }

    /// `old` is what this feed delivered last (the informer's own `old` may
    /// predate a resync); an object already delivered at the same
    /// resourceVersion is not delivered again.
    fn upsert(&mut self, new: Arc<K>) -> Option<Delivery<K>> {
        let key = ObjectRef::from_obj(new.as_ref());
        match self.delivered.insert(key, Arc::clone(&new)) {
            None => Some(Delivery::Add(new)),
            Some(old) if same_version(old.as_ref(), new.as_ref()) => None,
            Some(old) => Some(Delivery::Update { old, new }),
        }
    }

    /// Re-reads the store (the subscriber lagged, or the initial list):
    /// upserts everything in it and deletes what vanished.
    fn resync(&mut self) -> Vec<Delivery<K>> {
        let state = self.store_state();
        let present: std::collections::HashSet<ObjectRef<K>> = state
            .iter()
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect();
        let mut out: Vec<Delivery<K>> = state.into_iter().filter_map(|o| self.upsert(o)).collect();
        let gone: Vec<ObjectRef<K>> = self
            .delivered
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(obj) = self.delivered.remove(&key) {
                out.push(Delivery::Delete(obj));
            }
        }
        out
    }
}

fn same_version<K: Informable>(a: &K, b: &K) -> bool {
    let (a, b) = (&a.meta().resource_version, &b.meta().resource_version);
    a.is_some() && a == b
}

/// Our Node's labels (empty once it is gone), for topology.
pub fn node_labels(delivery: &Delivery<Node>) -> Option<BTreeMap<String, String>> {
    match delivery {
        Delivery::Add(n) | Delivery::Update { new: n, .. } => {
            Some(n.metadata.labels.clone().unwrap_or_default())
        }
        Delivery::Delete(_) => Some(BTreeMap::new()),
        Delivery::Synced => None,
    }
}

/// Every ServiceCIDR range in the cache, sorted and deduplicated.
pub fn service_cidrs(objects: &[Arc<ServiceCIDR>]) -> Vec<Cidr> {
    let mut all: Vec<Cidr> = objects
        .iter()
        .filter_map(|c| c.spec.as_ref()?.cidrs.as_ref())
        .flatten()
        .filter_map(|s| s.parse::<Cidr>().ok())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Service deliveries → `Provider` calls; true when a sync is due.
pub fn deliver_services<P: crate::Provider>(p: &mut P, batch: Vec<Delivery<Service>>) -> bool {
    let mut dirty = false;
    for d in batch {
        dirty |= match d {
            Delivery::Add(s) => p.on_service_add(&s),
            Delivery::Update { old, new } => p.on_service_update(&old, &new),
            Delivery::Delete(s) => p.on_service_delete(&s),
            Delivery::Synced => {
                p.on_service_synced();
                true
            }
        };
    }
    dirty
}

/// EndpointSlice deliveries → `Provider` calls; true when a sync is due.
pub fn deliver_slices<P: crate::Provider>(p: &mut P, batch: Vec<Delivery<EndpointSlice>>) -> bool {
    let mut dirty = false;
    for d in batch {
        dirty |= match d {
            Delivery::Add(s) => p.on_endpoint_slice_add(&s),
            Delivery::Update { old, new } => p.on_endpoint_slice_update(&old, &new),
            Delivery::Delete(s) => p.on_endpoint_slice_delete(&s),
            Delivery::Synced => {
                p.on_endpoint_slices_synced();
                true
            }
        };
    }
    dirty
}
