//! The PV protection controller (upstream
//! `pkg/controller/volume/pvprotection`): every live PersistentVolume
//! carries `kubernetes.io/pv-protection`; a deleted one loses it once it is
//! no longer Bound.

use std::sync::Arc;

use component_base::informers::Change;
use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, Key, KeyedController, Reconciler, SyncResult,
};
use crate::error::Error;
use crate::protectionutil::{self, FinalizerAction};

/// Upstream `volumeutil.PVProtectionFinalizer`.
pub const PV_PROTECTION_FINALIZER: &str = "kubernetes.io/pv-protection";

/// Upstream `names.PersistentVolumeProtectionController`.
pub const PV_PROTECTION_CONTROLLER: &str = "persistentvolume-protection-controller";

/// Upstream runs one worker (`Run(ctx, 1)`).
pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: PV_PROTECTION_CONTROLLER,
    aliases: &["pv-protection"],
    disabled_by_default: false,
    client_name: "pv-protection-controller",
    watches: &["PersistentVolume"],
    concurrent_syncs: |_| 1,
    start: |ctx| Box::pin(start(ctx)),
};

/// Upstream `isBeingUsed`: the PV controller marks a used volume Bound.
pub fn is_being_used(pv: &PersistentVolume) -> bool {
    pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}

/// What to do with one PV's finalizer (pure).
pub fn decide(pv: &PersistentVolume) -> FinalizerAction {
    protectionutil::decide(&pv.metadata, PV_PROTECTION_FINALIZER, || is_being_used(pv))
}

fn needs_work(pv: &PersistentVolume) -> bool {
    protectionutil::need_to_add_finalizer(&pv.metadata, PV_PROTECTION_FINALIZER)
        || protectionutil::is_deletion_candidate(&pv.metadata, PV_PROTECTION_FINALIZER)
}

struct Controller {
    client: Client,
    pvs: Store<PersistentVolume>,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let informer = ctx.informers.informer::<PersistentVolume>();
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        pvs: informer.store().clone(),
    });
    KeyedController::new(
        PV_PROTECTION_CONTROLLER,
        controller,
        RateLimitingQueue::new("pvprotection"),
    )
    .watches(&informer, |_, change| match change {
        Change::Added(pv) | Change::Updated { new: pv, .. } if needs_work(&pv) => {
            vec![Key::of(pv.as_ref()).into()]
        }
        _ => Vec::new(),
    })
    .run(&ctx)
    .await
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        let Some(pv) = self.pvs.get(&ObjectRef::new(&key.name)) else {
            return Ok(None);
        };
        let action = decide(&pv);
        if action == FinalizerAction::Keep {
            return Ok(None);
        }
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        protectionutil::write_finalizers(&api, pv.as_ref(), PV_PROTECTION_FINALIZER, action)
            .await?;
        Ok(None)
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.pvs
            .state()
            .iter()
            .filter(|pv| needs_work(pv))
            .map(|pv| Key::of(pv.as_ref()).into())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PersistentVolumeStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn pv(phase: &str, deleted: bool, finalizers: &[&str]) -> PersistentVolume {
        let mut pv = PersistentVolume::default();
        pv.metadata.name = Some("pv".into());
        pv.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
        pv.metadata.deletion_timestamp = deleted.then_some(Time(jiff::Timestamp::UNIX_EPOCH));
        pv.status = Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
        pv
    }

    /// Upstream `TestPVProtectionController` cases.
    #[test]
    fn finalizer_follows_binding() {
        let f = PV_PROTECTION_FINALIZER;
        let cases = [
            (
                "new PV gets the finalizer",
                pv("Available", false, &[]),
                FinalizerAction::Add,
            ),
            (
                "live PV keeps it",
                pv("Bound", false, &[f]),
                FinalizerAction::Keep,
            ),
            (
                "deleted bound PV keeps it",
                pv("Bound", true, &[f]),
                FinalizerAction::Keep,
            ),
            (
                "deleted available PV loses it",
                pv("Available", true, &[f]),
                FinalizerAction::Remove,
            ),
            (
                "deleted released PV loses it",
                pv("Released", true, &[f]),
                FinalizerAction::Remove,
            ),
        ];
        for (name, pv, want) in cases {
            assert_eq!(decide(&pv), want, "{name}");
        }
    }
}
