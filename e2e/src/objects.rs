//! Small object builders and state readers for the deployment/service
//! end-to-end test: pods, their readiness, ReplicaSet revisions and kubectl.

use std::collections::BTreeMap;

use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
use tokio::process::Command;

use crate::{E2eError, cluster, prereq};

/// The annotation the deployment controller stamps on Deployments and their
/// ReplicaSets (what `kubectl rollout history` lists).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// True when the pod is being deleted (it no longer counts for its owner).
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// True when the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// (pods not being deleted, of which Ready): what a rollout must keep within
/// bounds.
pub fn live_and_ready(pods: &[&Pod]) -> (usize, usize) {
    let live: Vec<&&Pod> = pods.iter().filter(|p| !is_terminating(p)).collect();
    let ready = live.iter().filter(|p| is_ready(p)).count();
    (live.len(), ready)
}

/// Sum of the containers' restart counts.
pub fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// The first container's image of a pod template or pod spec.
pub fn first_image(spec: Option<&k8s_openapi::api::core::v1::PodSpec>) -> Option<String> {
    spec?.containers.first()?.image.clone()
}

/// ReplicaSet revision -> first container image, from the revision
/// annotations.
pub fn revisions(replica_sets: &[ReplicaSet]) -> BTreeMap<i64, String> {
    replica_sets
        .iter()
        .filter_map(|rs| {
            let rev = rs
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION_ANNOTATION)?
                .parse()
                .ok()?;
            let image = first_image(rs.spec.as_ref()?.template.as_ref()?.spec.as_ref())?;
            Some((rev, image))
        })
        .collect()
}

/// The revision numbers in `kubectl rollout history` output (the first
/// column of the rows after the "REVISION" header).
pub fn history_revisions(stdout: &str) -> Vec<i64> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Runs the stock kubectl of the pinned release (from `hack/kube-bin/path`,
/// like `hack/local-up`'s; a kubectl of another version from PATH could fail
/// on skew) with the cluster's kubeconfig; stdout on success.
pub async fn kubectl(args: &[&str]) -> Result<String, E2eError> {
    // The first lookup may download or build kubectl (minutes): off the
    // runtime's threads, so the test's other tasks keep running.
    let bin = tokio::task::spawn_blocking(|| prereq::stock_bin("kubectl"))
        .await
        .map_err(|e| E2eError::Check(format!("looking up the stock kubectl: {e}")))?
        .map_err(E2eError::Check)?;
    let env = std::env::var("KUBECONFIG").ok();
    let kubeconfig = cluster::kubeconfig_path(env.as_deref(), &cluster::workspace_root());
    let out = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(args)
        .output()
        .await
        .map_err(|source| E2eError::Spawn {
            command: format!("{} {}", bin.display(), args.join(" ")),
            source,
        })?;
    if !out.status.success() {
        return Err(E2eError::Check(format!(
            "kubectl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{
        api::core::v1::{ContainerStatus, PodCondition, PodStatus},
        apimachinery::pkg::apis::meta::v1::Time,
    };

    fn pod(ready: bool, terminating: bool) -> Pod {
        let mut p = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        if terminating {
            p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        }
        p
    }

    #[test]
    fn live_and_ready_ignore_terminating_pods() {
        let cases = [
            (vec![], (0, 0)),
            (vec![pod(true, false), pod(false, false)], (2, 1)),
            (vec![pod(true, true), pod(true, false)], (1, 1)),
            (vec![pod(false, true)], (0, 0)),
        ];
        for (pods, want) in cases {
            let refs: Vec<&Pod> = pods.iter().collect();
            assert_eq!(live_and_ready(&refs), want);
        }
    }

    #[test]
    fn restart_counts_add_up_over_containers() {
        let mut p = Pod::default();
        assert_eq!(restart_count(&p), 0);
        p.status = Some(PodStatus {
            container_statuses: Some(vec![
                ContainerStatus {
                    restart_count: 2,
                    ..Default::default()
                },
                ContainerStatus {
                    restart_count: 1,
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        assert_eq!(restart_count(&p), 3);
    }

    #[test]
    fn history_rows_are_parsed_after_the_header() {
        let out =
            "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n";
        assert_eq!(history_revisions(out), vec![2, 3]);
        assert!(history_revisions("error\n").is_empty());
    }
}
