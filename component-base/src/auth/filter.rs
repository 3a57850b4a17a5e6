//! The axum middleware that authenticates and authorizes every request of a
//! secure server, with upstream's 401/403 responses.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::authz::non_resource_verb;
use super::{Attributes, Authenticator, Authorizer, Decision, UserInfo};
use crate::serving::server::PeerInfo;

/// Maps an authenticated request to what is authorized. The default is
/// [`non_resource_attributes`]; the kubelet supplies its `nodes/*` mapping.
pub type AttributesFn =
    Arc<dyn Fn(&UserInfo, &http::Method, &http::Uri) -> Attributes + Send + Sync>;

/// Builds the response for a denied request (default: [`forbidden_response`]).
pub type ForbiddenFn = Arc<dyn Fn(&Attributes, &str) -> Response + Send + Sync>;

/// Authenticator + authorizer + how to describe and refuse requests.
#[derive(Clone)]
pub struct AuthFilter {
    pub authenticator: Arc<Authenticator>,
    pub authorizer: Arc<Authorizer>,
    pub attributes: AttributesFn,
    pub forbidden: ForbiddenFn,
}

impl std::fmt::Debug for AuthFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFilter")
            .field("authenticator", &self.authenticator)
            .field("authorizer", &self.authorizer)
            .finish()
    }
}

impl AuthFilter {
    pub fn new(authenticator: Authenticator, authorizer: Authorizer) -> Self {
        AuthFilter {
            authenticator: Arc::new(authenticator),
            authorizer: Arc::new(authorizer),
            attributes: Arc::new(non_resource_attributes),
            forbidden: Arc::new(forbidden_response),
        }
    }

    pub fn with_attributes(
        mut self,
        f: impl Fn(&UserInfo, &http::Method, &http::Uri) -> Attributes + Send + Sync + 'static,
    ) -> Self {
        self.attributes = Arc::new(f);
        self
    }

    pub fn with_forbidden(
        mut self,
        f: impl Fn(&Attributes, &str) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.forbidden = Arc::new(f);
        self
    }

    /// Wraps every route of `router` (present and merged before this call).
    pub fn apply(self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self, middleware))
    }
}

/// Non-resource attributes: the path and the lower-cased method.
pub fn non_resource_attributes(
    user: &UserInfo,
    method: &http::Method,
    uri: &http::Uri,
) -> Attributes {
    Attributes {
        user: user.clone(),
        verb: non_resource_verb(method),
        path: uri.path().to_string(),
        resource: None,
    }
}

/// upstream's `forbiddenMessage`.
pub fn forbidden_message(attrs: &Attributes) -> String {
    let user = &attrs.user.name;
    let verb = &attrs.verb;
    let Some(r) = &attrs.resource else {
        return format!("User {user:?} cannot {verb} path {:?}", attrs.path);
    };
    let mut resource = r.resource.clone();
    if !r.subresource.is_empty() {
        resource = format!("{resource}/{}", r.subresource);
    }
    if !r.namespace.is_empty() {
        return format!(
            "User {user:?} cannot {verb} resource {resource:?} in API group {:?} in the namespace {:?}",
            r.group, r.namespace
        );
    }
    format!(
        "User {user:?} cannot {verb} resource {resource:?} in API group {:?} at the cluster scope",
        r.group
    )
}

#[derive(Serialize)]
struct StatusDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    kind: &'static str,
    api_version: &'static str,
    metadata: serde_json::Map<String, serde_json::Value>,
    status: &'static str,
    message: String,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<StatusDetails>,
    code: u16,
}

/// A `metav1.Status` failure body as the apiserver's JSON serializer writes it.
pub fn status_body(
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: bool,
) -> String {
    let status = Status {
        kind: "Status",
        api_version: "v1",
        metadata: serde_json::Map::new(),
        status: "Failure",
        message,
        reason,
        details: details.then_some(StatusDetails {
            name: None,
            group: None,
            kind: None,
        }),
        code: code.as_u16(),
    };
    let mut body = serde_json::to_string(&status).unwrap_or_default();
    body.push('\n');
    body
}

