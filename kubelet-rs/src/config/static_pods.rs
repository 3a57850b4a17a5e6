//! The static pod loop: rereads `staticPodPath` every `fileCheckFrequency`, hands
//! added/changed/removed pods to the sync loop and keeps mirror pods in the apiserver.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::file::{mirror_pod, read_static_pods};
use crate::error::is_api_status;
use crate::types::{CONFIG_HASH_ANNOTATION, CONFIG_MIRROR_ANNOTATION, PodUpdate};

fn hash(pod: &Pod) -> Option<&String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
}

fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Creates the mirror pod, or replaces one whose hash does not match.
async fn ensure_mirror(client: &Client, node_name: &str, pod: &Pod) {
    let (ns, name) = key(pod);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let existing = match pods.get_opt(&name).await {
        Ok(e) => e,
        Err(e) => return tracing::warn!(pod = %name, error = %e, "reading mirror pod"),
    };
    let matches = existing.as_ref().is_some_and(|m| {
        m.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CONFIG_MIRROR_ANNOTATION))
            == hash(pod)
    });
    if matches {
        return;
    }
    if existing.is_some()
        && let Err(e) = pods
            .delete(
                &name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            )
            .await
    {
        return tracing::warn!(pod = %name, error = %e, "deleting outdated mirror pod");
    }
    let node = Api::<Node>::all(client.clone())
        .get_opt(node_name)
        .await
        .ok()
        .flatten();
    match pods
        .create(&PostParams::default(), &mirror_pod(pod, node.as_ref()))
        .await
    {
        Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), "Created mirror pod"),
        Err(e) if is_api_status(&e, 409) => {}
        Err(e) => tracing::warn!(pod = %name, error = %e, "Failed creating a mirror pod"),
    }
}

async fn delete_mirror(client: &Client, pod: &Pod) {
    let (ns, name) = key(pod);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match pods
        .delete(
            &name,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_api_status(&e, 404) => {}
        Err(e) => tracing::warn!(pod = %name, error = %e, "deleting mirror pod"),
    }
}

/// Runs the static pod source until cancelled, reporting through `emit`.
pub async fn run(
    client: Client,
    dir: PathBuf,
    node_name: String,
    every: Duration,
    shutdown: CancellationToken,
    mut emit: impl FnMut(PodUpdate),
) {
    let mut current: HashMap<(String, String), Pod> = HashMap::new();
    loop {
        let read = read_static_pods(&dir, &node_name);
        let mut next: HashMap<(String, String), Pod> = HashMap::new();
        for pod in read {
            let k = key(&pod);
            let changed = current.get(&k).is_none_or(|old| hash(old) != hash(&pod));
            if changed {
                if let Some(old) = current.get(&k)
                    && old.metadata.uid != pod.metadata.uid
                {
                    emit(PodUpdate::Removed(old.clone()));
                }
                emit(PodUpdate::Upsert(pod.clone()));
            }
            ensure_mirror(&client, &node_name, &pod).await;
            next.insert(k, pod);
        }
        for (k, old) in &current {
            if !next.contains_key(k) {
                emit(PodUpdate::Removed(old.clone()));
                delete_mirror(&client, old).await;
            }
        }
        current = next;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every.max(Duration::from_secs(1))) => {}
        }
    }
}
