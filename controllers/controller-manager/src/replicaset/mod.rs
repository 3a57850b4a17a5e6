//! The ReplicaSet controller (upstream `pkg/controller/replicaset`): keeps
//! `spec.replicas` pods running for each ReplicaSet. The engine
//! ([`controller`]) also runs the ReplicationController
//! ([`crate::replication`]) through [`kind::ReplicaSetLike`].

pub mod controller;
pub mod kind;
pub mod reconcile;
#[cfg(test)]
mod tests;

use k8s_openapi::api::apps::v1::ReplicaSet;

use crate::controller::{ControllerContext, ControllerDescriptor};
use crate::error::Error;
#[cfg(test)]
use controller::Controller;
use controller::EngineNames;

pub const SUCCESSFUL_CREATE_REASON: &str = "SuccessfulCreate";
pub const FAILED_CREATE_REASON: &str = "FailedCreate";
pub const SUCCESSFUL_DELETE_REASON: &str = "SuccessfulDelete";
pub const FAILED_DELETE_REASON: &str = "FailedDelete";

/// Upstream `names.ReplicaSetController`.
pub const REPLICASET_CONTROLLER: &str = "replicaset-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: REPLICASET_CONTROLLER,
    aliases: &["replicaset"],
    disabled_by_default: false,
    client_name: "replicaset-controller",
    watches: &["ReplicaSet", "Pod"],
    concurrent_syncs: |c| c.concurrent.replicaset,
    start: |ctx| Box::pin(start(ctx)),
};

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let names = EngineNames {
        controller: REPLICASET_CONTROLLER,
        queue: "replicaset",
        event_source: REPLICASET_CONTROLLER,
    };
    controller::run::<ReplicaSet>(ctx, names).await
}
