//! The ResourceQuota controller (upstream `pkg/controller/resourcequota`
//! with the evaluators of `pkg/quota/v1/evaluator/core`): keeps every
//! quota's `status.hard` equal to its `spec.hard` and `status.used` equal
//! to what its namespace stores. The apiserver's quota admission enforces
//! against that status and charges creations itself; this controller
//! releases usage when objects are deleted or pods finish ("replenishment"),
//! recalculates a quota promptly when its spec changes, and recalculates
//! everything every `--resource-quota-sync-period`.

use std::sync::Arc;
use std::time::SystemTime;

use component_base::informers::Change;
use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota, Service};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, Key, KeyedController, Reconciler, SyncResult,
    store_keys,
};
use crate::error::Error;

pub mod evaluator;
pub mod monitor;
pub mod reconcile;
pub mod resources;
#[cfg(test)]
mod tests;

use evaluator::{Evaluator, GroupResource};
use monitor::Monitors;
use reconcile::NamespaceObjects;

/// Upstream `names.ResourceQuotaController`.
pub const RESOURCEQUOTA_CONTROLLER: &str = "resourcequota-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: RESOURCEQUOTA_CONTROLLER,
    aliases: &["resourcequota"],
    disabled_by_default: false,
    client_name: "resourcequota-controller",
    watches: &[
        "ResourceQuota",
        "Pod",
        "Service",
        "PersistentVolumeClaim",
        "every other quotable resource (metadata)",
    ],
    concurrent_syncs: |c| c.concurrent.resource_quota,
    start: |ctx| Box::pin(start(ctx)),
};

struct Controller {
    client: Client,
    quotas: Store<ResourceQuota>,
    pods: Store<Pod>,
    services: Store<Service>,
    pvcs: Store<PersistentVolumeClaim>,
    monitors: Monitors,
    queue: RateLimitingQueue<Key>,
}

/// The typed evaluators, then one object count per monitored resource.
fn registry(monitors: &Monitors) -> Vec<Evaluator> {
    let mut all = vec![
        Evaluator::Pods,
        Evaluator::Services,
        Evaluator::PersistentVolumeClaims,
    ];
    all.extend(
        monitors
            .resources()
            .into_iter()
            .map(Evaluator::object_count),
    );
    all
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let quota_informer = ctx.informers.informer::<ResourceQuota>();
    let pod_informer = ctx.informers.informer::<Pod>();
    let svc_informer = ctx.informers.informer::<Service>();
    let pvc_informer = ctx.informers.informer::<PersistentVolumeClaim>();
    let queue = RateLimitingQueue::new("resourcequota_primary");
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        quotas: quota_informer.store().clone(),
        pods: pod_informer.store().clone(),
        services: svc_informer.store().clone(),
        pvcs: pvc_informer.store().clone(),
        monitors: Monitors::default(),
        queue: queue.clone(),
    });

    let replenisher = Arc::clone(&controller);
    controller
        .monitors
        .start(
            ctx.client.clone(),
            Arc::new(move |gr: &GroupResource, ns: &str| {
                replenisher.replenish(&Evaluator::object_count(gr.clone()), ns);
            }),
            ctx.shutdown.clone(),
        )
        .await;
    spawn_full_resync(&controller, &ctx);

    KeyedController::new(RESOURCEQUOTA_CONTROLLER, Arc::clone(&controller), queue)
        .watches(&quota_informer, |_, change| match change {
            Change::Added(q) | Change::Deleted(q) => vec![Key::of(q.as_ref()).into()],
            // Status writes are ours; only a changed `spec.hard` needs a
            // prompt recalculation (the periodic resync covers the rest).
            Change::Updated { old, new } => {
                let hard = |q: &ResourceQuota| {
                    resources::parse_list(q.spec.as_ref().and_then(|s| s.hard.as_ref()))
                };
                match (hard(&old), hard(&new)) {
                    (Ok(a), Ok(b)) if resources::equals(&a, &b) => Vec::new(),
                    _ => vec![Key::of(new.as_ref()).into()],
                }
            }
            Change::Resync => Vec::new(),
        })
        .watches(&pod_informer, |c, change| {
            let now = SystemTime::now();
            c.replenish_on(change, &Evaluator::Pods, |old, new| {
                evaluator::quota_v1_pod(old, now) && !evaluator::quota_v1_pod(new, now)
            })
        })
        .watches(&svc_informer, |c, change| {
            c.replenish_on(change, &Evaluator::Services, |old, new| {
                evaluator::quota_service_type(old) != evaluator::quota_service_type(new)
            })
        })
        .watches(&pvc_informer, |c, change| {
            c.replenish_on(change, &Evaluator::PersistentVolumeClaims, |old, new| {
                evaluator::pvc_requires_replenish(new, old)
            })
        })
        .run(&ctx)
        .await
}

