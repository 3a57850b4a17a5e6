//! The controllers this binary implements, in upstream start order
//! (upstream `NewControllerDescriptors`). Adding a controller = one module
//! exporting a `DESCRIPTOR` plus one line here.

use crate::controller::ControllerDescriptor;

/// Every implemented controller.
pub const DESCRIPTORS: &[ControllerDescriptor] = &[
    crate::endpointslice::DESCRIPTOR,
    crate::namespace::DESCRIPTOR,
    crate::serviceaccount::DESCRIPTOR,
    crate::garbagecollector::DESCRIPTOR,
    crate::replicaset::DESCRIPTOR,
    crate::deployment::DESCRIPTOR,
    crate::rootcacertpublisher::DESCRIPTOR,
    crate::nodelifecycle::DESCRIPTOR,
];

/// The descriptor of an implemented controller, by canonical name.
pub fn descriptor(name: &str) -> Option<&'static ControllerDescriptor> {
    DESCRIPTORS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::ControllerManagerConfig;

    /// Upstream facts per controller: canonical name → (aliases, the
    /// ServiceAccount `NewClient` names in bootstrap RBAC
    /// `system:controller:<client name>`, default workers). Looked up by
    /// name, so the order and extent of [`DESCRIPTORS`] are not repeated.
    const UPSTREAM: &[(&str, &[&str], &str, usize)] = &[
        (
            "endpointslice-controller",
            &["endpointslice"],
            "endpointslice-controller",
            5,
        ),
        (
            "namespace-controller",
            &["namespace"],
            "namespace-controller",
            10,
        ),
        (
            "serviceaccount-controller",
            &["serviceaccount"],
            "service-account-controller",
            1,
        ),
        (
            "garbage-collector-controller",
            &["garbagecollector"],
            "generic-garbage-collector",
            20,
        ),
        (
            "replicaset-controller",
            &["replicaset"],
            "replicaset-controller",
            5,
        ),
        (
            "deployment-controller",
            &["deployment"],
            "deployment-controller",
            5,
        ),
        (
            "root-ca-certificate-publisher-controller",
            &["root-ca-cert-publisher"],
            "root-ca-cert-publisher",
            1,
        ),
        (
            "node-lifecycle-controller",
            &["nodelifecycle"],
            "node-controller",
            8,
        ),
    ];

    #[test]
    fn descriptors_match_upstream() {
        let config = ControllerManagerConfig::default();
        for d in DESCRIPTORS {
            let Some((_, aliases, client, workers)) =
                UPSTREAM.iter().find(|(name, ..)| *name == d.name)
            else {
                panic!("{} is not an upstream controller name", d.name);
            };
            assert_eq!(d.aliases, *aliases, "{} aliases", d.name);
            assert_eq!(d.client_name, *client, "{} client name", d.name);
            assert_eq!(
                (d.concurrent_syncs)(&config),
                *workers,
                "{} workers",
                d.name
            );
            assert!(!d.disabled_by_default, "{} is on by default", d.name);
            assert!(!d.watches.is_empty(), "{} declares what it watches", d.name);
        }
    }

    #[test]
    fn names_are_unique() {
        let names: BTreeSet<&str> = DESCRIPTORS.iter().map(|d| d.name).collect();
        assert_eq!(names.len(), DESCRIPTORS.len());
    }

    /// Implemented controllers start in upstream's order (the table's).
    #[test]
    fn start_order_is_upstream() {
        let got: Vec<&str> = DESCRIPTORS.iter().map(|d| d.name).collect();
        let want: Vec<&str> = UPSTREAM
            .iter()
            .map(|(name, ..)| *name)
            .filter(|name| descriptor(name).is_some())
            .collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), 8);
    }
}
