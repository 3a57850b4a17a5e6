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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;

    use super::*;
    use crate::control::fake::{FakeObjectControl, Write};

    fn finished(ttl: i32, at: i64) -> Job {
        let mut job = Job::default();
        job.metadata.name = Some("done".into());
        job.metadata.namespace = Some("ns".into());
        job.metadata.uid = Some("uid-1".into());
        job.spec = Some(JobSpec {
            ttl_seconds_after_finished: Some(ttl),
            ..Default::default()
        });
        job.status = Some(JobStatus {
            conditions: Some(vec![JobCondition {
                type_: "Complete".into(),
                status: "True".into(),
                last_transition_time: Some(Time(Timestamp::from_second(at).unwrap())),
                ..Default::default()
            }]),
            ..Default::default()
        });
        job
    }

    fn harness(cached: Job, fresh: Option<Job>) -> (Controller, Arc<FakeObjectControl<Job>>) {
        let mut cache = Writer::<Job>::default();
        cache.apply_watcher_event(&watcher::Event::Apply(cached));
        let control = Arc::new(FakeObjectControl::default());
        *control.current.lock().unwrap() = fresh;
        let ctl = Controller {
            jobs: cache.as_reader(),
            job_control: control.clone(),
        };
        (ctl, control)
    }

    fn key() -> Key {
        Key::new(Some("ns"), "done")
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1000).unwrap()
    }

    #[tokio::test]
    async fn expired_job_is_deleted_in_the_foreground_with_its_uid() {
        let (ctl, control) = harness(finished(0, 900), Some(finished(0, 900)));
        assert_eq!(ctl.process_job(&key(), now()).await.unwrap(), None);
        assert_eq!(control.writes(), vec![Write::Delete("done".into())]);
        let params = control.delete_params.lock().unwrap();
        assert_eq!(
            params[0].propagation_policy,
            Some(PropagationPolicy::Foreground)
        );
        let uid = params[0].preconditions.as_ref().and_then(|p| p.uid.clone());
        assert_eq!(uid.as_deref(), Some("uid-1"));
    }

    #[tokio::test]
    async fn unexpired_job_is_requeued_until_its_ttl() {
        let (ctl, control) = harness(finished(300, 900), None);
        let after = ctl.process_job(&key(), now()).await.unwrap();
        assert_eq!(after, Some(std::time::Duration::from_secs(200)));
        assert!(control.writes().is_empty());
    }

    /// The cache said expired but the fresh Job's TTL was raised: wait.
    #[tokio::test]
    async fn a_fresh_longer_ttl_wins() {
        let (ctl, control) = harness(finished(0, 900), Some(finished(600, 900)));
        let after = ctl.process_job(&key(), now()).await.unwrap();
        assert_eq!(after, Some(std::time::Duration::from_secs(500)));
        assert!(control.writes().is_empty());
    }

    #[tokio::test]
    async fn gone_job_is_not_an_error() {
        let (ctl, control) = harness(finished(0, 900), None);
        assert_eq!(ctl.process_job(&key(), now()).await.unwrap(), None);
        assert!(control.writes().is_empty());
    }

    #[test]
    fn only_finished_jobs_with_a_ttl_are_queued() {
        let queued = job_changed(Change::Added(Arc::new(finished(0, 900))));
        assert_eq!(queued, vec![Enqueue::Now(key())]);
        let mut running = finished(0, 900);
        running.status = None;
        assert!(job_changed(Change::Added(Arc::new(running))).is_empty());
    }
}
