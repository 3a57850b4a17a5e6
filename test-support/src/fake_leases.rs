//! An in-process fake of the Lease endpoints of the apiserver (GET, POST,
//! PUT with resourceVersion checks) behind `kube::Client`s, so leader
//! election runs in CI and under tokio's paused clock. Each client has an
//! id; a client can be "partitioned" to make all its requests fail.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

const PREFIX: &str = "/apis/coordination.k8s.io/v1/namespaces/";

#[derive(Clone, Default)]
pub struct FakeLeaseApi {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    leases: HashMap<(String, String), Lease>,
    last_rv: u64,
    partitioned: HashSet<String>,
    /// Every accepted write, in order.
    writes: Vec<LeaseSpec>,
    conflicts: usize,
}

/// A failed request as the service reports it (an unreachable apiserver).
#[derive(Debug)]
pub struct Unreachable;

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused (partitioned by the test)")
    }
}

impl std::error::Error for Unreachable {}

impl FakeLeaseApi {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A client whose requests can be cut off with [`Self::partition`].
    pub fn client(&self, id: &str) -> kube::Client {
        let api = self.clone();
        let id = id.to_string();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let api = api.clone();
            let id = id.clone();
            async move { api.handle(&id, req).await }
        });
        kube::Client::new(svc, "default")
    }

    pub fn partition(&self, id: &str, cut_off: bool) {
        let mut st = self.state();
        if cut_off {
            st.partitioned.insert(id.to_string());
        } else {
            st.partitioned.remove(id);
        }
    }

    pub fn lease(&self, namespace: &str, name: &str) -> Option<Lease> {
        self.state()
            .leases
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn holder(&self, namespace: &str, name: &str) -> Option<String> {
        self.lease(namespace, name)
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    }

    pub fn writes(&self) -> Vec<LeaseSpec> {
        self.state().writes.clone()
    }

    pub fn conflicts(&self) -> usize {
        self.state().conflicts
    }

    /// Writes `spec` directly, as another (e.g. stock) candidate would.
    pub fn put_spec(&self, namespace: &str, name: &str, spec: LeaseSpec) {
        let mut st = self.state();
        st.last_rv += 1;
        let rv = st.last_rv.to_string();
        let key = (namespace.to_string(), name.to_string());
        let mut lease = st.leases.get(&key).cloned().unwrap_or_else(|| Lease {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            spec: None,
        });
        lease.metadata.resource_version = Some(rv);
        lease.spec = Some(spec.clone());
        st.writes.push(spec);
        st.leases.insert(key, lease);
    }

    async fn handle(
        &self,
        id: &str,
        req: Request<kube::client::Body>,
    ) -> Result<Response<Full<Bytes>>, Unreachable> {
        if self.state().partitioned.contains(id) {
            return Err(Unreachable);
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Ok(status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "unreadable body",
                ));
            }
        };
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return Ok(status(StatusCode::NOT_FOUND, "NotFound", "unknown path"));
        };
        let parts: Vec<&str> = rest.split('/').collect();
        Ok(match (method, parts.as_slice()) {
            (Method::GET, [ns, "leases", name]) => self.get(ns, name),
            (Method::POST, [ns, "leases"]) => self.create(ns, &body),
            (Method::PUT, [ns, "leases", name]) => self.update(ns, name, &body),
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "not faked",
            ),
        })
    }

    fn get(&self, ns: &str, name: &str) -> Response<Full<Bytes>> {
        match self.lease(ns, name) {
            Some(lease) => json(StatusCode::OK, &lease),
            None => status(StatusCode::NOT_FOUND, "NotFound", "leases not found"),
        }
    }

    fn create(&self, ns: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let Ok(mut lease) = serde_json::from_slice::<Lease>(body) else {
            return status(StatusCode::BAD_REQUEST, "BadRequest", "not a Lease");
        };
        let name = lease.metadata.name.clone().unwrap_or_default();
        let mut st = self.state();
        let key = (ns.to_string(), name);
        if st.leases.contains_key(&key) {
            st.conflicts += 1;
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                "leases already exists",
            );
        }
        st.last_rv += 1;
        lease.metadata.resource_version = Some(st.last_rv.to_string());
        lease.metadata.namespace = Some(ns.to_string());
        st.writes.push(lease.spec.clone().unwrap_or_default());
        st.leases.insert(key, lease.clone());
        json(StatusCode::CREATED, &lease)
    }

    fn update(&self, ns: &str, name: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let Ok(mut lease) = serde_json::from_slice::<Lease>(body) else {
            return status(StatusCode::BAD_REQUEST, "BadRequest", "not a Lease");
        };
        let mut st = self.state();
        let key = (ns.to_string(), name.to_string());
        let Some(stored) = st.leases.get(&key) else {
            return status(StatusCode::NOT_FOUND, "NotFound", "leases not found");
        };
        if lease.metadata.resource_version != stored.metadata.resource_version {
            st.conflicts += 1;
            return status(
                StatusCode::CONFLICT,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            );
        }
        st.last_rv += 1;
        lease.metadata.resource_version = Some(st.last_rv.to_string());
        st.writes.push(lease.spec.clone().unwrap_or_default());
        st.leases.insert(key, lease.clone());
        json(StatusCode::OK, &lease)
    }
}

fn json<T: serde::Serialize>(code: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    json(
        code,
        &serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        }),
    )
}
