//! The core/v1 recorder against a fake apiserver (a `kube::Client` over an
//! in-process service that logs requests), on tokio's paused clock: what
//! client-go's `recordToSink` sends, retries and gives up on.

use bytes::Bytes;
use component_base::events::record::LegacyRecorder;
use component_base::events::{EventBroadcaster, EventType, MAX_TRIES_PER_EVENT};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::ObjectReference;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

const EVENTS: &str = "/api/v1/namespaces/ns1/events";

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    content_type: String,
    body: Value,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Unreachable,
    Status(u16, &'static str),
}

#[derive(Clone, Default)]
struct Fake {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    stored: HashMap<String, Value>,
    faults: VecDeque<Fault>,
    always_unreachable: bool,
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

impl Fake {
    fn state(&self) -> MutexGuard<'_, State> {
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
        if st.always_unreachable {
            return Err(Unreachable);
        }
        match st.faults.pop_front() {
            Some(Fault::Unreachable) => return Err(Unreachable),
            Some(Fault::Status(code, reason)) => return Ok(status(code, reason)),
            None => {}
        }
        let Some(rest) = path.strip_prefix(EVENTS) else {
            return Ok(status(404, "NotFound"));
        };
        Ok(match (method, rest.trim_start_matches('/')) {
            (Method::POST, "") => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let mut stored = body.clone();
                stored["metadata"]["resourceVersion"] = json!("1");
                st.stored.insert(name, stored.clone());
                reply(201, &stored)
            }
            (Method::PATCH, name) => match st.stored.get_mut(name) {
                Some(stored) => {
                    for (k, v) in body.as_object().cloned().unwrap_or_default() {
                        stored[k] = v;
                    }
                    reply(200, stored)
                }
                None => status(404, "NotFound"),
            },
            _ => status(405, "MethodNotAllowed"),
        })
    }
}

fn start(fake: &Fake) -> (LegacyRecorder, CancellationToken) {
    let shutdown = CancellationToken::new();
    let broadcaster = EventBroadcaster::start(fake.client(), shutdown.clone());
    (
        broadcaster.new_legacy_recorder("replicaset-controller", ""),
        shutdown,
    )
}

fn rs() -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("ReplicaSet".into()),
        namespace: Some("ns1".into()),
        name: Some("web".into()),
        uid: Some("0d4d".into()),
        resource_version: Some("9".into()),
        ..Default::default()
    }
}

fn created(rec: &LegacyRecorder) {
    rec.event(
        &rs(),
        EventType::Normal,
        "SuccessfulCreate",
        "Created pod: web-1",
    );
}

#[tokio::test(start_paused = true)]
async fn creates_then_patches_count_and_recreates_when_gone() {
    let fake = Fake::default();
    let (rec, _stop) = start(&fake);
    created(&rec);
    sleep(Duration::from_millis(10)).await;
    created(&rec);
    sleep(Duration::from_millis(10)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].body["count"], 1);
    assert_eq!(
        seen[0].body["source"],
        json!({"component": "replicaset-controller"})
    );
    assert_eq!(seen[0].body["reportingComponent"], "replicaset-controller");
    assert_eq!(seen[0].body["involvedObject"]["resourceVersion"], "9");
    let name = seen[0].body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(name.starts_with("web."), "{name}");

    assert_eq!(seen[1].method, Method::PATCH);
    assert_eq!(seen[1].path, format!("{EVENTS}/{name}"));
    assert_eq!(
        seen[1].content_type,
        "application/strategic-merge-patch+json"
    );
    let patch = seen[1].body.as_object().cloned().unwrap_or_default();
    let mut keys: Vec<&str> = patch.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["count", "lastTimestamp", "message"]);
    assert_eq!(patch["count"], 2);

    // The event disappears (TTL): the next repeat's patch gets 404 and the
    // event is created again under its name with the next count.
    fake.state().stored.clear();
    created(&rec);
    sleep(Duration::from_millis(10)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[2].method, Method::PATCH);
    assert_eq!(seen[3].method, Method::POST);
    assert_eq!(seen[3].body["metadata"]["name"], name.as_str());
    assert_eq!(seen[3].body["count"], 3);
    assert!(seen[3].body["metadata"].get("resourceVersion").is_none());
}

#[tokio::test(start_paused = true)]
async fn transport_errors_are_retried_server_rejections_are_not() {
    let fake = Fake::default();
    let (rec, _stop) = start(&fake);
    fake.fail_next(&[Fault::Unreachable, Fault::Unreachable]);
    created(&rec);
    // First pause is random within 10s, the next one 10s.
    sleep(Duration::from_secs(21)).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "two failures then the create: {seen:?}");
    assert_eq!(fake.state().stored.len(), 1);

    // A status from the server (even a 500, as in client-go) is final, and
    // so is AlreadyExists.
    for (code, reason) in [
        (500, "InternalError"),
        (409, "AlreadyExists"),
        (422, "Invalid"),
    ] {
        let before = fake.seen().len();
        fake.fail_next(&[Fault::Status(code, reason)]);
        rec.event(&rs(), EventType::Warning, reason, "m");
        sleep(Duration::from_secs(60)).await;
        assert_eq!(fake.seen().len(), before + 1, "{code} is not retried");
    }
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_twelve_tries() {
    let fake = Fake::default();
    fake.state().always_unreachable = true;
    let (rec, _stop) = start(&fake);
    created(&rec);
    sleep(Duration::from_secs(10 * 20)).await;
    assert_eq!(fake.seen().len(), MAX_TRIES_PER_EVENT as usize);
    // The writer goes on with the next event.
    fake.state().always_unreachable = false;
    rec.event(&rs(), EventType::Normal, "Other", "m");
    sleep(Duration::from_millis(10)).await;
    assert_eq!(fake.seen().len(), MAX_TRIES_PER_EVENT as usize + 1);
}
