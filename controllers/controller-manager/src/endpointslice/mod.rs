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

use component_base::workqueue::{
    BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, RateLimitingQueue,
};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use std::time::Duration;

use crate::controller_utils::Key;
use crate::error::Error;
use crate::events::{EventSink, EventSpec};
use crate::names::ENDPOINTSLICE_CONTROLLER;
use crate::runner::{ControllerContext, SyncResult, run_workers};
use component_base::informers::{Change, Subscription};
use reconcile::{
    Action, CONTROLLER_NAME, DEFAULT_MAX_ENDPOINTS_PER_SLICE, LABEL_MANAGED_BY, LABEL_SERVICE_NAME,
    State,
};
use tracker::SliceTracker;
use trigger_time::TriggerTimeTracker;

struct Controller {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    queue: RateLimitingQueue<Key>,
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
    let (svc_rx, pod_rx, node_rx, slice_rx) = (
        svc_inf.subscribe(),
        pod_inf.subscribe(),
        node_inf.subscribe(),
        slice_inf.subscribe(),
    );
    let ctl = Arc::new(Controller {
        client: ctx.client.clone(),
        services: svc_inf.store().clone(),
        pods: pod_inf.store().clone(),
        nodes: node_inf.store().clone(),
        slices: slice_inf.store().clone(),
        queue: RateLimitingQueue::with_rate_limiter("endpoint_slice", service_rate_limiter()),
        max_endpoints: DEFAULT_MAX_ENDPOINTS_PER_SLICE,
        trigger_times: Mutex::new(TriggerTimeTracker::default()),
        tracker: Mutex::new(SliceTracker::default()),
        events: EventSink::new(&ctx.events, ENDPOINTSLICE_CONTROLLER),
    });
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return Ok(()),
        _ = async { tokio::join!(svc_inf.wait_synced(), pod_inf.wait_synced(), node_inf.wait_synced(), slice_inf.wait_synced()) } => {}
    }
    tokio::spawn(watch_services(Arc::clone(&ctl), svc_rx));
    tokio::spawn(watch_pods(Arc::clone(&ctl), pod_rx));
    tokio::spawn(watch_nodes(Arc::clone(&ctl), node_rx));
    tokio::spawn(watch_slices(Arc::clone(&ctl), slice_rx));
    ctl.enqueue_all();
    let sync_ctl = Arc::clone(&ctl);
    run_workers(
        ENDPOINTSLICE_CONTROLLER,
        ctl.queue.clone(),
        ctx.config.concurrent.endpointslice,
        ctx.shutdown.clone(),
        move |key| {
            let ctl = Arc::clone(&sync_ctl);
            async move { ctl.sync(&key).await }
        },
    )
    .await;
    Ok(())
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

fn selector_matches(service: &Service, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

async fn watch_services(ctl: Arc<Controller>, mut rx: Subscription<Service>) {
    while let Some(change) = rx.recv().await {
        match change {
            Change::Added(s) | Change::Updated { new: s, .. } => ctl.trigger(Key::of(s.as_ref())),
            // Slices are owned by the service: the garbage collector removes them.
            Change::Deleted(s) => ctl.forget_trigger(&Key::of(s.as_ref())),
            Change::Resync => ctl.enqueue_all(),
        }
    }
}

async fn watch_pods(ctl: Arc<Controller>, mut rx: Subscription<Pod>) {
    while let Some(change) = rx.recv().await {
        match change {
            Change::Added(p) | Change::Deleted(p) => ctl.enqueue_for_pod(&p, None),
            Change::Updated { old, new } => {
                if old.metadata.resource_version != new.metadata.resource_version {
                    ctl.enqueue_for_pod(&new, Some(&old));
                }
            }
            Change::Resync => ctl.enqueue_all(),
        }
    }
}

/// Node changes matter for zones and for pods that were waiting for their
/// Node to be known.
async fn watch_nodes(ctl: Arc<Controller>, mut rx: Subscription<Node>) {
    while let Some(change) = rx.recv().await {
        let relevant = match &change {
            Change::Updated { old, new } => old.metadata.labels != new.metadata.labels,
            _ => true,
        };
        if relevant {
            ctl.enqueue_all();
        }
    }
}

/// A managed slice changed or vanished behind our back: resync its service.
async fn watch_slices(ctl: Arc<Controller>, mut rx: Subscription<EndpointSlice>) {
    while let Some(change) = rx.recv().await {
        let slice = match change {
            Change::Added(s) | Change::Updated { new: s, .. } => s,
            Change::Deleted(s) => {
                if let (Some(svc), Some(uid)) = (service_key(&s), s.metadata.uid.as_deref()) {
                    ctl.tracker().handle_deletion(&svc, uid);
                }
                s
            }
            Change::Resync => {
                ctl.enqueue_all();
                continue;
            }
        };
        if let Some(svc) = service_key(&slice) {
            ctl.queue.add(svc);
        }
    }
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
    fn enqueue_all(&self) {
        for svc in self.services.state() {
            self.queue.add(Key::of(svc.as_ref()));
        }
    }

    fn trigger(&self, key: Key) {
        self.queue.add(key);
    }

    fn forget_trigger(&self, key: &Key) {
        if let Ok(mut tracker) = self.trigger_times.lock() {
            tracker.delete_service(key);
        }
        self.tracker().delete_service(key);
    }

    fn enqueue_for_pod(&self, pod: &Pod, old: Option<&Pod>) {
        let ns = pod.metadata.namespace.as_deref();
        for svc in self.services.state() {
            if svc.metadata.namespace.as_deref() != ns {
                continue;
            }
            let now = selector_matches(&svc, pod.metadata.labels.as_ref());
            let before = old.is_some_and(|o| selector_matches(&svc, o.metadata.labels.as_ref()));
            if now || before {
                self.trigger(Key::of(svc.as_ref()));
            }
        }
    }

    async fn sync(&self, key: &Key) -> SyncResult {
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
