//! `/healthz`, `/livez` and `/readyz` backed by named checks, with upstream's
//! output format (k8s.io/apiserver/pkg/server/healthz).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

type CheckFn = Arc<dyn Fn() -> Result<(), CheckFailure> + Send + Sync>;

/// Why a check fails, as the endpoint prints it (`[-]name failed: reason`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailure(pub String);

impl CheckFailure {
    /// A failure reported by an error's text.
    pub fn of(err: impl std::fmt::Display) -> Self {
        CheckFailure(err.to_string())
    }
}

impl From<String> for CheckFailure {
    fn from(reason: String) -> Self {
        CheckFailure(reason)
    }
}

impl From<&str> for CheckFailure {
    fn from(reason: &str) -> Self {
        CheckFailure(reason.to_string())
    }
}

/// One named check.
#[derive(Clone)]
pub struct HealthCheck {
    pub name: String,
    check: CheckFn,
}

impl HealthCheck {
    pub fn new(
        name: impl Into<String>,
        check: impl Fn() -> Result<(), CheckFailure> + Send + Sync + 'static,
    ) -> Self {
        HealthCheck {
            name: name.into(),
            check: Arc::new(check),
        }
    }

    /// upstream's `PingHealthz`: always passes.
    pub fn ping() -> Self {
        HealthCheck::new("ping", || Ok(()))
    }

    /// upstream's `LogHealthz`; tracing writes synchronously, so always ok.
    pub fn log() -> Self {
        HealthCheck::new("log", || Ok(()))
    }

    pub fn run(&self) -> Result<(), CheckFailure> {
        (self.check)()
    }
}

impl std::fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthCheck")
            .field("name", &self.name)
            .finish()
    }
}

/// A shareable, growable list of checks for one endpoint.
#[derive(Clone, Debug, Default)]
pub struct Checks(Arc<RwLock<Vec<HealthCheck>>>);

impl Checks {
    pub fn with(checks: Vec<HealthCheck>) -> Self {
        Checks(Arc::new(RwLock::new(checks)))
    }

    /// Adds (or replaces, by name) a check.
    pub fn add(&self, check: HealthCheck) {
        let mut list = self.0.write().unwrap_or_else(|e| e.into_inner());
        list.retain(|c| c.name != check.name);
        list.push(check);
    }

    pub fn snapshot(&self) -> Vec<HealthCheck> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The checks behind `/healthz`, `/livez` and `/readyz`. Each starts with
/// `ping` and `log`; clone it freely, all clones share the lists.
#[derive(Clone, Debug)]
pub struct HealthRegistry {
    pub healthz: Checks,
    pub livez: Checks,
    pub readyz: Checks,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        let base = || Checks::with(vec![HealthCheck::ping(), HealthCheck::log()]);
        HealthRegistry {
            healthz: base(),
            livez: base(),
            readyz: base(),
        }
    }
}

impl HealthRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `check` to all three endpoints.
    pub fn add_to_all(&self, check: HealthCheck) {
        self.healthz.add(check.clone());
        self.livez.add(check.clone());
        self.readyz.add(check);
    }

    /// Routes for `/healthz`, `/livez`, `/readyz` and their `/<check>` paths.
    pub fn router(&self) -> Router {
        let mut router = Router::new();
        for (name, checks) in [
            ("healthz", &self.healthz),
            ("livez", &self.livez),
            ("readyz", &self.readyz),
        ] {
            let root_state = (name, checks.clone());
            router = router
                .route(
                    &format!("/{name}"),
                    get(root_handler).with_state(root_state.clone()),
                )
                .route(
                    &format!("/{name}/{{check}}"),
                    get(single_handler).with_state(root_state),
                );
        }
        router
    }
}

/// Outcome of one check in a root request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Excluded,
    Failed(String),
}

/// Query options of a root health request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthQuery {
    pub verbose: bool,
    pub exclude: BTreeSet<String>,
}

/// Parses `?verbose` (any value, even empty, enables it) and `?exclude=a&exclude=b`.
pub fn parse_query(query: Option<&str>) -> HealthQuery {
    let mut out = HealthQuery::default();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "verbose" => out.verbose = true,
            "exclude" => {
                out.exclude.insert(value.to_string());
            }
            _ => {}
        }
    }
    out
}

/// Runs `checks` honouring `query.exclude`.
pub fn evaluate(checks: &[HealthCheck], query: &HealthQuery) -> Vec<(String, Outcome)> {
    checks
        .iter()
        .map(|c| {
            let outcome = if query.exclude.contains(&c.name) {
                Outcome::Excluded
            } else {
                match c.run() {
                    Ok(()) => Outcome::Passed,
                    Err(CheckFailure(reason)) => Outcome::Failed(reason),
                }
            };
            (c.name.clone(), outcome)
        })
        .collect()
}

