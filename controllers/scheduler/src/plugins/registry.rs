//! Every in-tree plugin by upstream name, plus room for out-of-tree ones (tests use that).

use std::collections::HashMap;
use std::sync::Arc;

use super::names;
use crate::Error;
use crate::framework::Plugin;

/// What plugins may reach outside the pure snapshot: the API client.
#[derive(Clone, Default)]
pub struct Handle {
    pub client: Option<kube::Client>,
}

pub type PluginFactory = Arc<
    dyn Fn(Option<&serde_json::Value>, &Handle) -> Result<Arc<dyn Plugin>, Error> + Send + Sync,
>;

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

#[derive(Clone)]
pub struct Registry {
    factories: HashMap<String, PluginFactory>,
}

fn simple(p: impl Plugin + 'static) -> PluginFactory {
    let p: Arc<dyn Plugin> = Arc::new(p);
    Arc::new(move |_, _| Ok(p.clone()))
}

impl Registry {
    pub fn in_tree() -> Self {
        let mut r = Registry {
            factories: HashMap::new(),
        };
        r.register(
            names::PRIORITY_SORT,
            simple(super::priority_sort::PrioritySort),
        );
        r.register(
            names::SCHEDULING_GATES,
            simple(super::scheduling_gates::SchedulingGates),
        );
        r.register(
            names::NODE_UNSCHEDULABLE,
            simple(super::node_unschedulable::NodeUnschedulable),
        );
        r.register(names::NODE_NAME, simple(super::node_name::NodeName));
        r.register(
            names::TAINT_TOLERATION,
            simple(super::taint_toleration::TaintToleration),
        );
        r.register(names::NODE_PORTS, simple(super::node_ports::NodePorts));
        r.register(
            names::IMAGE_LOCALITY,
            simple(super::image_locality::ImageLocality),
        );
        r.register(
            names::NODE_AFFINITY,
            Arc::new(|args, _| {
                Ok(Arc::new(super::node_affinity::NodeAffinity::from_args(
                    args,
                )?))
            }),
        );
        r.register(
            names::NODE_RESOURCES_FIT,
            Arc::new(|args, _| {
                Ok(Arc::new(
                    super::node_resources_fit::NodeResourcesFit::from_args(args)?,
                ))
            }),
        );
        r.register(
            names::NODE_RESOURCES_BALANCED_ALLOCATION,
            Arc::new(|args, _| {
                Ok(Arc::new(
                    super::balanced_allocation::BalancedAllocation::from_args(args)?,
                ))
            }),
        );
        r.register(
            names::DEFAULT_PREEMPTION,
            Arc::new(|args, _| {
                Ok(Arc::new(
                    super::default_preemption::DefaultPreemption::from_args(args)?,
                ))
            }),
        );
        r.register(
            names::DEFAULT_BINDER,
            Arc::new(|_, h| {
                Ok(Arc::new(super::default_binder::DefaultBinder::new(
                    h.client.clone(),
                )))
            }),
        );
        r
    }

    /// Adds or replaces a plugin factory (upstream `Registry.Register` / out-of-tree merge).
    pub fn register(&mut self, name: &str, factory: PluginFactory) {
        self.factories.insert(name.to_string(), factory);
    }

    /// Instantiates `name`; `Ok(None)` for known upstream plugins we do not implement yet.
    pub fn new_plugin(
        &self,
        name: &str,
        args: Option<&serde_json::Value>,
        handle: &Handle,
    ) -> Result<Option<Arc<dyn Plugin>>, Error> {
        match self.factories.get(name) {
            Some(f) => f(args, handle).map(Some),
            None if NOT_YET_IMPLEMENTED.contains(&name) => {
                tracing::debug!(
                    plugin = name,
                    "upstream plugin not implemented yet; skipping"
                );
                Ok(None)
            }
            None => Err(Error::InvalidConfig(format!(
                "plugin {name:?} does not exist"
            ))),
        }
    }
}
