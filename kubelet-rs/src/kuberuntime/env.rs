//! Container environment (upstream `makeEnvironmentVariables` and `envvars.FromServices`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};

use super::expansion::{expand, mapping_for};
use crate::resources;

/// Objects the environment may read; `None` means the object does not exist.
#[derive(Clone, Debug, Default)]
pub struct EnvInputs {
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    pub secrets: BTreeMap<String, Option<Secret>>,
    /// Services of the pod's namespace and of `default`.
    pub services: Vec<Service>,
    pub host_ips: Vec<String>,
    pub pod_ips: Vec<String>,
    /// Node allocatable, the default for unset limits in `resourceFieldRef`.
    pub node_allocatable: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    #[error("unsupported container resource: {0}")]
    Resource(String),
}

/// `CreateContainerConfigError` is the waiting reason when this fails.
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";

fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// Docker-link style variables for services (`envvars.FromServices`).
pub fn service_env(services: &[&Service]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let prefix = env_name(svc.metadata.name.as_deref().unwrap_or_default());
        out.insert(format!("{prefix}_SERVICE_HOST"), ip.clone());
        out.insert(format!("{prefix}_SERVICE_PORT"), first.port.to_string());
        for p in &ports {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.insert(
                    format!("{prefix}_SERVICE_PORT_{}", env_name(name)),
                    p.port.to_string(),
                );
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let lower = proto.to_lowercase();
            let host_port = if ip.contains(':') {
                format!("[{ip}]:{}", p.port)
            } else {
                format!("{ip}:{}", p.port)
            };
            if i == 0 {
                out.insert(format!("{prefix}_PORT"), format!("{lower}://{host_port}"));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.insert(pp.clone(), format!("{lower}://{host_port}"));
            out.insert(format!("{pp}_PROTO"), lower.clone());
            out.insert(format!("{pp}_PORT"), p.port.to_string());
            out.insert(format!("{pp}_ADDR"), ip.clone());
        }
    }
    out
}

/// `getServiceEnvVarMap`: the `kubernetes` service of `default` always, the pod
/// namespace's services when `enableServiceLinks`.
pub fn service_env_for_pod(pod: &Pod, services: &[Service]) -> BTreeMap<String, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for svc in services {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let svc_ns = svc.metadata.namespace.as_deref().unwrap_or_default();
        if svc_ns == "default" && name == "kubernetes" {
            chosen.entry(name).or_insert(svc);
        } else if svc_ns == ns && links {
            chosen.insert(name, svc);
        }
    }
    service_env(&chosen.values().copied().collect::<Vec<_>>())
}

/// Go's `%q` for the simple strings labels and annotations hold.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `fieldpath.FormatMap`: sorted `key="value"` lines.
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn subscript<'a>(path: &'a str, field: &str) -> Option<&'a str> {
    path.strip_prefix(field)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

/// `podFieldSelectorRuntimeValue` + `ExtractFieldPathAsString`.
pub fn pod_field_value(pod: &Pod, path: &str, inputs: &EnvInputs) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let labels = meta.labels.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(&labels),
        "metadata.annotations" => format_map(&annotations),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => inputs.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => inputs.host_ips.join(","),
        "status.podIP" => inputs.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => inputs.pod_ips.join(","),
        p => {
            if let Some(key) = subscript(p, "metadata.labels") {
                labels.get(key).cloned().unwrap_or_default()
            } else if let Some(key) = subscript(p, "metadata.annotations") {
                annotations.get(key).cloned().unwrap_or_default()
            } else {
                return Err(EnvError::FieldPath(p.to_string()));
            }
        }
    })
}

/// `ExtractContainerResourceValue`: ceil(value / divisor), limits defaulting to allocatable.
pub fn resource_field_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    inputs: &EnvInputs,
) -> Result<String, EnvError> {
    let res = container.resources.as_ref();
    let (list, name) = match resource.split_once('.') {
        Some(("limits", n)) => (res.and_then(|r| r.limits.as_ref()), n),
        Some(("requests", n)) => (res.and_then(|r| r.requests.as_ref()), n),
        _ => return Err(EnvError::Resource(resource.to_string())),
    };
    let is_limit = resource.starts_with("limits.");
    let mut milli = list
        .and_then(|l| l.get(name))
        .and_then(|q| resources::milli(&q.0));
    if milli.is_none() && is_limit {
        milli = inputs
            .node_allocatable
            .get(name)
            .and_then(|q| resources::milli(q));
    }
    let milli = milli.unwrap_or(0);
    let divisor_milli = divisor
        .and_then(resources::milli)
        .filter(|d| *d != 0)
        .unwrap_or(1000);
    let value = (milli + divisor_milli - 1).div_euclid(divisor_milli);
    Ok(value.to_string())
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| s.string_data.as_ref().and_then(|d| d.get(key).cloned()))
}

