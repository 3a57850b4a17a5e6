//! Informer notifications → [`Provider`] calls (upstream `pkg/proxy/config`:
//! `ServiceConfig`, `EndpointSliceConfig`, `NodeConfig`, `ServiceCIDRConfig`).
//! Each [`Feed`] turns one shared informer's changes into deliveries,
//! re-reading the store when the subscriber lagged so no deletion is missed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use component_base::informers::{Change, Informable, Informer, Subscription, SyncedSignal};
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::runtime::reflector::ObjectRef;

use crate::model::Cidr;
use crate::{Provider, ProxierHealth};

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

/// One informer seen through one subscription.
pub struct Feed<K: Informable> {
    informer: Arc<Informer<K>>,
    changes: Subscription<K>,
    synced: Option<SyncedSignal>,
    delivered: Delivered<K>,
}

impl<K: Informable> Feed<K> {
    /// Subscribes now, so nothing between the initial list and the first
    /// `next` is lost.
    pub fn new(informer: Arc<Informer<K>>) -> Self {
        Self {
            changes: informer.subscribe(),
            synced: Some(informer.synced()),
            informer,
            delivered: Delivered::default(),
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
        out.extend(self.delivered.resync(self.store_state()));
        out.push(Delivery::Synced);
        out
    }

    fn deliver(&mut self, change: Change<K>) -> Vec<Delivery<K>> {
        match change {
            Change::Resync => self.delivered.resync(self.store_state()),
            change => self.delivered.change(change),
        }
    }
}

/// What a feed handed out, so a resync can tell updates from additions and
/// find deletions (upstream's informer store does this for its handlers).
struct Delivered<K: Informable>(HashMap<ObjectRef<K>, Arc<K>>);

impl<K: Informable> Default for Delivered<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: Informable> Delivered<K> {
    /// One informer change (`Resync` is the caller's: it needs the store).
    fn change(&mut self, change: Change<K>) -> Vec<Delivery<K>> {
        match change {
            Change::Added(new) | Change::Updated { new, .. } => {
                self.upsert(new).into_iter().collect()
            }
            Change::Deleted(gone) => {
                self.0.remove(&ObjectRef::from_obj(gone.as_ref()));
                vec![Delivery::Delete(gone)]
            }
            Change::Resync => Vec::new(),
        }
    }

    /// `old` is what was delivered last (the informer's own `old` may
    /// predate a resync); an object already delivered at the same
    /// resourceVersion is not delivered again.
    fn upsert(&mut self, new: Arc<K>) -> Option<Delivery<K>> {
        let key = ObjectRef::from_obj(new.as_ref());
        match self.0.insert(key, Arc::clone(&new)) {
            None => Some(Delivery::Add(new)),
            Some(old) if same_version(old.as_ref(), new.as_ref()) => None,
            Some(old) => Some(Delivery::Update { old, new }),
        }
    }

    /// Squares up with the store's `state`: upserts everything in it and
    /// deletes what vanished (e.g. across a relist we lagged behind).
    fn resync(&mut self, state: Vec<Arc<K>>) -> Vec<Delivery<K>> {
        let present: HashSet<ObjectRef<K>> = state
            .iter()
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect();
        let mut out: Vec<Delivery<K>> = state.into_iter().filter_map(|o| self.upsert(o)).collect();
        let gone: Vec<ObjectRef<K>> = self
            .0
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        out.extend(
            gone.into_iter()
                .filter_map(|key| self.0.remove(&key))
                .map(Delivery::Delete),
        );
        out
    }
}

fn same_version<K: Informable>(a: &K, b: &K) -> bool {
    let (a, b) = (&a.meta().resource_version, &b.meta().resource_version);
    a.is_some() && a == b
}

/// Our Node → health (its deletion timestamp) and topology labels (empty
/// once it is gone); true when a sync is due.
pub fn deliver_node<P: Provider>(
    p: &mut P,
    health: &ProxierHealth,
    batch: Vec<Delivery<Node>>,
) -> bool {
    let mut dirty = false;
    for d in batch {
        dirty |= match d {
            Delivery::Add(n) | Delivery::Update { new: n, .. } => {
                health.sync_node(&n);
                p.on_topology_change(n.metadata.labels.clone().unwrap_or_default())
            }
            Delivery::Delete(_) => p.on_topology_change(BTreeMap::new()),
            Delivery::Synced => false,
        };
    }
    dirty
}

/// Any ServiceCIDR change → every range in the cache, sorted and
/// deduplicated; true when a sync is due.
pub fn deliver_service_cidrs<P: Provider>(p: &mut P, objects: &[Arc<ServiceCIDR>]) -> bool {
    let mut all: Vec<Cidr> = objects
        .iter()
        .filter_map(|c| c.spec.as_ref()?.cidrs.as_ref())
        .flatten()
        .filter_map(|s| s.parse::<Cidr>().ok())
        .collect();
    all.sort();
    all.dedup();
    p.on_service_cidrs_changed(all)
}

/// Service deliveries → `Provider` calls; true when a sync is due.
pub fn deliver_services<P: Provider>(p: &mut P, batch: Vec<Delivery<Service>>) -> bool {
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
pub fn deliver_slices<P: Provider>(p: &mut P, batch: Vec<Delivery<EndpointSlice>>) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::service;
    use serde_json::json;

    fn svc(name: &str, rv: &str) -> Arc<Service> {
        let mut s = service("ns", name, json!({}));
        s.metadata.resource_version = Some(rv.into());
        Arc::new(s)
    }

    fn describe(batch: &[Delivery<Service>]) -> Vec<String> {
        let name = |s: &Arc<Service>| s.metadata.name.clone().unwrap_or_default();
        batch
            .iter()
            .map(|d| match d {
                Delivery::Add(s) => format!("add {}", name(s)),
                Delivery::Update { old, new } => format!(
                    "update {} {}->{}",
                    name(new),
                    old.metadata.resource_version.clone().unwrap_or_default(),
                    new.metadata.resource_version.clone().unwrap_or_default()
                ),
                Delivery::Delete(s) => format!("delete {}", name(s)),
                Delivery::Synced => "synced".into(),
            })
            .collect()
    }

    #[test]
    fn resync_deletes_vanished_objects_and_skips_unchanged_ones() {
        let mut d = Delivered::default();
        assert_eq!(
            describe(&d.change(Change::Added(svc("a", "1")))),
            vec!["add a"]
        );
        d.change(Change::Added(svc("b", "1")));
        // We lagged across a relist: only b (unchanged) and c (new) remain.
        let mut out = describe(&d.resync(vec![svc("b", "1"), svc("c", "2")]));
        out.sort();
        assert_eq!(out, vec!["add c", "delete a"]);
        // The queued notification for c, seen late, is not delivered twice;
        // a newer b is an update from what was delivered.
        assert!(d.change(Change::Added(svc("c", "2"))).is_empty());
        assert_eq!(
            describe(&d.change(Change::Updated {
                old: svc("b", "0"),
                new: svc("b", "3")
            })),
            vec!["update b 1->3"]
        );
        assert_eq!(
            describe(&d.change(Change::Deleted(svc("b", "3")))),
            vec!["delete b"]
        );
        assert_eq!(
            describe(&d.resync(vec![svc("c", "2")])),
            Vec::<String>::new()
        );
    }

    /// Records the calls it gets; asks for a sync on every change.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    fn name<K: kube::Resource>(o: &K) -> String {
        o.meta().name.clone().unwrap_or_default()
    }

