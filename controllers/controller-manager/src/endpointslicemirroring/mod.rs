//! The EndpointSlice mirroring controller (upstream
//! `pkg/controller/endpointslicemirroring`): mirrors the custom Endpoints of
//! Services without a selector into EndpointSlices. [`reconcile`] decides;
//! this runner feeds it from the shared Service/Endpoints/EndpointSlice
//! informers and writes through [`ObjectControl`].

pub mod reconcile;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

use component_base::informers::Change;
use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::core::v1::{Endpoints, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::control::{KubeObjectControl, ObjectControl};
use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, KeyedController, Reconciler, SyncResult,
};
use crate::controller_utils::Key;
use crate::endpointslice::reconcile::{LABEL_MANAGED_BY, LABEL_SERVICE_NAME};
use crate::endpointslice::tracker::SliceTracker;
use crate::error::Error;
use crate::events::{EventSink, EventSpec};
use reconcile::{Action, CONTROLLER_NAME, INVALID_IP_ADDRESS, Plan, TOO_MANY_ADDRESSES};

/// Upstream `names.EndpointSliceMirroringController`.
pub const ENDPOINTSLICE_MIRRORING_CONTROLLER: &str = "endpointslice-mirroring-controller";
/// Upstream's event source (`v1.EventSource{Component: ...}`).
pub const EVENT_SOURCE: &str = "endpoint-slice-mirroring-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: ENDPOINTSLICE_MIRRORING_CONTROLLER,
    aliases: &["endpointslicemirroring"],
    disabled_by_default: false,
    client_name: "endpointslicemirroring-controller",
    watches: &["Service", "Endpoints", "EndpointSlice"],
    concurrent_syncs: |c| c.concurrent.endpointslice_mirroring,
    start: |ctx| Box::pin(start(ctx)),
};

/// The runner: caches, the slice-write tracker and the write side.
pub struct Controller<W> {
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    writer: W,
    max_endpoints_per_subset: usize,
    tracker: Mutex<SliceTracker>,
    events: Option<EventSink>,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let svc_inf = ctx.informers.informer::<Service>();
    let ep_inf = ctx.informers.informer::<Endpoints>();
    let slice_inf = ctx.informers.informer::<EndpointSlice>();
    let ctl = Arc::new(Controller {
        services: svc_inf.store().clone(),
        endpoints: ep_inf.store().clone(),
        slices: slice_inf.store().clone(),
        writer: KubeObjectControl::new(ctx.client.clone()),
        max_endpoints_per_subset: ctx.config.mirroring_max_endpoints_per_subset,
        tracker: Mutex::new(SliceTracker::default()),
        events: Some(EventSink::new(&ctx.events, EVENT_SOURCE)),
    });
    let queue = RateLimitingQueue::new("endpointslice_mirroring");
    KeyedController::new(ENDPOINTSLICE_MIRRORING_CONTROLLER, ctl, queue)
        .watches(&svc_inf, |_, c| crate::controller::object_key(c))
        .watches(&ep_inf, |_, c| crate::controller::object_key(c))
        .watches(&slice_inf, Controller::slice_changed)
        .run(&ctx)
        .await
}

/// The Endpoints a slice was mirrored from (upstream
/// `endpointsControllerKey`), if this controller manages it.
fn mirrored_from(slice: &EndpointSlice) -> Option<Key> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(CONTROLLER_NAME) {
        return None;
    }
    let name = labels.get(LABEL_SERVICE_NAME).filter(|n| !n.is_empty())?;
    Some(Key::new(slice.metadata.namespace.as_deref(), name))
}

impl<W: ObjectControl<EndpointSlice> + 'static> Reconciler for Controller<W> {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_endpoints(key).await.map(|()| None)
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        let endpoints = self.endpoints.state();
        let slices = self.slices.state();
        let keys: std::collections::BTreeSet<Key> = endpoints
            .iter()
            .map(|e| Key::of(e.as_ref()))
            .chain(slices.iter().filter_map(|s| mirrored_from(s)))
            .collect();
        keys.into_iter().map(Enqueue::from).collect()
    }
}

