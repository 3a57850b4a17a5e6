//! The EndpointSlice controller (upstream `pkg/controller/endpointslice`):
//! keeps `discovery.k8s.io/v1` EndpointSlices in line with every Service
//! that has a selector. [`reconcile`] decides; this runner feeds it from the
//! shared Service/Pod/Node/EndpointSlice informers and applies the plan.

pub mod endpoint;
pub mod reconcile;
#[cfg(test)]
mod tests;
pub mod tracker;
pub mod trigger_time;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use component_base::selectors::Selector;
use component_base::workqueue::{
    BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, RateLimitingQueue,
};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use std::time::Duration;

use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, KeyedController, Reconciler, SyncResult,
};
use crate::controller_utils::Key;
use crate::error::Error;
use crate::events::{EventSink, EventSpec};
use component_base::informers::Change;
use reconcile::{
    Action, CONTROLLER_NAME, DEFAULT_MAX_ENDPOINTS_PER_SLICE, LABEL_MANAGED_BY, LABEL_SERVICE_NAME,
    State,
};
use tracker::SliceTracker;
use trigger_time::TriggerTimeTracker;

/// Upstream `names.EndpointSliceController`.
pub const ENDPOINTSLICE_CONTROLLER: &str = "endpointslice-controller";
/// Upstream's event source (`v1.EventSource{Component: ...}`).
pub const EVENT_SOURCE: &str = "endpoint-slice-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: ENDPOINTSLICE_CONTROLLER,
    aliases: &["endpointslice"],
    disabled_by_default: false,
    client_name: "endpointslice-controller",
    watches: &["Service", "Pod", "Node", "EndpointSlice"],
    concurrent_syncs: |c| c.concurrent.endpointslice,
    start: |ctx| Box::pin(start(ctx)),
};

struct Controller {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    max_endpoints: usize,
    trigger_times: Mutex<TriggerTimeTracker>,
    tracker: Mutex<SliceTracker>,
    events: EventSink,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let svc_inf = ctx.informers.informer::<Service>();
    let pod_inf = ctx.informers.informer::<Pod>();
    let node_inf = ctx.informers.informer::<Node>();
    let slice_inf = ctx.informers.informer::<EndpointSlice>();
    let ctl = Arc::new(Controller {
        client: ctx.client.clone(),
        services: svc_inf.store().clone(),
        pods: pod_inf.store().clone(),
        nodes: node_inf.store().clone(),
        slices: slice_inf.store().clone(),
        max_endpoints: DEFAULT_MAX_ENDPOINTS_PER_SLICE,
        trigger_times: Mutex::new(TriggerTimeTracker::default()),
        tracker: Mutex::new(SliceTracker::default()),
        events: EventSink::new(&ctx.events, EVENT_SOURCE),
    });
    let queue = RateLimitingQueue::with_rate_limiter("endpoint_slice", service_rate_limiter());
    KeyedController::new(ENDPOINTSLICE_CONTROLLER, ctl, queue)
        .watches(&svc_inf, Controller::service_changed)
        .watches(&pod_inf, Controller::pod_changed)
        .watches(&node_inf, Controller::node_changed)
        .watches(&slice_inf, Controller::slice_changed)
        .run(&ctx)
        .await
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_service(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.services
            .state()
            .iter()
            .map(|svc| Key::of(svc.as_ref()).into())
            .collect()
    }
}

