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
    /// What upstream passes to `NewClient(...)`: the ServiceAccount the
    /// controller runs as under `--use-service-account-credentials`.
    pub client_name: &'static str,
    pub start: StartFn,
}

/// Every implemented controller, in upstream start order.
pub fn descriptors() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor {
            name: names::ENDPOINTSLICE_CONTROLLER,
            client_name: "endpointslice-controller",
            start: |ctx| Box::pin(crate::endpointslice::start(ctx)),
        },
        ControllerDescriptor {
            name: names::NAMESPACE_CONTROLLER,
            client_name: "namespace-controller",
            start: |ctx| Box::pin(crate::namespace::start(ctx)),
        },
        ControllerDescriptor {
            name: names::SERVICEACCOUNT_CONTROLLER,
            client_name: "service-account-controller",
            start: |ctx| Box::pin(crate::serviceaccount::start(ctx)),
        },
        ControllerDescriptor {
            name: names::GARBAGE_COLLECTOR_CONTROLLER,
            client_name: "generic-garbage-collector",
            start: |ctx| Box::pin(crate::garbagecollector::start(ctx)),
        },
        ControllerDescriptor {
            name: names::REPLICASET_CONTROLLER,
            client_name: "replicaset-controller",
            start: |ctx| Box::pin(crate::replicaset::start(ctx)),
        },
        ControllerDescriptor {
            name: names::DEPLOYMENT_CONTROLLER,
            client_name: "deployment-controller",
            start: |ctx| Box::pin(crate::deployment::start(ctx)),
        },
        ControllerDescriptor {
            name: names::ROOT_CA_CERTIFICATE_PUBLISHER_CONTROLLER,
            client_name: "root-ca-cert-publisher",
            start: |ctx| Box::pin(crate::rootcacertpublisher::start(ctx)),
        },
        ControllerDescriptor {
            name: crate::nodelifecycle::NODE_LIFECYCLE_CONTROLLER,
            client_name: "node-controller",
            start: |ctx| Box::pin(crate::nodelifecycle::start(ctx)),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ServiceAccount names must match upstream's bootstrap RBAC
    /// (`system:controller:<client name>`), or the controller is forbidden.
    #[test]
    fn client_names_match_upstream() {
        let want = [
            (names::ENDPOINTSLICE_CONTROLLER, "endpointslice-controller"),
            (names::NAMESPACE_CONTROLLER, "namespace-controller"),
            (
                names::SERVICEACCOUNT_CONTROLLER,
                "service-account-controller",
            ),
            (
                names::GARBAGE_COLLECTOR_CONTROLLER,
                "generic-garbage-collector",
            ),
            (names::REPLICASET_CONTROLLER, "replicaset-controller"),
            (names::DEPLOYMENT_CONTROLLER, "deployment-controller"),
            (
                names::ROOT_CA_CERTIFICATE_PUBLISHER_CONTROLLER,
                "root-ca-cert-publisher",
            ),
            (
                crate::nodelifecycle::NODE_LIFECYCLE_CONTROLLER,
                "node-controller",
            ),
        ];
        let got: Vec<(&str, &str)> = descriptors()
            .iter()
            .map(|d| (d.name, d.client_name))
            .collect();
        assert_eq!(got, want);
    }
}
