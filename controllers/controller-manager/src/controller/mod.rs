//! What every controller is built from (upstream
//! `cmd/kube-controller-manager/app.ControllerDescriptor`/`ControllerContext`
//! plus the `WaitForNamedCacheSync` + `wait.UntilWithContext` worker loop,
//! kube-runtime's `Controller::run`). Depends on no controller: controllers
//! depend on it, [`crate::registry`] lists them, [`crate::runner`] starts them.
//!
//! A controller module (copy `serviceaccount/` for a small one,
//! `replicaset/` for one that writes pods) holds:
//! - `reconcile.rs`: the pure decision, tested on plain objects;
//! - `mod.rs`: `pub const DESCRIPTOR: ControllerDescriptor` (upstream name,
//!   aliases, client name, watched kinds, workers, start), a `Controller`
//!   implementing [`Reconciler`] (`sync` one key, `all_keys`), and `start`,
//!   which builds a [`KeyedController`] with one `.watches(informer, key_fn)`
//!   per informer and `.run(&ctx)`s it;
//! - writes through [`crate::control`] when they need unit tests.

mod context;
mod descriptor;
mod keyed;
mod workers;

pub use context::{ControllerContext, SyncResult};
pub use descriptor::{ControllerDescriptor, StartFn};
pub use keyed::{Enqueue, KeyedController, Reconciler, object_key, store_keys};
pub use workers::run_workers;

pub use crate::controller_utils::Key;
