//! The Job controller's pod writes (upstream `getPodsForJob` claiming,
//! `manageJob` creations and deletions, `deleteActivePods`,
//! `removeTrackingFinalizerFromPods`), with their events and expectations.

use std::collections::BTreeMap;
use std::sync::Arc;

use component_base::ownerref::{self, ClaimingController};
use component_base::selectors::Selector;
use futures::future::join_all;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodTemplateSpec};
use kube::{Resource, ResourceExt};

use super::reconcile::{JOB_TRACKING_FINALIZER, has_tracking_finalizer, uid};
use super::{Controller, indexed, per_index, pod_key};
use crate::controller_utils::{
    self, Key, SLOW_START_INITIAL_BATCH_SIZE, is_pod_ready, slow_start_batches,
};
use crate::error::Error;
use crate::events::EventSpec;

pub const SUCCESSFUL_CREATE_REASON: &str = "SuccessfulCreate";
pub const FAILED_CREATE_REASON: &str = "FailedCreate";
pub const SUCCESSFUL_DELETE_REASON: &str = "SuccessfulDelete";
pub const FAILED_DELETE_REASON: &str = "FailedDelete";

/// Upstream `removeTrackingFinalizerPatch`.
pub fn remove_finalizer_patch() -> serde_json::Value {
    serde_json::json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}})
}

/// The pod template of a job with the tracking finalizer appended
/// (upstream `appendJobCompletionFinalizerIfNotFound`).
pub fn template_with_finalizer(job: &Job) -> Option<PodTemplateSpec> {
    let mut template = job.spec.as_ref()?.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == JOB_TRACKING_FINALIZER) {
        finalizers.push(JOB_TRACKING_FINALIZER.into());
    }
    Some(template)
}

impl Controller {
    /// Upstream `getPodsForJob`: the job's pods (terminated ones too),
    /// adopting matching orphans and releasing non-matching pods; both
    /// patches add/remove the tracking finalizer as upstream's.
    pub(super) async fn claim_pods(
        &self,
        job: &Job,
        selector: &Selector,
    ) -> Result<Vec<Arc<Pod>>, Error> {
        let ns = job.metadata.namespace.clone();
        let job_uid = job.metadata.uid.clone().unwrap_or_default();
        let candidates = self.pods.state_filter(|p| {
            p.metadata.namespace == ns
                && ownerref::get_controller_of(&p.metadata).is_none_or(|r| r.uid == job_uid)
        });
        let refs: Vec<&Pod> = candidates.iter().map(Arc::as_ref).collect();
        let me = ClaimingController::from_resource(job);
        let plan = ownerref::plan_claims_by_selector(&me, selector, refs.iter().copied());
        let mut claimed: Vec<Arc<Pod>> = owned_arcs(&candidates, &plan.owned);
        let fin = [JOB_TRACKING_FINALIZER.to_string()];
        if !plan.adopt.is_empty() && self.can_adopt(job, &me).await {
            for pod in plan.adopt {
                let patch = serde_json::to_value(ownerref::adopt_patch(&me, uid(pod), &fin))?;
                let result = self
                    .pod_control
                    .patch_pod(&me.namespace, &pod.name_any(), patch)
                    .await;
                if let Some(p) = controller_utils::adopted(result)? {
                    claimed.push(Arc::new(p));
                }
            }
        }
        for pod in plan.release {
            let patch =
                serde_json::to_value(ownerref::release_patch(uid(pod), &[me.uid.as_str()], &fin))?;
            controller_utils::released(
                self.pod_control
                    .patch_pod(&me.namespace, &pod.name_any(), patch)
                    .await,
            )?;
        }
        Ok(claimed)
    }

    async fn can_adopt(&self, job: &Job, me: &ClaimingController) -> bool {
        match self.job_control.get(&me.namespace, &job.name_any()).await {
            Ok(fresh) => ownerref::recheck_deletion_timestamp(me, &fresh.metadata).is_ok(),
            Err(err) => {
                tracing::debug!(error = %err, "not adopting: cannot re-read job");
                false
            }
        }
    }

    /// Creates one pod per entry (its completion index for Indexed Jobs)
    /// in slow-start batches; returns how many were created (upstream
    /// `manageJob`'s creation half).
    pub(super) async fn create_pods(
        &self,
        job: &Job,
        key: &Key,
        indexes: &[Option<i32>],
        delayed: Option<&BTreeMap<i32, Pod>>,
    ) -> Result<i32, Error> {
        let count = indexes.len();
        let exp_key = key.to_string();
        let Some(template) = template_with_finalizer(job) else {
            return Err(Error::InvalidObject {
                object: exp_key,
                reason: "spec.template is missing".into(),
            });
        };
        self.expectations.expect_creations(&exp_key, count);
        let owner = ownerref::new_controller_ref_for(job);
        let ns = key.namespace.as_deref().unwrap_or_default();
        let name = job.name_any();
        let regarding = job.object_ref(&());
        let (mut created, mut attempted, mut first_error) = (0, 0, None);
        for batch in slow_start_batches(count, SLOW_START_INITIAL_BATCH_SIZE) {
            let these: Vec<(PodTemplateSpec, String)> = indexes[attempted..attempted + batch]
                .iter()
                .map(|ix| match ix {
                    Some(ix) => {
                        let mut t = indexed::template_for_index(&template, &name, *ix);
                        if let Some(delayed) = delayed {
                            per_index::annotate_failure_counts(&mut t, job, delayed.get(ix));
                        }
                        (t, indexed::name_prefix(&name, *ix))
                    }
                    None => (template.clone(), name.clone()),
                })
                .collect();
            attempted += batch;
            let results = join_all(
                these
                    .iter()
                    .map(|(t, prefix)| self.pod_control.create_pods(ns, t, prefix, owner.clone())),
            )
            .await;
            for result in results {
                match result {
                    Ok(pod) => {
                        created += 1;
                        let msg = format!("Created pod: {}", pod.name_any());
                        self.events.publish(
                            &regarding,
                            &EventSpec::normal(SUCCESSFUL_CREATE_REASON, msg),
                        );
                    }
                    Err(err) if err.is_namespace_terminating() => {}
                    Err(err) => {
                        self.expectations.creation_observed(&exp_key);
                        let msg = format!("Error creating: {}", err.api_message());
                        self.events
                            .publish(&regarding, &EventSpec::warning(FAILED_CREATE_REASON, msg));
                        first_error.get_or_insert(err);
                    }
                }
            }
            if first_error.is_some() {
                break;
            }
        }
        for _ in attempted..count {
            self.expectations.creation_observed(&exp_key);
        }
        first_error.map_or(Ok(created), Err)
    }

