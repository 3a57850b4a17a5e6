//! The PVC protection controller (upstream
//! `pkg/controller/volume/pvcprotection`): every live claim carries
//! `kubernetes.io/pvc-protection`; a deleted claim loses it once no pod uses
//! it — asked of the pod cache first and, when the cache says unused, of the
//! apiserver (a live list), so a pod the cache has not seen yet still counts.

use std::sync::Arc;

use component_base::informers::Change;
use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, Key, KeyedController, Reconciler, SyncResult,
};
use crate::error::Error;
use crate::protectionutil::{self, FinalizerAction};

pub mod reconcile;

pub use reconcile::PVC_PROTECTION_FINALIZER;

/// Upstream `names.PersistentVolumeClaimProtectionController`.
pub const PVC_PROTECTION_CONTROLLER: &str = "persistentvolumeclaim-protection-controller";

/// Upstream runs one worker (`Run(ctx, 1)`).
pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: PVC_PROTECTION_CONTROLLER,
    aliases: &["pvc-protection"],
    disabled_by_default: false,
    client_name: "pvc-protection-controller",
    watches: &["PersistentVolumeClaim", "Pod"],
    concurrent_syncs: |_| 1,
    start: |ctx| Box::pin(start(ctx)),
};

struct Controller {
    client: Client,
    pvcs: Store<PersistentVolumeClaim>,
    pods: Store<Pod>,
}

fn needs_work(pvc: &PersistentVolumeClaim) -> bool {
    protectionutil::need_to_add_finalizer(&pvc.metadata, PVC_PROTECTION_FINALIZER)
        || protectionutil::is_deletion_candidate(&pvc.metadata, PVC_PROTECTION_FINALIZER)
}

fn claim_keys(pod: &Pod, deleted: bool) -> Vec<Enqueue> {
    let ns = pod.metadata.namespace.as_deref();
    reconcile::claims_to_check(pod, deleted)
        .iter()
        .map(|name| Key::new(ns, name).into())
        .collect()
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let pvc_informer = ctx.informers.informer::<PersistentVolumeClaim>();
    let pod_informer = ctx.informers.informer::<Pod>();
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        pvcs: pvc_informer.store().clone(),
        pods: pod_informer.store().clone(),
    });
    KeyedController::new(
        PVC_PROTECTION_CONTROLLER,
        controller,
        RateLimitingQueue::new("pvcprotection"),
    )
    .watches(&pvc_informer, |_, change| match change {
        Change::Added(pvc) | Change::Updated { new: pvc, .. } if needs_work(&pvc) => {
            vec![Key::of(pvc.as_ref()).into()]
        }
        _ => Vec::new(),
    })
    .watches(&pod_informer, |_, change| match change {
        Change::Added(pod) => claim_keys(&pod, false),
        Change::Deleted(pod) => claim_keys(&pod, true),
        // An update may hide a delete and re-create under the same name.
        Change::Updated { old, new } => {
            let mut keys = claim_keys(&new, false);
            if old.metadata.uid != new.metadata.uid {
                keys.extend(claim_keys(&old, true));
            }
            keys
        }
        Change::Resync => Vec::new(),
    })
    .run(&ctx)
    .await
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.process_pvc(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.pvcs
            .state()
            .iter()
            .filter(|p| needs_work(p))
            .map(|p| Key::of(p.as_ref()).into())
            .collect()
    }
}

impl Controller {
    /// Upstream `processPVC`.
    async fn process_pvc(&self, key: &Key) -> SyncResult {
        let Some(ns) = key.namespace.as_deref() else {
            return Ok(None);
        };
        let Some(pvc) = self.pvcs.get(&ObjectRef::new(&key.name).within(ns)) else {
            return Ok(None);
        };
        let action =
            if protectionutil::is_deletion_candidate(&pvc.metadata, PVC_PROTECTION_FINALIZER) {
                if self.is_being_used(&pvc).await? {
                    tracing::debug!(%key, "keeping PVC because it is being used");
                    FinalizerAction::Keep
                } else {
                    FinalizerAction::Remove
                }
            } else {
                protectionutil::decide(&pvc.metadata, PVC_PROTECTION_FINALIZER, || true)
            };
        if action == FinalizerAction::Keep {
            return Ok(None);
        }
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        protectionutil::write_finalizers(&api, pvc.as_ref(), PVC_PROTECTION_FINALIZER, action)
            .await?;
        Ok(None)
    }

    /// Upstream `isBeingUsed`: the cache first, then a live list.
    async fn is_being_used(&self, pvc: &PersistentVolumeClaim) -> Result<bool, Error> {
        let ns = pvc.metadata.namespace.as_deref().unwrap_or_default();
        let cached = self
            .pods
            .state()
            .iter()
            .any(|pod| reconcile::pod_uses_pvc(pod, pvc));
        if cached {
            return Ok(true);
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let live = api.list(&ListParams::default()).await?;
        Ok(live
            .items
            .iter()
            .any(|pod| reconcile::pod_uses_pvc(pod, pvc)))
    }
}
