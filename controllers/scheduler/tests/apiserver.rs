//! Runs the scheduler against a real etcd + kube-apiserver: two nodes, pods get bound, and an
//! oversized pod gets the upstream FailedScheduling message and PodScheduled condition.
//! Fails when the binaries are missing, unless `FK_ALLOW_SKIP=1`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_scheduler::SchedulerConfig;
use test_support::apiserver;
use tokio_util::sync::CancellationToken;

/// Parses a manifest written as JSON, as a user would write it.
fn manifest<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
    match serde_json::from_value(value) {
        Ok(k) => k,
        Err(e) => panic!("bad test manifest: {e}"),
    }
}

/// A node with 2 CPUs, 4Gi and 110 pods, capacity equal to allocatable.
fn node(name: &str) -> Node {
    let alloc = serde_json::json!({"cpu": "2", "memory": "4Gi", "pods": "110"});
    manifest(serde_json::json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"capacity": alloc, "allocatable": alloc},
    }))
}

/// `default/<name>` for the default scheduler, one container requesting `cpu`.
fn pod(name: &str, cpu: &str) -> Pod {
    manifest(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedulerName": "default-scheduler",
            "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}],
        },
    }))
}

/// No controller-manager here to create it; pod admission needs it.
async fn create_default_service_account(client: &kube::Client) {
    let sa: ServiceAccount = manifest(serde_json::json!({"metadata": {"name": "default"}}));
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    if let Err(e) = sas.create(&PostParams::default(), &sa).await {
        panic!("creating default service account: {e}");
    }
}

async fn create_node(client: &kube::Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    let n = node(name);
    if let Err(e) = api.create(&PostParams::default(), &n).await {
        panic!("creating node {name}: {e}");
    }
    // Admission taints new nodes not-ready; the node lifecycle controller would lift it once
    // the kubelet reports Ready. Lifting it later also exercises requeueing on node updates.
    let status = serde_json::json!({"status": n.status});
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
    {
        panic!("setting node {name} status: {e}");
    }
}

async fn make_ready(client: &kube::Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({"spec": {"taints": null}});
    if let Err(e) = api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        panic!("removing node {name} taints: {e}");
    }
}

async fn create_pod(client: &kube::Client, name: &str, cpu: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    if let Err(e) = api.create(&PostParams::default(), &pod(name, cpu)).await {
        panic!("creating pod {name}: {e}");
    }
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_pods_on_real_apiserver() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    create_default_service_account(&client).await;
    create_node(&client, "node-a").await;
    create_node(&client, "node-b").await;

    let shutdown = CancellationToken::new();
    let runner = tokio::spawn(kube_scheduler::run(
        client.clone(),
        SchedulerConfig::default(),
        shutdown.clone(),
    ));

    create_pod(&client, "small-1", "1").await;
    create_pod(&client, "small-2", "1").await;
    create_pod(&client, "huge", "3").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    make_ready(&client, "node-a").await;
    make_ready(&client, "node-b").await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let node_of = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
    let bound = wait_for("both small pods bound", async || {
        let a = pods.get("small-1").await.ok().and_then(|p| node_of(&p))?;
        let b = pods.get("small-2").await.ok().and_then(|p| node_of(&p))?;
        Some((a, b))
    })
    .await;
    assert_ne!(bound.0, bound.1, "LeastAllocated spreads the two pods");

    let message = wait_for("PodScheduled=False on the huge pod", async || {
        let p = pods.get("huge").await.ok()?;
        let c = p
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?;
        (c.status == "False").then_some((c.reason, c.message))
    })
    .await;
    assert_eq!(message.0.as_deref(), Some("Unschedulable"));
    assert_eq!(
        message.1.as_deref(),
        Some(
            "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        )
    );

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let reasons = wait_for("Scheduled and FailedScheduling events", async || {
        let list = events.list(&ListParams::default()).await.ok()?;
        let reasons: Vec<(String, String)> = list
            .items
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect();
        let scheduled = reasons.iter().filter(|(r, _)| r == "Scheduled").count();
        let failed = reasons.iter().any(|(r, _)| r == "FailedScheduling");
        (scheduled == 2 && failed).then_some(reasons)
    })
    .await;
    assert!(reasons.iter().any(|(r, n)| r == "Scheduled"
        && (n == &format!("Successfully assigned default/small-1 to {}", bound.0))));

    preempts_lower_priority_pod(&client, &pods).await;

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(10), runner).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("scheduler did not stop cleanly: {other:?}"),
    }
}

