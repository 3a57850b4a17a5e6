//! The event recorder against a real etcd + stock kube-apiserver (skipped
//! when absent): the apiserver accepts our events and our series patches.

use component_base::events::{EventBroadcaster, EventType};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use std::time::Duration;
use test_support::apiserver::TestApiServer;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

async fn events_by(api: &Api<Event>, reason: &str) -> Vec<Event> {
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what}: timed out"
        );
        sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_accepts_events_and_series() {
    let Some(server) = TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let shutdown = CancellationToken::new();
    let broadcaster = EventBroadcaster::start(client.clone(), shutdown.clone());
    let rec = broadcaster.new_recorder("default-scheduler");
    assert!(rec.reporting_instance().starts_with("default-scheduler-"));

    let pod = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some("default".into()),
        name: Some("web-0".into()),
        uid: Some("5f1c8a1e-0000-4000-8000-000000000001".into()),
        ..Default::default()
    };
    for _ in 0..2 {
        rec.record(
            &pod,
            None,
            EventType::Warning,
            "FailedScheduling",
            "Scheduling",
            "0/3 nodes are available: 3 Insufficient cpu.",
        );
    }
    let node = ObjectReference {
        kind: Some("Node".into()),
        name: Some("node-1".into()),
        ..Default::default()
    };
    rec.record(
        &node,
        None,
        EventType::Normal,
        "Starting",
        "Start",
        "Starting kubelet.",
    );

    let api: Api<Event> = Api::namespaced(client, "default");
    wait_until("series count 2 stored", async || {
        events_by(&api, "FailedScheduling")
            .await
            .first()
            .and_then(|e| e.series.as_ref())
            .is_some_and(|s| s.count == 2)
    })
    .await;
    let failed = events_by(&api, "FailedScheduling").await;
    assert_eq!(failed.len(), 1, "the repeat joined the first event");
    let ev = &failed[0];
    assert_eq!(
        ev.reporting_controller.as_deref(),
        Some("default-scheduler")
    );
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(ev.action.as_deref(), Some("Scheduling"));
    assert!(
        ev.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("web-0."))
    );

    wait_until("node event in default", async || {
        !events_by(&api, "Starting").await.is_empty()
    })
    .await;
    shutdown.cancel();
}
