//! The node's heartbeat Lease `kube-node-lease/<node>` (upstream `pkg/kubelet/nodelease`
//! and `component-helpers/apimachinery/lease`).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, is_api_status};

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Upstream renews at a quarter of the lease duration.
pub const RENEW_INTERVAL_FRACTION: f64 = 0.25;

/// The lease as the kubelet wants it, keeping the existing object's metadata.
pub fn desired_lease(
    base: Option<Lease>,
    node_name: &str,
    duration_seconds: i32,
    node: Option<&Node>,
    now: jiff::Timestamp,
) -> Lease {
    let mut lease = base.unwrap_or_else(|| Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(node_name.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            ..Default::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(node_name.into());
    spec.lease_duration_seconds = Some(duration_seconds);
    spec.renew_time = Some(MicroTime(now));
    // Owned by the Node so it is garbage-collected with it.
    let has_owner = lease
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| !o.is_empty());
    if !has_owner && let Some(uid) = node.and_then(|n| n.metadata.uid.clone()) {
        lease.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node_name.into(),
            uid,
            ..Default::default()
        }]);
    }
    lease
}

/// Creates or renews the lease once.
pub async fn renew_once(
    client: &Client,
    node_name: &str,
    duration_seconds: i32,
) -> Result<Lease, Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get_opt(node_name).await?;
    let existing = leases.get_opt(node_name).await?;
    let creating = existing.is_none();
    let lease = desired_lease(
        existing,
        node_name,
        duration_seconds,
        node.as_ref(),
        jiff::Timestamp::now(),
    );
    let result = if creating {
        leases.create(&PostParams::default(), &lease).await
    } else {
        leases
            .replace(node_name, &PostParams::default(), &lease)
            .await
    };
    Ok(result?)
}

/// Renews every `duration * 0.25` until cancelled; retries sooner after a failure.
pub async fn run(
    client: Client,
    node_name: String,
    duration_seconds: i32,
    shutdown: CancellationToken,
) {
    let interval = Duration::from_secs_f64(f64::from(duration_seconds) * RENEW_INTERVAL_FRACTION);
    let mut retry = Duration::from_millis(200);
    loop {
        let wait = match renew_once(&client, &node_name, duration_seconds).await {
            Ok(_) => {
                retry = Duration::from_millis(200);
                interval
            }
            Err(Error::Kube(e)) if is_api_status(&e, 409) => Duration::ZERO,
            Err(e) => {
                tracing::error!(error = %e, "failed to ensure lease exists, will retry");
                retry = (retry * 2).min(Duration::from_secs(7));
                retry
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_is_owned_by_node() {
        let node = Node {
            metadata: kube::api::ObjectMeta {
                name: Some("n1".into()),
                uid: Some("uid-n1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let now = jiff::Timestamp::from_second(100).expect("ts");
        let lease = desired_lease(None, "n1", 40, Some(&node), now);
        let spec = lease.spec.clone().unwrap_or_default();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        let owners = lease.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(
            (owners[0].kind.as_str(), owners[0].uid.as_str()),
            ("Node", "uid-n1")
        );
        assert_eq!(lease.metadata.namespace.as_deref(), Some(LEASE_NAMESPACE));
    }
}
