//! `--use-service-account-credentials`: each controller talks to the
//! apiserver as the ServiceAccount `kube-system/<client name>` (upstream
//! `controller-manager/pkg/clientbuilder.DynamicControllerClientBuilder`),
//! so the bootstrap RBAC role `system:controller:<client name>` applies.
//!
//! The ServiceAccount is created with the process's own (root) client when
//! missing; its token comes from the TokenRequest API and is replaced once
//! 80% of its lifetime has passed, or right after the apiserver answers
//! 401, like client-go's resettable cached token source.
//!
//! Like client-go's per-controller clients, each one has its own
//! `--kube-api-qps`/`--kube-api-burst` token bucket and reports the
//! `rest_client_*` metrics.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::client::{Body, ClientBuilder};
use kube::config::AuthInfo;
use kube::{Client, Config};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::util::{MapRequestLayer, MapResponseLayer};

use crate::error::Error;

/// Upstream `defaultExpirationSeconds`.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Upstream `defaultLeewayPercent`: refresh when 20% of the lifetime is left.
pub const DEFAULT_LEEWAY_PERCENT: u32 = 20;
/// Namespace of the controllers' ServiceAccounts (`metav1.NamespaceSystem`).
pub const SERVICE_ACCOUNT_NAMESPACE: &str = "kube-system";
/// Upstream never trusts a token for less than ten minutes.
const MIN_LIFETIME: Duration = Duration::from_secs(600);
/// Upstream token fetch backoff: 500ms doubling, 4 attempts.
const TOKEN_BACKOFF_START: Duration = Duration::from_millis(500);
const TOKEN_ATTEMPTS: u32 = 4;

/// Hands out the client each controller should use.
#[derive(Clone)]
pub enum ControllerClientBuilder {
    /// Flag off: every controller shares the process's client.
    Simple(Client),
    /// Flag on: one ServiceAccount-token client per controller.
    ServiceAccount {
        root: Client,
        base: Box<Config>,
        /// `--kube-api-qps` / `--kube-api-burst`, for each controller's own
        /// token bucket.
        limits: ClientLimits,
        namespace: String,
        /// Stops the token refreshers.
        shutdown: CancellationToken,
    },
}

impl ControllerClientBuilder {
    /// Upstream `Client(name)`: for the dynamic builder this makes sure the
    /// ServiceAccount exists and a first token is issued before handing out
    /// a client; a background task keeps the token fresh afterwards.
    pub async fn client(&self, name: &str) -> Result<Client, Error> {
        match self {
            ControllerClientBuilder::Simple(client) => Ok(client.clone()),
            ControllerClientBuilder::ServiceAccount {
                root,
                base,
                limits,
                namespace,
                shutdown,
            } => {
                get_or_create_service_account(root, namespace, name).await?;
                let issuer = TokenIssuer {
                    root: root.clone(),
                    namespace: namespace.clone(),
                    name: name.to_string(),
                    expiration_seconds: DEFAULT_EXPIRATION_SECONDS,
                    leeway_percent: DEFAULT_LEEWAY_PERCENT,
                };
                let first = issuer
                    .fetch_with_backoff()
                    .await
                    .map_err(|err| Error::Controller {
                        name: "clientbuilder",
                        reason: err.to_string(),
                    })?;
                let current = Arc::new(CurrentToken::new(first.token));
                tokio::spawn(keep_fresh(
                    issuer,
                    Arc::clone(&current),
                    first.refresh_at,
                    shutdown.clone(),
                ));
                service_account_client(base, *limits, current)
            }
        }
    }
}

/// A client's request rate limit (client-go `rest.Config` `QPS`/`Burst`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientLimits {
    pub qps: f32,
    pub burst: u32,
}

/// The token a controller's requests carry right now; swapped by
/// [`keep_fresh`], which a 401 wakes early.
struct CurrentToken {
    header: RwLock<Option<HeaderValue>>,
    rejected: Notify,
}

impl CurrentToken {
    fn new(token: String) -> Self {
        let this = Self {
            header: RwLock::new(None),
            rejected: Notify::new(),
        };
        this.set(&token);
        this
    }

