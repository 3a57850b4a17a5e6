//! The CronJob controller (upstream `pkg/controller/cronjob`
//! `cronjob_controllerv2.go`): creates a Job per schedule time. Schedules
//! in [`schedule`], pure decisions in [`reconcile`], the sync in `sync.rs`.

pub mod reconcile;
pub mod schedule;
mod sync;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use component_base::informers::Change;
use component_base::ownerref;
use component_base::workqueue::RateLimitingQueue;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::Resource;
use kube::runtime::reflector::Store;

use crate::control::{KubeObjectControl, ObjectControl};
use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, KeyedController, Reconciler, SyncResult,
    object_key, store_keys,
};
use crate::controller_utils::Key;
use crate::error::Error;
use crate::events::{EventSink, EventSpec};

/// Upstream `names.CronJobController`.
pub const CRONJOB_CONTROLLER: &str = "cronjob-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: CRONJOB_CONTROLLER,
    aliases: &["cronjob"],
    disabled_by_default: false,
    client_name: "cronjob-controller",
    watches: &["CronJob", "Job"],
    concurrent_syncs: |c| c.concurrent.cron_job,
    start: |ctx| Box::pin(start(ctx)),
};

pub(crate) struct Controller {
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    job_control: Arc<dyn ObjectControl<Job>>,
    cronjob_control: Arc<dyn ObjectControl<CronJob>>,
    events: EventSink,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let cj_informer = ctx.informers.informer::<CronJob>();
    let job_informer = ctx.informers.informer::<Job>();
    let control = KubeObjectControl::new(ctx.client.clone());
    let controller = Arc::new(Controller {
        cronjobs: cj_informer.store().clone(),
        jobs: job_informer.store().clone(),
        job_control: Arc::new(control.clone()),
        cronjob_control: Arc::new(control),
        events: EventSink::new(&ctx.events, CRONJOB_CONTROLLER),
    });
    KeyedController::new(
        CRONJOB_CONTROLLER,
        controller,
        RateLimitingQueue::new("cronjob"),
    )
    .watches(&cj_informer, Controller::cronjob_changed)
    .watches(&job_informer, |_, change| job_changed(change))
    .run(&ctx)
    .await
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_cronjob(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        store_keys(&self.cronjobs)
    }
}

impl Controller {
    /// Upstream `addCronJob`/`updateCronJob`: a new schedule or time zone
    /// requeues at its next time (an unparseable one waits for the next
    /// spec change); any other change syncs now.
    fn cronjob_changed(&self, change: Change<CronJob>) -> Vec<Enqueue> {
        let Change::Updated { old, new } = change else {
            return object_key(change);
        };
        if old.spec.schedule == new.spec.schedule && old.spec.time_zone == new.spec.time_zone {
            return vec![Key::of(new.as_ref()).into()];
        }
        match reconcile::parse_schedule(&new).0 {
            Ok(sched) => {
                let key = Key::of(new.as_ref());
                match reconcile::next_schedule_time_duration(&new, Timestamp::now(), &sched) {
                    Some(after) => vec![Enqueue::After(key, after)],
                    None => vec![key.into()],
                }
            }
            Err(_) => {
                let msg = format!("unparseable schedule for cronjob: {}", new.spec.schedule);
                let event = EventSpec::warning("UnParseableCronJobSchedule", msg);
                self.events.publish(&new.object_ref(&()), &event);
                Vec::new()
            }
        }
    }
}

/// Upstream `addJob`/`updateJob`/`deleteJob`: a Job change syncs the
/// CronJob its controller reference names (old and new on an update).
fn job_changed(change: Change<Job>) -> Vec<Enqueue> {
    let mut keys: Vec<Enqueue> = Vec::new();
    let jobs = match change {
        Change::Added(j) | Change::Deleted(j) => vec![j],
        Change::Updated { old, new } => vec![old, new],
        Change::Resync => Vec::new(),
    };
    for job in jobs {
        if let Some(key) = owner_cronjob_key(&job).map(Enqueue::from)
            && !keys.contains(&key)
        {
            keys.push(key);
        }
    }
    keys
}

/// The CronJob a Job's controller reference names, if any.
pub(crate) fn owner_cronjob_key(job: &Job) -> Option<Key> {
    let owner = ownerref::get_controller_of(&job.metadata)?;
    (owner.kind == "CronJob" && owner.api_version.starts_with("batch/"))
        .then(|| Key::new(job.metadata.namespace.as_deref(), &owner.name))
}
