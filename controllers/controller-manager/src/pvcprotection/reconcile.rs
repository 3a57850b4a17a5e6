//! The pure half of the PVC protection controller (upstream
//! `pkg/controller/volume/pvcprotection`): which pods keep a deleted claim
//! alive, and which claims a pod event concerns.

use k8s_openapi::api::core::v1::{ContainerStatus, PersistentVolumeClaim, Pod, Volume};

/// Upstream `volumeutil.PVCProtectionFinalizer`.
pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";

/// Upstream `ephemeral.VolumeClaimName`: `<pod>-<volume>`.
pub fn ephemeral_claim_name(pod: &Pod, volume: &Volume) -> String {
    format!(
        "{}-{}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        volume.name
    )
}

/// Upstream `ephemeral.VolumeIsForPod`: the claim is controlled by the pod.
fn ephemeral_is_for_pod(pod: &Pod, pvc: &PersistentVolumeClaim) -> bool {
    pvc.metadata.namespace == pod.metadata.namespace
        && pod.metadata.uid.as_deref().is_some_and(|uid| {
            pvc.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
}

fn not_running(statuses: Option<&Vec<ContainerStatus>>) -> bool {
    statuses.into_iter().flatten().all(|s| {
        s.state
            .as_ref()
            .is_some_and(|st| st.terminated.is_some() || st.waiting.is_some())
    })
}

/// Upstream `volumeutil.IsPodTerminated`: a terminal phase, or deleted with
/// no container running.
pub fn is_pod_terminated(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Failed") | Some("Succeeded"))
        || (pod.metadata.deletion_timestamp.is_some()
            && not_running(status.and_then(|s| s.init_container_statuses.as_ref()))
            && not_running(status.and_then(|s| s.container_statuses.as_ref()))
            && not_running(status.and_then(|s| s.ephemeral_container_statuses.as_ref())))
}

/// Upstream `podIsShutDown`: deleted with a zero grace period.
fn pod_is_shut_down(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        && pod.metadata.deletion_grace_period_seconds == Some(0)
}

fn volumes(pod: &Pod) -> &[Volume] {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
}

/// Upstream `podUsesPVCForDeletion`: only scheduled pods count (the kubelet
/// will not start a pod whose claim is being deleted); a pod shut down with
/// zero grace no longer holds its generic ephemeral claim.
pub fn pod_uses_pvc(pod: &Pod, pvc: &PersistentVolumeClaim) -> bool {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if !scheduled || pod.metadata.namespace != pvc.metadata.namespace {
        return false;
    }
    let name = pvc.metadata.name.as_deref().unwrap_or_default();
    volumes(pod).iter().any(|v| {
        v.persistent_volume_claim
            .as_ref()
            .is_some_and(|c| c.claim_name == name)
            || (!pod_is_shut_down(pod)
                && v.ephemeral.is_some()
                && ephemeral_claim_name(pod, v) == name
                && ephemeral_is_for_pod(pod, pvc))
    })
}

/// Upstream `enqueuePVCs`: the claims a pod event may free — only when the
/// pod is deleted, terminated or not scheduled (others keep their claims).
pub fn claims_to_check(pod: &Pod, deleted: bool) -> Vec<String> {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if !deleted && !is_pod_terminated(pod) && scheduled {
        return Vec::new();
    }
    volumes(pod)
        .iter()
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(c.claim_name.clone())
            } else if v.ephemeral.is_some() {
                Some(ephemeral_claim_name(pod, v))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, EphemeralVolumeSource,
        PersistentVolumeClaimVolumeSource, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
    use kube::api::ObjectMeta;

    use super::*;

    fn pvc(name: &str, owner_uid: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                owner_references: owner_uid.map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Pod".into(),
                        name: "pod".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn pod(node: &str, volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("pod".into()),
                namespace: Some("ns".into()),
                uid: Some("pod-uid".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                volumes: Some(volumes),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn claim_volume(claim: &str) -> Volume {
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ephemeral_volume() -> Volume {
        Volume {
            name: "scratch".into(),
            ephemeral: Some(EphemeralVolumeSource::default()),
            ..Default::default()
        }
    }

    /// Upstream `TestPVCProtectionController` usage cases.
    #[test]
    fn which_pods_use_a_claim() {
        let mut shut_down = pod("node", vec![ephemeral_volume()]);
        shut_down.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        shut_down.metadata.deletion_grace_period_seconds = Some(0);
        let mut terminated = pod("node", vec![claim_volume("c")]);
        terminated.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        let cases = [
            (
                "scheduled pod with the claim",
                pod("node", vec![claim_volume("c")]),
                pvc("c", None),
                true,
            ),
            (
                "unscheduled pod",
                pod("", vec![claim_volume("c")]),
                pvc("c", None),
                false,
            ),
            (
                "other claim",
                pod("node", vec![claim_volume("x")]),
                pvc("c", None),
                false,
            ),
            // A finished pod still exists: upstream keeps the claim until it is deleted.
            ("terminated pod", terminated, pvc("c", None), true),
            (
                "owned ephemeral claim",
                pod("node", vec![ephemeral_volume()]),
                pvc("pod-scratch", Some("pod-uid")),
                true,
            ),
            (
                "ephemeral claim of another pod",
                pod("node", vec![ephemeral_volume()]),
                pvc("pod-scratch", Some("other")),
                false,
            ),
            (
                "shut-down pod's ephemeral claim",
                shut_down,
                pvc("pod-scratch", Some("pod-uid")),
                false,
            ),
        ];
        for (name, pod, pvc, want) in cases {
            assert_eq!(pod_uses_pvc(&pod, &pvc), want, "{name}");
        }
    }

    #[test]
    fn pod_events_check_claims_only_when_they_may_be_freed() {
        let running = pod("node", vec![claim_volume("c"), ephemeral_volume()]);
        assert!(claims_to_check(&running, false).is_empty());
        assert_eq!(claims_to_check(&running, true), vec!["c", "pod-scratch"]);
        assert_eq!(
            claims_to_check(&pod("", vec![claim_volume("c")]), false),
            vec!["c"]
        );
        let mut deleting = pod("node", vec![claim_volume("c")]);
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(claims_to_check(&deleting, false), vec!["c"]);
        deleting.status = Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert!(claims_to_check(&deleting, false).is_empty());
    }
}
