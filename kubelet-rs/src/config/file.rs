//! Static pods from `staticPodPath` (upstream `pkg/kubelet/config/file.go`) and their
//! mirror pods in the apiserver.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::types::{
    CONFIG_HASH_ANNOTATION, CONFIG_MIRROR_ANNOTATION, CONFIG_SEEN_ANNOTATION,
    CONFIG_SOURCE_ANNOTATION, FILE_SOURCE,
};

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A stable uid from the manifest, the node and the file (upstream hashes the same inputs).
fn static_pod_uid(content: &str, node_name: &str, source: &str) -> String {
    let a = fnv64(format!("{content}host:{node_name}").as_bytes());
    let b = fnv64(format!("file:{source}{content}").as_bytes());
    format!("{a:016x}{b:016x}")
}

/// Upstream `applyDefaults`: name suffixed with the node, default namespace, node
/// binding, source annotations and a toleration of every NoExecute taint.
pub fn apply_defaults(
    mut pod: Pod,
    content: &str,
    node_name: &str,
    source: &str,
    seen: &str,
) -> Pod {
    let uid = static_pod_uid(content, node_name, source);
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.metadata.name = Some(format!("{name}-{node_name}"));
    if pod.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        pod.metadata.namespace = Some("default".into());
    }
    pod.metadata.uid = Some(uid.clone());
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), uid);
    annotations.insert(CONFIG_SOURCE_ANNOTATION.into(), FILE_SOURCE.into());
    annotations.insert(CONFIG_SEEN_ANNOTATION.into(), seen.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name.into());
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    if !tolerations.iter().any(|t| {
        t.operator.as_deref() == Some("Exists")
            && t.effect.as_deref() == Some("NoExecute")
            && t.key.is_none()
    }) {
        tolerations.push(Toleration {
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        });
    }
    pod
}

/// Reads every manifest in `dir` (hidden files skipped); bad files are logged and skipped.
pub fn read_static_pods(dir: &Path, node_name: &str) -> Vec<Pod> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let seen = jiff::Timestamp::now().to_string();
    let mut pods = Vec::new();
    for path in paths {
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        let Ok(content) = std::fs::read_to_string(&path) else {
            continue;
        };
        match serde_yaml::from_str::<Pod>(&content) {
            Ok(pod) if pod.metadata.name.as_deref().is_some_and(|n| !n.is_empty()) => {
                pods.push(apply_defaults(
                    pod,
                    &content,
                    node_name,
                    &path.display().to_string(),
                    &seen,
                ));
            }
            Ok(_) => tracing::warn!(file = %path.display(), "static pod manifest has no name"),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "could not parse static pod manifest")
            }
        }
    }
    pods
}

/// The mirror pod for a static pod: annotated with its hash and owned by the Node.
pub fn mirror_pod(static_pod: &Pod, node: Option<&Node>) -> Pod {
    let mut mirror = static_pod.clone();
    mirror.metadata.uid = None;
    mirror.metadata.resource_version = None;
    mirror.status = None;
    let hash = static_pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
        .cloned()
        .unwrap_or_default();
    mirror
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONFIG_MIRROR_ANNOTATION.into(), hash);
    if let Some(node) = node
        && let (Some(name), Some(uid)) = (node.metadata.name.clone(), node.metadata.uid.clone())
    {
        mirror.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name,
            uid,
            controller: Some(true),
            ..Default::default()
        }]);
    }
    mirror
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::is_mirror_pod;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox:1.0\n";

    #[test]
    fn reads_and_defaults_static_pods() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("web.yaml"), MANIFEST).expect("write");
        std::fs::write(dir.path().join(".hidden.yaml"), MANIFEST).expect("write");
        std::fs::write(dir.path().join("bad.yaml"), "kind: [").expect("write");
        let pods = read_static_pods(dir.path(), "node-a");
        assert_eq!(pods.len(), 1);
        let p = &pods[0];
        assert_eq!(p.metadata.name.as_deref(), Some("web-node-a"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        let ann = p.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(ann[CONFIG_SOURCE_ANNOTATION], "file");
        assert_eq!(Some(&ann[CONFIG_HASH_ANNOTATION]), p.metadata.uid.as_ref());
        let spec = p.spec.clone().unwrap_or_default();
        assert_eq!(spec.node_name.as_deref(), Some("node-a"));
        assert!(
            spec.tolerations
                .unwrap_or_default()
                .iter()
                .any(|t| t.effect.as_deref() == Some("NoExecute"))
        );
        // Same input, same uid; another node, another uid.
        assert_eq!(
            read_static_pods(dir.path(), "node-a")[0].metadata.uid,
            p.metadata.uid
        );
        assert_ne!(
            read_static_pods(dir.path(), "node-b")[0].metadata.uid,
            p.metadata.uid
        );

        let node = Node {
            metadata: kube::api::ObjectMeta {
                name: Some("node-a".into()),
                uid: Some("n-uid".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mirror = mirror_pod(p, Some(&node));
        assert!(is_mirror_pod(&mirror));
        assert!(mirror.metadata.uid.is_none());
        assert_eq!(
            mirror.metadata.owner_references.unwrap_or_default()[0].kind,
            "Node"
        );
    }
}
