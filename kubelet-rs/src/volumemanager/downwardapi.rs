//! downwardAPI files (upstream `pkg/volume/downwardapi` `CollectData` and `pkg/fieldpath`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::atomic_writer::{FileProjection, Payload};
use super::error::SetupError;
use crate::resources;

/// `key="value"` lines in key order, like upstream `fieldpath.FormatMap` (Go `%q` quoting).
pub(crate) fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote` for the characters labels and annotations can contain.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `metadata.labels['key']` → `("labels", "key")`.
fn subscript(path: &str) -> Option<(&str, &str)> {
    let (base, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    Some((base, key))
}

/// Upstream `ExtractFieldPathAsString` for the paths a pod can reference.
pub(crate) fn field_value(pod: &Pod, path: &str) -> Result<String, SetupError> {
    let meta = &pod.metadata;
    if let Some((base, key)) = subscript(path) {
        let map = match base {
            "metadata.labels" => meta.labels.as_ref(),
            "metadata.annotations" => meta.annotations.as_ref(),
            _ => return Err(SetupError::UnsupportedFieldPath(path.to_string())),
        };
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let value = match path {
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        _ => return Err(SetupError::UnsupportedFieldPath(path.to_string())),
    };
    Ok(value)
}

/// Upstream `ExtractResourceValueByContainerNameAndNodeAllocatable`: limits default to node
/// allocatable; cpu rounds up in divisor units of milli-cores, the rest in whole units.
pub(crate) fn resource_value(
    pod: &Pod,
    selector: &ResourceFieldSelector,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, SetupError> {
    let container_name = selector.container_name.as_deref().unwrap_or_default();
    let container = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == container_name)
        .ok_or_else(|| SetupError::ContainerNotFound(container_name.to_string()))?;
    let (kind, resource) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| SetupError::UnsupportedResource(selector.resource.clone()))?;
    let resources = container.resources.as_ref();
    let quantity = match kind {
        "limits" => resources
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(resource))
            .or_else(|| node_allocatable.get(resource)),
        "requests" => resources
            .and_then(|r| r.requests.as_ref())
            .and_then(|l| l.get(resource)),
        _ => {
            return Err(SetupError::UnsupportedResource(selector.resource.clone()));
        }
    };
    let milli = quantity.and_then(|q| resources::milli(&q.0)).unwrap_or(0);
    let divisor = selector
        .divisor
        .as_ref()
        .and_then(|d| resources::milli(&d.0))
        .filter(|d| *d > 0)
        .unwrap_or(1000);
    let value = if resource == "cpu" {
        // milli / divisor-in-milli, rounded up (at least 1 core worth when non-zero).
        (milli + divisor - 1) / divisor
    } else {
        let whole = (milli + 999) / 1000;
        let divisor_whole = ((divisor + 999) / 1000).max(1);
        (whole + divisor_whole - 1) / divisor_whole
    };
    Ok(value.to_string())
}

/// Files of a downwardAPI volume (or projection).
pub(crate) fn collect(
    items: &[DownwardAPIVolumeFile],
    pod: &Pod,
    default_mode: i32,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<Payload, SetupError> {
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            field_value(pod, &field.field_path).map_err(|e| SetupError::ExtractField {
                path: field.field_path.clone(),
                source: Box::new(e),
            })?
        } else if let Some(selector) = &item.resource_field_ref {
            resource_value(pod, selector, node_allocatable)?
        } else {
            continue;
        };
        let mode = u32::try_from(item.mode.unwrap_or(default_mode)).unwrap_or(0) & 0o7777;
        payload.insert(
            item.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode,
                fs_user: None,
            },
        );
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                labels: Some(BTreeMap::from([
                    ("b".to_string(), "two".to_string()),
                    ("a".to_string(), "say \"hi\"".to_string()),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some(BTreeMap::from([
                            ("cpu".to_string(), Quantity("250m".into())),
                            ("memory".to_string(), Quantity("64Mi".into())),
                        ])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn extracts_field_paths() {
        let p = pod();
        let cases = [
            ("metadata.name", Ok("web".to_string())),
            ("metadata.namespace", Ok("ns".to_string())),
            (
                "metadata.labels",
                Ok("a=\"say \\\"hi\\\"\"\nb=\"two\"".to_string()),
            ),
            ("metadata.labels['b']", Ok("two".to_string())),
            ("metadata.annotations", Ok(String::new())),
            (
                "spec.bogus",
                Err("unsupported fieldPath: spec.bogus".to_string()),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(
                field_value(&p, path).map_err(|e| e.to_string()),
                want,
                "{path}"
            );
        }
    }

    #[test]
    fn extracts_resources_with_divisor() {
        let p = pod();
        let sel = |resource: &str, divisor: Option<&str>| ResourceFieldSelector {
            container_name: Some("c".into()),
            resource: resource.into(),
            divisor: divisor.map(|d| Quantity(d.into())),
        };
        let alloc = BTreeMap::from([("ephemeral-storage".to_string(), Quantity("1Gi".into()))]);
        let cases = [
            (sel("limits.cpu", None), "1"),
            (sel("limits.cpu", Some("1m")), "250"),
            (sel("limits.memory", Some("1Mi")), "64"),
            (sel("limits.ephemeral-storage", Some("1Mi")), "1024"),
            (sel("requests.cpu", Some("1m")), "0"),
        ];
        for (s, want) in cases {
            assert_eq!(
                resource_value(&p, &s, &alloc).map_err(|e| e.to_string()),
                Ok(want.to_string()),
                "{}",
                s.resource
            );
        }
    }
}
