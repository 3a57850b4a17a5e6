//! The status manager: the only writer of pod status, and the one that finally deletes
//! a terminated pod (grace 0) once the kubelet is done with it.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};

use crate::error::{Error, is_api_status};
use crate::kuberuntime::termination_message::truncate_pod_messages;

pub struct StatusManager {
    client: Client,
    /// uid → last status written (avoids patching unchanged statuses).
    written: Mutex<HashMap<String, PodStatus>>,
}

/// Status with volatile times removed, for change detection.
fn comparable(status: &PodStatus) -> PodStatus {
    let strip = |c: &PodCondition| PodCondition {
        last_probe_time: None,
        last_transition_time: None,
        ..c.clone()
    };
    PodStatus {
        conditions: status
            .conditions
            .as_ref()
            .map(|cs| cs.iter().map(strip).collect()),
        ..status.clone()
    }
}

/// Whether writing `new` over `old` changes anything visible.
pub fn status_differs(old: Option<&PodStatus>, new: &PodStatus) -> bool {
    old.is_none_or(|o| comparable(o) != comparable(new))
}

fn key(pod: &Pod) -> (String, String, String) {
    let m = &pod.metadata;
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
        m.uid.clone().unwrap_or_default(),
    )
}

impl StatusManager {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Patches the pod's status subresource if it changed. A 404/409 (pod gone or
    /// replaced under the same name) is not an error: there is nothing to update.
    pub async fn set_pod_status(&self, pod: &Pod, status: &PodStatus) -> Result<bool, Error> {
        let (ns, name, uid) = key(pod);
        // normalizeStatus: a pod's termination messages share 12 KiB.
        let mut status = status.clone();
        let containers = pod.spec.as_ref().map_or(0, |s| {
            s.containers.len() + s.init_containers.as_ref().map_or(0, Vec::len)
        });
        truncate_pod_messages(&mut status, containers);
        let status = &status;
        let known = self
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&uid)
            .cloned();
        let baseline = known.as_ref().or(pod.status.as_ref());
        if !status_differs(baseline, status) {
            return Ok(false);
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        // The uid in the body makes the apiserver reject a patch for a recreated pod.
        // Static pods report through their mirror pod, whose uid differs.
        let body = if crate::types::is_static_pod(pod) {
            serde_json::json!({"status": status})
        } else {
            serde_json::json!({"metadata": {"uid": uid}, "status": status})
        };
        match pods
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {
                tracing::debug!(pod = %format!("{ns}/{name}"), phase = ?status.phase, "Status for pod updated successfully");
                self.written
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(uid, status.clone());
                Ok(true)
            }
            Err(e) if is_api_status(&e, 404) || is_api_status(&e, 409) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a pod whose containers are all gone (`canBeDeleted`), with grace 0
    /// and a uid precondition like upstream.
    pub async fn delete_pod(&self, pod: &Pod) -> Result<(), Error> {
        let (ns, name, uid) = key(pod);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match pods.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{name}"), "Pod fully terminated and removed from etcd");
            }
            Err(e) if is_api_status(&e, 404) || is_api_status(&e, 409) => {}
            Err(e) => return Err(e.into()),
        }
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&uid);
        Ok(())
    }

    /// The latest status written for pod `uid` (upstream `GetPodStatus`).
    pub fn pod_status(&self, uid: &str) -> Option<PodStatus> {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .cloned()
    }

    pub fn forget(&self, uid: &str) {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn transition_times_alone_are_no_change() {
        let cond = |t: i64| PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(Timestamp::from_second(t).expect("ts"))),
            ..Default::default()
        };
        let a = PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![cond(1)]),
            ..Default::default()
        };
        let b = PodStatus {
            conditions: Some(vec![cond(2)]),
            ..a.clone()
        };
        assert!(!status_differs(Some(&a), &b));
        let c = PodStatus {
            phase: Some("Failed".into()),
            ..a.clone()
        };
        assert!(status_differs(Some(&a), &c));
        assert!(status_differs(None, &a));
    }
}
