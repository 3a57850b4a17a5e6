//! The pure half of the ServiceAccount controller (upstream
//! `syncNamespace`'s decision): which accounts a namespace is missing.

use k8s_openapi::api::core::v1::Namespace;

/// Upstream `DefaultServiceAccountsControllerOptions`.
pub const SERVICE_ACCOUNTS_TO_ENSURE: &[&str] = &["default"];

/// Which of `wanted` must be created in a namespace (pure decision).
/// Terminating (or unknown) namespaces get nothing, as upstream.
pub fn missing_service_accounts<'a>(
    namespace: Option<&Namespace>,
    existing: &dyn Fn(&str) -> bool,
    wanted: &[&'a str],
) -> Vec<&'a str> {
    let Some(ns) = namespace else {
        return Vec::new();
    };
    let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Active") && phase.is_some() {
        return Vec::new();
    }
    if ns.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    wanted
        .iter()
        .copied()
        .filter(|name| !existing(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use kube::api::ObjectMeta;

    fn ns(phase: Option<&str>) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(NamespaceStatus {
                phase: phase.map(str::to_string),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn ensures_default_in_active_namespaces_only() {
        let none = |_: &str| false;
        let all = |_: &str| true;
        type Exists<'a> = &'a dyn Fn(&str) -> bool;
        let cases: Vec<(Option<Namespace>, Exists, Vec<&str>)> = vec![
            (Some(ns(Some("Active"))), &none, vec!["default"]),
            (Some(ns(None)), &none, vec!["default"]),
            (Some(ns(Some("Active"))), &all, vec![]),
            (Some(ns(Some("Terminating"))), &none, vec![]),
            (None, &none, vec![]),
        ];
        for (namespace, existing, want) in cases {
            assert_eq!(
                missing_service_accounts(namespace.as_ref(), existing, SERVICE_ACCOUNTS_TO_ENSURE),
                want
            );
        }
    }
}
