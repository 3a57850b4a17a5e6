//! Finding and connecting to the cluster under test, and node facts.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client, Config,
    api::ListParams,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::E2eError;

/// Where `hack/local-up` writes the admin kubeconfig, relative to the
/// workspace root.
pub const LOCAL_UP_KUBECONFIG: &str = "_output/local/admin.kubeconfig";

/// How long connecting may take before the cluster counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of [`connect`]: a client, or why there is no cluster to test.
pub enum Connection {
    Ready(Client),
    Unavailable(String),
}

/// The kubeconfig to use: the first file named by `$KUBECONFIG` when set,
/// else the one `hack/local-up` writes under `workspace_root`.
pub fn kubeconfig_path(env_kubeconfig: Option<&str>, workspace_root: &Path) -> PathBuf {
    env_kubeconfig
        .and_then(|v| v.split(':').find(|p| !p.is_empty()))
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join(LOCAL_UP_KUBECONFIG))
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Connects with the admin kubeconfig and checks the apiserver answers.
/// Anything short of a working connection is a [`Connection::Unavailable`].
pub async fn connect() -> Connection {
    let env = std::env::var("KUBECONFIG").ok();
    let path = kubeconfig_path(env.as_deref(), &workspace_root());
    if !path.exists() {
        return Connection::Unavailable(format!(
            "no kubeconfig at {} (no cluster: run the tests with hack/e2e, which brings one up, \
             or start one with hack/local-up, or set KUBECONFIG)",
            path.display()
        ));
    }
    match try_connect(&path).await {
        Ok(client) => Connection::Ready(client),
        Err(e) => Connection::Unavailable(format!(
            "cluster from {} not reachable: {e} (is it up? hack/local-up starts one, \
             hack/e2e runs the tests on a fresh one)",
            path.display()
        )),
    }
}

async fn try_connect(path: &Path) -> Result<Client, E2eError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| E2eError::Kubeconfig {
        path: path.display().to_string(),
        source,
    })?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| E2eError::Kubeconfig {
            path: path.display().to_string(),
            source,
        })?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let client = Client::try_from(config)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
        Ok(version) => {
            version?;
            Ok(client)
        }
        Err(_) => Err(E2eError::Timeout {
            what: "the apiserver's /version".into(),
            after: CONNECT_TIMEOUT,
        }),
    }
}

/// Fails `test` because there is no cluster (`reason`), or under
/// `FK_ALLOW_SKIP=1` prints `SKIP: <test>: <reason>` (past the harness's
/// output capture, so CI logs show nothing was tested) and returns, for the
/// test to return early.
pub fn skip_or_fail(test: &str, reason: &str) {
    crate::prereq::skip_or_fail(&format!("{test}: {reason}"));
}

/// True when the node's Ready condition is True.
pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// The node's InternalIP address, if it reports one.
pub fn node_internal_ip(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
}

/// All nodes, sorted by name (so "node 1" is stable).
pub async fn list_nodes(client: &Client) -> Result<Vec<Node>, E2eError> {
    let mut nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeCondition, NodeStatus};

    #[test]
    fn kubeconfig_path_prefers_the_first_kubeconfig_entry() {
        let root = Path::new("/ws");
        let cases = [
            (None, "/ws/_output/local/admin.kubeconfig"),
            (Some(""), "/ws/_output/local/admin.kubeconfig"),
            (Some("/a/config"), "/a/config"),
            (Some("/a/config:/b/config"), "/a/config"),
            (Some(":/b/config"), "/b/config"),
        ];
        for (env, want) in cases {
            assert_eq!(
                kubeconfig_path(env, root),
                PathBuf::from(want),
                "KUBECONFIG={env:?}"
            );
        }
    }

    fn node(conditions: &[(&str, &str)], addresses: &[(&str, &str)]) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| NodeCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                addresses: Some(
                    addresses
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: t.to_string(),
                            address: a.to_string(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn node_readiness_follows_the_ready_condition() {
        let cases = [
            (vec![("Ready", "True")], true),
            (vec![("Ready", "False")], false),
            (vec![("Ready", "Unknown")], false),
            (vec![("MemoryPressure", "False"), ("Ready", "True")], true),
            (vec![("MemoryPressure", "True")], false),
            (vec![], false),
        ];
        for (conds, want) in cases {
            assert_eq!(node_is_ready(&node(&conds, &[])), want, "{conds:?}");
        }
        assert!(!node_is_ready(&Node::default()));
    }

    #[test]
    fn internal_ip_is_picked_among_addresses() {
        let n = node(
            &[],
            &[("Hostname", "fk-node-1"), ("InternalIP", "172.30.0.11")],
        );
        assert_eq!(node_internal_ip(&n).as_deref(), Some("172.30.0.11"));
        assert_eq!(node_internal_ip(&node(&[], &[("Hostname", "x")])), None);
        assert_eq!(node_internal_ip(&Node::default()), None);
    }
}
