//! Smoke test of a running cluster (normally `hack/local-up`'s): nodes
//! Ready, a spread Deployment behind a Service reachable across nodes from a
//! pod, its name in cluster DNS, and the Service's NodePort reachable from
//! outside the nodes.
//! Without a reachable cluster it fails saying why (`FK_ALLOW_SKIP=1`: it
//! prints why and passes).

use std::{collections::BTreeSet, time::Duration};

use ferrokube_e2e::{
    E2eError,
    cluster::{Connection, connect, list_nodes, node_internal_ip, node_is_ready, skip_or_fail},
    netns::{control_plane_netns, http_get_from, netns_unusable},
    prereq,
    reach::{hostnames_via, nodes_reached, resolve_in_pod},
    wait::wait_until,
    workloads::{
        choose_web_image, create_namespace, delete_namespace, node_port_service, pods_by_node,
        unique_namespace_name, wait_deployment_available, web_deployment,
    },
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, Service},
};
use kube::{Api, Client, api::PostParams};

const APP: &str = "web";
const REPLICAS: i32 = 4;

#[tokio::test]
async fn smoke_nodes_service_and_node_port() -> Result<(), E2eError> {
    let client = match connect().await {
        Connection::Ready(c) => c,
        Connection::Unavailable(reason) => {
            skip_or_fail("smoke_nodes_service_and_node_port", &reason);
            return Ok(());
        }
    };
    let namespace = unique_namespace_name("fk-e2e-smoke");
    create_namespace(&client, &namespace).await?;
    let result = smoke(&client, &namespace).await;
    // Clean up whatever happened; a failed test keeps its own error.
    if let Err(e) = delete_namespace(&client, &namespace).await {
        println!("warning: deleting namespace {namespace}: {e}");
    }
    result
}

async fn smoke(client: &Client, namespace: &str) -> Result<(), E2eError> {
    let nodes = wait_until(
        "at least 2 Ready nodes",
        Duration::from_secs(120),
        || async {
            let nodes = list_nodes(client).await?;
            let all_ready = nodes.len() >= 2 && nodes.iter().all(node_is_ready);
            Ok(all_ready.then_some(nodes))
        },
    )
    .await?;
    let node_names: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    println!("nodes Ready: {node_names:?}");

    let image = choose_web_image(&nodes).ok_or_else(|| {
        E2eError::Check(
            "no agnhost or busybox image on every node (hack/local-up imports them)".into(),
        )
    })?;
    println!("web image: {}", image.reference());

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    deployments
        .create(
            &PostParams::default(),
            &web_deployment(APP, &image, REPLICAS),
        )
        .await?;
    let svc = services
        .create(&PostParams::default(), &node_port_service(APP))
        .await?;
    wait_deployment_available(&deployments, APP, REPLICAS, Duration::from_secs(120)).await?;

    let pod_nodes = pods_by_node(&pods, APP).await?;
    let spread: BTreeSet<&String> = pod_nodes.values().collect();
    println!("web pods: {pod_nodes:?}");
    if spread.len() < 2 {
        return Err(E2eError::Check(format!(
            "{REPLICAS} replicas not spread over 2 nodes: {pod_nodes:?}"
        )));
    }

    // From a pod on node 1 to the ClusterIP: answers must come from both nodes.
    let node1 = &node_names[0];
    let client_pod = pod_nodes
        .iter()
        .find(|(_, n)| *n == node1)
        .map(|(p, _)| p.clone())
        .ok_or_else(|| E2eError::Check(format!("no web pod on {node1}")))?;
    let spec = svc.spec.clone().unwrap_or_default();
    let cluster_ip = spec
        .cluster_ip
        .clone()
        .ok_or_else(|| E2eError::Check("service has no clusterIP".into()))?;
    let url = format!("http://{cluster_ip}/hostname");
    let seen = hostnames_via(&pods, &client_pod, &url, &pod_nodes, 2, 40).await?;
    let reached = nodes_reached(&seen, &pod_nodes);
    println!("{url} from {client_pod} on {node1}: answered by {seen:?} on {reached:?}");
    if reached.len() < 2 {
        return Err(E2eError::Check(format!(
            "service {url} only reached pods on {reached:?} (answers {seen:?})"
        )));
    }

    cluster_dns(client, &pods, &client_pod, namespace, &cluster_ip).await?;
    node_port_from_control_plane(&nodes, &spec, &pod_nodes).await
}

/// With a cluster DNS Service (kube-system/kube-dns), the web Service's name
/// resolves to its ClusterIP from a pod.
async fn cluster_dns(
    client: &Client,
    pods: &Api<Pod>,
    client_pod: &str,
    namespace: &str,
    cluster_ip: &str,
) -> Result<(), E2eError> {
    let dns: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    if dns.get_opt("kube-dns").await?.is_none() {
        // An error rather than a panic: the caller still deletes the namespace.
        return prereq::skip_or_err(
            "DNS part: no Service kube-system/kube-dns (hack/local-up deploys cluster DNS unless --no-dns)",
        )
        .map_err(E2eError::Check);
    }
    let fqdn = format!("{APP}.{namespace}.svc.cluster.local");
    let addresses = wait_until(
        &format!("{fqdn} to resolve"),
        Duration::from_secs(60),
        || async {
            let addresses = resolve_in_pod(pods, client_pod, &fqdn).await?;
            Ok((!addresses.is_empty()).then_some(addresses))
        },
    )
    .await?;
    println!("DNS {fqdn} -> {addresses:?}");
    if !addresses.iter().any(|a| a == cluster_ip) {
        return Err(E2eError::Check(format!(
            "{fqdn} resolved to {addresses:?}, not {cluster_ip}"
        )));
    }
    Ok(())
}

/// Every node's InternalIP:NodePort answers with a web pod's name when asked
/// from the control-plane namespace (outside all nodes).
async fn node_port_from_control_plane(
    nodes: &[k8s_openapi::api::core::v1::Node],
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
    pod_nodes: &std::collections::BTreeMap<String, String>,
) -> Result<(), E2eError> {
    let netns = control_plane_netns();
    if let Some(why) = netns_unusable(&netns) {
        // An error rather than a panic: the caller still deletes the namespace.
        return prereq::skip_or_err(&format!(
            "NodePort part: {why} (the hack/local-up control-plane namespace, entered as root)"
        ))
        .map_err(E2eError::Check);
    }
    let node_port = spec
        .ports
        .as_ref()
        .and_then(|p| p.first())
        .and_then(|p| p.node_port)
        .ok_or_else(|| E2eError::Check("service has no nodePort".into()))?;
    for node in nodes {
        let ip = node_internal_ip(node).ok_or_else(|| {
            E2eError::Check(format!("node {:?} has no InternalIP", node.metadata.name))
        })?;
        let url = format!("http://{ip}:{node_port}/hostname");
        let answer = wait_until(
            &format!("{url} from {}", netns.display()),
            Duration::from_secs(30),
            || async { Ok(http_get_from(&netns, &url).await.ok()) },
        )
        .await?;
        if !pod_nodes.contains_key(&answer) {
            return Err(E2eError::Check(format!(
                "{url} answered {answer:?}, not a web pod"
            )));
        }
        println!("NodePort {url} from {}: {answer}", netns.display());
    }
    Ok(())
}
