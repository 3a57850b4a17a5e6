//! The TTL-after-finished controller (upstream
//! `pkg/controller/ttlafterfinished`): deletes finished Jobs once
//! `ttlSecondsAfterFinished` has passed since they finished.

pub mod reconcile;

use std::sync::Arc;

use component_base::informers::Change;
use component_base::workqueue::RateLimitingQueue;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::control::{KubeObjectControl, ObjectControl};
use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, KeyedController, Reconciler, SyncResult,
    store_keys,
};
use crate::controller_utils::Key;
use crate::error::Error;
use reconcile::{Verdict, needs_cleanup, verdict};

/// Upstream `names.TTLAfterFinishedController`.
pub const TTL_AFTER_FINISHED_CONTROLLER: &str = "ttl-after-finished-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: TTL_AFTER_FINISHED_CONTROLLER,
    aliases: &["ttl-after-finished"],
    disabled_by_default: false,
    client_name: "ttl-after-finished-controller",
    watches: &["Job"],
    concurrent_syncs: |c| c.concurrent.ttl_after_finished,
    start: |ctx| Box::pin(start(ctx)),
};

pub(crate) struct Controller {
    jobs: Store<Job>,
    job_control: Arc<dyn ObjectControl<Job>>,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let informer = ctx.informers.informer::<Job>();
    let controller = Arc::new(Controller {
        jobs: informer.store().clone(),
        job_control: Arc::new(KubeObjectControl::new(ctx.client.clone())),
    });
    KeyedController::new(
        TTL_AFTER_FINISHED_CONTROLLER,
        controller,
        RateLimitingQueue::new("ttl_jobs_to_delete"),
    )
    .watches(&informer, |_, change| job_changed(change))
    .run(&ctx)
    .await
}

/// Upstream `addJob`/`updateJob`: only Jobs that need cleanup are queued.
fn job_changed(change: Change<Job>) -> Vec<Enqueue> {
    match change {
        Change::Added(job) | Change::Updated { new: job, .. }
            if job.metadata.deletion_timestamp.is_none() && needs_cleanup(&job) =>
        {
            vec![Key::of(job.as_ref()).into()]
        }
        _ => Vec::new(),
    }
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.process_job(key, Timestamp::now()).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        store_keys(&self.jobs)
    }
}

fn ttl_error(key: &Key, err: reconcile::TtlError) -> Error {
    Error::InvalidObject {
        object: format!("job {key}"),
        reason: err.to_string(),
    }
}

impl Controller {
    /// Upstream `processJob`: the cached Job decides; a fresh read confirms
    /// before a foreground delete guarded by the Job's UID.
    pub(crate) async fn process_job(&self, key: &Key, now: Timestamp) -> SyncResult {
        let Some(ns) = key.namespace.as_deref() else {
            return Ok(None);
        };
        let Some(job) = self.jobs.get(&ObjectRef::new(&key.name).within(ns)) else {
            return Ok(None);
        };
        match verdict(&job, now).map_err(|e| ttl_error(key, e))? {
            Verdict::Ignore => return Ok(None),
            Verdict::After(after) => return Ok(Some(after)),
            Verdict::Expired(_) => {}
        }
        // The cached TTL may be stale: check the latest Job again.
        let fresh = match self.job_control.get(ns, &key.name).await {
            Ok(fresh) => fresh,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err),
        };
        match verdict(&fresh, now).map_err(|e| ttl_error(key, e))? {
            Verdict::Ignore => return Ok(None),
            Verdict::After(after) => return Ok(Some(after)),
            Verdict::Expired(_) => {}
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions {
                uid: fresh.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        tracing::debug!(job = %key, "cleaning up Job");
        self.job_control.delete_with(ns, &key.name, params).await?;
        Ok(None)
    }
}
