//! The event recorder against a fake apiserver (a `kube::Client` over an
//! in-process service that logs requests), on tokio's paused clock: create,
//! series patches, the finish and refresh passes, retries and fallbacks.

use bytes::Bytes;
use component_base::events::{EventBroadcaster, EventRecorder, EventType};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::ObjectReference;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/";

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    content_type: String,
    body: Value,
}

/// What the fake does with the next request instead of serving it.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Unreachable,
    Status(u16),
}

#[derive(Clone, Default)]
struct FakeEvents {
    inner: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    seen: Vec<Seen>,
    stored: HashMap<String, Value>,
    faults: VecDeque<Fault>,
}

#[derive(Debug)]
struct Unreachable;

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused (test fault)")
    }
}

impl std::error::Error for Unreachable {}

fn reply(code: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn status(code: u16, reason: &str) -> Response<Full<Bytes>> {
    reply(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": reason, "reason": reason, "code": code}),
    )
}

impl FakeEvents {
    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn client(&self) -> kube::Client {
        let fake = self.clone();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let fake = fake.clone();
            async move { fake.handle(req).await }
        });
        kube::Client::new(svc, "default")
    }

    fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    fn fail_next(&self, faults: &[Fault]) {
        self.state().faults.extend(faults.iter().copied());
    }

    fn forget_all(&self) {
        self.state().stored.clear();
    }

    async fn handle(
        &self,
        req: Request<kube::client::Body>,
    ) -> Result<Response<Full<Bytes>>, Unreachable> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut st = self.state();
        st.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            content_type,
            body: body.clone(),
        });
        match st.faults.pop_front() {
            Some(Fault::Unreachable) => return Err(Unreachable),
            Some(Fault::Status(code)) => return Ok(status(code, "Injected")),
            None => {}
        }
        let Some(rest) = path.strip_prefix(EVENTS) else {
            return Ok(status(404, "NotFound"));
        };
        let parts: Vec<&str> = rest.split('/').collect();
        Ok(match (method, parts.as_slice()) {
            (Method::POST, [_ns, "events"]) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                match st.stored.entry(name) {
                    std::collections::hash_map::Entry::Occupied(_) => status(409, "AlreadyExists"),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(body.clone());
                        reply(201, &body)
                    }
                }
            }
            (Method::PATCH, [_ns, "events", name]) => match st.stored.get_mut(*name) {
                Some(stored) => {
                    stored["series"] = body["series"].clone();
                    reply(200, stored)
                }
                None => status(404, "NotFound"),
            },
            _ => status(405, "MethodNotAllowed"),
        })
    }
}

fn pod() -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some("ns1".into()),
        name: Some("web-0".into()),
        uid: Some("0d4d".into()),
        ..Default::default()
    }
}

fn start(fake: &FakeEvents) -> (EventRecorder, CancellationToken) {
    let shutdown = CancellationToken::new();
    let broadcaster = EventBroadcaster::start(fake.client(), shutdown.clone());
    (
        broadcaster.new_recorder_with_instance("default-scheduler", "default-scheduler-host1"),
        shutdown,
    )
}

fn scheduled(rec: &EventRecorder, note: &str) {
    rec.record(
        &pod(),
        None,
        EventType::Normal,
        "Scheduled",
        "Binding",
        note,
    );
}

fn series_count(s: &Seen) -> Option<i64> {
    s.body["series"]["count"].as_i64()
}

