//! The pure half of the root CA publisher (upstream `syncNamespace`'s
//! decision): what `kube-root-ca.crt` in one namespace must become.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;

pub const ROOT_CA_CONFIG_MAP_NAME: &str = "kube-root-ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
const CA_KEY: &str = "ca.crt";

/// What to do for one namespace (pure decision).
#[derive(Debug, PartialEq)]
pub enum Publish {
    Nothing,
    Create(ConfigMap),
    /// Replace the existing object (keeps its resourceVersion: a
    /// concurrent edit yields a conflict and a retry, as upstream).
    Update(ConfigMap),
}

/// Upstream `syncNamespace`.
pub fn decide(existing: Option<&ConfigMap>, root_ca: &str) -> Publish {
    let data: BTreeMap<String, String> = [(CA_KEY.to_string(), root_ca.to_string())].into();
    let Some(cm) = existing else {
        return Publish::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(ROOT_CA_CONFIG_MAP_NAME.to_string()),
                annotations: Some(
                    [(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string())].into(),
                ),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        });
    };
    let has_description = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|d| !d.is_empty());
    if cm.data.as_ref() == Some(&data) && has_description {
        return Publish::Nothing;
    }
    let mut fixed = cm.clone();
    fixed.data = Some(data);
    fixed
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string());
    Publish::Update(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_repairs_or_leaves_alone() {
        let created = match decide(None, "CA") {
            Publish::Create(cm) => cm,
            other => panic!("expected create, got {other:?}"),
        };
        assert_eq!(
            created
                .data
                .as_ref()
                .and_then(|d| d.get("ca.crt"))
                .map(String::as_str),
            Some("CA")
        );
        assert_eq!(decide(Some(&created), "CA"), Publish::Nothing);

        let mut edited = created.clone();
        edited.data = Some([("ca.crt".to_string(), "tampered".to_string())].into());
        edited.metadata.resource_version = Some("7".into());
        match decide(Some(&edited), "CA") {
            Publish::Update(cm) => {
                assert_eq!(cm.data, created.data);
                assert_eq!(cm.metadata.resource_version.as_deref(), Some("7"));
            }
            other => panic!("expected update, got {other:?}"),
        }

        let mut no_description = created.clone();
        no_description.metadata.annotations = None;
        match decide(Some(&no_description), "CA") {
            Publish::Update(cm) => assert_eq!(
                cm.metadata
                    .annotations
                    .and_then(|a| a.get(DESCRIPTION_ANNOTATION).cloned())
                    .as_deref(),
                Some(DESCRIPTION)
            ),
            other => panic!("expected update, got {other:?}"),
        }

        // A CA rotation rewrites the data.
        assert!(matches!(
            decide(Some(&created), "NEW CA"),
            Publish::Update(_)
        ));
    }
}