fn json_response(code: StatusCode, body: String) -> Response {
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// upstream's `responsewriters.Forbidden` for delegated authorization.
pub fn forbidden_response(attrs: &Attributes, reason: &str) -> Response {
    let mut message = forbidden_message(attrs);
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    json_response(
        StatusCode::FORBIDDEN,
        status_body(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("forbidden: {message}"),
            true,
        ),
    )
}

/// upstream's `Unauthorized` failed-authentication handler.
pub fn unauthorized_response() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        status_body(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".to_string(),
            false,
        ),
    )
}

async fn middleware(
    State(filter): State<AuthFilter>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
    let chain = req
        .extensions()
        .get::<PeerInfo>()
        .map(|p| p.client_certs.clone())
        .unwrap_or_default();
    let user = match filter
        .authenticator
        .authenticate(req.headers(), chain.as_slice())
        .await
    {
        Ok(user) => user,
        Err(err) => {
            tracing::debug!(path = %req.uri().path(), %err, "Unable to authenticate the request");
            return unauthorized_response();
        }
    };
    let attrs = (filter.attributes)(&user, req.method(), req.uri());
    match filter.authorizer.authorize(&attrs).await {
        Ok(Decision::Allow) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Ok(Decision::Deny(reason)) | Ok(Decision::NoOpinion(reason)) => {
            tracing::debug!(user = %attrs.user.name, verb = %attrs.verb, path = %attrs.path, %reason, "Forbidden");
            (filter.forbidden)(&attrs, &reason)
        }
        Err(err) => {
            tracing::error!(path = %attrs.path, %err, "authorization error");
            let mut resp = (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal Server Error: {:?}: {err}\n", req.uri().path()),
            )
                .into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ResourceAttributes;
    use crate::auth::authz::AlwaysAllowPaths;
    use axum::routing::get;
    use tower::ServiceExt;

    #[test]
    fn forbidden_messages_match_upstream() {
        let mut attrs = non_resource_attributes(
            &UserInfo::anonymous(),
            &http::Method::GET,
            &"/metrics".parse().expect("uri"),
        );
        assert_eq!(
            forbidden_message(&attrs),
            r#"User "system:anonymous" cannot get path "/metrics""#
        );
        attrs.resource = Some(ResourceAttributes {
            resource: "nodes".into(),
            subresource: "proxy".into(),
            name: "n1".into(),
            ..ResourceAttributes::default()
        });
        assert_eq!(
            forbidden_message(&attrs),
            r#"User "system:anonymous" cannot get resource "nodes/proxy" in API group "" at the cluster scope"#
        );
        attrs.resource = Some(ResourceAttributes {
            namespace: "ns".into(),
            resource: "pods".into(),
            ..ResourceAttributes::default()
        });
        assert!(forbidden_message(&attrs).ends_with(r#"in API group "" in the namespace "ns""#));
    }

    #[test]
    fn status_bodies() {
        assert_eq!(
            status_body(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized".into(),
                false
            ),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}\n"
        );
        assert_eq!(
            status_body(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "forbidden: x".into(),
                true
            ),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"forbidden: x\",\"reason\":\"Forbidden\",\"details\":{},\"code\":403}\n"
        );
    }

    async fn call(router: &Router, path: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::builder().uri(path);
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let resp = router
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn middleware_end_to_end() {
        let authz = Authorizer {
            always_allow_paths: AlwaysAllowPaths::new(&["/healthz".into()]).expect("valid"),
            ..Authorizer::default()
        };
        let authn = Authenticator {
            anonymous: true,
            ..Authenticator::default()
        };
        let router = AuthFilter::new(authn, authz).apply(
            Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route("/metrics", get(|| async { "secret" })),
        );
        assert_eq!(
            call(&router, "/healthz", None).await,
            (StatusCode::OK, "ok".into())
        );
        let (status, body) = call(&router, "/metrics", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            body.contains(r#"forbidden: User \"system:anonymous\" cannot get path \"/metrics\""#),
            "{body}"
        );
        // No token reviewer configured: a bearer token is not understood → anonymous.
        assert_eq!(
            call(&router, "/healthz", Some("Bearer x")).await.0,
            StatusCode::OK
        );

        let strict = AuthFilter::new(Authenticator::default(), Authorizer::default())
            .apply(Router::new().route("/healthz", get(|| async { "ok" })));
        let (status, body) = call(&strict, "/healthz", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("\"reason\":\"Unauthorized\""));
    }
}
