//! Registering the Node object (`registerWithAPIServer`) and reconciling an existing one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use super::setters::go_arch;
use crate::error::{Error, is_api_status};
use crate::kubeletconfig::KubeletConfig;

pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_OS: &str = "kubernetes.io/os";
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
pub const LABEL_OS_BETA: &str = "beta.kubernetes.io/os";
pub const LABEL_ARCH_BETA: &str = "beta.kubernetes.io/arch";
pub const ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH: &str =
    "volumes.kubernetes.io/controller-managed-attach-detach";

/// Labels the kubelet owns on its Node (`updateDefaultLabels` keeps these in sync).
pub fn default_labels(node_name: &str) -> BTreeMap<String, String> {
    [
        (LABEL_HOSTNAME, node_name),
        (LABEL_OS, "linux"),
        (LABEL_ARCH, go_arch()),
        (LABEL_OS_BETA, "linux"),
        (LABEL_ARCH_BETA, go_arch()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The Node as first created (`initialNode`).
pub fn initial_node(config: &KubeletConfig) -> Node {
    let mut labels = default_labels(&config.node_name);
    labels.extend(config.flags.node_labels.clone());
    let taints = &config.configuration.register_with_taints;
    Node {
        metadata: kube::api::ObjectMeta {
            name: Some(config.node_name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then(|| taints.clone()),
            pod_cidr: (!config.configuration.pod_cidr.is_empty())
                .then(|| config.configuration.pod_cidr.clone()),
            ..Default::default()
        }),
        status: None,
    }
}

/// Labels/annotations of `wanted` missing or different on `existing`, as a merge patch.
pub fn reconcile_patch(existing: &Node, wanted: &Node) -> Option<serde_json::Value> {
    let diff = |have: Option<&BTreeMap<String, String>>,
                want: Option<&BTreeMap<String, String>>| {
        let have = have.cloned().unwrap_or_default();
        want.into_iter()
            .flatten()
            .filter(|(k, v)| have.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>()
    };
    let labels = diff(
        existing.metadata.labels.as_ref(),
        wanted.metadata.labels.as_ref(),
    );
    let annotations = diff(
        existing.metadata.annotations.as_ref(),
        wanted.metadata.annotations.as_ref(),
    );
    if labels.is_empty() && annotations.is_empty() {
        return None;
    }
    Some(serde_json::json!({"metadata": {"labels": labels, "annotations": annotations}}))
}

/// Creates the Node, or reconciles the kubelet-owned labels of an existing one.
pub async fn register_node(client: &Client, config: &KubeletConfig) -> Result<Node, Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let wanted = initial_node(config);
    match nodes.create(&PostParams::default(), &wanted).await {
        Ok(node) => {
            tracing::info!(node = %config.node_name, "Successfully registered node");
            Ok(node)
        }
        Err(e) if is_api_status(&e, 409) => {
            let existing = nodes.get(&config.node_name).await?;
            match reconcile_patch(&existing, &wanted) {
                Some(patch) => {
                    let node = nodes
                        .patch(
                            &config.node_name,
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await?;
                    tracing::info!(node = %config.node_name, "Reconciled existing node");
                    Ok(node)
                }
                None => Ok(existing),
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeletconfig::{KubeletConfiguration, KubeletFlags};
    use k8s_openapi::api::core::v1::Taint;

    #[test]
    fn initial_node_has_labels_and_taints() {
        let configuration = KubeletConfiguration {
            register_with_taints: vec![Taint {
                key: "dedicated".into(),
                value: Some("infra".into()),
                effect: "NoSchedule".into(),
                time_added: None,
            }],
            ..Default::default()
        };
        let flags = KubeletFlags {
            hostname_override: Some("Worker-1".into()),
            node_labels: BTreeMap::from([("role".to_string(), "edge".to_string())]),
            ..Default::default()
        };
        let config = KubeletConfig::from_component_config(configuration, flags);
        let node = initial_node(&config);
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels[LABEL_HOSTNAME], "worker-1");
        assert_eq!(labels[LABEL_OS], "linux");
        assert_eq!(labels["role"], "edge");
        let spec = node.spec.clone().unwrap_or_default();
        assert_eq!(spec.taints.unwrap_or_default()[0].key, "dedicated");

        let mut existing = node.clone();
        assert!(reconcile_patch(&existing, &node).is_none());
        existing.metadata.labels = Some(BTreeMap::from([(
            LABEL_OS.to_string(),
            "windows".to_string(),
        )]));
        let patch = reconcile_patch(&existing, &node).expect("labels differ");
        assert_eq!(patch["metadata"]["labels"][LABEL_OS], "linux");
        assert_eq!(patch["metadata"]["labels"]["role"], "edge");
    }
}
