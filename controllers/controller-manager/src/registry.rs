//! The controllers this binary implements. Adding a controller = one module
//! plus one line here.

use futures::future::BoxFuture;

use crate::error::Error;
use crate::names;
use crate::runner::ControllerContext;

/// Starts a controller and runs it until the context's shutdown fires.
pub type StartFn = fn(ControllerContext) -> BoxFuture<'static, Result<(), Error>>;

/// An implemented controller, by its upstream canonical name.
pub struct ControllerDescriptor {
    pub name: &'static str,
    pub start: StartFn,
}

/// Every implemented controller, in upstream start order.
pub fn descriptors() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor {
            name: names::ENDPOINTSLICE_CONTROLLER,
            start: |ctx| Box::pin(crate::endpointslice::start(ctx)),
        },
        ControllerDescriptor {
            name: names::NAMESPACE_CONTROLLER,
            start: |ctx| Box::pin(crate::namespace::start(ctx)),
        },
        ControllerDescriptor {
            name: names::SERVICEACCOUNT_CONTROLLER,
            start: |ctx| Box::pin(crate::serviceaccount::start(ctx)),
        },
        ControllerDescriptor {
            name: names::GARBAGE_COLLECTOR_CONTROLLER,
            start: |ctx| Box::pin(crate::garbagecollector::start(ctx)),
        },
        ControllerDescriptor {
            name: names::REPLICASET_CONTROLLER,
            start: |ctx| Box::pin(crate::replicaset::start(ctx)),
        },
        ControllerDescriptor {
            name: names::DEPLOYMENT_CONTROLLER,
            start: |ctx| Box::pin(crate::deployment::start(ctx)),
        },
        ControllerDescriptor {
            name: names::ROOT_CA_CERTIFICATE_PUBLISHER_CONTROLLER,
            start: |ctx| Box::pin(crate::rootcacertpublisher::start(ctx)),
        },
    ]
}
