//! The ReplicationController controller (upstream `pkg/controller/replication`):
//! upstream's ReplicaSet engine run over ReplicationControllers, as here —
//! [`conversion`] shows an RC as a ReplicaSet to [`crate::replicaset`].

pub mod conversion;
#[cfg(test)]
mod tests;

use k8s_openapi::api::core::v1::ReplicationController;

use crate::controller::{ControllerContext, ControllerDescriptor};
use crate::error::Error;
use crate::replicaset::controller::{self, EngineNames};

/// Upstream `names.ReplicationControllerController`.
pub const REPLICATION_CONTROLLER: &str = "replicationcontroller-controller";

/// The events' `source.component` (upstream `NewReplicationManager`'s
/// `EventSource{Component: "replication-controller"}`).
pub const EVENT_SOURCE: &str = "replication-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: REPLICATION_CONTROLLER,
    aliases: &["replicationcontroller"],
    disabled_by_default: false,
    client_name: "replication-controller",
    watches: &["ReplicationController", "Pod"],
    concurrent_syncs: |c| c.concurrent.replication_controller,
    start: |ctx| Box::pin(start(ctx)),
};

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let names = EngineNames {
        controller: REPLICATION_CONTROLLER,
        queue: "replicationmanager",
        event_source: EVENT_SOURCE,
    };
    controller::run::<ReplicationController>(ctx, names).await
}