/// A high-priority pod that fits nowhere evicts one of the small pods (no kubelet here, so the
/// test finishes the victim's graceful deletion itself) and then gets bound.
async fn preempts_lower_priority_pod(client: &kube::Client, pods: &Api<Pod>) {
    let classes: Api<PriorityClass> = Api::all(client.clone());
    let pc: PriorityClass = match serde_json::from_value(serde_json::json!({
        "metadata": {"name": "high"}, "value": 1000
    })) {
        Ok(pc) => pc,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = classes.create(&PostParams::default(), &pc).await {
        panic!("creating priority class: {e}");
    }
    let mut vip = pod("vip", "1500m");
    vip.spec
        .get_or_insert_with(Default::default)
        .priority_class_name = Some("high".into());
    if let Err(e) = pods.create(&PostParams::default(), &vip).await {
        panic!("creating vip pod: {e}");
    }
    let victim = wait_for("a small pod marked as preemption victim", async || {
        for name in ["small-1", "small-2"] {
            let p = pods.get(name).await.ok()?;
            let marked = p.metadata.deletion_timestamp.is_some()
                && p.status.as_ref()?.conditions.as_ref()?.iter().any(|c| {
                    c.type_ == "DisruptionTarget"
                        && c.reason.as_deref() == Some("PreemptionByScheduler")
                });
            if marked {
                return Some(name);
            }
        }
        None
    })
    .await;
    let nominated = pods
        .get("vip")
        .await
        .ok()
        .and_then(|p| p.status?.nominated_node_name);
    assert!(
        nominated.is_some(),
        "vip is nominated while its victim terminates"
    );
    // Stand in for the kubelet confirming the victim is gone.
    if let Err(e) = pods
        .delete(victim, &DeleteParams::default().grace_period(0))
        .await
    {
        panic!("force-deleting victim: {e}");
    }
    let node = wait_for("vip bound", async || {
        pods.get("vip").await.ok()?.spec?.node_name
    })
    .await;
    assert_eq!(Some(node), nominated);
}

/// `default/<name>` labelled `app=<app>` with extra spec fields merged in.
fn app_pod(name: &str, app: &str, extra: serde_json::Value) -> Pod {
    let mut spec = serde_json::json!({
        "schedulerName": "default-scheduler",
        "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}],
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    manifest(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": spec,
    }))
}

/// Three nodes in two zones: a deployment-like set with required zone anti-affinity gets one
/// replica per zone and the third is unschedulable with upstream's reason; a set with a hard
/// zone spread (maxSkew 1) lands 2/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spreads_by_zone_with_anti_affinity_and_topology_spread() {
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    create_default_service_account(&client).await;
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, zone) in [
        ("node-a", "zone1"),
        ("node-b", "zone1"),
        ("node-c", "zone2"),
    ] {
        create_node(&client, name).await;
        let patch = serde_json::json!({
            "metadata": {"labels": {"topology.kubernetes.io/zone": zone}},
            "spec": {"taints": null},
        });
        if let Err(e) = nodes
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            panic!("labelling node {name}: {e}");
        }
    }
    let shutdown = CancellationToken::new();
    let runner = tokio::spawn(kube_scheduler::run(
        client.clone(),
        SchedulerConfig::default(),
        shutdown.clone(),
    ));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let zone_of = async |name: &str| -> Option<String> {
        let p = pods.get(name).await.ok()?;
        let node = p.spec?.node_name?;
        let n = nodes.get(&node).await.ok()?;
        n.metadata
            .labels?
            .get("topology.kubernetes.io/zone")
            .cloned()
    };

    let anti = serde_json::json!({"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "web"}},
            "topologyKey": "topology.kubernetes.io/zone",
        }],
    }}});
    for i in 0..3 {
        let p = app_pod(&format!("web-{i}"), "web", anti.clone());
        if let Err(e) = pods.create(&PostParams::default(), &p).await {
            panic!("creating web-{i}: {e}");
        }
    }
    let mut zones = Vec::new();
    let mut pending = None;
    wait_for("two web replicas bound and one unschedulable", async || {
        zones.clear();
        pending = None;
        for i in 0..3 {
            let name = format!("web-{i}");
            match zone_of(&name).await {
                Some(z) => zones.push(z),
                None => {
                    let p = pods.get(&name).await.ok()?;
                    let c = p
                        .status?
                        .conditions?
                        .into_iter()
                        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
                    pending = c.message;
                }
            }
        }
        (zones.len() == 2 && pending.is_some()).then_some(())
    })
    .await;
    zones.sort();
    assert_eq!(zones, ["zone1", "zone2"], "one replica per zone");
    let message = pending.unwrap_or_default();
    assert!(
        message.starts_with(
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
        ),
        "{message}"
    );

    let spread = serde_json::json!({"topologySpreadConstraints": [{
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "spread"}},
    }]});
    for i in 0..4 {
        let p = app_pod(&format!("spread-{i}"), "spread", spread.clone());
        if let Err(e) = pods.create(&PostParams::default(), &p).await {
            panic!("creating spread-{i}: {e}");
        }
    }
    let mut zones = wait_for("four spread pods bound", async || {
        let mut zones = Vec::new();
        for i in 0..4 {
            zones.push(zone_of(&format!("spread-{i}")).await?);
        }
        Some(zones)
    })
    .await;
    zones.sort();
    assert_eq!(
        zones,
        ["zone1", "zone1", "zone2", "zone2"],
        "maxSkew 1 across zones"
    );

    claims_need_unimplemented_plugins_unless_bound_to_unrestricted_pvs(&client, &pods).await;

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(10), runner).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("scheduler did not stop cleanly: {other:?}"),
    }
}

