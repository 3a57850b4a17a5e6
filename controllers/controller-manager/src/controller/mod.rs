//! What every controller is built from (upstream
//! `cmd/kube-controller-manager/app.ControllerDescriptor`/`ControllerContext`
//! plus the `WaitForNamedCacheSync` + `wait.UntilWithContext` worker loop,
//! kube-runtime's `Controller::run`). Depends on no controller: controllers
//! depend on it, [`crate::registry`] lists them, [`crate::runner`] starts them.

mod context;
mod descriptor;
mod keyed;
mod workers;

pub use context::{ControllerContext, SyncResult};
pub use descriptor::{ControllerDescriptor, StartFn};
pub use keyed::{Enqueue, KeyedController, Reconciler, object_key};
pub use workers::run_workers;

pub use crate::controller_utils::Key;
