//! The Job controller (upstream `pkg/controller/job`): runs pods to
//! completion for each Job, counting finished pods through the
//! `batch.kubernetes.io/job-tracking` finalizer. Pure decisions in
//! [`reconcile`], [`accounting`], [`indexed`], [`per_index`] and
//! [`failure_policy`]; the sync in `sync.rs`, pod writes in `pods.rs`,
//! in-memory expectations and back-off in [`tracking`].

pub mod accounting;
pub mod failure_policy;
#[cfg(test)]
mod failure_policy_tests;
pub mod indexed;
#[cfg(test)]
mod indexed_tests;
pub mod per_index;
#[cfg(test)]
mod per_index_tests;
mod pods;
pub mod reconcile;
#[cfg(test)]
mod reconcile_tests;
mod sync;
#[cfg(test)]
mod tests;
pub mod tracking;

use std::sync::Arc;

use component_base::informers::Change;
use component_base::ownerref;
use component_base::selectors::Selector;
use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::control::{KubeObjectControl, KubePodControl, ObjectControl, PodControl};
use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, KeyedController, Reconciler, SyncResult,
    object_key,
};
use crate::controller_utils::{Expectations, Key};
use crate::error::Error;
use crate::events::EventSink;
use reconcile::has_tracking_finalizer;
use tracking::{BackoffStore, FinalizerExpectations};

/// Upstream `names.JobController`.
pub const JOB_CONTROLLER: &str = "job-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: JOB_CONTROLLER,
    aliases: &["job"],
    disabled_by_default: false,
    client_name: "job-controller",
    watches: &["Job", "Pod"],
    concurrent_syncs: |c| c.concurrent.job,
    start: |ctx| Box::pin(start(ctx)),
};

pub(crate) struct Controller {
    jobs: Store<Job>,
    pods: Store<Pod>,
    pod_control: Arc<dyn PodControl>,
    job_control: Arc<dyn ObjectControl<Job>>,
    expectations: Expectations,
    finalizers: FinalizerExpectations,
    backoff: BackoffStore,
    events: EventSink,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let job_informer = ctx.informers.informer::<Job>();
    let pod_informer = ctx.informers.informer::<Pod>();
    let controller = Arc::new(Controller {
        jobs: job_informer.store().clone(),
        pods: pod_informer.store().clone(),
        pod_control: Arc::new(KubePodControl::new(ctx.client.clone())),
        job_control: Arc::new(KubeObjectControl::new(ctx.client.clone())),
        expectations: Expectations::default(),
        finalizers: FinalizerExpectations::default(),
        backoff: BackoffStore::default(),
        events: EventSink::new(&ctx.events, JOB_CONTROLLER),
    });
    KeyedController::new(JOB_CONTROLLER, controller, RateLimitingQueue::new("job"))
        .watches(&job_informer, |_, change| object_key(change))
        .watches(&pod_informer, Controller::pod_changed)
        .run(&ctx)
        .await
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_job(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.jobs
            .state()
            .iter()
            .map(|j| Key::of(j.as_ref()).into())
            .collect()
    }
}

fn pod_key(pod: &Pod) -> String {
    Key::of(pod).to_string()
}

/// The job key a pod's controller reference names, if it is a Job.
fn owner_job_key(pod: &Pod) -> Option<Key> {
    let owner = ownerref::get_controller_of(&pod.metadata)?;
    (owner.kind == "Job" && owner.api_version.starts_with("batch/"))
        .then(|| Key::new(pod.metadata.namespace.as_deref(), &owner.name))
}

impl Controller {
    fn pod_changed(&self, change: Change<Pod>) -> Vec<Enqueue> {
        match change {
            Change::Added(pod) => self.pod_added(&pod),
            Change::Updated { old, new } => self.pod_updated(&old, &new),
            Change::Deleted(pod) => self.pod_gone(&pod, true),
            Change::Resync => Vec::new(),
        }
    }

    /// Upstream `resolveControllerRef`.
    fn owner_of(&self, pod: &Pod) -> Option<Arc<Job>> {
        let owner = ownerref::get_controller_of(&pod.metadata)?;
        let key = owner_job_key(pod)?;
        let job = self
            .jobs
            .get(&ObjectRef::new(&key.name).within(key.namespace.as_deref()?))?;
        (job.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(job)
    }

    /// Upstream `getPodJobs`: unfinished Jobs whose selector matches an
    /// orphan pod.
    fn matching_jobs(&self, pod: &Pod) -> Vec<Enqueue> {
        let ns = pod.metadata.namespace.as_deref();
        self.jobs
            .state()
            .into_iter()
            .filter(|j| j.metadata.namespace.as_deref() == ns && !reconcile::is_finished(j))
            .filter(|j| {
                Selector::from_label_selector(j.spec.as_ref().and_then(|s| s.selector.as_ref()))
                    .is_ok_and(|s| !s.is_empty() && s.matches_labels(pod.metadata.labels.as_ref()))
            })
            .map(|j| Key::of(j.as_ref()).into())
            .collect()
    }

    /// Keys for a pod whose Job is gone but whose finalizer still holds it:
    /// the sync of that key releases it (upstream `enqueueOrphanPod`).
    fn orphan_key(&self, pod: &Pod) -> Vec<Enqueue> {
        match owner_job_key(pod) {
            Some(key) if has_tracking_finalizer(pod) => vec![key.into()],
            _ => Vec::new(),
        }
    }

    fn pod_added(&self, pod: &Pod) -> Vec<Enqueue> {
        if pod.metadata.deletion_timestamp.is_some() {
            return self.pod_gone(pod, false);
        }
        if let Some(job) = self.owner_of(pod) {
            let key = Key::of(job.as_ref());
            self.expectations.creation_observed(&key.to_string());
            return vec![key.into()];
        }
        if ownerref::get_controller_of(&pod.metadata).is_none() {
            return self.matching_jobs(pod);
        }
        self.orphan_key(pod)
    }

    fn pod_updated(&self, old: &Pod, new: &Pod) -> Vec<Enqueue> {
        if old.metadata.resource_version == new.metadata.resource_version {
            return Vec::new();
        }
        let mut keys = Vec::new();
        if new.metadata.deletion_timestamp.is_some()
            && old.metadata.deletion_timestamp.is_none()
            && let Some(job) = self.owner_of(new)
        {
            let key = Key::of(job.as_ref()).to_string();
            self.expectations.deletion_observed(&key, &pod_key(new));
        }
        if let Some(job) = self.owner_of(new) {
            let key = Key::of(job.as_ref());
            if !has_tracking_finalizer(new) {
                self.finalizers
                    .observed(&key.to_string(), reconcile::uid(new));
            }
            keys.push(key.into());
        } else if ownerref::get_controller_of(&new.metadata).is_none() {
            keys.extend(self.matching_jobs(new));
        } else {
            keys.extend(self.orphan_key(new));
        }
        if let Some(job) = self.owner_of(old) {
            let key: Enqueue = Key::of(job.as_ref()).into();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// Upstream `deletePod`: `final_state` when the pod left the cache
    /// (its finalizer cannot be pending any more).
    fn pod_gone(&self, pod: &Pod, final_state: bool) -> Vec<Enqueue> {
        let Some(job) = self.owner_of(pod) else {
            return self.orphan_key(pod);
        };
        let key = Key::of(job.as_ref());
        let k = key.to_string();
        self.expectations.deletion_observed(&k, &pod_key(pod));
        if final_state || !has_tracking_finalizer(pod) {
            self.finalizers.observed(&k, reconcile::uid(pod));
        }
        vec![key.into()]
    }
}
