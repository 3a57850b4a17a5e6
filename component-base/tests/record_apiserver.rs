//! The core/v1 (client-go `tools/record`) recorder against a real etcd +
//! stock kube-apiserver: repeats become one Event with a count and first/
//! last timestamps, ten similar events are combined, a deleted event is
//! created again, and the kubelet's source carries its node name.

use std::time::Duration;

use component_base::events::{EventBroadcaster, EventType};
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use test_support::apiserver::TestApiServer;
use test_support::wait::eventually;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(30);

async fn events_about(api: &Api<Event>, name: &str) -> Vec<Event> {
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect()
}

fn replicaset(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("ReplicaSet".into()),
        namespace: Some("default".into()),
        name: Some(name.into()),
        uid: Some(format!("5f1c8a1e-0000-4000-8000-{:0>12}", name.len())),
        resource_version: Some("42".into()),
        field_path: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_events_count_combine_and_carry_their_source() {
    let Some(server) = TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let shutdown = CancellationToken::new();
    let broadcaster = EventBroadcaster::start(client.clone(), shutdown.clone());
    let rs = broadcaster.new_legacy_recorder("replicaset-controller", "");
    let api: Api<Event> = Api::namespaced(client.clone(), "default");

    // Three identical events: one Event, count 3, first < last.
    let web = replicaset("web");
    rs.event(
        &web,
        EventType::Normal,
        "SuccessfulCreate",
        "Created pod: web-1",
    );
    rs.event(
        &web,
        EventType::Normal,
        "SuccessfulCreate",
        "Created pod: web-1",
    );
    eventually("count 2", LIMIT, || async {
        let evs = events_about(&api, "web").await;
        evs.iter().any(|e| e.count == Some(2)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    rs.event(
        &web,
        EventType::Normal,
        "SuccessfulCreate",
        "Created pod: web-1",
    );
    let ev = eventually("count 3", LIMIT, || async {
        let evs = events_about(&api, "web").await;
        evs.into_iter().find(|e| e.count == Some(3))
    })
    .await;
    assert_eq!(
        events_about(&api, "web").await.len(),
        1,
        "repeats patch one Event"
    );
    assert_eq!(ev.involved_object, web);
    assert_eq!(ev.type_.as_deref(), Some("Normal"));
    assert_eq!(ev.reason.as_deref(), Some("SuccessfulCreate"));
    assert_eq!(ev.message.as_deref(), Some("Created pod: web-1"));
    let source = ev.source.clone().unwrap_or_default();
    assert_eq!(source.component.as_deref(), Some("replicaset-controller"));
    assert_eq!(source.host, None);
    assert_eq!(
        ev.reporting_component.as_deref(),
        Some("replicaset-controller")
    );
    assert_eq!(ev.reporting_instance.as_deref().unwrap_or_default(), "");
    let first = ev.first_timestamp.clone().map(|t| t.0);
    let last = ev.last_timestamp.clone().map(|t| t.0);
    assert!(
        first.is_some_and(|f| last.is_some_and(|l| f < l)),
        "first {first:?} before last {last:?}"
    );
    assert!(
        ev.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("web."))
    );

    // Deleted meanwhile: the next repeat creates it again, with count 4.
    let name = ev.metadata.name.clone().unwrap_or_default();
    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
        panic!("deleting {name}: {e}");
    }
    rs.event(
        &web,
        EventType::Normal,
        "SuccessfulCreate",
        "Created pod: web-1",
    );
    let again = eventually("recreated with count 4", LIMIT, || async {
        let evs = events_about(&api, "web").await;
        evs.into_iter().find(|e| e.count == Some(4))
    })
    .await;
    assert_eq!(again.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(again.first_timestamp, ev.first_timestamp);

    // Eleven similar events (messages differ): nine stand alone, the
    // tenth starts the combined event and the eleventh bumps its count.
    let api_rs = replicaset("api");
    for i in 0..11 {
        rs.event(
            &api_rs,
            EventType::Warning,
            "FailedCreate",
            &format!("Error creating: attempt {i}"),
        );
    }
    let combined = eventually("combined event with count 2", LIMIT, || async {
        let evs = events_about(&api, "api").await;
        evs.into_iter().find(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("(combined from similar events): "))
                && e.count == Some(2)
        })
    })
    .await;
    assert_eq!(
        combined.message.as_deref(),
        Some("(combined from similar events): Error creating: attempt 10")
    );
    assert_eq!(combined.reason.as_deref(), Some("FailedCreate"));
    assert_eq!(combined.type_.as_deref(), Some("Warning"));
    assert_eq!(
        combined.source.and_then(|s| s.component).as_deref(),
        Some("replicaset-controller")
    );
    let all = events_about(&api, "api").await;
    assert_eq!(all.len(), 10, "nine single events and the combined one");

    // The kubelet: source host and reporting instance are the node's name;
    // a cluster-scoped object's events go to `default`.
    let kubelet = broadcaster.new_legacy_recorder("kubelet", "node-1");
    let node = ObjectReference {
        kind: Some("Node".into()),
        name: Some("node-1".into()),
        uid: Some("node-1".into()),
        ..Default::default()
    };
    kubelet.event(&node, EventType::Normal, "Starting", "Starting kubelet.");
    let started = eventually("node event", LIMIT, || async {
        events_about(&api, "node-1").await.into_iter().next()
    })
    .await;
    let source = started.source.unwrap_or_default();
    assert_eq!(source.component.as_deref(), Some("kubelet"));
    assert_eq!(source.host.as_deref(), Some("node-1"));
    assert_eq!(started.reporting_instance.as_deref(), Some("node-1"));
    assert_eq!(started.count, Some(1));
    assert!(started.first_timestamp.is_some());
    shutdown.cancel();
}
