//! The DaemonSet and StatefulSet controllers in-process against a real
//! etcd + kube-apiserver (no kubelet or scheduler: the test sets pod
//! phases and readiness through the status subresource).
//!
//! DaemonSet: two fake Nodes, one tainted NoSchedule → one pod pinned to
//! the other node by node affinity, with the revision-hash and
//! template-generation labels, one ControllerRevision, status numbers; the
//! pod turning ready makes it available; untainting the node adds a pod.
//!
//! StatefulSet: 2 replicas, OrderedReady → `web-0` (with its PVC from the
//! template) first, `web-1` only after `web-0` is running and ready; a
//! revision; status replicas/readyReplicas and revisions.
//! Fails when the binaries are missing, unless `FK_ALLOW_SKIP=1`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_controller_manager::ControllerManagerConfig;
use serde_json::json;
use test_support::apiserver;
use test_support::wait::eventually;
use tokio_util::sync::CancellationToken;

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    match serde_json::from_value(v) {
        Ok(t) => t,
        Err(e) => panic!("building object: {e}"),
    }
}

async fn create_node(client: &Client, name: &str, taint: bool) {
    let nodes: Api<Node> = Api::all(client.clone());
    let taints = if taint {
        json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    } else {
        json!([])
    };
    let node: Node = from_json(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"taints": taints},
    }));
    if let Err(e) = nodes.create(&PostParams::default(), &node).await {
        panic!("creating node {name}: {e}");
    }
    // Admission taints new nodes not-ready:NoSchedule until a kubelet
    // reports Ready (which daemon pods do not tolerate, as upstream); no
    // kubelet runs here, so the test sets the taints it wants.
    let patch = json!({"spec": {"taints": taints}});
    let result = nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await;
    assert!(result.is_ok(), "setting taints of {name}: {result:?}");
}

async fn pods_with(client: &Client, selector: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn make_ready(client: &Client, pod: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }});
    let result = pods
        .patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
        .await;
    assert!(result.is_ok(), "marking {pod} ready: {result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daemonset_and_statefulset_against_real_apiserver() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let shutdown = CancellationToken::new();
    let config = ControllerManagerConfig {
        controllers: vec![
            "daemonset".to_string(),
            "statefulset".to_string(),
            "serviceaccount".to_string(),
        ],
        ..Default::default()
    };
    let manager = tokio::spawn(kube_controller_manager::run(
        client.clone(),
        config,
        shutdown.clone(),
    ));
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    eventually("default service account", Duration::from_secs(60), || {
        let sas = sas.clone();
        Box::pin(async move { sas.get_opt("default").await.ok().flatten() })
    })
    .await;

    daemonset_places_one_pod_per_eligible_node(&client).await;
    statefulset_creates_pods_in_order(&client).await;

    shutdown.cancel();
    let _ = manager.await;
}

