//! A controller's one declaration of itself (upstream
//! `app.ControllerDescriptor`).

use futures::future::BoxFuture;

use super::ControllerContext;
use crate::config::ControllerManagerConfig;
use crate::error::Error;

/// Starts a controller and runs it until the context's shutdown fires.
pub type StartFn = fn(ControllerContext) -> BoxFuture<'static, Result<(), Error>>;

/// Everything the manager needs to know about one controller; each
/// controller module exports one as `DESCRIPTOR`.
#[derive(Clone, Copy)]
pub struct ControllerDescriptor {
    /// Upstream canonical name (`cmd/kube-controller-manager/names`).
    pub name: &'static str,
    /// Legacy names `--controllers` also accepts.
    pub aliases: &'static [&'static str],
    /// Upstream `isDisabledByDefault`: `*` does not enable it.
    pub disabled_by_default: bool,
    /// What upstream passes to `NewClient(...)`: the ServiceAccount the
    /// controller runs as under `--use-service-account-credentials`.
    pub client_name: &'static str,
    /// The kinds it reads from the shared informers (for docs and logs).
    pub watches: &'static [&'static str],
    /// Its workers: the `--concurrent-*-syncs` flag it reads, or upstream's
    /// hard-coded count.
    pub concurrent_syncs: fn(&ControllerManagerConfig) -> usize,
    pub start: StartFn,
}

impl std::fmt::Debug for ControllerDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerDescriptor")
            .field("name", &self.name)
            .field("aliases", &self.aliases)
            .field("client_name", &self.client_name)
            .field("watches", &self.watches)
            .finish_non_exhaustive()
    }
}