    fn set(&self, token: &str) {
        match HeaderValue::from_str(&format!("Bearer {token}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                if let Ok(mut guard) = self.header.write() {
                    *guard = Some(value);
                }
            }
            Err(err) => tracing::warn!(error = %err, "issued token is not a valid header value"),
        }
    }

    fn header(&self) -> Option<HeaderValue> {
        self.header.read().ok().and_then(|guard| guard.clone())
    }
}

/// A client with the base config's server and CA but none of its
/// credentials (upstream `AnonymousClientConfig`), authenticating with the
/// ServiceAccount's token, rate-limited and instrumented like the process's
/// own client.
fn service_account_client(
    base: &Config,
    limits: ClientLimits,
    current: Arc<CurrentToken>,
) -> Result<Client, Error> {
    let mut config = base.clone();
    config.auth_info = AuthInfo::default();
    config.default_retry = false;
    let host = component_base::client::metrics_host(&config);
    let builder = ClientBuilder::try_from(config).map_err(Error::Kube)?;
    let builder = component_base::client::with_client_go_retry(
        component_base::client::with_rate_limit_and_metrics(
            builder,
            host,
            limits.qps,
            limits.burst,
        ),
    );
    let for_requests = Arc::clone(&current);
    let auth = MapRequestLayer::new(move |mut req: Request<Body>| {
        if let Some(value) = for_requests.header() {
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        req
    });
    let reset_on_401 = MapResponseLayer::new(reset_on_unauthorized(current));
    Ok(builder.with_layer(&reset_on_401).with_layer(&auth).build())
}

/// client-go's `ResettableTokenSourceWrapTransport`: a 401 means the token
/// is no longer accepted, so get a new one now rather than at refresh time.
fn reset_on_unauthorized<B>(
    current: Arc<CurrentToken>,
) -> impl Fn(Response<B>) -> Response<B> + Clone + Send + Sync + 'static {
    move |resp: Response<B>| {
        if resp.status() == StatusCode::UNAUTHORIZED {
            current.rejected.notify_one();
        }
        resp
    }
}

/// Refreshes the token when its leeway starts (or on a 401) until shutdown;
/// a failed refresh keeps the old token and tries again after a backoff.
async fn keep_fresh(
    issuer: TokenIssuer,
    current: Arc<CurrentToken>,
    mut refresh_at: Instant,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(refresh_at.into()) => {}
            _ = current.rejected.notified() => {}
        }
        match issuer.fetch_with_backoff().await {
            Ok(fresh) => {
                current.set(&fresh.token);
                refresh_at = fresh.refresh_at;
            }
            Err(err) => {
                tracing::warn!(error = %err, "refreshing controller token failed; retrying");
                refresh_at = Instant::now() + TOKEN_BACKOFF_START * 2u32.pow(TOKEN_ATTEMPTS);
            }
        }
    }
}

/// Why a controller token could not be issued.
#[derive(Debug, thiserror::Error)]
#[error("failed to get token for {namespace}/{name}: {reason}")]
pub struct TokenError {
    namespace: String,
    name: String,
    reason: String,
}

struct IssuedToken {
    token: String,
    refresh_at: Instant,
}

/// Upstream `tokenSourceImpl`: TokenRequests for one ServiceAccount.
struct TokenIssuer {
    root: Client,
    namespace: String,
    name: String,
    expiration_seconds: i64,
    leeway_percent: u32,
}