/// Renders a root response exactly like upstream's `handleRootHealth`.
pub fn render(
    endpoint: &str,
    results: &[(String, Outcome)],
    query: &HealthQuery,
) -> (StatusCode, String) {
    let mut lines = String::new();
    let mut failed = false;
    for (name, outcome) in results {
        match outcome {
            Outcome::Passed => lines.push_str(&format!("[+]{name} ok\n")),
            Outcome::Excluded => lines.push_str(&format!("[+]{name} excluded: ok\n")),
            Outcome::Failed(_) => {
                failed = true;
                lines.push_str(&format!("[-]{name} failed: reason withheld\n"));
            }
        }
    }
    let unmatched: Vec<String> = query
        .exclude
        .iter()
        .filter(|e| !results.iter().any(|(n, _)| n == *e))
        .map(|e| format!("{e:?}"))
        .collect();
    if !unmatched.is_empty() {
        lines.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            unmatched.join(",")
        ));
    }
    if failed {
        // http.Error appends a newline.
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{lines}{endpoint} check failed\n"),
        );
    }
    if !query.verbose {
        return (StatusCode::OK, "ok".to_string());
    }
    (StatusCode::OK, format!("{lines}{endpoint} check passed\n"))
}

fn plain_text(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    resp
}

async fn root_handler(
    State((endpoint, checks)): State<(&'static str, Checks)>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_query(query.as_deref());
    let results = evaluate(&checks.snapshot(), &query);
    let failed: Vec<(&str, &str)> = results
        .iter()
        .filter_map(|(n, o)| match o {
            Outcome::Failed(reason) => Some((n.as_str(), reason.as_str())),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        tracing::info!(endpoint, ?failed, "health check failed");
    }
    let (status, body) = render(endpoint, &results, &query);
    plain_text(status, body)
}

async fn single_handler(
    State((_, checks)): State<(&'static str, Checks)>,
    Path(name): Path<String>,
) -> Response {
    let Some(check) = checks.snapshot().into_iter().find(|c| c.name == name) else {
        return plain_text(StatusCode::NOT_FOUND, "404 page not found\n".to_string());
    };
    match check.run() {
        Ok(()) => plain_text(StatusCode::OK, "ok".to_string()),
        Err(reason) => plain_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal server error: {reason}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(failing: bool) -> Vec<(String, Outcome)> {
        let le = if failing {
            Outcome::Failed("lease lost".into())
        } else {
            Outcome::Passed
        };
        vec![
            ("ping".into(), Outcome::Passed),
            ("log".into(), Outcome::Passed),
            ("leaderElection".into(), le),
        ]
    }

    #[test]
    fn rendering_matches_upstream() {
        let plain = HealthQuery::default();
        let verbose = parse_query(Some("verbose"));
        assert_eq!(
            render("healthz", &results(false), &plain),
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            render("healthz", &results(false), &verbose),
            (
                StatusCode::OK,
                "[+]ping ok\n[+]log ok\n[+]leaderElection ok\nhealthz check passed\n".into()
            )
        );
        let want_failed = "[+]ping ok\n[+]log ok\n[-]leaderElection failed: reason withheld\nreadyz check failed\n";
        assert_eq!(
            render("readyz", &results(true), &plain),
            (StatusCode::INTERNAL_SERVER_ERROR, want_failed.into())
        );
        assert_eq!(
            render("readyz", &results(true), &verbose),
            (StatusCode::INTERNAL_SERVER_ERROR, want_failed.into())
        );
    }

    #[test]
    fn exclusions() {
        let checks = vec![
            HealthCheck::ping(),
            HealthCheck::new("broken", || Err("nope".into())),
        ];
        let query = parse_query(Some("verbose=1&exclude=broken&exclude=missing"));
        assert!(query.verbose);
        let results = evaluate(&checks, &query);
        assert_eq!(results[1], ("broken".into(), Outcome::Excluded));
        let (status, body) = render("livez", &results, &query);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            "[+]ping ok\n[+]broken excluded: ok\nwarn: some health checks cannot be excluded: no matches for \"missing\"\nlivez check passed\n"
        );
    }

    #[test]
    fn registry_adds_and_replaces() {
        let reg = HealthRegistry::new();
        reg.add_to_all(HealthCheck::new("leaderElection", || Ok(())));
        reg.readyz
            .add(HealthCheck::new("leaderElection", || Err("x".into())));
        let names: Vec<String> = reg.readyz.snapshot().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["ping", "log", "leaderElection"]);
        assert!(reg.readyz.snapshot()[2].run().is_err());
        assert!(reg.healthz.snapshot()[2].run().is_ok());
    }
}
