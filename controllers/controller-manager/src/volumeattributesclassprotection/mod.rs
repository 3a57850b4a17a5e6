//! The VolumeAttributesClass protection controller (upstream
//! `pkg/controller/volume/vacprotection`): every live class carries
//! `kubernetes.io/vac-protection`; a deleted one loses it once no PV
//! (`spec.volumeAttributesClassName`) and no PVC (spec, current status or
//! modification target) refers to it.

use std::collections::BTreeSet;
use std::sync::Arc;

use component_base::informers::Change;
use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::VolumeAttributesClass;
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, Key, KeyedController, Reconciler, SyncResult,
};
use crate::error::Error;
use crate::protectionutil::{self, FinalizerAction};
use crate::resourcequota::evaluator::pvc_volume_attributes_classes;

/// Upstream `volumeutil.VACProtectionFinalizer`.
pub const VAC_PROTECTION_FINALIZER: &str = "kubernetes.io/vac-protection";

/// Upstream `names.VolumeAttributesClassProtectionController`.
pub const VAC_PROTECTION_CONTROLLER: &str = "volumeattributesclass-protection-controller";

/// Upstream runs one worker (`Run(ctx, 1)`).
pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: VAC_PROTECTION_CONTROLLER,
    aliases: &[],
    disabled_by_default: false,
    client_name: "volumeattributesclass-protection-controller",
    watches: &[
        "VolumeAttributesClass",
        "PersistentVolumeClaim",
        "PersistentVolume",
    ],
    concurrent_syncs: |_| 1,
    start: |ctx| Box::pin(start(ctx)),
};

/// Upstream `getPVReferencedVACNames`.
pub fn pv_classes(pv: &PersistentVolume) -> BTreeSet<String> {
    pv.spec
        .as_ref()
        .and_then(|s| s.volume_attributes_class_name.clone())
        .filter(|n| !n.is_empty())
        .into_iter()
        .collect()
}

/// Upstream `isBeingUsed`.
pub fn is_being_used(
    name: &str,
    pvs: &[Arc<PersistentVolume>],
    pvcs: &[Arc<PersistentVolumeClaim>],
) -> bool {
    pvs.iter().any(|pv| pv_classes(pv).contains(name))
        || pvcs
            .iter()
            .any(|pvc| pvc_volume_attributes_classes(pvc).contains(name))
}

fn needs_work(vac: &VolumeAttributesClass) -> bool {
    protectionutil::need_to_add_finalizer(&vac.metadata, VAC_PROTECTION_FINALIZER)
        || protectionutil::is_deletion_candidate(&vac.metadata, VAC_PROTECTION_FINALIZER)
}

/// Classes an update stopped referring to (upstream `pvcUpdated`/`pvUpdated`).
fn dropped(old: BTreeSet<String>, new: &BTreeSet<String>) -> Vec<Enqueue> {
    old.difference(new)
        .map(|name| Key::new(None, name).into())
        .collect()
}

fn all(names: BTreeSet<String>) -> Vec<Enqueue> {
    names.iter().map(|n| Key::new(None, n).into()).collect()
}

struct Controller {
    client: Client,
    vacs: Store<VolumeAttributesClass>,
    pvs: Store<PersistentVolume>,
    pvcs: Store<PersistentVolumeClaim>,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let vac_informer = ctx.informers.informer::<VolumeAttributesClass>();
    let pv_informer = ctx.informers.informer::<PersistentVolume>();
    let pvc_informer = ctx.informers.informer::<PersistentVolumeClaim>();
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        vacs: vac_informer.store().clone(),
        pvs: pv_informer.store().clone(),
        pvcs: pvc_informer.store().clone(),
    });
    KeyedController::new(
        VAC_PROTECTION_CONTROLLER,
        controller,
        RateLimitingQueue::new("vacprotection"),
    )
    .watches(&vac_informer, |_, change| match change {
        Change::Added(vac) | Change::Updated { new: vac, .. } if needs_work(&vac) => {
            vec![Key::of(vac.as_ref()).into()]
        }
        _ => Vec::new(),
    })
    .watches(&pvc_informer, |_, change| match change {
        Change::Deleted(pvc) => all(pvc_volume_attributes_classes(&pvc)),
        Change::Updated { old, new } => dropped(
            pvc_volume_attributes_classes(&old),
            &pvc_volume_attributes_classes(&new),
        ),
        Change::Added(_) | Change::Resync => Vec::new(),
    })
    .watches(&pv_informer, |_, change| match change {
        Change::Deleted(pv) => all(pv_classes(&pv)),
        Change::Updated { old, new } => dropped(pv_classes(&old), &pv_classes(&new)),
        Change::Added(_) | Change::Resync => Vec::new(),
    })
    .run(&ctx)
    .await
}

impl Reconciler for Controller {
    /// Upstream `processVAC`.
    async fn sync(&self, key: &Key) -> SyncResult {
        let Some(vac) = self.vacs.get(&ObjectRef::new(&key.name)) else {
            return Ok(None);
        };
        let action = protectionutil::decide(&vac.metadata, VAC_PROTECTION_FINALIZER, || {
            is_being_used(&key.name, &self.pvs.state(), &self.pvcs.state())
        });
        if action == FinalizerAction::Keep {
            return Ok(None);
        }
        let api: Api<VolumeAttributesClass> = Api::all(self.client.clone());
        protectionutil::write_finalizers(&api, vac.as_ref(), VAC_PROTECTION_FINALIZER, action)
            .await?;
        Ok(None)
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.vacs
            .state()
            .iter()
            .filter(|v| needs_work(v))
            .map(|v| Key::of(v.as_ref()).into())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ModifyVolumeStatus, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
        PersistentVolumeSpec,
    };

    use super::*;

    fn pv(class: &str) -> Arc<PersistentVolume> {
        Arc::new(PersistentVolume {
            spec: Some(PersistentVolumeSpec {
                volume_attributes_class_name: Some(class.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn pvc(
        spec: Option<&str>,
        current: Option<&str>,
        target: Option<&str>,
    ) -> Arc<PersistentVolumeClaim> {
        Arc::new(PersistentVolumeClaim {
            spec: Some(PersistentVolumeClaimSpec {
                volume_attributes_class_name: spec.map(str::to_string),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                current_volume_attributes_class_name: current.map(str::to_string),
                modify_volume_status: target.map(|t| ModifyVolumeStatus {
                    target_volume_attributes_class_name: Some(t.into()),
                    status: "InProgress".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// Upstream `TestVACProtectionController`'s usage cases.
    #[test]
    fn references_keep_a_class() {
        let none: &[Arc<PersistentVolume>] = &[];
        assert!(!is_being_used("gold", none, &[]));
        assert!(is_being_used("gold", &[pv("gold")], &[]));
        assert!(!is_being_used("gold", &[pv("silver")], &[]));
        assert!(is_being_used(
            "gold",
            none,
            &[pvc(Some("gold"), None, None)]
        ));
        assert!(is_being_used(
            "gold",
            none,
            &[pvc(None, Some("gold"), None)]
        ));
        assert!(is_being_used(
            "gold",
            none,
            &[pvc(None, None, Some("gold"))]
        ));
        assert!(!is_being_used(
            "gold",
            none,
            &[pvc(Some("silver"), Some(""), None)]
        ));
    }

    #[test]
    fn updates_recheck_dropped_classes_only() {
        let old = BTreeSet::from(["a".to_string(), "b".to_string()]);
        let new = BTreeSet::from(["b".to_string()]);
        assert_eq!(dropped(old, &new), vec![Enqueue::Now(Key::new(None, "a"))]);
    }
}
