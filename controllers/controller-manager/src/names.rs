//! Upstream controller names (`cmd/kube-controller-manager/names`), their
//! legacy aliases and the `--controllers` enable/disable rules
//! (`controller-manager/app.IsControllerEnabled`). Implemented controllers
//! declare their names in their descriptors ([`crate::registry`]), which
//! the parser prefers; the table here is upstream's full list, so
//! `--controllers` accepts controllers we do not run and adding one needs
//! no edit here (a registry test checks the two agree).

use std::collections::BTreeSet;

use crate::error::Error;
use crate::registry::DESCRIPTORS;

/// One controller upstream knows about.
#[derive(Clone, Copy, Debug)]
pub struct KnownController {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub disabled_by_default: bool,
}

const fn on(name: &'static str, aliases: &'static [&'static str]) -> KnownController {
    KnownController {
        name,
        aliases,
        disabled_by_default: false,
    }
}

const fn off(name: &'static str, aliases: &'static [&'static str]) -> KnownController {
    KnownController {
        name,
        aliases,
        disabled_by_default: true,
    }
}

/// Every controller of upstream v1.36 `NewControllerDescriptors` (including
/// feature-gated and cloud ones): ours from the registry, then the rest, so
/// `--controllers` accepts and rejects exactly what upstream does.
pub fn known_controllers() -> impl Iterator<Item = KnownController> {
    DESCRIPTORS
        .iter()
        .map(|d| KnownController {
            name: d.name,
            aliases: d.aliases,
            disabled_by_default: d.disabled_by_default,
        })
        .chain(
            UPSTREAM_CONTROLLERS
                .iter()
                .filter(|c| !DESCRIPTORS.iter().any(|d| d.name == c.name))
                .copied(),
        )
}

/// Upstream's controllers (v1.36 `NewControllerDescriptors` order).
pub const UPSTREAM_CONTROLLERS: &[KnownController] = &[
    on("serviceaccount-token-controller", &["serviceaccount-token"]),
    on("endpoints-controller", &["endpoint"]),
    on("endpointslice-controller", &["endpointslice"]),
    on(
        "endpointslice-mirroring-controller",
        &["endpointslicemirroring"],
    ),
    on(
        "replicationcontroller-controller",
        &["replicationcontroller"],
    ),
    on("pod-garbage-collector-controller", &["podgc"]),
    on("resourcequota-controller", &["resourcequota"]),
    on("namespace-controller", &["namespace"]),
    on("serviceaccount-controller", &["serviceaccount"]),
    on("garbage-collector-controller", &["garbagecollector"]),
    on("daemonset-controller", &["daemonset"]),
    on("job-controller", &["job"]),
    on("deployment-controller", &["deployment"]),
    on("replicaset-controller", &["replicaset"]),
    on(
        "horizontal-pod-autoscaler-controller",
        &["horizontalpodautoscaling"],
    ),
    on("disruption-controller", &["disruption"]),
    on("statefulset-controller", &["statefulset"]),
    on("cronjob-controller", &["cronjob"]),
    on(
        "certificatesigningrequest-signing-controller",
        &["csrsigning"],
    ),
    on(
        "certificatesigningrequest-approving-controller",
        &["csrapproving"],
    ),
    on(
        "certificatesigningrequest-cleaner-controller",
        &["csrcleaner"],
    ),
    on("podcertificaterequest-cleaner-controller", &[]),
    on("ttl-controller", &["ttl"]),
    off("bootstrap-signer-controller", &["bootstrapsigner"]),
    off("token-cleaner-controller", &["tokencleaner"]),
    on("node-ipam-controller", &["nodeipam"]),
    on("node-lifecycle-controller", &["nodelifecycle"]),
    on("taint-eviction-controller", &[]),
    on("device-taint-eviction-controller", &[]),
    on(
        "persistentvolume-binder-controller",
        &["persistentvolume-binder"],
    ),
    on(
        "persistentvolume-attach-detach-controller",
        &["attachdetach"],
    ),
    on(
        "persistentvolume-expander-controller",
        &["persistentvolume-expander"],
    ),
    on(
        "clusterrole-aggregation-controller",
        &["clusterrole-aggregation"],
    ),
    on(
        "persistentvolumeclaim-protection-controller",
        &["pvc-protection"],
    ),
    on("persistentvolume-protection-controller", &["pv-protection"]),
    on("podgroup-protection-controller", &[]),
    on("ttl-after-finished-controller", &["ttl-after-finished"]),
    on(
        "root-ca-certificate-publisher-controller",
        &["root-ca-cert-publisher"],
    ),
    on(
        "service-ca-certificate-publisher-controller",
        &["service-ca-cert-publisher"],
    ),
    on(
        "kube-apiserver-serving-clustertrustbundle-publisher-controller",
        &[],
    ),
    on("ephemeral-volume-controller", &["ephemeral-volume"]),
    on(
        "storageversion-garbage-collector-controller",
        &["storage-version-gc"],
    ),
    on("resourceclaim-controller", &["resource-claim-controller"]),
    on("resourcepoolstatusrequest-controller", &[]),
    on(
        "legacy-serviceaccount-token-cleaner-controller",
        &["legacy-service-account-token-cleaner"],
    ),
    on("validatingadmissionpolicy-status-controller", &[]),
    on("volumeattributesclass-protection-controller", &[]),
    on("service-cidr-controller", &[]),
    on("storage-version-migrator-controller", &["svm"]),
    off("selinux-warning-controller", &[]),
    // Cloud-provider controllers (k8s.io/cloud-provider/names).
    on("service-lb-controller", &["service"]),
    on("node-route-controller", &["route"]),
    on("cloud-node-lifecycle-controller", &["cloud-node-lifecycle"]),
];

/// Canonical name for a name or alias, if upstream knows it.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    known_controllers()
        .find(|c| c.name == name || c.aliases.contains(&name))
        .map(|c| c.name)
}

/// The parsed `--controllers` list: aliases resolved, unknown names rejected
/// with upstream's message.
#[derive(Clone, Debug)]
pub struct ControllerSelection {
    /// Entries in order with aliases replaced by canonical names.
    entries: Vec<String>,
}

impl ControllerSelection {
    pub fn parse(controllers: &[String]) -> Result<Self, Error> {
        let mut errors = Vec::new();
        let mut entries = Vec::with_capacity(controllers.len());
        for raw in controllers {
            if raw == "*" {
                entries.push(raw.clone());
                continue;
            }
            let (prefix, bare) = match raw.strip_prefix('-') {
                Some(rest) => ("-", rest),
                None => ("", raw.as_str()),
            };
            match canonical_name(bare) {
                Some(name) => entries.push(format!("{prefix}{name}")),
                None => errors.push(format!("{bare:?} is not in the list of known controllers")),
            }
        }
        if errors.is_empty() {
            Ok(Self { entries })
        } else {
            Err(Error::UnknownControllers(errors.join(", ")))
        }
    }

    /// Upstream `IsControllerEnabled`: the first explicit mention wins,
    /// otherwise `*` enables everything not disabled by default.
    pub fn is_enabled(&self, name: &str) -> bool {
        let mut has_star = false;
        for entry in &self.entries {
            if entry == name {
                return true;
            }
            if entry.strip_prefix('-') == Some(name) {
                return false;
            }
            if entry == "*" {
                has_star = true;
            }
        }
        has_star && !known_controllers().any(|c| c.name == name && c.disabled_by_default)
    }

    /// Every known controller this selection enables.
    pub fn enabled(&self) -> BTreeSet<&'static str> {
        known_controllers()
            .map(|c| c.name)
            .filter(|n| self.is_enabled(n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLICASET_CONTROLLER: &str = "replicaset-controller";
    const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";
    const SERVICEACCOUNT_CONTROLLER: &str = "serviceaccount-controller";
    const ROOT_CA_CERTIFICATE_PUBLISHER_CONTROLLER: &str =
        "root-ca-certificate-publisher-controller";
    const GARBAGE_COLLECTOR_CONTROLLER: &str = "garbage-collector-controller";

    /// Upstream v1.36 knows 53 controllers (50 kcm + 3 cloud); names and
    /// aliases never collide.
    #[test]
    fn known_controllers_are_upstreams() {
        let all: Vec<KnownController> = known_controllers().collect();
        let mut seen = BTreeSet::new();
        for c in &all {
            assert!(seen.insert(c.name), "duplicate {}", c.name);
            for alias in c.aliases {
                assert!(seen.insert(alias), "duplicate alias {alias}");
            }
        }
        assert_eq!(all.len(), 53);
        assert_eq!(UPSTREAM_CONTROLLERS.len(), 53);
    }

    fn sel(list: &[&str]) -> Result<ControllerSelection, Error> {
        ControllerSelection::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn enablement_rules() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["*"], REPLICASET_CONTROLLER, true),
            (&["*"], "bootstrap-signer-controller", false),
            (
                &["*", "bootstrapsigner"],
                "bootstrap-signer-controller",
                true,
            ),
            (&["*", "-replicaset"], REPLICASET_CONTROLLER, false),
            (&["-deployment", "*"], DEPLOYMENT_CONTROLLER, false),
            (&["deployment"], DEPLOYMENT_CONTROLLER, true),
            (&["deployment"], REPLICASET_CONTROLLER, false),
            (&[], REPLICASET_CONTROLLER, false),
            (
                &["root-ca-cert-publisher"],
                ROOT_CA_CERTIFICATE_PUBLISHER_CONTROLLER,
                true,
            ),
            (
                &["garbage-collector-controller"],
                GARBAGE_COLLECTOR_CONTROLLER,
                true,
            ),
        ];
        for (list, name, want) in cases {
            let s = sel(list).expect("known names");
            assert_eq!(s.is_enabled(name), *want, "{list:?} {name}");
        }
    }

    #[test]
    fn unknown_names_are_rejected_like_upstream() {
        let err = sel(&["*", "-red-controller", "replicaset"]).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "\"red-controller\" is not in the list of known controllers"
        );
    }

    #[test]
    fn star_enables_our_controllers() {
        let enabled = sel(&["*"]).expect("star").enabled();
        for name in [
            REPLICASET_CONTROLLER,
            DEPLOYMENT_CONTROLLER,
            SERVICEACCOUNT_CONTROLLER,
            ROOT_CA_CERTIFICATE_PUBLISHER_CONTROLLER,
        ] {
            assert!(enabled.contains(name), "{name}");
        }
    }
}
