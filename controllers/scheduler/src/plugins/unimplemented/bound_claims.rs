//! The one volume case the stand-ins let through: every claim is bound to a PersistentVolume
//! that no node-local plugin would restrict. For such a pod upstream's VolumeBinding (no PV
//! node affinity), VolumeZone (no zone/region labels), VolumeRestrictions (no
//! ReadWriteOncePod) and NodeVolumeLimits (no CSI or limit-counted in-tree source) accept
//! every node, so skipping them places the pod exactly as upstream would.

use std::sync::Arc;

use component_base::informers::Informer;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::runtime::reflector::ObjectRef;

/// Labels VolumeZone matches against node labels.
const TOPOLOGY_LABELS: &[&str] = &[
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
];

/// PVC and PV listers; `None` without an apiserver (every claim then counts as unknown).
#[derive(Default)]
pub struct ClaimListers {
    pub claims: Option<Arc<Informer<PersistentVolumeClaim>>>,
    pub volumes: Option<Arc<Informer<PersistentVolume>>>,
}

/// A PV no default volume plugin restricts to some nodes.
fn unrestricted(pv: &PersistentVolume) -> bool {
    let Some(spec) = pv.spec.as_ref() else {
        return false;
    };
    let labels = pv.metadata.labels.as_ref();
    let zoned = TOPOLOGY_LABELS
        .iter()
        .any(|k| labels.is_some_and(|l| l.contains_key(*k)));
    // Sources NodeVolumeLimits counts (CSI, and in-tree ones migrated to CSI).
    let limited = spec.csi.is_some()
        || spec.aws_elastic_block_store.is_some()
        || spec.gce_persistent_disk.is_some()
        || spec.azure_disk.is_some()
        || spec.cinder.is_some()
        || spec.rbd.is_some()
        || spec.iscsi.is_some();
    spec.node_affinity.is_none() && !zoned && !limited
}

fn read_write_once_pod(pvc: &PersistentVolumeClaim) -> bool {
    pvc.spec
        .as_ref()
        .and_then(|s| s.access_modes.as_ref())
        .is_some_and(|m| m.iter().any(|m| m == "ReadWriteOncePod"))
}

impl ClaimListers {
    /// Whether every PVC volume of the pod is bound to an unrestricted PV (false for generic
    /// ephemeral volumes, whose claims are created and bound at scheduling time).
    pub fn all_bound_and_unrestricted(&self, pod: &Pod) -> bool {
        let (Some(claims), Some(volumes)) = (&self.claims, &self.volumes) else {
            return false;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let vols = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
        vols.into_iter().flatten().all(|v| {
            if v.ephemeral.is_some() {
                return false;
            }
            let Some(src) = &v.persistent_volume_claim else {
                return true;
            };
            let key = ObjectRef::<PersistentVolumeClaim>::new(&src.claim_name).within(ns);
            let Some(pvc) = claims.store().get(&key) else {
                return false;
            };
            let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            let pv_name = pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref());
            let pv = pv_name.and_then(|n| volumes.store().get(&ObjectRef::new(n)));
            bound && !read_write_once_pod(&pvc) && pv.is_some_and(|pv| unrestricted(&pv))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(json: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(json).expect("pv")
    }

    #[test]
    fn unrestricted_table() {
        let cases = [
            (
                serde_json::json!({"spec": {"nfs": {"server": "s", "path": "/"}}}),
                true,
            ),
            (
                serde_json::json!({"spec": {"hostPath": {"path": "/x"}, "nodeAffinity": {"required": {"nodeSelectorTerms": []}}}}),
                false,
            ),
            (
                serde_json::json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "z"}}, "spec": {"nfs": {"server": "s", "path": "/"}}}),
                false,
            ),
            (
                serde_json::json!({"spec": {"csi": {"driver": "d", "volumeHandle": "h"}}}),
                false,
            ),
            (serde_json::json!({}), false),
        ];
        for (json, want) in cases {
            assert_eq!(unrestricted(&pv(json.clone())), want, "{json}");
        }
    }
}
