//! Every in-tree plugin by upstream name (upstream `plugins/registry.go`
//! `NewInTreeRegistry`). Adding a plugin is one line here.

use std::sync::Arc;

use super::names;
use super::{
    defaultbinder, defaultpreemption, imagelocality, nodeaffinity, nodename, nodeports,
    noderesources, nodeunschedulable, queuesort, schedulinggates, tainttoleration,
};
use crate::framework::Registry;

/// Upstream default plugins we do not implement yet. A profile naming them still loads (so the
/// upstream default configuration works); they are logged and left out.
pub const NOT_YET_IMPLEMENTED: &[&str] = &[
    names::VOLUME_RESTRICTIONS,
    names::NODE_VOLUME_LIMITS,
    names::VOLUME_BINDING,
    names::VOLUME_ZONE,
    names::POD_TOPOLOGY_SPREAD,
    names::INTER_POD_AFFINITY,
    names::DYNAMIC_RESOURCES,
];

/// The registry of in-tree plugins; out-of-tree ones (and test fakes) are `register`ed on top.
pub fn in_tree() -> Registry {
    let mut r = Registry::default();
    r.register(names::PRIORITY_SORT, Arc::new(queuesort::new));
    r.register(names::SCHEDULING_GATES, Arc::new(schedulinggates::new));
    r.register(names::NODE_UNSCHEDULABLE, Arc::new(nodeunschedulable::new));
    r.register(names::NODE_NAME, Arc::new(nodename::new));
    r.register(names::TAINT_TOLERATION, Arc::new(tainttoleration::new));
    r.register(names::NODE_PORTS, Arc::new(nodeports::new));
    r.register(names::IMAGE_LOCALITY, Arc::new(imagelocality::new));
    r.register(names::NODE_AFFINITY, Arc::new(nodeaffinity::new));
    r.register(names::NODE_RESOURCES_FIT, Arc::new(noderesources::fit::new));
    r.register(
        names::NODE_RESOURCES_BALANCED_ALLOCATION,
        Arc::new(noderesources::balanced_allocation::new),
    );
    r.register(names::DEFAULT_PREEMPTION, Arc::new(defaultpreemption::new));
    r.register(names::DEFAULT_BINDER, Arc::new(defaultbinder::new));
    for name in NOT_YET_IMPLEMENTED {
        r.tolerate_not_yet_implemented(name);
    }
    r
}