async fn daemonset_places_one_pod_per_eligible_node(client: &Client) {
    create_node(client, "node-a", false).await;
    create_node(client, "node-b", true).await;
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = from_json(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": "pause"}]},
            },
        },
    }));
    let created = match dss.create(&PostParams::default(), &ds).await {
        Ok(ds) => ds,
        Err(e) => panic!("creating daemonset: {e}"),
    };

    let pods = eventually("one daemon pod", Duration::from_secs(60), || {
        let c = client.clone();
        Box::pin(async move {
            let pods = pods_with(&c, "app=agent").await;
            (pods.len() == 1).then_some(pods)
        })
    })
    .await;
    let pod = &pods[0];
    let affinity = serde_json::to_value(pod.spec.as_ref().and_then(|s| s.affinity.clone()))
        .unwrap_or_default();
    assert_eq!(
        affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchFields"][0],
        json!({"key": "metadata.name", "operator": "In", "values": ["node-a"]}),
    );
    let labels = pod.labels();
    assert_eq!(
        labels.get("pod-template-generation").map(String::as_str),
        Some("1")
    );
    let hash = labels
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default();
    assert!(!hash.is_empty(), "controller-revision-hash label");
    let owner = pod.owner_references().first().cloned();
    assert_eq!(owner.map(|o| o.uid), created.uid());
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unschedulable"))
    );

    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let revs = revisions
        .list(&ListParams::default().labels("app=agent"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    assert_eq!(revs.len(), 1, "one ControllerRevision");
    assert_eq!(revs[0].name_any(), format!("agent-{hash}"));
    assert_eq!(revs[0].revision, 1);

    let status = |want: (i32, i32, i32, i32)| {
        let dss = dss.clone();
        move || {
            let dss = dss.clone();
            Box::pin(async move {
                let s = dss.get("agent").await.ok()?.status?;
                let got = (
                    s.desired_number_scheduled,
                    s.current_number_scheduled,
                    s.number_ready,
                    s.number_available.unwrap_or(0),
                );
                (got == want && s.observed_generation == Some(1)).then_some(s)
            })
        }
    };
    let s = eventually(
        "status 1/1/0/0",
        Duration::from_secs(60),
        status((1, 1, 0, 0)),
    )
    .await;
    assert_eq!(s.updated_number_scheduled, Some(1));
    assert_eq!(s.number_unavailable, Some(1));
    make_ready(client, &pod.name_any()).await;
    eventually(
        "status 1/1/1/1",
        Duration::from_secs(60),
        status((1, 1, 1, 1)),
    )
    .await;

    // Untainting node-b makes it eligible: a second pod pinned there.
    let nodes: Api<Node> = Api::all(client.clone());
    let untaint = json!({"spec": {"taints": null}});
    let result = nodes
        .patch("node-b", &PatchParams::default(), &Patch::Merge(untaint))
        .await;
    assert!(result.is_ok(), "untainting node-b: {result:?}");
    eventually("two daemon pods", Duration::from_secs(60), || {
        let c = client.clone();
        Box::pin(async move { (pods_with(&c, "app=agent").await.len() == 2).then_some(()) })
    })
    .await;
    eventually(
        "status desired 2",
        Duration::from_secs(60),
        status((2, 2, 1, 1)),
    )
    .await;
}

async fn statefulset_creates_pods_in_order(client: &Client) {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let set: StatefulSet = from_json(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "w", "image": "nginx"}]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    }));
    if let Err(e) = sets.create(&PostParams::default(), &set).await {
        panic!("creating statefulset: {e}");
    }
    let first = eventually("web-0", Duration::from_secs(60), || {
        let c = client.clone();
        Box::pin(async move {
            let pods = pods_with(&c, "app=web").await;
            (!pods.is_empty()).then_some(pods)
        })
    })
    .await;
    assert_eq!(first.len(), 1, "OrderedReady creates one pod first");
    let pod = &first[0];
    assert_eq!(pod.name_any(), "web-0");
    let labels = pod.labels();
    assert_eq!(
        labels
            .get("statefulset.kubernetes.io/pod-name")
            .map(String::as_str),
        Some("web-0")
    );
    assert_eq!(
        labels
            .get("apps.kubernetes.io/pod-index")
            .map(String::as_str),
        Some("0")
    );
    let spec = pod.spec.clone().unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim = claims.get("www-web-0").await;
    assert!(claim.is_ok(), "PVC www-web-0 from the template: {claim:?}");

    // Not ready: still one pod after a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pods_with(client, "app=web").await.len(), 1);
    make_ready(client, "web-0").await;
    eventually("web-1", Duration::from_secs(60), || {
        let c = client.clone();
        Box::pin(async move {
            let pods = pods_with(&c, "app=web").await;
            pods.iter().any(|p| p.name_any() == "web-1").then_some(())
        })
    })
    .await;
    make_ready(client, "web-1").await;

    let set = eventually("status 2 ready", Duration::from_secs(60), || {
        let sets = sets.clone();
        Box::pin(async move {
            let set = sets.get("web").await.ok()?;
            let s = set.status.clone()?;
            (s.replicas == 2 && s.ready_replicas == Some(2) && s.current_replicas == Some(2))
                .then_some(set)
        })
    })
    .await;
    let status = set.status.unwrap_or_default();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.current_revision, status.update_revision);
    let revision = status.update_revision.unwrap_or_default();
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let rev = revisions.get(&revision).await;
    assert!(
        rev.as_ref().is_ok_and(|r| r.revision == 1),
        "revision {revision}: {rev:?}"
    );
    let pods = pods_with(client, "app=web").await;
    assert!(
        pods.iter()
            .all(|p| p.labels().get("controller-revision-hash") == Some(&revision))
    );
}
