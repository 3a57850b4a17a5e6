//! Test stand-in for the shared informers: writes objects into stores the handlers read and
//! runs the handlers at once, as the informer's notification would.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;

use super::dispatch::Handler;
use super::{NodeHandler, PodHandler};
use crate::scheduler::Shared;

pub struct FakeInformers {
    pods: Writer<Pod>,
    nodes: Writer<Node>,
    pod_handler: PodHandler,
    node_handler: NodeHandler,
}

impl FakeInformers {
    /// `pods` must be the writer of the store given to `Scheduler::new`.
    pub fn new(shared: Arc<Shared>, pods: Writer<Pod>) -> Self {
        let nodes = Writer::default();
        Self {
            pod_handler: PodHandler::new(shared.clone(), pods.as_reader()),
            node_handler: NodeHandler::new(shared, nodes.as_reader()),
            pods,
            nodes,
        }
    }

    pub fn apply_pod(&mut self, pod: Pod) {
        let key = ObjectRef::from_obj(&pod);
        self.pods.apply_watcher_event(&Event::Apply(pod));
        self.pod_handler.catch_up(&key);
    }

    pub fn delete_pod(&mut self, pod: &Pod) {
        self.pods.apply_watcher_event(&Event::Delete(pod.clone()));
        self.pod_handler.catch_up(&ObjectRef::from_obj(pod));
    }

    /// Changes the pod store without notifying the handler, as a lagged subscription misses it.
    pub fn miss_pod_event(&mut self, event: Event<Pod>) {
        self.pods.apply_watcher_event(&event);
    }

    /// What a `Change::Resync` makes the pod handler do.
    pub fn resync_pods(&mut self) {
        self.pod_handler.catch_up_all();
    }

    pub fn apply_node(&mut self, node: Node) {
        let key = ObjectRef::from_obj(&node);
        self.nodes.apply_watcher_event(&Event::Apply(node));
        self.node_handler.catch_up(&key);
    }
}