/// A pod with an unknown claim is unschedulable with a reason naming the missing plugin; a pod
/// whose claim is bound to a PV without node affinity or zone labels is scheduled.
async fn claims_need_unimplemented_plugins_unless_bound_to_unrestricted_pvs(
    client: &kube::Client,
    pods: &Api<Pod>,
) {
    let with_claim = |claim: &str| serde_json::json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]});
    let p = app_pod("unbound", "db", with_claim("missing"));
    if let Err(e) = pods.create(&PostParams::default(), &p).await {
        panic!("creating unbound: {e}");
    }
    let message = wait_for(
        "PodScheduled=False on the pod with an unknown claim",
        async || {
            let c = pods
                .get("unbound")
                .await
                .ok()?
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
            c.message
        },
    )
    .await;
    assert_eq!(
        message,
        "0/3 nodes are available: pod uses persistentVolumeClaim volumes, which need the VolumeRestrictions plugin; kube-scheduler-rs does not implement it yet. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );

    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv: PersistentVolume = manifest(serde_json::json!({
        "metadata": {"name": "nfs-pv"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "nfs": {"server": "nfs.example", "path": "/export"},
            "claimRef": {"namespace": "default", "name": "shared"},
        },
    }));
    if let Err(e) = pvs.create(&PostParams::default(), &pv).await {
        panic!("creating PV: {e}");
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pvc: PersistentVolumeClaim = manifest(serde_json::json!({
        "metadata": {"name": "shared", "namespace": "default"},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeName": "nfs-pv",
            "storageClassName": "",
        },
    }));
    if let Err(e) = pvcs.create(&PostParams::default(), &pvc).await {
        panic!("creating PVC: {e}");
    }
    // No PV controller here: mark the claim bound as it would.
    let bound = serde_json::json!({"status": {"phase": "Bound"}});
    if let Err(e) = pvcs
        .patch_status("shared", &PatchParams::default(), &Patch::Merge(bound))
        .await
    {
        panic!("binding PVC: {e}");
    }
    let p = app_pod("bound", "db", with_claim("shared"));
    if let Err(e) = pods.create(&PostParams::default(), &p).await {
        panic!("creating bound: {e}");
    }
    wait_for(
        "pod with a claim bound to an NFS PV scheduled",
        async || pods.get("bound").await.ok()?.spec?.node_name,
    )
    .await;
}