    impl Provider for Recorder {
        fn on_service_add(&mut self, s: &Service) -> bool {
            self.0.push(format!("service add {}", name(s)));
            true
        }
        fn on_service_update(&mut self, _: &Service, s: &Service) -> bool {
            self.0.push(format!("service update {}", name(s)));
            true
        }
        fn on_service_delete(&mut self, s: &Service) -> bool {
            self.0.push(format!("service delete {}", name(s)));
            false
        }
        fn on_service_synced(&mut self) {
            self.0.push("services synced".into());
        }
        fn on_endpoint_slice_add(&mut self, _: &EndpointSlice) -> bool {
            false
        }
        fn on_endpoint_slice_update(&mut self, _: &EndpointSlice, _: &EndpointSlice) -> bool {
            false
        }
        fn on_endpoint_slice_delete(&mut self, _: &EndpointSlice) -> bool {
            false
        }
        fn on_endpoint_slices_synced(&mut self) {}
        fn on_topology_change(&mut self, labels: BTreeMap<String, String>) -> bool {
            self.0.push(format!("topology {labels:?}"));
            true
        }
        fn on_service_cidrs_changed(&mut self, cidrs: Vec<Cidr>) -> bool {
            let cidrs: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
            self.0.push(format!("cidrs {}", cidrs.join(", ")));
            true
        }
        fn request_full_sync(&mut self) {}
        async fn sync(&mut self) -> Result<(), crate::Error> {
            Ok(())
        }
    }

    #[test]
    fn deliveries_become_provider_calls_in_order() {
        let mut p = Recorder::default();
        let batch = vec![
            Delivery::Add(svc("a", "1")),
            Delivery::Update {
                old: svc("a", "1"),
                new: svc("a", "2"),
            },
            Delivery::Delete(svc("a", "2")),
        ];
        assert!(deliver_services(&mut p, batch));
        assert!(!deliver_services(
            &mut p,
            vec![Delivery::Delete(svc("b", "1"))]
        ));
        assert!(
            deliver_services(&mut p, vec![Delivery::Synced]),
            "the initial list is in: sync"
        );
        let mut node = Node::default();
        node.metadata.labels = Some([("zone".to_string(), "z1".to_string())].into());
        let health = ProxierHealth::new(std::time::Duration::from_secs(60));
        assert!(deliver_node(
            &mut p,
            &health,
            vec![Delivery::Add(Arc::new(node.clone()))]
        ));
        assert!(deliver_node(
            &mut p,
            &health,
            vec![Delivery::Delete(Arc::new(node))]
        ));
        let cidr = |ranges: &[&str]| -> Arc<ServiceCIDR> {
            Arc::new(
                serde_json::from_value(
                    json!({"metadata": {"name": "c"}, "spec": {"cidrs": ranges}}),
                )
                .unwrap(),
            )
        };
        deliver_service_cidrs(
            &mut p,
            &[
                cidr(&["172.30.0.0/16", "fd00::/108"]),
                cidr(&["10.96.0.0/12", "172.30.0.0/16"]),
            ],
        );
        assert_eq!(
            p.0,
            vec![
                "service add a",
                "service update a",
                "service delete a",
                "service delete b",
                "services synced",
                "topology {\"zone\": \"z1\"}",
                "topology {}",
                "cidrs 10.96.0.0/12, 172.30.0.0/16, fd00::/108",
            ]
        );
    }
}