impl TokenIssuer {
    async fn fetch_with_backoff(&self) -> Result<IssuedToken, TokenError> {
        let mut delay = TOKEN_BACKOFF_START;
        let mut last = String::new();
        for attempt in 1..=TOKEN_ATTEMPTS {
            match self.fetch().await {
                Ok(token) => return Ok(token),
                Err(err) => {
                    tracing::warn!(
                        namespace = %self.namespace,
                        name = %self.name,
                        attempt,
                        error = %err,
                        "get token failed"
                    );
                    last = err.to_string();
                }
            }
            if attempt < TOKEN_ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(TokenError {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            reason: last,
        })
    }

    async fn fetch(&self) -> Result<IssuedToken, Error> {
        get_or_create_service_account(&self.root, &self.namespace, &self.name).await?;
        let api: Api<ServiceAccount> = Api::namespaced(self.root.clone(), &self.namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(self.expiration_seconds),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let response = api
            .create_token_request(&self.name, &PostParams::default(), &request)
            .await?;
        let invalid = |reason: &str| Error::InvalidObject {
            object: format!("tokenrequest {}/{}", self.namespace, self.name),
            reason: reason.to_string(),
        };
        let status = response
            .status
            .ok_or_else(|| invalid("no status in TokenRequest response"))?;
        let token = status
            .token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("no token in TokenRequest status"))?;
        let expires = status
            .expiration_timestamp
            .ok_or_else(|| invalid("no expirationTimestamp in TokenRequest status"))?;
        let now = Instant::now();
        let lifetime =
            Duration::try_from(expires.0 - jiff::Timestamp::now()).unwrap_or(Duration::ZERO);
        Ok(IssuedToken {
            token,
            refresh_at: now + refresh_after(lifetime, self.leeway_percent),
        })
    }
}

/// How long a token may be used before refreshing: its remaining lifetime
/// (at least ten minutes, as upstream) minus `leeway_percent` of it.
pub fn refresh_after(lifetime: Duration, leeway_percent: u32) -> Duration {
    let lifetime = lifetime.max(MIN_LIFETIME);
    let leeway = lifetime * leeway_percent.min(100) / 100;
    lifetime - leeway
}

/// Creates `namespace` when missing; failures are only logged (upstream
/// does the same and lets the ServiceAccount create report the problem).
async fn ensure_namespace(root: &Client, namespace: &str) {
    let namespaces: Api<Namespace> = Api::all(root.clone());
    match namespaces.get(namespace).await.map_err(Error::from) {
        Err(err) if err.is_not_found() => {}
        _ => return,
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match namespaces
        .create(&PostParams::default(), &ns)
        .await
        .map_err(Error::from)
    {
        Err(err) if !err.is_already_exists() => {
            tracing::warn!(namespace, error = %err, "create non-exist namespace failed");
        }
        _ => {}
    }
}

/// Upstream `getOrCreateServiceAccount`: get; when missing, make sure the
/// namespace exists, create, and tolerate a concurrent creator.
async fn get_or_create_service_account(
    root: &Client,
    namespace: &str,
    name: &str,
) -> Result<ServiceAccount, Error> {
    let api: Api<ServiceAccount> = Api::namespaced(root.clone(), namespace);
    match api.get(name).await.map_err(Error::from) {
        Ok(sa) => return Ok(sa),
        Err(err) if !err.is_not_found() => return Err(err),
        Err(_) => {}
    }
    ensure_namespace(root, namespace).await;
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match api
        .create(&PostParams::default(), &sa)
        .await
        .map_err(Error::from)
    {
        Ok(sa) => Ok(sa),
        Err(err) if err.is_already_exists() => Ok(api.get(name).await?),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each per-controller client has its own `--kube-api-qps` bucket and
    /// reports `rest_client_requests_total` (here against a closed port, so
    /// every request fails fast and only the limiter takes time).
    #[tokio::test]
    async fn service_account_clients_are_rate_limited_and_counted() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let base = Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
        let limits = ClientLimits { qps: 5.0, burst: 1 };
        let a = service_account_client(&base, limits, Arc::new(CurrentToken::new("t".into())))
            .expect("client builds");
        let started = Instant::now();
        for _ in 0..6 {
            assert!(a.apiserver_version().await.is_err());
        }
        // One token up front, then one per 200ms: five waits.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
        let text = component_base::metrics::encode_text();
        let line = format!(
            r#"rest_client_requests_total{{code="<error>",method="GET",host="127.0.0.1:{port}"}} 6"#
        );
        assert!(text.contains(&line), "{line} not in {text}");
    }

    #[test]
    fn refresh_after_applies_leeway_and_minimum() {
        let cases = [
            // (remaining lifetime, leeway %, expected refresh delay)
            (Duration::from_secs(3600), 20, Duration::from_secs(2880)),
            (Duration::from_secs(3600), 0, Duration::from_secs(3600)),
            // Short-lived tokens are treated as ten minutes, like upstream.
            (Duration::from_secs(60), 20, Duration::from_secs(480)),
            (Duration::ZERO, 50, Duration::from_secs(300)),
            (Duration::from_secs(7200), 100, Duration::ZERO),
        ];
        for (lifetime, leeway, want) in cases {
            assert_eq!(
                refresh_after(lifetime, leeway),
                want,
                "{lifetime:?} {leeway}%"
            );
        }
    }
}
