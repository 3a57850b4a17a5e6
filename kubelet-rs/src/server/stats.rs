//! `/stats/summary` and `/metrics/{resource,cadvisor,probes}` (upstream
//! `pkg/kubelet/server/stats` and the metric registries `server.go`
//! installs beside `/metrics`).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::KubeletServer;
use super::proxy::plain;
use crate::stats::cadvisor_metrics::render_cadvisor_metrics;
use crate::stats::prom::TEXT_CONTENT_TYPE;
use crate::stats::resource_metrics::render_resource_metrics;
use crate::stats::{Collected, StatsError};

#[derive(Debug, Default, Deserialize)]
pub(super) struct SummaryQuery {
    #[serde(default)]
    only_cpu_and_memory: Option<String>,
}

/// Why a stats request failed (a 500).
#[derive(Debug, thiserror::Error)]
enum HandlerError {
    #[error("stats are not available: the kubelet has no stats provider")]
    NoProvider,
    #[error(transparent)]
    Stats(#[from] StatsError),
}

async fn collect(s: &KubeletServer, only_cpu_and_memory: bool) -> Result<Collected, HandlerError> {
    let provider = s.stats.as_ref().ok_or(HandlerError::NoProvider)?;
    Ok(provider.collect(only_cpu_and_memory).await?)
}

fn text(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(TEXT_CONTENT_TYPE),
    );
    r
}

pub(super) async fn get_summary(
    State(s): State<KubeletServer>,
    Query(q): Query<SummaryQuery>,
) -> Response {
    // Go's strconv.ParseBool, as upstream parses the parameter.
    let only = match q.only_cpu_and_memory.as_deref() {
        None | Some("") => false,
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => true,
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => false,
        Some(other) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("Invalid only_cpu_and_memory value {other:?}"),
            );
        }
    };
    match collect(&s, only).await {
        Ok(c) => Json(c.summary).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Error getting summary stats");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal Error: failed to get summary stats: {e}"),
            )
        }
    }
}

pub(super) async fn get_resource_metrics(State(s): State<KubeletServer>) -> Response {
    let collected = collect(&s, true).await;
    if let Err(e) = &collected {
        tracing::error!(error = %e, "Error getting summary for resourceMetric prometheus endpoint");
    }
    text(render_resource_metrics(
        collected.as_ref().map(|c| &c.summary),
    ))
}

pub(super) async fn get_cadvisor_metrics(State(s): State<KubeletServer>) -> Response {
    match collect(&s, false).await {
        Ok(c) => text(render_cadvisor_metrics(&c)),
        Err(e) => {
            tracing::error!(error = %e, "Error getting stats for cadvisor prometheus endpoint");
            plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

pub(super) async fn get_probe_metrics() -> Response {
    text(crate::prober::metrics::render_probe_metrics())
}
