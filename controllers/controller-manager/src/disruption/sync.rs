//! One PDB's sync (upstream `sync`, `trySync`, `failSafe`,
//! `writePdbStatus`): read the caches, decide with [`super::reconcile`],
//! write the status subresource only when it changed.

use std::time::Duration;

use component_base::selectors::{Selector, SelectorError};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use kube::runtime::reflector::ObjectRef;

use super::reconcile::{
    Counts, ExpectedCountError, build_disrupted_pods, count_healthy, desired_status,
    expected_pod_count, fail_safe_status,
};
use super::{Controller, pdb_reference, pod_reference};
use crate::controller::{Key, SyncResult};
use crate::error::Error;
use crate::events::EventSpec;

/// Why a `trySync` failed; anything but a conflict ends in the fail-safe
/// status (no disruptions allowed, `SyncFailed`).
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Api(#[from] Error),
    #[error(transparent)]
    ExpectedCount(#[from] ExpectedCountError),
    #[error(transparent)]
    Selector(#[from] SelectorError),
}

impl Controller {
    /// Upstream `sync`.
    pub(super) async fn sync_pdb(&self, key: &Key) -> SyncResult {
        let ns = key.namespace.as_deref().unwrap_or_default();
        let Some(pdb) = self.pdbs.get(&ObjectRef::new(&key.name).within(ns)) else {
            return Ok(None);
        };
        match self.try_sync(&pdb, Timestamp::now()).await {
            Ok(recheck) => Ok(recheck),
            // A conflict is retried without the fail-safe.
            Err(SyncError::Api(err)) if err.is_conflict() => Err(err),
            Err(err) => {
                tracing::error!(pdb = %key, error = %err, "Failed to sync PDB");
                let status = fail_safe_status(&pdb, &err.to_string(), Timestamp::now());
                self.write_status(&pdb, status).await?;
                Ok(None)
            }
        }
    }

    /// Upstream `trySync`: the status write, and when to look again at
    /// `disruptedPods` entries still waiting for their deletion.
    async fn try_sync(
        &self,
        pdb: &PodDisruptionBudget,
        now: Timestamp,
    ) -> Result<Option<Duration>, SyncError> {
        let regarding = pdb_reference(pdb);
        let pods = match self.pods_for_pdb(pdb) {
            Ok(pods) => pods,
            Err(err) => {
                let msg = format!("Failed to get pods: {err}");
                self.events
                    .publish(&regarding, &EventSpec::warning("NoPods", msg));
                return Err(err.into());
            }
        };
        if pods.is_empty() {
            self.events.publish(
                &regarding,
                &EventSpec::normal("NoPods", "No matching pods found"),
            );
        }
        let pod_refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let expected = match expected_pod_count(pdb, &pod_refs, self.workloads.as_ref()) {
            Ok(expected) => expected,
            Err(err) => {
                let msg = format!("Failed to calculate the number of expected pods: {err}");
                self.events.publish(
                    &regarding,
                    &EventSpec::warning("CalculateExpectedPodCountFailed", msg),
                );
                return Err(err.into());
            }
        };
        if !expected.unmanaged_pods.is_empty() {
            self.events.publish(
                &regarding,
                &EventSpec::warning("UnmanagedPods", unmanaged_message(pdb)),
            );
        }
        let disrupted = build_disrupted_pods(pdb, &pod_refs, now);
        self.warn_not_deleted(pdb, &pods, &disrupted.not_deleted);
        let counts = Counts {
            current_healthy: count_healthy(&pod_refs, &disrupted.pods, now),
            desired_healthy: expected.desired_healthy,
            expected_count: expected.expected_count,
            disrupted_pods: disrupted.pods,
        };
        if let Some(status) = desired_status(pdb, counts, now) {
            self.write_status(pdb, status).await?;
        }
        Ok(disrupted
            .recheck_at
            .map(|at| Duration::try_from(at.duration_since(now)).unwrap_or_default()))
    }

    /// Upstream `getPodsForPdb`: the pods in the PDB's namespace its
    /// selector matches.
    fn pods_for_pdb(
        &self,
        pdb: &PodDisruptionBudget,
    ) -> Result<Vec<std::sync::Arc<Pod>>, SelectorError> {
        let selector =
            Selector::from_label_selector(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))?;
        let ns = pdb.metadata.namespace.as_deref();
        Ok(self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == ns)
            .filter(|p| selector.matches_labels(p.metadata.labels.as_ref()))
            .collect())
    }

    /// Upstream's `NotDeleted` event (its message names the PDB's
    /// namespace twice; kept letter for letter).
    fn warn_not_deleted(
        &self,
        pdb: &PodDisruptionBudget,
        pods: &[std::sync::Arc<Pod>],
        names: &[String],
    ) {
        let ns = pdb.metadata.namespace.as_deref().unwrap_or_default();
        for pod in pods
            .iter()
            .filter(|p| names.iter().any(|n| p.metadata.name.as_deref() == Some(n)))
        {
            tracing::info!(pod = ?pod.metadata.name, "pod was expected to be deleted but it wasn't, updating PDB");
            let msg = format!("Pod was expected by PDB {ns}/{ns} to be deleted but it wasn't");
            self.events
                .publish(&pod_reference(pod), &EventSpec::warning("NotDeleted", msg));
        }
    }

    /// Upstream `writePdbStatus`: one update of the status subresource,
    /// not retried here (the queue retries the key).
    async fn write_status(
        &self,
        pdb: &PodDisruptionBudget,
        status: PodDisruptionBudgetStatus,
    ) -> Result<(), Error> {
        let mut updated = pdb.clone();
        updated.status = Some(status);
        let ns = pdb.metadata.namespace.as_deref().unwrap_or_default();
        self.pdb_control.update_status(ns, &updated).await?;
        Ok(())
    }
}

fn unmanaged_message(pdb: &PodDisruptionBudget) -> String {
    let selector = pdb
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|| "nil".into());
    format!(
        "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be \
         unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may \
         result in undefined behavior. To account for these pods please set \
         \".spec.minAvailable\" field of the PDB to an integer value."
    )
}
