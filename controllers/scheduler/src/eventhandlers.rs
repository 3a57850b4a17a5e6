//! Watches on Pods and Nodes feeding the cache and the queue (upstream `eventhandlers.go`).
//! kube-runtime's watcher relists on 410 Gone and backs off on errors; we only log them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::framework::events::{action, node_update_actions, pod_update_actions};
use crate::framework::{ClusterEvent, EventObject, EventResource};
use crate::pod::scheduler_name;
use crate::scheduler::Shared;

/// Upstream's pod informer ignores terminated pods.
pub const POD_FIELD_SELECTOR: &str = "status.phase!=Succeeded,status.phase!=Failed";

fn assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Applies one pod add/update to the cache and queue.
pub fn on_pod_apply(shared: &Shared, old: Option<Arc<Pod>>, new: Arc<Pod>) {
    shared.pods.insert(new.clone());
    if assigned(&new) {
        let was_assigned = old.as_deref().is_some_and(assigned);
        if old.is_some() && !was_assigned {
            // Bound (by us or anyone): leave the queue, confirm in the cache.
            shared.queue.delete(&new);
        }
        shared.cache.add_pod(new.clone());
        let event = match old.as_deref() {
            Some(o) if was_assigned => ClusterEvent::new(
                EventResource::AssignedPod,
                pod_update_actions(o, &new),
                "AssignedPodUpdate",
            ),
            _ => ClusterEvent::new(EventResource::AssignedPod, action::ADD, "AssignedPodAdd"),
        };
        if event.action != 0 {
            shared.queue.move_all_to_active_or_backoff(
                &event,
                old.as_deref()
                    .filter(|_| was_assigned)
                    .map(EventObject::Pod),
                Some(EventObject::Pod(&new)),
            );
        }
        return;
    }
    if !shared.profiles.contains_key(scheduler_name(&new)) {
        return;
    }
    match old {
        Some(_) => shared.queue.update(new),
        None => shared.queue.add(new),
    }
}

pub fn on_pod_delete(shared: &Shared, pod: &Pod) {
    let cached = shared.pods.remove(&uid(pod));
    let pod = cached.as_deref().filter(|c| assigned(c)).unwrap_or(pod);
    if assigned(pod) {
        shared.cache.remove_pod(pod);
        shared.queue.move_all_to_active_or_backoff(
            &ClusterEvent::new(
                EventResource::AssignedPod,
                action::DELETE,
                "AssignedPodDelete",
            ),
            Some(EventObject::Pod(pod)),
            None,
        );
    } else {
        shared.queue.delete(pod);
    }
}

pub fn on_node_apply(shared: &Shared, old: Option<&Node>, new: Arc<Node>) {
    shared.cache.add_or_update_node(new.clone());
    let actions = match old {
        None => action::ADD,
        Some(o) => node_update_actions(o, &new),
    };
    if actions == 0 {
        return;
    }
    let label = if old.is_none() {
        "NodeAdd"
    } else {
        "NodeUpdate"
    };
    shared.queue.move_all_to_active_or_backoff(
        &ClusterEvent::new(EventResource::Node, actions, label),
        old.map(EventObject::Node),
        Some(EventObject::Node(&new)),
    );
}

pub fn on_node_delete(shared: &Shared, name: &str) {
    shared.cache.remove_node(name);
}

/// Watches all non-terminated pods until `shutdown`; marks `synced` after the first full list.
pub async fn run_pod_informer(
    client: kube::Client,
    shared: Arc<Shared>,
    synced: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let api: Api<Pod> = Api::all(client);
    let cfg = watcher::Config::default().fields(POD_FIELD_SELECTOR);
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut listed: Option<HashSet<String>> = None;
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = stream.next() => ev,
        };
        let Some(ev) = ev else { return };
        match ev {
            Ok(Event::Apply(p)) => {
                let p = Arc::new(p);
                on_pod_apply(&shared, shared.pods.get(&uid(&p)), p);
            }
            Ok(Event::Delete(p)) => on_pod_delete(&shared, &p),
            Ok(Event::Init) => listed = Some(HashSet::new()),
            Ok(Event::InitApply(p)) => {
                let p = Arc::new(p);
                if let Some(l) = listed.as_mut() {
                    l.insert(uid(&p));
                }
                on_pod_apply(&shared, shared.pods.get(&uid(&p)), p);
            }
            Ok(Event::InitDone) => {
                // Pods missing from a relist were deleted while we were not watching.
                let seen = listed.take().unwrap_or_default();
                for stale in shared
                    .pods
                    .all()
                    .into_iter()
                    .filter(|p| !seen.contains(&uid(p)))
                {
                    on_pod_delete(&shared, &stale);
                }
                let _ = synced.send(true);
            }
            Err(e) => tracing::warn!(%e, "pod watch failed; retrying with backoff"),
        }
    }
}

/// Watches nodes until `shutdown`; marks `synced` after the first full list.
pub async fn run_node_informer(
    client: kube::Client,
    shared: Arc<Shared>,
    synced: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let api: Api<Node> = Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut known: HashMap<String, Arc<Node>> = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = stream.next() => ev,
        };
        let Some(ev) = ev else { return };
        match ev {
            Ok(Event::Apply(n)) | Ok(Event::InitApply(n)) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                if let Some(l) = listed.as_mut() {
                    l.insert(name.clone());
                }
                let n = Arc::new(n);
                let old = known.insert(name, n.clone());
                on_node_apply(&shared, old.as_deref(), n);
            }
            Ok(Event::Delete(n)) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                known.remove(&name);
                on_node_delete(&shared, &name);
            }
            Ok(Event::Init) => listed = Some(HashSet::new()),
            Ok(Event::InitDone) => {
                let seen = listed.take().unwrap_or_default();
                let stale: Vec<String> = known
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for name in stale {
                    known.remove(&name);
                    on_node_delete(&shared, &name);
                }
                let _ = synced.send(true);
            }
            Err(e) => tracing::warn!(%e, "node watch failed; retrying with backoff"),
        }
    }
}
