//! The Endpoints controller (upstream `pkg/controller/endpoint`): keeps a
//! core/v1 Endpoints beside every Service with a selector. [`reconcile`]
//! decides; this runner feeds it from the shared Service/Pod/Endpoints
//! informers and writes through [`ObjectControl`].

pub mod reconcile;
pub mod repack;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use component_base::informers::Change;
use component_base::selectors::Selector;
use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::core::v1::{Endpoints, ObjectReference, Pod, Service};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::control::{KubeObjectControl, ObjectControl};
use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, KeyedController, Reconciler, SyncResult,
};
use crate::controller_utils::Key;
use crate::endpointslice::trigger_time::{TriggerTimeTracker, format_rfc3339_nano};
use crate::error::Error;
use crate::events::{EventSink, EventSpec};
use reconcile::Write;

/// Upstream `names.EndpointsController`.
pub const ENDPOINTS_CONTROLLER: &str = "endpoints-controller";
/// Upstream's event source (`v1.EventSource{Component: ...}`).
pub const EVENT_SOURCE: &str = "endpoint-controller";
/// Upstream `resourcelock.LeaderElectionRecordAnnotationKey`: Endpoints
/// used as leader-election locks are not ours to delete.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: ENDPOINTS_CONTROLLER,
    aliases: &["endpoint"],
    disabled_by_default: false,
    client_name: "endpoint-controller",
    watches: &["Service", "Pod", "Endpoints"],
    concurrent_syncs: |c| c.concurrent.endpoint,
    start: |ctx| Box::pin(start(ctx)),
};

/// The runner: caches, trigger-time bookkeeping and the write side.
pub struct Controller<W> {
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    writer: W,
    trigger_times: Mutex<TriggerTimeTracker>,
    events: Option<EventSink>,
    /// Whether the start-up pass (with leftover Endpoints) has been queued.
    started: AtomicBool,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let svc_inf = ctx.informers.informer::<Service>();
    let pod_inf = ctx.informers.informer::<Pod>();
    let ep_inf = ctx.informers.informer::<Endpoints>();
    let ctl = Arc::new(Controller {
        services: svc_inf.store().clone(),
        pods: pod_inf.store().clone(),
        endpoints: ep_inf.store().clone(),
        writer: KubeObjectControl::new(ctx.client.clone()),
        trigger_times: Mutex::new(TriggerTimeTracker::default()),
        events: Some(EventSink::new(&ctx.events, EVENT_SOURCE)),
        started: AtomicBool::new(false),
    });
    KeyedController::new(
        ENDPOINTS_CONTROLLER,
        ctl,
        RateLimitingQueue::new("endpoint"),
    )
    .watches(&svc_inf, Controller::service_changed)
    .watches(&pod_inf, Controller::pod_changed)
    .watches(&ep_inf, Controller::endpoints_changed)
    .run(&ctx)
    .await
}

impl<W: ObjectControl<Endpoints> + 'static> Reconciler for Controller<W> {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_service(key).await.map(|()| None)
    }

    /// Every Service; on the first pass also the leftover Endpoints
    /// (upstream `checkLeftoverEndpoints`, run once at start): one whose
    /// Service is gone is deleted.
    fn all_keys(&self) -> Vec<Enqueue> {
        let services = self.services.state();
        let svc_keys = services.iter().map(|s| Key::of(s.as_ref()));
        let first_pass = !self.started.swap(true, Ordering::SeqCst);
        let endpoints = if first_pass {
            self.endpoints.state()
        } else {
            Vec::new()
        };
        let leftovers = endpoints
            .iter()
            .filter(|e| {
                let annotations = e.metadata.annotations.as_ref();
                !annotations.is_some_and(|a| a.contains_key(LEADER_ANNOTATION))
            })
            .map(|e| Key::of(e.as_ref()));
        let keys: std::collections::BTreeSet<Key> = svc_keys.chain(leftovers).collect();
        keys.into_iter().map(Enqueue::from).collect()
    }
}

fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service.spec.as_ref()?.selector.as_ref()
}

fn selects(service: &Service, pod: &Pod) -> bool {
    selector(service)
        .is_some_and(|s| Selector::from_set(s).matches_labels(pod.metadata.labels.as_ref()))
}

