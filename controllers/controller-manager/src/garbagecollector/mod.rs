//! The garbage collector (upstream `pkg/controller/garbagecollector`): a
//! dependency graph built from the owner references of every deletable
//! resource (metadata-only watches, so memory stays small), and two work
//! queues: `attemptToDelete` (background/foreground deletion of dependents
//! whose owners are gone or going) and `attemptToOrphan` (stripping
//! references to an owner deleted with `propagationPolicy=Orphan`).
//! Discovery is re-run every 30 s so new resources (CRDs) get monitors.
//!
//! Why the monitors are not `component_base::informers`: the shared factory
//! is typed (`K: Resource<DynamicType = ()>`, one watch per Rust type), but
//! the collector watches whatever discovery reports — CRDs included — as
//! `PartialObjectMeta<DynamicObject>` keyed by `ApiResource`, and stops a
//! monitor when its resource disappears. Upstream does the same through
//! `metadatainformer` on discovered GVRs. A dynamic (ApiResource-keyed)
//! metadata informer in component-base would let both share one watch.
//! Its start-up still ends in the shared [`run_workers`], one pool per queue.

pub mod graph;
mod monitor;
pub mod reconcile;
pub mod resources;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::PartialObjectMeta;

use crate::controller::{ControllerContext, ControllerDescriptor, Key, SyncResult, run_workers};
use crate::error::Error;
use graph::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Graph, Node, Work};
use reconcile::{Decision, OwnerState, Propagation};
use resources::{Resource, ResourceTable};

/// Upstream resyncs discovery every 30 s (`--resource-resync-period` is not a flag).
pub const DISCOVERY_RESYNC_PERIOD: Duration = Duration::from_secs(30);
/// How long workers wait for the first full graph before starting anyway.
const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Upstream `names.GarbageCollectorController`.
pub const GARBAGE_COLLECTOR_CONTROLLER: &str = "garbage-collector-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: GARBAGE_COLLECTOR_CONTROLLER,
    aliases: &["garbagecollector"],
    disabled_by_default: false,
    client_name: "generic-garbage-collector",
    watches: &["every deletable resource (metadata only, from discovery)"],
    concurrent_syncs: |c| c.concurrent.garbage_collector,
    start: |ctx| Box::pin(start(ctx)),
};

pub(crate) struct Collector {
    client: Client,
    graph: Mutex<Graph>,
    resources: RwLock<ResourceTable>,
    attempt_to_delete: RateLimitingQueue<Key>,
    attempt_to_orphan: RateLimitingQueue<Key>,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    if !ctx.config.enable_garbage_collector {
        tracing::info!("garbage collector disabled by --enable-garbage-collector=false");
        return Ok(());
    }
    let collector = Arc::new(Collector {
        client: ctx.client.clone(),
        graph: Mutex::new(Graph::default()),
        resources: RwLock::new(ResourceTable::default()),
        attempt_to_delete: RateLimitingQueue::new("garbage_collector_attempt_to_delete"),
        attempt_to_orphan: RateLimitingQueue::new("garbage_collector_attempt_to_orphan"),
    });
    let synced = tokio::select! {
        _ = ctx.shutdown.cancelled() => return Ok(()),
        gate = monitor::run_discovery_loop(Arc::clone(&collector), ctx.shutdown.clone()) => gate,
    };
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return Ok(()),
        _ = synced.wait(INITIAL_SYNC_TIMEOUT) => {}
    }
    tracing::info!(
        nodes = collector.graph().len(),
        "garbage collector: all resource monitors have synced"
    );
    let workers = ctx.workers;
    let (del, orph) = (Arc::clone(&collector), Arc::clone(&collector));
    tokio::join!(
        run_workers(
            GARBAGE_COLLECTOR_CONTROLLER,
            collector.attempt_to_delete.clone(),
            workers,
            ctx.shutdown.clone(),
            move |key| {
                let c = Arc::clone(&del);
                async move { c.attempt_to_delete_item(&key.name).await }
            },
        ),
        run_workers(
            GARBAGE_COLLECTOR_CONTROLLER,
            collector.attempt_to_orphan.clone(),
            workers,
            ctx.shutdown.clone(),
            move |key| {
                let c = Arc::clone(&orph);
                async move { c.attempt_to_orphan_item(&key.name).await }
            },
        ),
    );
    Ok(())
}

impl Collector {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn resource(&self, key: &str) -> Option<Resource> {
        let table = self.resources.read().unwrap_or_else(|p| p.into_inner());
        table.get(key).cloned()
    }