    /// Upstream `deleteJobPods`: finalizer off, then DELETE, with
    /// deletion expectations. Returns (ready deleted, deleted).
    pub(super) async fn delete_job_pods(
        &self,
        job: &Job,
        key: &Key,
        pods: &[&Pod],
    ) -> (i32, i32, Option<Error>) {
        let exp_key = key.to_string();
        self.expectations
            .expect_deletions(&exp_key, pods.iter().map(|p| pod_key(p)));
        let regarding = job.object_ref(&());
        let results = join_all(pods.iter().map(|p| async move {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            if has_tracking_finalizer(p) {
                self.pod_control
                    .patch_pod(ns, &p.name_any(), remove_finalizer_patch())
                    .await?;
            }
            self.pod_control.delete_pod(ns, &p.name_any()).await
        }))
        .await;
        let mut out = (0, 0, None);
        for (result, pod) in results.into_iter().zip(pods) {
            match result {
                Ok(()) => self.deleted(&regarding, pod, &mut out),
                Err(err) => {
                    self.expectations.deletion_observed(&exp_key, &pod_key(pod));
                    if err.is_not_found() {
                        self.deleted(&regarding, pod, &mut out);
                        continue;
                    }
                    let msg = format!("Error deleting: {}", err.api_message());
                    self.events
                        .publish(&regarding, &EventSpec::warning(FAILED_DELETE_REASON, msg));
                    out.2.get_or_insert(err);
                }
            }
        }
        out
    }

    fn deleted(&self, regarding: &ObjectReference, pod: &Pod, out: &mut (i32, i32, Option<Error>)) {
        out.1 += 1;
        if is_pod_ready(pod) {
            out.0 += 1;
        }
        let msg = format!("Deleted pod: {}", pod.name_any());
        self.events
            .publish(regarding, &EventSpec::normal(SUCCESSFUL_DELETE_REASON, msg));
    }

    /// Upstream `deleteActivePods`: DELETE keeping finalizers (they are
    /// removed once the pods are counted). Returns (ready deleted, deleted).
    pub(super) async fn delete_active_pods(
        &self,
        job: &Job,
        pods: &[&Pod],
    ) -> (i32, i32, Option<Error>) {
        let regarding = job.object_ref(&());
        let results = join_all(pods.iter().map(|p| {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            self.pod_control
                .delete_pod(ns, p.metadata.name.as_deref().unwrap_or_default())
        }))
        .await;
        let mut out = (0, 0, None);
        for (result, pod) in results.into_iter().zip(pods) {
            match result {
                Ok(()) => self.deleted(&regarding, pod, &mut out),
                Err(err) if err.is_not_found() => self.deleted(&regarding, pod, &mut out),
                Err(err) => {
                    out.2.get_or_insert(err);
                }
            }
        }
        out
    }

    /// Upstream `removeTrackingFinalizerFromPods`: returns the UIDs whose
    /// finalizer is gone (NotFound counts as gone) and the first error.
    pub(super) async fn remove_finalizers(
        &self,
        key: &str,
        pods: &[&Pod],
    ) -> (Vec<String>, Option<Error>) {
        self.finalizers
            .expect_removed(key, pods.iter().map(|p| uid(p).to_string()));
        let results = join_all(pods.iter().map(|p| {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            self.pod_control.patch_pod(
                ns,
                p.metadata.name.as_deref().unwrap_or_default(),
                remove_finalizer_patch(),
            )
        }))
        .await;
        let (mut removed, mut first_error) = (Vec::new(), None);
        for (result, pod) in results.into_iter().zip(pods) {
            match result {
                Ok(_) => removed.push(uid(pod).to_string()),
                Err(err) => {
                    self.finalizers.observed(key, uid(pod));
                    if err.is_not_found() {
                        removed.push(uid(pod).to_string());
                    } else {
                        first_error.get_or_insert(err);
                    }
                }
            }
        }
        (removed, first_error)
    }
}

fn owned_arcs(all: &[Arc<Pod>], owned: &[&Pod]) -> Vec<Arc<Pod>> {
    all.iter()
        .filter(|a| owned.iter().any(|o| std::ptr::eq(a.as_ref(), *o)))
        .cloned()
        .collect()
}
