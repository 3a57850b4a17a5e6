//! Stand-ins for upstream default plugins we do not implement yet (VolumeBinding,
//! VolumeRestrictions, VolumeZone, NodeVolumeLimits, DynamicResources). Skipping them would
//! place pods that need them as if their volumes or claims did not exist; instead a pod that
//! needs one is unschedulable with a reason naming the plugin, and every other pod is untouched.
//! Pods whose claims are all bound to unrestricted PVs pass (see `bound_claims`).

mod bound_claims;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::names;
use crate::framework::registry::{PluginFactory, factory};
use crate::framework::{CycleState, NodeInfo, Plugin, PreFilterPlugin, PreFilterResult, Status};

/// What a pod uses that the missing plugin would have to check, if anything.
type Needs = fn(&Pod) -> Option<&'static str>;

pub struct Unimplemented {
    name: &'static str,
    needs: Needs,
    claims: Option<bound_claims::ClaimListers>,
}

fn volumes(pod: &Pod) -> impl Iterator<Item = &k8s_openapi::api::core::v1::Volume> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
}

const CLAIMS: &str = "persistentVolumeClaim volumes";

/// PersistentVolumeClaims, directly or through generic ephemeral volumes.
fn claims(pod: &Pod) -> Option<&'static str> {
    let mut vols = volumes(pod);
    vols.any(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
        .then_some(CLAIMS)
}

/// Inline volumes VolumeRestrictions checks for conflicts, else claims.
fn claims_or_exclusive_disks(pod: &Pod) -> Option<&'static str> {
    let exclusive = volumes(pod).any(|v| {
        v.gce_persistent_disk.is_some()
            || v.aws_elastic_block_store.is_some()
            || v.rbd.is_some()
            || v.iscsi.is_some()
    });
    if exclusive {
        return Some("exclusive inline disk volumes");
    }
    claims(pod)
}

/// Inline volumes NodeVolumeLimits counts (in-tree ones migrated to CSI), else claims.
fn claims_or_attachable_inline(pod: &Pod) -> Option<&'static str> {
    let attachable = volumes(pod).any(|v| {
        v.gce_persistent_disk.is_some()
            || v.aws_elastic_block_store.is_some()
            || v.azure_disk.is_some()
            || v.cinder.is_some()
            || v.vsphere_volume.is_some()
            || v.portworx_volume.is_some()
    });
    if attachable {
        return Some("attachable inline volumes");
    }
    claims(pod)
}

fn resource_claims(pod: &Pod) -> Option<&'static str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.resource_claims.as_ref())
        .is_some_and(|c| !c.is_empty())
        .then_some("resourceClaims")
}

impl Unimplemented {
    fn new(name: &'static str) -> Self {
        let needs: Needs = match name {
            names::VOLUME_RESTRICTIONS => claims_or_exclusive_disks,
            names::NODE_VOLUME_LIMITS => claims_or_attachable_inline,
            names::DYNAMIC_RESOURCES => resource_claims,
            _ => claims,
        };
        Unimplemented {
            name,
            needs,
            claims: None,
        }
    }

    /// The registry entry: warns once per profile that enables the plugin.
    pub fn factory(name: &'static str) -> PluginFactory {
        factory(move |_, handle| {
            tracing::warn!(
                plugin = name,
                "enabled plugin is not implemented by kube-scheduler-rs; pods that need it stay unschedulable"
            );
            let mut pl = Unimplemented::new(name);
            if name != names::DYNAMIC_RESOURCES {
                pl.claims = Some(bound_claims::ClaimListers {
                    claims: handle.informer(),
                    volumes: handle.informer(),
                });
            }
            Ok(pl)
        })
    }

    pub fn reason(&self, uses: &str) -> String {
        format!(
            "pod uses {uses}, which need the {} plugin; kube-scheduler-rs does not implement it yet",
            self.name
        )
    }
}

impl Plugin for Unimplemented {
    fn name(&self) -> &'static str {
        self.name
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for Unimplemented {
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &Pod,
        _nodes: &[Arc<NodeInfo>],
    ) -> (Option<PreFilterResult>, Status) {
        let Some(uses) = (self.needs)(pod) else {
            return (None, Status::skip());
        };
        if uses == CLAIMS
            && self
                .claims
                .as_ref()
                .is_some_and(|c| c.all_bound_and_unrestricted(pod))
        {
            return (None, Status::skip());
        }
        (None, Status::unresolvable(self.reason(uses)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pod_named;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, PodResourceClaim, Volume};

    fn with_pvc(mut p: Pod) -> Pod {
        p.spec.get_or_insert_with(Default::default).volumes = Some(vec![Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "data".into(),
                read_only: None,
            }),
            ..Default::default()
        }]);
        p
    }

    #[test]
    fn rejects_only_pods_that_need_the_plugin() {
        let plain = pod_named("plain", vec![]);
        let pvc = with_pvc(pod_named("pvc", vec![]));
        let mut dra = pod_named("dra", vec![]);
        dra.spec
            .get_or_insert_with(Default::default)
            .resource_claims = Some(vec![PodResourceClaim {
            name: "gpu".into(),
            ..Default::default()
        }]);
        let cases = [
            (names::VOLUME_BINDING, &plain, None),
            (
                names::VOLUME_BINDING,
                &pvc,
                Some(
                    "pod uses persistentVolumeClaim volumes, which need the VolumeBinding plugin; kube-scheduler-rs does not implement it yet",
                ),
            ),
            (
                names::VOLUME_ZONE,
                &pvc,
                Some(
                    "pod uses persistentVolumeClaim volumes, which need the VolumeZone plugin; kube-scheduler-rs does not implement it yet",
                ),
            ),
            (names::NODE_VOLUME_LIMITS, &dra, None),
            (names::DYNAMIC_RESOURCES, &pvc, None),
            (
                names::DYNAMIC_RESOURCES,
                &dra,
                Some(
                    "pod uses resourceClaims, which need the DynamicResources plugin; kube-scheduler-rs does not implement it yet",
                ),
            ),
        ];
        for (name, pod, want) in cases {
            let (_, s) = Unimplemented::new(name).pre_filter(&mut CycleState::new(), pod, &[]);
            match want {
                None => assert!(s.is_skip(), "{name}"),
                Some(msg) => {
                    assert_eq!(
                        s.code(),
                        crate::framework::Code::UnschedulableAndUnresolvable
                    );
                    assert_eq!(s.message(), msg, "{name}");
                }
            }
        }
    }
}