    fn owner_resource(&self, owner: &OwnerReference) -> Option<Resource> {
        let table = self.resources.read().unwrap_or_else(|p| p.into_inner());
        table.for_owner(&owner.api_version, &owner.kind).cloned()
    }

    pub(crate) fn enqueue(&self, work: Vec<Work>) {
        for w in work {
            match w {
                Work::AttemptToDelete(uid) => self.attempt_to_delete.add(Key::new(None, &uid)),
                Work::AttemptToOrphan(uid) => self.attempt_to_orphan.add(Key::new(None, &uid)),
            }
        }
    }

    fn api_for(&self, resource: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
        match (resource.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &resource.api),
            _ => Api::all_with(self.client.clone(), &resource.api),
        }
    }

    /// The live object behind a graph node, `None` when it is gone or was
    /// replaced by another object of the same name.
    async fn live(
        &self,
        node: &Node,
    ) -> Result<Option<(Api<DynamicObject>, PartialObjectMeta<DynamicObject>)>, Error> {
        let Some(resource) = self.resource(&node.resource) else {
            tracing::debug!(resource = %node.resource, "resource no longer served; skipping");
            return Ok(None);
        };
        let api = self.api_for(&resource, node.namespace.as_deref());
        match api.get_metadata_opt(&node.name).await? {
            Some(meta) if meta.metadata.uid.as_deref() == Some(node.uid.as_str()) => {
                Ok(Some((api, meta)))
            }
            _ => Ok(None),
        }
    }

    /// Upstream `attemptToDeleteItem`.
    async fn attempt_to_delete_item(&self, uid: &str) -> SyncResult {
        let Some(node) = self.graph().get(uid).cloned() else {
            return Ok(None);
        };
        let Some((api, live)) = self.live(&node).await? else {
            // Gone: process it as a deletion so its dependents are checked.
            let work = self.graph().remove(uid);
            self.enqueue(work);
            return Ok(None);
        };
        let Some(item) = Node::from_meta(&node.resource, &live.metadata) else {
            return Ok(None);
        };
        if item.being_deleted {
            if item.deleting_dependents() {
                self.process_deleting_dependents(&api, &item).await?;
            }
            return Ok(None);
        }
        let mut owners = Vec::with_capacity(item.owners.len());
        for owner in &item.owners {
            owners.push((owner.clone(), self.owner_state(owner, &item).await?));
        }
        let has_dependents = !self.graph().dependents(uid).is_empty();
        match reconcile::decide(&item, &owners, has_dependents) {
            Decision::Nothing => {}
            Decision::RemoveOwnerReferences(uids) => {
                tracing::info!(object = %item.name, namespace = ?item.namespace, owners = ?uids, "removing dangling owner references");
                let refs = reconcile::without_owners(&item.owners, &uids);
                patch_meta(&api, &live, "ownerReferences", serde_json::to_value(refs)?).await?;
            }
            Decision::UnblockAndDeleteForeground(uids) => {
                let refs = reconcile::unblocked(&item.owners, &uids);
                patch_meta(&api, &live, "ownerReferences", serde_json::to_value(refs)?).await?;
                delete(&api, &item, Propagation::Foreground).await?;
            }
            Decision::Delete(policy) => {
                tracing::info!(object = %item.name, namespace = ?item.namespace, ?policy, "deleting object whose owners are gone");
                delete(&api, &item, policy).await?;
            }
        }
        Ok(None)
    }

    /// Upstream `processDeletingDependentsItem`.
    async fn process_deleting_dependents(
        &self,
        api: &Api<DynamicObject>,
        owner: &Node,
    ) -> Result<(), Error> {
        let blocking: Vec<Node> = {
            let graph = self.graph();
            let deps = graph.dependents(&owner.uid);
            reconcile::blocking_dependents(&owner.uid, &deps)
                .into_iter()
                .cloned()
                .collect()
        };
        if blocking.is_empty() {
            return remove_finalizer(api, &owner.name, &owner.uid, FINALIZER_FOREGROUND).await;
        }
        for dep in blocking.iter().filter(|d| !d.deleting_dependents()) {
            self.attempt_to_delete.add(Key::new(None, &dep.uid));
        }
        Ok(())
    }

    /// Upstream `isDangling` + `classifyReferences` for one reference.
    async fn owner_state(
        &self,
        owner: &OwnerReference,
        dependent: &Node,
    ) -> Result<OwnerState, Error> {
        let Some(resource) = self.owner_resource(owner) else {
            return Err(Error::InvalidObject {
                object: format!(
                    "{}/{}",
                    dependent.namespace.as_deref().unwrap_or_default(),
                    dependent.name
                ),
                reason: format!(
                    "owner {} {} is of an unknown or uninformable kind",
                    owner.api_version, owner.kind
                ),
            });
        };
        // A cluster-scoped dependent cannot be owned by a namespaced object.
        if resource.namespaced && dependent.namespace.is_none() {
            return Ok(OwnerState::Dangling);
        }
        let api = self.api_for(&resource, dependent.namespace.as_deref());
        let Some(meta) = api.get_metadata_opt(&owner.name).await? else {
            return Ok(OwnerState::Dangling);
        };
        if meta.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
            return Ok(OwnerState::Dangling);
        }
        let foreground = meta.metadata.deletion_timestamp.is_some()
            && meta
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == FINALIZER_FOREGROUND);
        Ok(if foreground {
            OwnerState::WaitingForDependentsDeletion
        } else {
            OwnerState::Solid
        })
    }

    /// Upstream `attemptToOrphanWorker`: strip references to the owner from
    /// every dependent, then drop the owner's `orphan` finalizer.
    async fn attempt_to_orphan_item(&self, uid: &str) -> SyncResult {
        let (owner, dependents) = {
            let graph = self.graph();
            let Some(owner) = graph.get(uid).cloned() else {
                return Ok(None);
            };
            let deps: Vec<Node> = graph.dependents(uid).into_iter().cloned().collect();
            (owner, deps)
        };
        for dep in &dependents {
            let Some((api, live)) = self.live(dep).await? else {
                continue;
            };
            let refs = live.metadata.owner_references.clone().unwrap_or_default();
            if !refs.iter().any(|r| r.uid == uid) {
                continue;
            }
            let rest = reconcile::without_owners(&refs, &[uid.to_string()]);
            patch_meta(&api, &live, "ownerReferences", serde_json::to_value(rest)?).await?;
        }
        let Some((api, _)) = self.live(&owner).await? else {
            return Ok(None);
        };
        remove_finalizer(&api, &owner.name, &owner.uid, FINALIZER_ORPHAN).await?;
        Ok(None)
    }
}

