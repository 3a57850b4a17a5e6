//! Pod and Node event handlers feeding the cache and the queue (upstream `eventhandlers.go`),
//! driven by the process's shared informers (`component_base::informers`): the informer owns
//! the watch, relists and the store; the handlers turn each object's transition into cache and
//! queue operations.

pub mod dispatch;
#[cfg(test)]
pub mod fake;
pub mod seen;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::framework::events::{action, node_update_actions, pod_update_actions};
use crate::framework::{ClusterEvent, EventObject, EventResource};
use crate::pod::{assigned, scheduler_name, uid};
use crate::scheduler::Shared;
use dispatch::Handler;
use seen::{Seen, Transition};

/// Upstream's pod informer ignores terminated pods.
pub const POD_FIELD_SELECTOR: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// Pods into the cache (assigned) or the queue (ours, unassigned).
pub struct PodHandler {
    shared: Arc<Shared>,
    seen: Seen<Pod>,
}

impl PodHandler {
    /// `store` is the pod informer's store, the same one `shared.pods` reads.
    pub fn new(shared: Arc<Shared>, store: Store<Pod>) -> Self {
        Self {
            shared,
            seen: Seen::new(store),
        }
    }
}

impl Handler for PodHandler {
    type Object = Pod;

    fn catch_up(&mut self, key: &ObjectRef<Pod>) {
        match self.seen.catch_up(key) {
            // Deleted and recreated under the same name: two different pods (as upstream's
            // `updatePodInCache` does on a UID change).
            Some(Transition::Applied {
                old: Some(old),
                new,
            }) if uid(&old) != uid(&new) => {
                on_pod_delete(&self.shared, &old);
                on_pod_apply(&self.shared, None, new);
            }
            Some(Transition::Applied { old, new }) => on_pod_apply(&self.shared, old, new),
            Some(Transition::Deleted(old)) => on_pod_delete(&self.shared, &old),
            None => {}
        }
    }

    fn known_keys(&self) -> Vec<ObjectRef<Self::Object>> {
        self.seen.all_keys()
    }
}

/// Nodes into the cache; node changes may make waiting pods schedulable.
pub struct NodeHandler {
    shared: Arc<Shared>,
    seen: Seen<Node>,
}

impl NodeHandler {
    pub fn new(shared: Arc<Shared>, store: Store<Node>) -> Self {
        Self {
            shared,
            seen: Seen::new(store),
        }
    }
}

impl Handler for NodeHandler {
    type Object = Node;

    fn catch_up(&mut self, key: &ObjectRef<Node>) {
        match self.seen.catch_up(key) {
            Some(Transition::Applied { old, new }) => {
                on_node_apply(&self.shared, old.as_deref(), new)
            }
            Some(Transition::Deleted(_)) => on_node_delete(&self.shared, &key.name),
            None => {}
        }
    }

    fn known_keys(&self) -> Vec<ObjectRef<Self::Object>> {
        self.seen.all_keys()
    }
}

/// Applies one pod add/update to the cache and queue.
fn on_pod_apply(shared: &Shared, old: Option<Arc<Pod>>, new: Arc<Pod>) {
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

/// Applies a pod deletion; `pod` is the last version the handlers applied.
fn on_pod_delete(shared: &Shared, pod: &Pod) {
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

fn on_node_apply(shared: &Shared, old: Option<&Node>, new: Arc<Node>) {
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

fn on_node_delete(shared: &Shared, name: &str) {
    shared.cache.remove_node(name);
}