impl<W: ObjectControl<Endpoints> + 'static> Controller<W> {
    fn service_changed(&self, change: Change<Service>) -> Vec<Enqueue> {
        match change {
            Change::Added(s) | Change::Updated { new: s, .. } => vec![Key::of(s.as_ref()).into()],
            Change::Deleted(s) => {
                let key = Key::of(s.as_ref());
                self.trigger_times().delete_service(&key);
                vec![key.into()]
            }
            Change::Resync => Vec::new(),
        }
    }

    /// Upstream `getPodServiceMemberships` for the pod (and its old self).
    fn pod_changed(&self, change: Change<Pod>) -> Vec<Enqueue> {
        let (pod, old) = match change {
            Change::Added(p) | Change::Deleted(p) => (p, None),
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return Vec::new();
                }
                (new, Some(old))
            }
            Change::Resync => return Vec::new(),
        };
        let ns = pod.metadata.namespace.as_deref();
        self.services
            .state()
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == ns)
            .filter(|s| selects(s, &pod) || old.as_ref().is_some_and(|o| selects(s, o)))
            .map(|s| Key::of(s.as_ref()).into())
            .collect()
    }

    /// Upstream `onEndpointsDelete`: a deleted Endpoints is re-synced.
    fn endpoints_changed(&self, change: Change<Endpoints>) -> Vec<Enqueue> {
        match change {
            Change::Deleted(e) => vec![Key::of(e.as_ref()).into()],
            _ => Vec::new(),
        }
    }

    fn trigger_times(&self) -> std::sync::MutexGuard<'_, TriggerTimeTracker> {
        self.trigger_times.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Upstream `syncService`.
    pub async fn sync_service(&self, key: &Key) -> Result<(), Error> {
        let ns = key.namespace.as_deref().unwrap_or_default();
        let Some(service) = self.services.get(&ObjectRef::new(&key.name).within(ns)) else {
            // The service is gone: so is its Endpoints.
            return match self.writer.delete(ns, &key.name).await {
                Err(err) if !err.is_not_found() => Err(err),
                _ => Ok(()),
            };
        };
        let spec = service.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName")
            || selector(&service).is_none()
        {
            return Ok(());
        }
        let pods = self.pods.state();
        let selected: Vec<&Pod> = pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && selects(&service, p))
            .collect();
        let trigger_time = self
            .trigger_times()
            .compute(key, &service, &selected)
            .map(format_rfc3339_nano);
        let current = self.endpoints.get(&ObjectRef::new(&key.name).within(ns));
        let Some(write) =
            reconcile::reconcile(&service, &selected, current.as_deref(), trigger_time)
        else {
            return Ok(());
        };
        self.write(ns, write).await
    }

    async fn write(&self, ns: &str, write: Write) -> Result<(), Error> {
        let (result, ep, reason) = match &write {
            Write::Create(ep) => (
                self.writer.create(ns, ep).await,
                ep,
                "FailedToCreateEndpoint",
            ),
            Write::Update(ep) => (
                self.writer.update(ns, ep).await,
                ep,
                "FailedToUpdateEndpoint",
            ),
        };
        let Err(err) = result else { return Ok(()) };
        // Creates in a terminating namespace keep failing: drop the key.
        if matches!(write, Write::Create(_)) && err.is_namespace_terminating() {
            return Ok(());
        }
        let name = ep.metadata.name.as_deref().unwrap_or_default();
        let message = match write {
            Write::Create(_) => format!("Failed to create endpoint for service {ns}/{name}: {err}"),
            Write::Update(_) => format!("Failed to update endpoint {ns}/{name}: {err}"),
        };
        if let Some(events) = &self.events {
            events.publish(&object_reference(ep), &EventSpec::warning(reason, message));
        }
        Err(err)
    }
}

fn object_reference(ep: &Endpoints) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Endpoints".into()),
        namespace: ep.metadata.namespace.clone(),
        name: ep.metadata.name.clone(),
        uid: ep.metadata.uid.clone(),
        resource_version: ep.metadata.resource_version.clone(),
        ..Default::default()
    }
}