/// A JSON merge patch of one metadata field, guarded by the object's UID and
/// resourceVersion so a stale decision fails with 409 and is retried.
async fn patch_meta(
    api: &Api<DynamicObject>,
    live: &PartialObjectMeta<DynamicObject>,
    field: &str,
    value: serde_json::Value,
) -> Result<(), Error> {
    let name = live.metadata.name.clone().unwrap_or_default();
    let value = match value {
        serde_json::Value::Array(a) if a.is_empty() => serde_json::Value::Null,
        v => v,
    };
    let patch = serde_json::json!({
        "metadata": {
            field: value,
            "uid": live.metadata.uid,
            "resourceVersion": live.metadata.resource_version,
        }
    });
    match api
        .patch_metadata(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::from)
    {
        Ok(_) => Ok(()),
        Err(err) if err.is_not_found() => Ok(()),
        Err(err) => Err(err),
    }
}

async fn remove_finalizer(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
    finalizer: &str,
) -> Result<(), Error> {
    let Some(live) = api.get_metadata_opt(name).await? else {
        return Ok(());
    };
    if live.metadata.uid.as_deref() != Some(uid) {
        return Ok(());
    }
    let current = live.metadata.finalizers.clone().unwrap_or_default();
    if !current.iter().any(|f| f == finalizer) {
        return Ok(());
    }
    tracing::info!(object = name, finalizer, "removing finalizer");
    let rest = reconcile::without_finalizer(&current, finalizer);
    patch_meta(api, &live, "finalizers", serde_json::to_value(rest)?).await
}

async fn delete(api: &Api<DynamicObject>, item: &Node, policy: Propagation) -> Result<(), Error> {
    let params = DeleteParams {
        propagation_policy: Some(match policy {
            Propagation::Background => PropagationPolicy::Background,
            Propagation::Foreground => PropagationPolicy::Foreground,
            Propagation::Orphan => PropagationPolicy::Orphan,
        }),
        preconditions: Some(Preconditions {
            uid: Some(item.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&item.name, &params).await.map_err(Error::from) {
        Ok(_) => Ok(()),
        Err(err) if err.is_not_found() => Ok(()),
        Err(err) => Err(err),
    }
}