/// Upstream: like the default controller limiter but starting at 1 s
/// (`defaultSyncBackOff`) up to 1000 s (`maxSyncBackOff`).
fn service_rate_limiter() -> MaxOfRateLimiter<Key> {
    MaxOfRateLimiter::new(vec![
        Box::new(ItemExponentialFailureRateLimiter::new(
            Duration::from_secs(1),
            Duration::from_secs(1000),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ])
}

/// Whether a Service with a (non-empty) selector selects these labels
/// (upstream `labels.Set(spec.selector).AsSelectorPreValidated()`).
fn selector_matches(service: &Service, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    !selector.is_empty() && Selector::from_set(selector).matches_labels(labels)
}

/// The service a slice managed by this controller belongs to.
fn service_key(slice: &EndpointSlice) -> Option<Key> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(CONTROLLER_NAME) {
        return None;
    }
    let service = labels.get(LABEL_SERVICE_NAME)?;
    Some(Key::new(slice.metadata.namespace.as_deref(), service))
}

impl Controller {
    fn service_changed(&self, change: Change<Service>) -> Vec<Enqueue> {
        match change {
            Change::Added(s) | Change::Updated { new: s, .. } => vec![Key::of(s.as_ref()).into()],
            // Slices are owned by the service: the garbage collector removes them.
            Change::Deleted(s) => {
                self.forget_trigger(&Key::of(s.as_ref()));
                Vec::new()
            }
            Change::Resync => Vec::new(),
        }
    }

    fn pod_changed(&self, change: Change<Pod>) -> Vec<Enqueue> {
        match change {
            Change::Added(p) | Change::Deleted(p) => self.keys_for_pod(&p, None),
            Change::Updated { old, new } => {
                if old.metadata.resource_version != new.metadata.resource_version {
                    self.keys_for_pod(&new, Some(&old))
                } else {
                    Vec::new()
                }
            }
            Change::Resync => Vec::new(),
        }
    }

    /// Node changes matter for zones and for pods that were waiting for
    /// their Node to be known.
    fn node_changed(&self, change: Change<Node>) -> Vec<Enqueue> {
        let relevant = match &change {
            Change::Updated { old, new } => old.metadata.labels != new.metadata.labels,
            _ => true,
        };
        if relevant {
            self.all_keys()
        } else {
            Vec::new()
        }
    }

    /// A managed slice changed or vanished behind our back: resync its service.
    fn slice_changed(&self, change: Change<EndpointSlice>) -> Vec<Enqueue> {
        let slice = match change {
            Change::Added(s) | Change::Updated { new: s, .. } => s,
            Change::Deleted(s) => {
                if let (Some(svc), Some(uid)) = (service_key(&s), s.metadata.uid.as_deref()) {
                    self.tracker().handle_deletion(&svc, uid);
                }
                s
            }
            Change::Resync => return Vec::new(),
        };
        service_key(&slice).map(Enqueue::from).into_iter().collect()
    }

    fn forget_trigger(&self, key: &Key) {
        if let Ok(mut tracker) = self.trigger_times.lock() {
            tracker.delete_service(key);
        }
        self.tracker().delete_service(key);
    }

    fn keys_for_pod(&self, pod: &Pod, old: Option<&Pod>) -> Vec<Enqueue> {
        let ns = pod.metadata.namespace.as_deref();
        self.services
            .state()
            .iter()
            .filter(|svc| svc.metadata.namespace.as_deref() == ns)
            .filter(|svc| {
                selector_matches(svc, pod.metadata.labels.as_ref())
                    || old.is_some_and(|o| selector_matches(svc, o.metadata.labels.as_ref()))
            })
            .map(|svc| Key::of(svc.as_ref()).into())
            .collect()
    }

    /// Upstream `syncService`.
    async fn sync_service(&self, key: &Key) -> SyncResult {
        let ns = key.namespace.as_deref().unwrap_or_default();
        let Some(service) = self.services.get(&ObjectRef::new(&key.name).within(ns)) else {
            self.forget_trigger(key);
            return Ok(None);
        };
        let spec = service.spec.as_ref();
        let no_selector = spec
            .and_then(|s| s.selector.as_ref())
            .is_none_or(BTreeMap::is_empty);
        if no_selector || spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return Ok(None);
        }
        let pods = self.pods.state();
        let all_slices = self.slices.state();
        // Slices being deleted no longer count (upstream
        // `dropEndpointSlicesPendingDeletion`).
        let slices: Vec<&EndpointSlice> = all_slices
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
            .filter(|s| service_key(s).as_ref() == Some(key))
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .collect();
        if self.tracker().stale(key, &slices) {
            return Err(Error::Controller {
                name: ENDPOINTSLICE_CONTROLLER,
                reason: format!("EndpointSlice informer cache is out of date for service {key}"),
            });
        }
        let uids: BTreeMap<String, String> = slices
            .iter()
            .filter_map(|s| Some((s.metadata.name.clone()?, s.metadata.uid.clone()?)))
            .collect();
        let selected: Vec<&Pod> = pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .filter(|p| selector_matches(&service, p.metadata.labels.as_ref()))
            .collect();
        let trigger_time = self
            .trigger_times
            .lock()
            .ok()
            .and_then(|mut t| t.compute(key, &service, &selected))
            .map(trigger_time::format_rfc3339_nano);
        let node_lookup = |name: &str| self.nodes.get(&ObjectRef::new(name)).map(|n| (*n).clone());
        let plan = reconcile::reconcile(&State {
            service: &service,
            pods: selected,
            slices,
            node: &node_lookup,
            max_endpoints: self.max_endpoints,
            trigger_time,
        });
        let mut result = self.apply(key, &uids, plan.actions).await;
        if result.is_ok() && !plan.pods_missing_node.is_empty() {
            tracing::info!(service = %key, pods = ?plan.pods_missing_node, "skipping Pods for Service, Node not found");
            result = Err(Error::InvalidObject {
                object: format!("service {key}"),
                reason: format!("skipping Pods {:?}: Node Not Found", plan.pods_missing_node),
            });
        }
        if let Err(err) = &result {
            let message = format!("Error updating Endpoint Slices for Service {key}: {err}");
            let spec = EventSpec::warning("FailedToUpdateEndpointSlices", message);
            self.events.publish(&object_reference(&service), &spec);
        }
        result.map(|()| None)
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, SliceTracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn apply(
        &self,
        key: &Key,
        uids: &BTreeMap<String, String>,
        actions: Vec<Action>,
    ) -> Result<(), Error> {
        let ns = key.namespace.as_deref().unwrap_or_default();
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        for action in actions {
            match action {
                Action::Create(slice) => match api
                    .create(&PostParams::default(), &slice)
                    .await
                    .map_err(Error::from)
                {
                    Ok(created) => self.tracker().update(key, &created),
                    Err(err) if err.is_namespace_terminating() => return Ok(()),
                    Err(err) => return Err(err),
                },
                Action::Update(slice) => {
                    let name = slice.metadata.name.clone().unwrap_or_default();
                    let updated = api.replace(&name, &PostParams::default(), &slice).await?;
                    self.tracker().update(key, &updated);
                }
                Action::Delete(name) => match api
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map_err(Error::from)
                {
                    Ok(_) => {
                        if let Some(uid) = uids.get(&name) {
                            self.tracker().expect_deletion(key, uid);
                        }
                    }
                    Err(err) if err.is_not_found() => {}
                    Err(err) => return Err(err),
                },
            }
        }
        Ok(())
    }
}

fn object_reference(service: &Service) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: service.metadata.namespace.clone(),
        name: service.metadata.name.clone(),
        uid: service.metadata.uid.clone(),
        resource_version: service.metadata.resource_version.clone(),
        ..Default::default()
    }
}
