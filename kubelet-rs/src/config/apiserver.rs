//! Pods bound to this node, from the apiserver (`fieldSelector spec.nodeName=<node>`).

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

/// What the source reports to the kubelet's sync loop.
#[derive(Clone, Debug)]
pub enum PodUpdate {
    /// Added or changed.
    Upsert(Pod),
    /// Gone from the apiserver (deleted with grace 0 or by someone else).
    Removed(Pod),
    /// The initial list has been delivered.
    Synced,
}

/// The field selector upstream uses for the kubelet's pod watch.
pub fn node_field_selector(node_name: &str) -> String {
    format!("spec.nodeName={node_name}")
}

/// Watches pods of `node_name` until cancelled; the watcher re-lists and retries
/// with back-off on its own.
pub async fn watch_pods(
    client: Client,
    node_name: String,
    shutdown: CancellationToken,
    mut emit: impl FnMut(PodUpdate),
) {
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&node_field_selector(&node_name));
    let mut stream = watcher::watcher(pods, config).default_backoff().boxed();
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = stream.next() => n,
        };
        match next {
            None => return,
            // Mirror pods only reflect static pods; the file source runs those.
            Some(Ok(Event::Apply(pod) | Event::InitApply(pod)))
                if super::file::is_mirror_pod(&pod) => {}
            Some(Ok(Event::Delete(pod))) if super::file::is_mirror_pod(&pod) => {}
            Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => emit(PodUpdate::Upsert(pod)),
            Some(Ok(Event::Delete(pod))) => emit(PodUpdate::Removed(pod)),
            Some(Ok(Event::InitDone)) => emit(PodUpdate::Synced),
            Some(Ok(Event::Init)) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
    }
}