/// Upstream `enqueueAll` every `--resource-quota-sync-period` (0 disables).
fn spawn_full_resync(controller: &Arc<Controller>, ctx: &ControllerContext) {
    let period = ctx.config.resource_quota_sync_period;
    if period.is_zero() {
        tracing::info!("periodic quota controller resync disabled");
        return;
    }
    let controller = Arc::clone(controller);
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
            for key in controller.all_keys() {
                if let Enqueue::Now(key) = key {
                    controller.queue.add(key);
                }
            }
        }
    });
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_quota(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        store_keys(&self.quotas)
    }
}

impl Controller {
    /// Upstream's monitor event handlers: deletions always replenish,
    /// updates only when the update filter says usage was released.
    fn replenish_on<K: kube::Resource>(
        &self,
        change: Change<K>,
        evaluator: &Evaluator,
        released: impl Fn(&K, &K) -> bool,
    ) -> Vec<Enqueue> {
        let ns = match &change {
            Change::Deleted(obj) => obj.meta().namespace.clone(),
            Change::Updated { old, new } if released(old, new) => new.meta().namespace.clone(),
            _ => None,
        };
        ns.map(|ns| self.quotas_concerned(evaluator, &ns))
            .unwrap_or_default()
    }

    /// Upstream `replenishQuota`.
    fn replenish(&self, evaluator: &Evaluator, namespace: &str) {
        for key in self.quotas_concerned(evaluator, namespace) {
            if let Enqueue::Now(key) = key {
                self.queue.add(key);
            }
        }
    }

    fn quotas_concerned(&self, evaluator: &Evaluator, namespace: &str) -> Vec<Enqueue> {
        self.quotas
            .state()
            .iter()
            .filter(|q| q.metadata.namespace.as_deref() == Some(namespace))
            .filter(|q| reconcile::concerns(q, evaluator))
            .map(|q| Key::of(q.as_ref()).into())
            .collect()
    }

    fn in_namespace<K>(store: &Store<K>, namespace: &str) -> Vec<Arc<K>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        store
            .state()
            .into_iter()
            .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
            .collect()
    }

    /// Upstream `syncResourceQuota`.
    async fn sync_quota(&self, key: &Key) -> SyncResult {
        let Some(namespace) = key.namespace.as_deref() else {
            return Ok(None);
        };
        let Some(quota) = self
            .quotas
            .get(&ObjectRef::new(&key.name).within(namespace))
        else {
            tracing::debug!(%key, "resource quota has been deleted");
            return Ok(None);
        };
        let invalid = |reason: String| Error::InvalidObject {
            object: format!("resourcequota {key}"),
            reason,
        };
        let hard = resources::parse_list(quota.spec.as_ref().and_then(|s| s.hard.as_ref()))
            .map_err(|e| invalid(e.to_string()))?;
        let count = |gr: &GroupResource| self.monitors.count(gr, namespace);
        let objects = NamespaceObjects {
            pods: Self::in_namespace(&self.pods, namespace),
            services: Self::in_namespace(&self.services, namespace),
            pvcs: Self::in_namespace(&self.pvcs, namespace),
            count: &count,
            now: SystemTime::now(),
        };
        let (usage, errors) =
            reconcile::calculate_usage(&quota, &hard, &registry(&self.monitors), &objects);
        let status =
            reconcile::desired_status(&quota, &hard, usage).map_err(|e| invalid(e.to_string()))?;
        if let Some(status) = status {
            let mut updated = quota.as_ref().clone();
            updated.status = Some(status);
            let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), namespace);
            api.replace_status(&key.name, &PostParams::default(), &updated)
                .await?;
        }
        match errors.into_iter().next() {
            None => Ok(None),
            Some(first) => Err(Error::Controller {
                name: RESOURCEQUOTA_CONTROLLER,
                reason: format!("{key}: {first}"),
            }),
        }
    }
}