#[tokio::test(start_paused = true)]
async fn first_event_is_created_with_upstream_fields() {
    let fake = FakeEvents::default();
    let (rec, _stop) = start(&fake);
    scheduled(&rec, "Successfully assigned ns1/web-0 to node-1");
    sleep(Duration::from_millis(10)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let post = &seen[0];
    assert_eq!(post.method, Method::POST);
    assert_eq!(post.path, "/apis/events.k8s.io/v1/namespaces/ns1/events");
    let b = &post.body;
    assert_eq!(b["apiVersion"], "events.k8s.io/v1");
    assert_eq!(b["kind"], "Event");
    assert_eq!(b["metadata"]["namespace"], "ns1");
    let name = b["metadata"]["name"].as_str().unwrap_or_default();
    let (prefix, hex) = name.split_once('.').unwrap_or_default();
    assert_eq!(prefix, "web-0");
    assert!(i128::from_str_radix(hex, 16).is_ok(), "{name}");
    assert_eq!(b["reportingController"], "default-scheduler");
    assert_eq!(b["reportingInstance"], "default-scheduler-host1");
    assert_eq!(b["type"], "Normal");
    assert_eq!(b["reason"], "Scheduled");
    assert_eq!(b["action"], "Binding");
    assert_eq!(b["note"], "Successfully assigned ns1/web-0 to node-1");
    assert_eq!(b["regarding"]["kind"], "Pod");
    assert_eq!(b["regarding"]["uid"], "0d4d");
    assert!(b["eventTime"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(b.get("series").is_none());
}

#[tokio::test(start_paused = true)]
async fn cluster_scoped_objects_get_events_in_default() {
    let fake = FakeEvents::default();
    let (rec, _stop) = start(&fake);
    let node = ObjectReference {
        kind: Some("Node".into()),
        name: Some("node-1".into()),
        ..Default::default()
    };
    rec.record(
        &node,
        Some(&pod()),
        EventType::Warning,
        "Rebooted",
        "Reboot",
        "node rebooted",
    );
    sleep(Duration::from_millis(10)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path,
        "/apis/events.k8s.io/v1/namespaces/default/events"
    );
    assert_eq!(seen[0].body["type"], "Warning");
    assert_eq!(seen[0].body["related"]["name"], "web-0");
}

#[tokio::test(start_paused = true)]
async fn repeats_become_a_series_written_when_it_finishes() {
    let fake = FakeEvents::default();
    let (rec, _stop) = start(&fake);
    scheduled(&rec, "first");
    sleep(Duration::from_millis(10)).await;
    scheduled(&rec, "second, different note");
    sleep(Duration::from_millis(10)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    let name = seen[0].body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let patch = &seen[1];
    assert_eq!(patch.method, Method::PATCH);
    assert_eq!(
        patch.path,
        format!("/apis/events.k8s.io/v1/namespaces/ns1/events/{name}")
    );
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    let keys: Vec<&String> = patch
        .body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["series"], "only the series is patched");
    assert_eq!(series_count(patch), Some(2));
    assert!(patch.body["series"]["lastObservedTime"].as_str().is_some());

    // Further repeats only count, in memory.
    for _ in 0..3 {
        scheduled(&rec, "again");
    }
    sleep(Duration::from_secs(60)).await;
    assert_eq!(fake.seen().len(), 2);

    // Idle for more than 6 minutes: the finish pass (every 6 min) writes the
    // final count and forgets the series.
    sleep(Duration::from_secs(12 * 60)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].method, Method::PATCH);
    assert_eq!(series_count(&seen[2]), Some(5));

    // So the next occurrence starts over as a new event.
    scheduled(&rec, "after the series ended");
    sleep(Duration::from_millis(10)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].method, Method::POST);
    assert_ne!(
        seen[3].body["metadata"]["name"].as_str(),
        Some(name.as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn ongoing_series_is_rewritten_by_the_30_minute_refresh() {
    let fake = FakeEvents::default();
    let (rec, _stop) = start(&fake);
    scheduled(&rec, "n");
    // Let the create land first: a patch racing it would 404, fall back to a
    // create that conflicts, and be retried 10s later (as upstream does).
    sleep(Duration::from_millis(10)).await;
    scheduled(&rec, "n");
    // Keep the series alive: a repeat every 5 minutes (never idle for 6).
    for _ in 0..5 {
        sleep(Duration::from_secs(5 * 60)).await;
        scheduled(&rec, "n");
    }
    sleep(Duration::from_secs(4 * 60 + 50)).await;
    assert_eq!(fake.seen().len(), 2, "nothing written between the passes");
    sleep(Duration::from_secs(20)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].method, Method::PATCH);
    assert_eq!(series_count(&seen[2]), Some(7));
}

#[tokio::test(start_paused = true)]
async fn distinct_reasons_are_distinct_events() {
    let fake = FakeEvents::default();
    let (rec, _stop) = start(&fake);
    scheduled(&rec, "n");
    rec.record(
        &pod(),
        None,
        EventType::Warning,
        "FailedScheduling",
        "Scheduling",
        "0/3 nodes are available",
    );
    rec.record(
        &pod(),
        None,
        EventType::Normal,
        "Scheduled",
        "Preempting",
        "n",
    );
    sleep(Duration::from_millis(10)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.method == Method::POST));
}

#[tokio::test(start_paused = true)]
async fn unreachable_apiserver_is_retried_with_backoff() {
    let fake = FakeEvents::default();
    fake.fail_next(&[Fault::Unreachable, Fault::Unreachable]);
    let (rec, _stop) = start(&fake);
    scheduled(&rec, "n");
    sleep(Duration::from_secs(9)).await;
    assert_eq!(fake.seen().len(), 1, "no retry before 10s");
    sleep(Duration::from_secs(20)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "two retries ~10-12.5s apart");
    assert!(seen.iter().all(|s| s.method == Method::POST));
    sleep(Duration::from_secs(60)).await;
    assert_eq!(fake.seen().len(), 3, "no retry after success");
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_twelve_tries() {
    let fake = FakeEvents::default();
    fake.fail_next(&[Fault::Unreachable; 20]);
    let (rec, _stop) = start(&fake);
    scheduled(&rec, "n");
    sleep(Duration::from_secs(5 * 60)).await;
    assert_eq!(fake.seen().len(), 12);
}

#[tokio::test(start_paused = true)]
async fn rejected_events_are_not_retried() {
    let fake = FakeEvents::default();
    fake.fail_next(&[Fault::Status(422), Fault::Status(500)]);
    let (rec, _stop) = start(&fake);
    scheduled(&rec, "invalid");
    rec.record(
        &pod(),
        None,
        EventType::Warning,
        "Other",
        "Act",
        "server error",
    );
    sleep(Duration::from_secs(120)).await;
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn series_patch_of_a_deleted_event_recreates_it() {
    let fake = FakeEvents::default();
    let (rec, _stop) = start(&fake);
    scheduled(&rec, "n");
    sleep(Duration::from_millis(10)).await;
    fake.forget_all();
    scheduled(&rec, "n");
    sleep(Duration::from_millis(10)).await;
    let seen = fake.seen();
    let methods: Vec<&Method> = seen.iter().map(|s| &s.method).collect();
    assert_eq!(methods, [&Method::POST, &Method::PATCH, &Method::POST]);
    assert_eq!(
        seen[2].body["metadata"]["name"],
        seen[0].body["metadata"]["name"]
    );
    assert_eq!(series_count(&seen[2]), Some(2));
}

#[tokio::test(start_paused = true)]
async fn recording_after_shutdown_is_harmless() {
    let fake = FakeEvents::default();
    let (rec, stop) = start(&fake);
    stop.cancel();
    sleep(Duration::from_millis(10)).await;
    scheduled(&rec, "n");
    sleep(Duration::from_secs(1)).await;
    assert!(fake.seen().is_empty());
}

/// A repeat recorded right after the first may reach the server before the
/// create: its patch 404s, its fallback create conflicts, and the retry
/// patches the now existing event. Either way the server ends with count 2.
#[tokio::test(start_paused = true)]
async fn immediate_repeat_ends_as_a_series_of_two() {
    let fake = FakeEvents::default();
    let (rec, _stop) = start(&fake);
    scheduled(&rec, "n");
    scheduled(&rec, "n");
    sleep(Duration::from_secs(15)).await;
    let stored = fake.state().stored.values().cloned().collect::<Vec<_>>();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["series"]["count"], 2);
}
