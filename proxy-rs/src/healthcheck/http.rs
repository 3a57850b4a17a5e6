//! The `:10256` endpoints (upstream `ProxierHealthServer`): `/healthz` and
//! `/livez` answer with the proxier's JSON and 200/503 status.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{HealthResponse, ProxierHealth};

/// Router for the proxier health server.
pub fn router(health: ProxierHealth) -> Router {
    let livez = health.clone();
    Router::new()
        .route("/healthz", get(move || respond(health.healthz())))
        .route("/livez", get(move || respond(livez.livez())))
}

async fn respond(r: HealthResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
        ],
        r.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use std::time::Duration;
    use tower::ServiceExt;

    #[tokio::test]
    async fn healthz_reports_proxier_json() {
        let health = ProxierHealth::new(Duration::from_secs(60));
        let expected = health.healthz();
        let resp = router(health)
            .oneshot(
                Request::get("/healthz")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status().as_u16(), expected.status);
        assert_eq!(
            resp.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json body");
        assert!(json.get("lastUpdated").is_some(), "{json}");
        assert!(json.get("currentTime").is_some(), "{json}");
    }
}
