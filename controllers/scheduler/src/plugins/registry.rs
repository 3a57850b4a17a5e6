//! Every in-tree plugin by upstream name (upstream `plugins/registry.go`
//! `NewInTreeRegistry`). Adding a plugin is one line here.

use super::defaultbinder::DefaultBinder;
use super::defaultpreemption::DefaultPreemption;
use super::imagelocality::ImageLocality;
use super::interpodaffinity::InterPodAffinity;
use super::names;
use super::nodeaffinity::NodeAffinity;
use super::nodename::NodeName;
use super::nodeports::NodePorts;
use super::noderesources::{BalancedAllocation, NodeResourcesFit};
use super::nodeunschedulable::NodeUnschedulable;
use super::podtopologyspread::PodTopologySpread;
use super::queuesort::PrioritySort;
use super::schedulinggates::SchedulingGates;
use super::tainttoleration::TaintToleration;
use super::unimplemented::Unimplemented;
use crate::framework::registry::{Registry, factory, stateless, with_args};

/// Upstream default plugins we do not implement yet. A profile naming them still loads (so the
/// upstream default configuration works) with a stand-in that warns at start and makes pods
/// needing the plugin unschedulable instead of placing them wrongly.
pub const NOT_YET_IMPLEMENTED: &[&str] = &[
    names::VOLUME_RESTRICTIONS,
    names::NODE_VOLUME_LIMITS,
    names::VOLUME_BINDING,
    names::VOLUME_ZONE,
    names::DYNAMIC_RESOURCES,
];

/// The registry of in-tree plugins; out-of-tree ones (and test fakes) are `register`ed on top.
#[rustfmt::skip] // a table: one line per plugin
pub fn in_tree() -> Registry {
    let mut r = Registry::default();
    r.register(names::PRIORITY_SORT, stateless(PrioritySort));
    r.register(names::SCHEDULING_GATES, stateless(SchedulingGates));
    r.register(names::NODE_UNSCHEDULABLE, stateless(NodeUnschedulable));
    r.register(names::NODE_NAME, stateless(NodeName));
    r.register(names::TAINT_TOLERATION, stateless(TaintToleration));
    r.register(names::NODE_PORTS, stateless(NodePorts));
    r.register(names::IMAGE_LOCALITY, stateless(ImageLocality));
    r.register(names::NODE_AFFINITY, with_args(NodeAffinity::from_args));
    r.register(names::NODE_RESOURCES_FIT, with_args(NodeResourcesFit::from_args));
    r.register(names::NODE_RESOURCES_BALANCED_ALLOCATION, with_args(BalancedAllocation::from_args));
    r.register(names::POD_TOPOLOGY_SPREAD, factory(PodTopologySpread::new));
    r.register(names::INTER_POD_AFFINITY, factory(InterPodAffinity::new));
    r.register(names::DEFAULT_PREEMPTION, with_args(DefaultPreemption::from_args));
    r.register(names::DEFAULT_BINDER, factory(|_, h| Ok(DefaultBinder::new(h))));
    for name in NOT_YET_IMPLEMENTED {
        r.register(name, Unimplemented::factory(name));
    }
    r
}
