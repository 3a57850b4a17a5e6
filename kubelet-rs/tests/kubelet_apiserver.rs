//! `kubelet::run` against a real etcd + kube-apiserver with the fake CRI: the node
//! registers and turns Ready, the lease renews, a bound pod runs and its deletion
//! completes through the status manager. The kubelet's :10250 router, fed by
//! the same run's `KubeletHandle`, serves the running pod on `/pods`.
// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod, PodSpec};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kubelet::{KubeletConfig, KubeletConfiguration, KubeletFlags};
use support::fake_cri::FakeRuntime;
use test_support::apiserver::TestApiServer;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// GET `path` on the kubelet router; the body as JSON.
async fn get_json(api: &axum::Router, path: &str) -> serde_json::Value {
    let req = http::Request::get(path)
        .body(axum::body::Body::empty())
        .expect("request");
    let resp = api.clone().oneshot(req).await.expect("router answers");
    assert_eq!(resp.status(), http::StatusCode::OK, "GET {path}");
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&body).expect("JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_registers_turns_ready_and_runs_a_pod() {
    // No controller-manager runs here to create default ServiceAccounts.
    let Some(server) =
        TestApiServer::start_with(&["--disable-admission-plugins=ServiceAccount"]).await
    else {
        return;
    };
    let client = server.client().await;

    let socket = server.pki_dir().join("cri.sock");
    let fake = FakeRuntime::new();
    fake.add_image("busybox:1.0");
    let _cri = fake.serve(&socket).expect("fake CRI");

    let manifests = server.pki_dir().join("manifests");
    std::fs::create_dir_all(&manifests).expect("manifests dir");
    std::fs::write(
        manifests.join("web.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\nspec:\n  containers:\n  - name: c\n    image: busybox:1.0\n",
    )
    .expect("manifest");
    let configuration = KubeletConfiguration {
        container_runtime_endpoint: format!("unix://{}", socket.display()),
        // Keep the host's cgroup tree untouched in this test.
        cgroups_per_qos: false,
        cluster_dns: vec!["10.96.0.10".into()],
        cluster_domain: "cluster.local".into(),
        node_status_update_frequency: Duration::from_secs(1),
        static_pod_path: manifests.display().to_string(),
        file_check_frequency: Duration::from_secs(1),
        ..Default::default()
    };
    let flags = KubeletFlags {
        hostname_override: Some("ferro-node-1".into()),
        node_ips: vec!["127.0.0.1".parse().expect("ip")],
        root_directory: server.pki_dir().join("kubelet"),
        pod_log_root: server.pki_dir().join("pods"),
        ..Default::default()
    };
    let config = KubeletConfig::from_component_config(configuration, flags);
    let shutdown = CancellationToken::new();
    let handle = kubelet::KubeletHandle::new();
    let streaming = kubelet::server::CriStreamingRuntime::connect(&socket, Duration::from_secs(10))
        .expect("CRI streaming client");
    let api = kubelet::server::KubeletServer::new(Arc::new(handle.clone()), Arc::new(streaming))
        .with_configz(serde_json::json!({"syncFrequency": "1m0s"}))
        .router();
    let kubelet = tokio::spawn(kubelet::run_with(
        client.clone(),
        config,
        shutdown.clone(),
        handle.clone(),
    ));

    let nodes: Api<Node> = Api::all(client.clone());
    let node = eventually("Ready node", 60, || {
        let nodes = nodes.clone();
        async move {
            let node = nodes.get_opt("ferro-node-1").await.ok().flatten()?;
            let ready = node
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(node)
        }
    })
    .await;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("kubernetes.io/hostname").map(String::as_str),
        Some("ferro-node-1")
    );
    assert_eq!(
        labels.get("kubernetes.io/os").map(String::as_str),
        Some("linux")
    );
    let status = node.status.clone().unwrap_or_default();
    let info = status.node_info.clone().unwrap_or_default();
    assert_eq!(info.kubelet_version, "v1.36.0");
    assert_eq!(info.container_runtime_version, "fake://0.0.1");
    assert_eq!(
        status
            .capacity
            .unwrap_or_default()
            .get("pods")
            .map(|q| q.0.as_str()),
        Some("110")
    );
    assert_eq!(
        status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port),
        Some(10250)
    );
    let ready = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("kubelet is posting ready status")
    );

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = eventually("lease", 30, || {
        let leases = leases.clone();
        async move { leases.get_opt("ferro-node-1").await.ok().flatten() }
    })
    .await;
    let spec = lease.spec.clone().unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("ferro-node-1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owners = lease.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.first().map(|o| o.kind.as_str()), Some("Node"));

    // The default namespace exists once the apiserver's bootstrap controllers ran.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually("default namespace", 30, || {
        let namespaces = namespaces.clone();
        async move { namespaces.get_opt("default").await.ok().flatten() }
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("hello".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("ferro-node-1".into()),
            termination_grace_period_seconds: Some(1),
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox:1.0".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let running = eventually("Running pod", 30, || {
        let pods = pods.clone();
        async move {
            let p = pods.get_opt("hello").await.ok().flatten()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
        }
    })
    .await;
    let st = running.status.unwrap_or_default();
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
    assert!(
        st.conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );

    // The kubelet's core/v1 events reach the API (read here through the
    // events.k8s.io/v1 view, where source/reporting become reportingController/Instance).
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let started = eventually("Started event for the pod", 30, || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("Started")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("hello")
            })
        }
    })
    .await;
    assert_eq!(started.reporting_controller.as_deref(), Some("kubelet"));
    assert_eq!(started.reporting_instance.as_deref(), Some("ferro-node-1"));
    assert_eq!(started.note.as_deref(), Some("Container started"));
    assert_eq!(
        started.regarding.and_then(|r| r.field_path).as_deref(),
        Some("spec.containers{main}")
    );
    let starting = eventually("Starting event for the node", 30, || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("Starting")
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Node")
            })
        }
    })
    .await;
    assert_eq!(starting.note.as_deref(), Some("Starting kubelet."));

    let served = eventually("running pod on the kubelet's /pods", 30, || {
        let api = api.clone();
        async move {
            let list = get_json(&api, "/pods").await;
            let pod = list["items"]
                .as_array()?
                .iter()
                .find(|p| p["metadata"]["name"] == "hello")?
                .clone();
            let running = &pod["status"]["containerStatuses"][0];
            running["state"]["running"].is_object().then_some(pod)
        }
    })
    .await;
    assert_eq!(served["metadata"]["namespace"], "default");
    assert_eq!(served["status"]["phase"], "Running");
    let cs = &served["status"]["containerStatuses"][0];
    assert_eq!(cs["name"], "main");
    let container_id = cs["containerID"].as_str().unwrap_or_default();
    // The fake CRI names itself "fake"; the scheme is the runtime's name.
    assert!(
        container_id.starts_with("fake://") && container_id.len() > "fake://".len(),
        "containerID with the runtime scheme: {container_id:?}"
    );
    let running_pods = get_json(&api, "/runningpods/").await;
    let listed = running_pods["items"]
        .as_array()
        .expect("runningpods items")
        .iter()
        .find(|p| p["metadata"]["name"] == "hello")
        .expect("hello among the running pods");
    assert_eq!(listed["spec"]["containers"][0]["name"], "main");
    assert_eq!(
        get_json(&api, "/configz").await["kubeletconfig"]["syncFrequency"],
        "1m0s"
    );
    // The PLEG relist loop has run, so the syncloop check has a time and passes.
    assert!(handle.latest_loop_entry().is_some());
    assert_eq!(
        handle.sync_loop_health_check(Duration::from_secs(60)),
        Ok(())
    );

    pods.delete("hello", &DeleteParams::default())
        .await
        .expect("delete pod");
    eventually("pod removed from the API", 30, || {
        let pods = pods.clone();
        async move {
            pods.get_opt("hello")
                .await
                .ok()
                .and_then(|p| p.is_none().then_some(()))
        }
    })
    .await;
    assert!(
        !fake
            .sandboxes()
            .iter()
            .any(|s| s.metadata.as_ref().is_some_and(|m| m.name == "hello")),
        "sandbox removed from the runtime: {:?}",
        fake.sandboxes()
    );

    // The static pod runs from the file and is mirrored into the API with its status.
    let mirror = eventually("running mirror pod", 30, || {
        let pods = pods.clone();
        async move {
            let p = pods
                .get_opt("static-web-ferro-node-1")
                .await
                .ok()
                .flatten()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
        }
    })
    .await;
    let annotations = mirror.metadata.annotations.clone().unwrap_or_default();
    assert!(annotations.contains_key("kubernetes.io/config.mirror"));
    assert_eq!(
        annotations
            .get("kubernetes.io/config.source")
            .map(String::as_str),
        Some("file")
    );
    assert_eq!(
        mirror
            .metadata
            .owner_references
            .unwrap_or_default()
            .first()
            .map(|o| o.kind.clone()),
        Some("Node".to_string())
    );

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), kubelet).await;
}