impl<W: ObjectControl<EndpointSlice> + 'static> Controller<W> {
    /// A mirrored slice changed, vanished, or stopped (or started) being
    /// ours: resync the Endpoints it belongs to.
    fn slice_changed(&self, change: Change<EndpointSlice>) -> Vec<Enqueue> {
        let keys = match change {
            Change::Added(s) => vec![mirrored_from(&s)],
            Change::Updated { old, new } => vec![mirrored_from(&old), mirrored_from(&new)],
            Change::Deleted(s) => {
                if let (Some(key), Some(uid)) = (mirrored_from(&s), s.metadata.uid.as_deref()) {
                    self.tracker().handle_deletion(&key, uid);
                }
                vec![mirrored_from(&s)]
            }
            Change::Resync => Vec::new(),
        };
        let mut keys: Vec<Key> = keys.into_iter().flatten().collect();
        keys.dedup();
        keys.into_iter().map(Enqueue::from).collect()
    }

    fn tracker(&self) -> MutexGuard<'_, SliceTracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live slices mirrored from `key`.
    fn mirrored_slices(&self, key: &Key) -> Vec<Arc<EndpointSlice>> {
        self.slices
            .state()
            .into_iter()
            .filter(|s| mirrored_from(s).as_ref() == Some(key))
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Upstream `syncEndpoints`.
    pub async fn sync_endpoints(&self, key: &Key) -> Result<(), Error> {
        let ns = key.namespace.as_deref().unwrap_or_default();
        let service = self.services.get(&ObjectRef::new(&key.name).within(ns));
        let mirrorable = service.as_ref().is_some_and(|svc| {
            let spec = svc.spec.as_ref();
            spec.and_then(|s| s.type_.as_deref()) != Some("ExternalName")
                && spec.and_then(|s| s.selector.as_ref()).is_none()
        });
        let endpoints = self
            .endpoints
            .get(&ObjectRef::new(&key.name).within(ns))
            .filter(|e| mirrorable && reconcile::should_mirror(e));
        let Some(endpoints) = endpoints else {
            return self.delete_mirrored(key).await;
        };
        let slices = self.mirrored_slices(key);
        let refs: Vec<&EndpointSlice> = slices.iter().map(AsRef::as_ref).collect();
        if self.tracker().stale(key, &refs) {
            return Err(Error::Controller {
                name: ENDPOINTSLICE_MIRRORING_CONTROLLER,
                reason: format!("EndpointSlice informer cache is out of date for {key}"),
            });
        }
        let plan = reconcile::reconcile(&endpoints, &refs, self.max_endpoints_per_subset);
        self.report(&endpoints, &plan);
        let creating = endpoints.metadata.deletion_timestamp.is_none();
        for action in plan.actions {
            if matches!(action, Action::Create(_)) && !creating {
                continue;
            }
            self.apply(key, &refs, action).await?;
        }
        Ok(())
    }

    /// Upstream `deleteMirroredSlices`.
    async fn delete_mirrored(&self, key: &Key) -> Result<(), Error> {
        let slices = self.mirrored_slices(key);
        let refs: Vec<&EndpointSlice> = slices.iter().map(AsRef::as_ref).collect();
        for slice in &refs {
            let name = slice.metadata.name.clone().unwrap_or_default();
            self.apply(key, &refs, Action::Delete(name)).await?;
        }
        self.tracker().delete_service(key);
        Ok(())
    }

    async fn apply(
        &self,
        key: &Key,
        current: &[&EndpointSlice],
        action: Action,
    ) -> Result<(), Error> {
        let ns = key.namespace.as_deref().unwrap_or_default();
        match action {
            Action::Create(slice) => match self.writer.create(ns, &slice).await {
                Ok(created) => self.tracker().update(key, &created),
                Err(err) if err.is_namespace_terminating() => {}
                Err(err) => return Err(err),
            },
            Action::Update(slice) => {
                let updated = self.writer.update(ns, &slice).await?;
                self.tracker().update(key, &updated);
            }
            Action::Delete(name) => match self.writer.delete(ns, &name).await {
                Ok(()) => {
                    let uid = current
                        .iter()
                        .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
                        .and_then(|s| s.metadata.uid.as_deref());
                    if let Some(uid) = uid {
                        self.tracker().expect_deletion(key, uid);
                    }
                }
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(err),
            },
        }
        Ok(())
    }

    /// Upstream's `InvalidIPAddress` and `TooManyAddressesToMirror` events.
    fn report(&self, endpoints: &Endpoints, plan: &Plan) {
        let Some(events) = &self.events else { return };
        let regarding = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Endpoints".into()),
            namespace: endpoints.metadata.namespace.clone(),
            name: endpoints.metadata.name.clone(),
            uid: endpoints.metadata.uid.clone(),
            resource_version: endpoints.metadata.resource_version.clone(),
            ..Default::default()
        };
        if plan.invalid_addresses > 0 {
            let message = format!(
                "Skipped {} invalid IP addresses when mirroring to EndpointSlices",
                plan.invalid_addresses
            );
            events.publish(&regarding, &EventSpec::warning(INVALID_IP_ADDRESS, message));
        }
        if plan.skipped_addresses > plan.invalid_addresses {
            let message = format!(
                "A max of {} addresses can be mirrored to EndpointSlices per Endpoints subset. {} addresses were skipped",
                self.max_endpoints_per_subset, plan.skipped_addresses
            );
            events.publish(&regarding, &EventSpec::warning(TOO_MANY_ADDRESSES, message));
        }
    }
}
