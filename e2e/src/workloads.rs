//! Objects the tests create: a throw-away namespace, a `web` Deployment that
//! answers `GET /hostname` on port 8080, and a NodePort Service for it.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            Container, ContainerPort, HTTPGetAction, Namespace, Node, Pod, PodSpec,
            PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec, TopologySpreadConstraint,
        },
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};

use crate::{E2eError, wait::wait_until};

/// The port the web pods listen on.
pub const WEB_PORT: i32 = 8080;

/// A server image able to answer `GET /hostname` with the pod's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebImage {
    /// agnhost's `netexec` (the e2e suite's own server).
    Agnhost(String),
    /// busybox `httpd` serving a file named `hostname`.
    Busybox(String),
}

impl WebImage {
    pub fn reference(&self) -> &str {
        match self {
            WebImage::Agnhost(r) | WebImage::Busybox(r) => r,
        }
    }

    fn container(&self) -> Container {
        let (command, args) = match self {
            WebImage::Agnhost(_) => (
                None,
                Some(vec![
                    "netexec".to_string(),
                    format!("--http-port={WEB_PORT}"),
                ]),
            ),
            WebImage::Busybox(_) => (
                Some(vec![
                    "sh".to_string(),
                    "-c".to_string(),
                    format!(
                        "mkdir -p /www && hostname >/www/hostname && exec httpd -f -p {WEB_PORT} -h /www"
                    ),
                ]),
                None,
            ),
        };
        Container {
            name: "web".into(),
            image: Some(self.reference().to_string()),
            image_pull_policy: Some("IfNotPresent".into()),
            command,
            args,
            ports: Some(vec![ContainerPort {
                container_port: WEB_PORT,
                name: Some("http".into()),
                ..Default::default()
            }]),
            readiness_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some("/hostname".into()),
                    port: IntOrString::Int(WEB_PORT),
                    ..Default::default()
                }),
                period_seconds: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Picks the web image from what the nodes already have (there is no
/// registry): agnhost if every node has it, else busybox.
pub fn choose_web_image(nodes: &[Node]) -> Option<WebImage> {
    let on_every_node = |pred: &dyn Fn(&str) -> bool| -> Option<String> {
        let first = nodes.first()?;
        image_names(first)
            .into_iter()
            .filter(|n| pred(n))
            .find(|n| nodes.iter().all(|node| image_names(node).contains(n)))
    };
    on_every_node(&|n| n.contains("/agnhost:"))
        .map(WebImage::Agnhost)
        .or_else(|| on_every_node(&|n| n.contains("busybox:")).map(WebImage::Busybox))
}

fn image_names(node: &Node) -> Vec<String> {
    node.status
        .as_ref()
        .and_then(|s| s.images.as_ref())
        .map(|images| {
            images
                .iter()
                .flat_map(|i| i.names.clone().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), app.to_string())])
}

/// `replicas` web pods spread evenly over nodes (maxSkew 1 per hostname,
/// DoNotSchedule), so two nodes get two pods each out of four.
pub fn web_deployment(name: &str, image: &WebImage, replicas: i32) -> Deployment {
    let selector = LabelSelector {
        match_labels: Some(labels(name)),
        ..Default::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(name)),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: selector.clone(),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(name)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![image.container()],
                    termination_grace_period_seconds: Some(1),
                    topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: "kubernetes.io/hostname".into(),
                        when_unsatisfiable: "DoNotSchedule".into(),
                        label_selector: Some(selector),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A NodePort Service: port 80 to the web pods' port.
pub fn node_port_service(name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            selector: Some(labels(name)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::Int(WEB_PORT)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A fresh namespace name: `prefix-<seconds><millis>`.
pub fn unique_namespace_name(prefix: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{prefix}-{}", millis % 100_000_000)
}

pub async fn create_namespace(client: &Client, name: &str) -> Result<(), E2eError> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Starts deleting the namespace (and everything in it); does not wait.
pub async fn delete_namespace(client: &Client, name: &str) -> Result<(), E2eError> {
    Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await?;
    Ok(())
}

/// Waits until the Deployment reports `replicas` available replicas.
pub async fn wait_deployment_available(
    api: &Api<Deployment>,
    name: &str,
    replicas: i32,
    timeout: Duration,
) -> Result<(), E2eError> {
    wait_until(
        &format!("deployment {name} to have {replicas} available replicas"),
        timeout,
        || async {
            let d = api.get(name).await?;
            let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
            Ok((available >= replicas).then_some(()))
        },
    )
    .await
}

/// Running pods matching `app=<name>`: pod name -> (node name, pod IP).
pub async fn pods_by_node(
    pods: &Api<Pod>,
    app: &str,
) -> Result<BTreeMap<String, String>, E2eError> {
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| {
            let node = p.spec.as_ref()?.node_name.clone()?;
            Some((p.metadata.name?, node))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerImage, NodeStatus};

    fn node_with_images(names: &[&str]) -> Node {
        Node {
            status: Some(NodeStatus {
                images: Some(vec![ContainerImage {
                    names: Some(names.iter().map(|s| s.to_string()).collect()),
                    size_bytes: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn web_image_prefers_agnhost_present_on_every_node() {
        let agn = "registry.k8s.io/e2e-test-images/agnhost:2.59";
        let bb = "docker.io/library/busybox:1.36";
        let cases: Vec<(Vec<Node>, Option<WebImage>)> = vec![
            (
                vec![node_with_images(&[agn, bb]), node_with_images(&[bb, agn])],
                Some(WebImage::Agnhost(agn.into())),
            ),
            (
                vec![node_with_images(&[agn, bb]), node_with_images(&[bb])],
                Some(WebImage::Busybox(bb.into())),
            ),
            (vec![node_with_images(&[agn]), node_with_images(&[])], None),
            (vec![], None),
        ];
        for (nodes, want) in cases {
            assert_eq!(choose_web_image(&nodes), want);
        }
    }

    #[test]
    fn web_deployment_spreads_evenly_and_probes_hostname() {
        let d = web_deployment("web", &WebImage::Busybox("busybox:1".into()), 4);
        let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        let tsc = spec
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .and_then(|t| t.first());
        assert_eq!(
            tsc.map(|t| (t.max_skew, t.when_unsatisfiable.as_str())),
            Some((1, "DoNotSchedule"))
        );
        assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(4));
        let c = spec.map(|s| &s.containers[0]);
        let probe_path = c
            .and_then(|c| c.readiness_probe.as_ref())
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.as_deref());
        assert_eq!(probe_path, Some("/hostname"));
        assert!(
            c.and_then(|c| c.command.as_ref())
                .is_some_and(|cmd| cmd.join(" ").contains("httpd -f -p 8080"))
        );
    }

    #[test]
    fn agnhost_runs_netexec_on_the_web_port() {
        let d = web_deployment("web", &WebImage::Agnhost("agnhost:1".into()), 2);
        let c = &d
            .spec
            .and_then(|s| s.template.spec)
            .map(|s| s.containers)
            .unwrap_or_default()[0];
        assert_eq!(c.command, None);
        assert_eq!(
            c.args,
            Some(vec!["netexec".to_string(), "--http-port=8080".to_string()])
        );
    }

    #[test]
    fn node_port_service_selects_the_app() {
        let s = node_port_service("web");
        let spec = s.spec.unwrap_or_default();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.selector, Some(labels("web")));
        let port = &spec.ports.unwrap_or_default()[0];
        assert_eq!(
            (port.port, port.target_port.clone()),
            (80, Some(IntOrString::Int(8080)))
        );
    }

    #[test]
    fn namespace_names_are_prefixed_and_dns_safe() {
        let n = unique_namespace_name("fk-e2e");
        assert!(n.starts_with("fk-e2e-"));
        assert!(n.len() <= 63);
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