/// The container's environment, sorted by name.
pub fn make_environment_variables(
    pod: &Pod,
    container: &Container,
    inputs: &EnvInputs,
) -> Result<BTreeMap<String, String>, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let service_env = service_env_for_pod(pod, &inputs.services);
    let mut tmp: BTreeMap<String, String> = BTreeMap::new();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match inputs.config_maps.get(&r.name).cloned().flatten() {
                Some(cm) => {
                    for (k, v) in cm.data.unwrap_or_default() {
                        tmp.insert(format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        } else if let Some(r) = &from.secret_ref {
            match inputs.secrets.get(&r.name).cloned().flatten() {
                Some(s) => {
                    for (k, v) in s.data.unwrap_or_default() {
                        tmp.insert(
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        }
    }

    for var in container.env.iter().flatten() {
        let literal = var.value.clone().unwrap_or_default();
        let value = if !literal.is_empty() {
            let contexts = [&tmp, &service_env];
            expand(&literal, mapping_for(&contexts))
        } else if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                pod_field_value(pod, &f.field_path, inputs)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                    Some(name) => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.iter().find(|c| c.name == name))
                        .unwrap_or(container),
                    None => container,
                };
                resource_field_value(
                    target,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    inputs,
                )?
            } else if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional == Some(true);
                match inputs.config_maps.get(&r.name).cloned().flatten() {
                    None if optional => continue,
                    None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                    Some(cm) => match cm.data.and_then(|d| d.get(&r.key).cloned()) {
                        Some(v) => v,
                        None if optional => continue,
                        None => {
                            return Err(EnvError::ConfigMapKey {
                                key: r.key.clone(),
                                namespace: ns.clone(),
                                name: r.name.clone(),
                            });
                        }
                    },
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional == Some(true);
                match inputs.secrets.get(&r.name).cloned().flatten() {
                    None if optional => continue,
                    None => return Err(EnvError::SecretNotFound(r.name.clone())),
                    Some(s) => match secret_value(&s, &r.key) {
                        Some(v) => v,
                        None if optional => continue,
                        None => {
                            return Err(EnvError::SecretKey {
                                key: r.key.clone(),
                                namespace: ns.clone(),
                                name: r.name.clone(),
                            });
                        }
                    },
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        tmp.insert(var.name.clone(), value);
    }

    for (k, v) in service_env {
        tmp.entry(k).or_insert(v);
    }
    Ok(tmp)
}

/// Expands `$(VAR)` in command and args against the final environment.
pub fn expand_command(
    command: &[String],
    args: &[String],
    env: &BTreeMap<String, String>,
) -> (Vec<String>, Vec<String>) {
    let contexts = [env];
    let mapping = mapping_for(&contexts);
    (
        command.iter().map(|c| expand(c, &mapping)).collect(),
        args.iter().map(|a| expand(a, &mapping)).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, PodSpec, ResourceFieldSelector, ResourceRequirements, ServicePort,
        ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn svc(ns: &str, name: &str, ip: &str, ports: &[(Option<&str>, i32)]) -> Service {
        Service {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ServicePort {
                            name: n.map(str::to_string),
                            port: *p,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    api_version: None,
                }),
                ..Default::default()
            }),
        }
    }

    fn test_pod(enable_links: Option<bool>, container: Container) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("dapi".into()),
                namespace: Some("team".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([
                    ("app".to_string(), "web".to_string()),
                    ("tier".to_string(), "a\"b".to_string()),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                service_account_name: Some("sa".into()),
                enable_service_links: enable_links,
                containers: vec![container],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn service_links_follow_enable_service_links() {
        let services = vec![
            svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                &[(Some("https"), 443)],
            ),
            svc(
                "team",
                "my-db",
                "10.96.0.20",
                &[(None, 5432), (Some("metrics"), 9187)],
            ),
            svc("team", "headless", "None", &[(None, 80)]),
            svc("other", "far", "10.96.0.30", &[(None, 80)]),
        ];
        let c = Container {
            name: "c".into(),
            ..Default::default()
        };
        let with = service_env_for_pod(&test_pod(None, c.clone()), &services);
        assert_eq!(with["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        assert_eq!(with["KUBERNETES_SERVICE_PORT"], "443");
        assert_eq!(with["KUBERNETES_SERVICE_PORT_HTTPS"], "443");
        assert_eq!(with["KUBERNETES_PORT"], "tcp://10.96.0.1:443");
        assert_eq!(with["KUBERNETES_PORT_443_TCP"], "tcp://10.96.0.1:443");
        assert_eq!(with["KUBERNETES_PORT_443_TCP_PROTO"], "tcp");
        assert_eq!(with["KUBERNETES_PORT_443_TCP_PORT"], "443");
        assert_eq!(with["KUBERNETES_PORT_443_TCP_ADDR"], "10.96.0.1");
        assert_eq!(with["MY_DB_SERVICE_HOST"], "10.96.0.20");
        assert_eq!(with["MY_DB_SERVICE_PORT"], "5432");
        assert_eq!(with["MY_DB_SERVICE_PORT_METRICS"], "9187");
        assert_eq!(with["MY_DB_PORT_9187_TCP_ADDR"], "10.96.0.20");
        assert!(!with.contains_key("HEADLESS_SERVICE_HOST"));
        assert!(!with.contains_key("FAR_SERVICE_HOST"));
        let without = service_env_for_pod(&test_pod(Some(false), c), &services);
        assert!(without.contains_key("KUBERNETES_SERVICE_HOST"));
        assert!(!without.contains_key("MY_DB_SERVICE_HOST"));
    }

    #[test]
    fn env_resolution_matches_upstream_rules() {
        let container = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                prefix: Some("CM_".into()),
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                ..Default::default()
            }]),
            env: Some(vec![
                env("A", "a"),
                env("REF", "$(A)-$(CM_k1)-$$(A)-$(MISSING)"),
                env("SVC", "$(KUBERNETES_SERVICE_HOST)"),
                field("POD", "metadata.name"),
                field("NODE", "spec.nodeName"),
                field("LABELS", "metadata.labels"),
                field("APP", "metadata.labels['app']"),
                field("IP", "status.podIP"),
                EnvVar {
                    name: "OPT".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "nope".into(),
                            key: "x".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                },
                EnvVar {
                    name: "MEM".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        resource_field_ref: Some(ResourceFieldSelector {
                            resource: "limits.memory".into(),
                            divisor: Some(Quantity("1Mi".into())),
                            container_name: None,
                        }),
                        ..Default::default()
                    }),
                },
                EnvVar {
                    name: "CPU".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        resource_field_ref: Some(ResourceFieldSelector {
                            resource: "requests.cpu".into(),
                            divisor: None,
                            container_name: None,
                        }),
                        ..Default::default()
                    }),
                },
            ]),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "cpu".to_string(),
                    Quantity("250m".into()),
                )])),
                limits: Some(BTreeMap::from([(
                    "memory".to_string(),
                    Quantity("64Mi".into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = test_pod(None, container.clone());
        let inputs = EnvInputs {
            config_maps: BTreeMap::from([
                (
                    "cfg".to_string(),
                    Some(ConfigMap {
                        data: Some(BTreeMap::from([("k1".to_string(), "v1".to_string())])),
                        ..Default::default()
                    }),
                ),
                ("nope".to_string(), None),
            ]),
            services: vec![svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                &[(Some("https"), 443)],
            )],
            pod_ips: vec!["10.88.0.5".into()],
            ..Default::default()
        };
        let got = make_environment_variables(&pod, &container, &inputs).expect("env resolves");
        assert_eq!(got["CM_k1"], "v1");
        assert_eq!(got["REF"], "a-v1-$(A)-$(MISSING)");
        assert_eq!(got["SVC"], "10.96.0.1");
        assert_eq!(got["POD"], "dapi");
        assert_eq!(got["NODE"], "node-1");
        assert_eq!(got["LABELS"], "app=\"web\"\ntier=\"a\\\"b\"");
        assert_eq!(got["APP"], "web");
        assert_eq!(got["IP"], "10.88.0.5");
        assert!(!got.contains_key("OPT"));
        assert_eq!(got["MEM"], "64");
        assert_eq!(got["CPU"], "1");
        assert_eq!(got["KUBERNETES_PORT_443_TCP_PORT"], "443");

        let (cmd, args) =
            expand_command(&["echo".into()], &["$(POD)".into(), "$$(POD)".into()], &got);
        assert_eq!(cmd, vec!["echo"]);
        assert_eq!(args, vec!["dapi", "$(POD)"]);

        let mut missing = inputs.clone();
        missing.config_maps.insert("cfg".into(), None);
        assert_eq!(
            make_environment_variables(&pod, &container, &missing),
            Err(EnvError::ConfigMapNotFound("cfg".into()))
        );
    }
}
