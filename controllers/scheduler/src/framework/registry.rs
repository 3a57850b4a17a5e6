//! Plugin factories by name and the handle they are built with (upstream
//! `framework/runtime/registry.go` and `framework.Handle`). The in-tree list lives in
//! `plugins::registry`; the framework knows no plugin.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use component_base::informers::{
    Informable, Informer, SharedInformerFactory, SyncedSignal, WatchScope,
};

use super::interface::Plugin;
use crate::Error;

/// What plugins may reach outside the pure snapshot (upstream `framework.Handle`): the API
/// client and the process's shared informers. Both are `None` without an apiserver (unit tests).
#[derive(Clone, Default)]
pub struct Handle {
    pub client: Option<kube::Client>,
    informers: Option<Arc<SharedInformerFactory>>,
    /// Has-synced signals of the informers plugins asked for.
    requested: Arc<Mutex<Vec<SyncedSignal>>>,
}

impl Handle {
    pub fn new(client: kube::Client, informers: Arc<SharedInformerFactory>) -> Self {
        Self {
            client: Some(client),
            informers: Some(informers),
            requested: Arc::default(),
        }
    }

    /// The process-wide informer for every `K` (upstream `Handle.SharedInformerFactory()`),
    /// for listers a plugin reads (PVCs, CSINodes, ...). The scheduler starts scheduling only
    /// once every informer asked for here has synced.
    pub fn informer<K: Informable>(&self) -> Option<Arc<Informer<K>>> {
        self.scoped_informer(WatchScope::all())
    }

    /// Like [`Handle::informer`], for the `K`s in `scope`.
    pub fn scoped_informer<K: Informable>(&self, scope: WatchScope) -> Option<Arc<Informer<K>>> {
        let informer = self.informers.as_ref()?.scoped::<K>(scope);
        self.requested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(informer.synced());
        Some(informer)
    }

    /// What the scheduler waits for besides its own Pod and Node informers.
    pub fn requested_synced(&self) -> Vec<SyncedSignal> {
        self.requested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Builds a plugin from its profile args (upstream `PluginFactory`).
pub type PluginFactory = Arc<
    dyn Fn(Option<&serde_json::Value>, &Handle) -> Result<Arc<dyn Plugin>, Error> + Send + Sync,
>;

/// Plugin factories by upstream name (upstream `frameworkruntime.Registry`).
#[derive(Clone, Default)]
pub struct Registry {
    factories: HashMap<String, PluginFactory>,
    /// Upstream plugins a profile may name although we do not build them yet.
    not_yet_implemented: HashSet<&'static str>,
}

impl Registry {
    /// Adds or replaces a plugin factory (upstream `Registry.Register` / out-of-tree merge).
    pub fn register(&mut self, name: &str, factory: PluginFactory) {
        self.factories.insert(name.to_string(), factory);
    }

    /// Lets profiles name an upstream plugin we do not implement yet: it is logged and left
    /// out instead of failing the configuration.
    pub fn tolerate_not_yet_implemented(&mut self, name: &'static str) {
        self.not_yet_implemented.insert(name);
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
            None if self.not_yet_implemented.contains(name) => {
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

/// A factory handing every profile the same instance of a plugin without state or args.
pub fn stateless(plugin: impl Plugin + 'static) -> PluginFactory {
    let plugin: Arc<dyn Plugin> = Arc::new(plugin);
    Arc::new(move |_, _| Ok(plugin.clone()))
}

/// A factory building a plugin from its profile args alone.
pub fn with_args<P: Plugin + 'static>(
    from_args: fn(Option<&serde_json::Value>) -> Result<P, Error>,
) -> PluginFactory {
    factory(move |args, _| from_args(args))
}

/// A factory building a plugin from its profile args and the handle (upstream `New`).
pub fn factory<P, F>(build: F) -> PluginFactory
where
    P: Plugin + 'static,
    F: Fn(Option<&serde_json::Value>, &Handle) -> Result<P, Error> + Send + Sync + 'static,
{
    Arc::new(move |args, handle| {
        let plugin: Arc<dyn Plugin> = Arc::new(build(args, handle)?);
        Ok(plugin)
    })
}
