//! The controllers this binary implements, in upstream start order
//! (upstream `NewControllerDescriptors`). Adding a controller = one module
//! exporting a `DESCRIPTOR` plus one line here.

use crate::controller::ControllerDescriptor;

/// Every implemented controller.
pub const DESCRIPTORS: &[ControllerDescriptor] = &[
    crate::endpointslice::DESCRIPTOR,
    crate::replication::DESCRIPTOR,
    crate::namespace::DESCRIPTOR,
    crate::serviceaccount::DESCRIPTOR,
    crate::garbagecollector::DESCRIPTOR,
    crate::replicaset::DESCRIPTOR,
    crate::deployment::DESCRIPTOR,
    crate::rootcacertpublisher::DESCRIPTOR,
    crate::nodelifecycle::DESCRIPTOR,
    crate::tainteviction::DESCRIPTOR,
    crate::endpoint::DESCRIPTOR,
    crate::endpointslicemirroring::DESCRIPTOR,
    crate::resourcequota::DESCRIPTOR,
    crate::daemon::DESCRIPTOR,
    crate::job::DESCRIPTOR,
    crate::statefulset::DESCRIPTOR,
    crate::cronjob::DESCRIPTOR,
    crate::disruption::DESCRIPTOR,
    crate::ttlafterfinished::DESCRIPTOR,
    crate::pvcprotection::DESCRIPTOR,
    crate::pvprotection::DESCRIPTOR,
    crate::volumeattributesclassprotection::DESCRIPTOR,
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
    use crate::names::UPSTREAM_CONTROLLERS;

    /// Upstream facts per controller: canonical name → (the ServiceAccount
    /// `NewClient` names, bootstrap RBAC `system:controller:<client name>`;
    /// default workers where we run it). Looked up by name, so the order
    /// and extent of [`DESCRIPTORS`] are not repeated; the first fifteen are
    /// in upstream start order.
    const UPSTREAM: &[(&str, &str, Option<usize>)] = &[
        (
            "endpointslice-controller",
            "endpointslice-controller",
            Some(5),
        ),
        (
            "replicationcontroller-controller",
            "replication-controller",
            Some(5),
        ),
        ("namespace-controller", "namespace-controller", Some(10)),
        (
            "serviceaccount-controller",
            "service-account-controller",
            Some(1),
        ),
        (
            "garbage-collector-controller",
            "generic-garbage-collector",
            Some(20),
        ),
        ("replicaset-controller", "replicaset-controller", Some(5)),
        ("deployment-controller", "deployment-controller", Some(5)),
        (
            "root-ca-certificate-publisher-controller",
            "root-ca-cert-publisher",
            Some(1),
        ),
        ("node-lifecycle-controller", "node-controller", Some(8)),
        ("taint-eviction-controller", "node-controller", Some(8)),
        ("endpoints-controller", "endpoint-controller", Some(5)),
        (
            "endpointslice-mirroring-controller",
            "endpointslicemirroring-controller",
            Some(5),
        ),
        (
            "pod-garbage-collector-controller",
            "pod-garbage-collector",
            None,
        ),
        (
            "resourcequota-controller",
            "resourcequota-controller",
            Some(5),
        ),
        ("daemonset-controller", "daemon-set-controller", Some(2)),
        ("job-controller", "job-controller", Some(5)),
        ("statefulset-controller", "statefulset-controller", Some(5)),
        ("cronjob-controller", "cronjob-controller", Some(5)),
        ("disruption-controller", "disruption-controller", Some(1)),
        ("ttl-controller", "ttl-controller", None),
        (
            "ttl-after-finished-controller",
            "ttl-after-finished-controller",
            Some(5),
        ),
        (
            "persistentvolumeclaim-protection-controller",
            "pvc-protection-controller",
            Some(1),
        ),
        (
            "persistentvolume-protection-controller",
            "pv-protection-controller",
            Some(1),
        ),
        (
            "volumeattributesclass-protection-controller",
            "volumeattributesclass-protection-controller",
            Some(1),
        ),
    ];

    #[test]
    fn descriptors_match_upstream() {
        let config = ControllerManagerConfig::default();
        for d in DESCRIPTORS {
            let Some((_, client, workers)) = UPSTREAM.iter().find(|(name, ..)| *name == d.name)
            else {
                panic!("{}: add its upstream client name to UPSTREAM", d.name);
            };
            let Some(known) = UPSTREAM_CONTROLLERS.iter().find(|c| c.name == d.name) else {
                panic!("{} is not an upstream controller name", d.name);
            };
            assert_eq!(d.aliases, known.aliases, "{} aliases", d.name);
            assert_eq!(
                d.disabled_by_default, known.disabled_by_default,
                "{}",
                d.name
            );
            assert_eq!(d.client_name, *client, "{} client name", d.name);
            let Some(workers) = workers else {
                panic!("{}: add its default workers to UPSTREAM", d.name);
            };
            assert_eq!(
                (d.concurrent_syncs)(&config),
                *workers,
                "{} workers",
                d.name
            );
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
        assert_eq!(got.len(), 22);
    }
}
