//! Builds the component's `kube::Client` from `--kubeconfig`/`--master` (or
//! the in-cluster config when neither is given, like client-go's
//! `BuildConfigFromFlags`), with client-go's token-bucket rate limit and its
//! `rest_client_*` metrics.
//!
//! Building a client never contacts the apiserver, so a component starts (and
//! serves `/healthz`) even while the apiserver is unreachable.

pub mod retry;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use tower::{Layer, Service};

use crate::flags::{ClientDefaults, ClientFlags};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("failed to load kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("invalid --master {0:?}")]
    InvalidMaster(String),
    #[error(
        "neither --kubeconfig nor --master was specified and the in-cluster config is not available: {0}"
    )]
    InCluster(String),
    #[error("failed to build the API client: {0}")]
    Build(String),
}

/// Loads the client configuration the way `clientcmd.BuildConfigFromFlags`
/// does: explicit kubeconfig, optionally overridden by `--master`; `--master`
/// alone; otherwise in-cluster.
pub async fn load_config(
    kubeconfig: Option<&Path>,
    master: Option<&str>,
) -> Result<kube::Config, ClientError> {
    let master_uri = master
        .filter(|m| !m.is_empty())
        .map(|m| {
            m.parse::<http::Uri>()
                .map_err(|_| ClientError::InvalidMaster(m.to_string()))
        })
        .transpose()?;
    let kubeconfig = kubeconfig.filter(|p| !p.as_os_str().is_empty());
    let mut config = match (kubeconfig, &master_uri) {
        (Some(path), _) => {
            let kc_err = |message: String| ClientError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let kc = Kubeconfig::read_from(path).map_err(|e| kc_err(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| kc_err(e.to_string()))?
        }
        (None, Some(uri)) => kube::Config::new(uri.clone()),
        (None, None) => {
            tracing::warn!(
                "Neither --kubeconfig nor --master was specified. Using the inClusterConfig. This might not work."
            );
            kube::Config::incluster().map_err(|e| ClientError::InCluster(e.to_string()))?
        }
    };
    if let Some(uri) = master_uri {
        config.cluster_url = uri;
    }
    Ok(config)
}

/// Loads the config for `flags` and builds a rate-limited, instrumented client.
pub async fn build_client(
    flags: &ClientFlags,
    defaults: ClientDefaults,
) -> Result<kube::Client, ClientError> {
    let config = load_config(flags.kubeconfig.as_deref(), flags.master.as_deref()).await?;
    if let Some(ct) = flags
        .kube_api_content_type
        .as_deref()
        .filter(|ct| *ct != "application/json")
    {
        tracing::debug!(
            content_type = ct,
            "kube-rs speaks JSON; ignoring --kube-api-content-type"
        );
    }
    client_from_config(
        config,
        flags.kube_api_qps.unwrap_or(defaults.qps),
        flags.kube_api_burst.unwrap_or(defaults.burst),
    )
}

/// Builds a client for `config` limited to `qps`/`burst` (client-go: a
/// non-positive QPS means no client-side limit).
pub fn client_from_config(
    config: kube::Config,
    qps: f32,
    burst: u32,
) -> Result<kube::Client, ClientError> {
    let host = metrics_host(&config);
    // client-go's retry rule replaces kube-client's (see `retry`).
    let mut config = config;
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| ClientError::Build(e.to_string()))?;
    Ok(with_client_go_retry(with_rate_limit_and_metrics(builder, host, qps, burst)).build())
}

/// The stack [`with_client_go_retry`] adds over a service whose calls
/// return `F`.
pub type ClientGoRetry<F> = tower::retry::Retry<
    retry::RetryAfterPolicy,
    tower::buffer::Buffer<http::Request<kube::client::Body>, F>,
>;

/// Retries what client-go retries (429/5xx carrying `Retry-After`, at most
/// 10 times, each attempt through the layers below: rate limit, metrics).
/// Build the builder from a config with `default_retry = false`, or
/// kube-client's own backoff retries every 429/503 for minutes first.
pub fn with_client_go_retry<S, B>(
    builder: kube::client::ClientBuilder<S>,
) -> kube::client::ClientBuilder<ClientGoRetry<S::Future>>
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError> + Send + Sync,
{
    builder
        // Retrying replays a request on a clone of the stack below it.
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(
            retry::RetryAfterPolicy::default(),
        ))
}

/// Adds what every client of ours carries, its own `qps`/`burst` token
/// bucket and the `rest_client_*` metrics for `host`, to a builder that may
/// have other layers (the controller-manager's per-controller credentials).
pub fn with_rate_limit_and_metrics<S>(
    builder: kube::client::ClientBuilder<S>,
    host: String,
    qps: f32,
    burst: u32,
) -> kube::client::ClientBuilder<RateLimit<RequestMetrics<S>>> {
    builder
        .with_layer(&RequestMetricsLayer { host })
        .with_layer(&RateLimitLayer::new(qps, burst.max(1)))
}

/// The `host` label of the `rest_client_*` metrics for `config`.
pub fn metrics_host(config: &kube::Config) -> String {
    config
        .cluster_url
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// client-go's token bucket: `burst` tokens, refilled at `qps` per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(qps: f32, burst: u32, now: Instant) -> Self {
        TokenBucket {
            qps: f64::from(qps),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes a token, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.qps <= 0.0 {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
    }
}

/// Tower layer applying a [`TokenBucket`] in `poll_ready`, so callers queue
/// (kube's `Buffer` serialises readiness) instead of failing.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    qps: f32,
    burst: u32,
}

impl RateLimitLayer {
    pub fn new(qps: f32, burst: u32) -> Self {
        RateLimitLayer { qps, burst }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: TokenBucket::new(self.qps, self.burst, Instant::now()),
            permit: false,
            sleep: None,
        }
    }
}

pub struct RateLimit<S> {
    inner: S,
    bucket: TokenBucket,
    permit: bool,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.permit {
            if let Some(sleep) = self.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            match self.bucket.try_take(Instant::now()) {
                Ok(()) => self.permit = true,
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.permit = false;
        self.inner.call(req)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    code: String,
    method: String,
    host: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    host: String,
}

struct RestClientMetrics {
    requests: Family<ResultLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
}

fn rest_client_metrics() -> &'static RestClientMetrics {
    static METRICS: OnceLock<RestClientMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let requests = Family::<ResultLabels, Counter>::default();
        // client-go's bucket boundaries for rest_client_request_duration_seconds.
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0,
            ])
        });
        crate::metrics::register(
            "rest_client_requests",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            requests.clone(),
        );
        crate::metrics::register(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb, and host.",
            latency.clone(),
        );
        RestClientMetrics { requests, latency }
    })
}

/// Records `rest_client_requests_total{code,method,host}` and
/// `rest_client_request_duration_seconds{verb,host}` per request.
#[derive(Debug, Clone)]
pub struct RequestMetricsLayer {
    host: String,
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;
    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics {
            inner,
            host: Arc::from(self.host.as_str()),
        }
    }
}

pub struct RequestMetrics<S> {
    inner: S,
    host: Arc<str>,
}

impl<S, B, RB> Service<http::Request<B>> for RequestMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.method().as_str().to_string();
        let host = self.host.to_string();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let metrics = rest_client_metrics();
            let code = match &result {
                Ok(resp) => resp.status().as_u16().to_string(),
                Err(_) => "<error>".to_string(),
            };
            metrics
                .latency
                .get_or_create(&LatencyLabels {
                    verb: method.clone(),
                    host: host.clone(),
                })
                .observe(started.elapsed().as_secs_f64());
            metrics
                .requests
                .get_or_create(&ResultLabels { code, method, host })
                .inc();
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn token_bucket_allows_burst_then_paces() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3, t0);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(t0), Ok(()));
        }
        let wait = bucket.try_take(t0).expect_err("bucket empty");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert_eq!(bucket.try_take(t0 + Duration::from_millis(100)), Ok(()));
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(later), Ok(()));
        }
        assert!(bucket.try_take(later).is_err());
    }

    #[test]
    fn non_positive_qps_is_unlimited() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(-1.0, 1, t0);
        for _ in 0..100 {
            assert_eq!(bucket.try_take(t0), Ok(()));
        }
    }

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: ns1\ncurrent-context: x\nusers:\n- name: u\n  user:\n    token: abc\n";

    #[tokio::test]
    async fn kubeconfig_with_master_override() {
        let mut file = tempfile::NamedTempFile::new().expect("tempfile");
        file.write_all(KUBECONFIG.as_bytes()).expect("write");
        let cfg = load_config(Some(file.path()), None).await.expect("loads");
        assert_eq!(cfg.cluster_url.to_string(), "https://127.0.0.1:1/");
        assert_eq!(cfg.default_namespace, "ns1");
        let cfg = load_config(Some(file.path()), Some("https://10.0.0.1:6443"))
            .await
            .expect("loads");
        assert_eq!(cfg.cluster_url.to_string(), "https://10.0.0.1:6443/");
        let cfg = load_config(None, Some("http://127.0.0.1:8080"))
            .await
            .expect("master only");
        assert_eq!(cfg.cluster_url.to_string(), "http://127.0.0.1:8080/");
        assert!(matches!(
            load_config(Some(Path::new("/nonexistent/kc")), None).await,
            Err(ClientError::Kubeconfig { .. })
        ));
    }

    #[tokio::test]
    async fn unreachable_apiserver_still_builds_and_counts_errors() {
        let mut file = tempfile::NamedTempFile::new().expect("tempfile");
        file.write_all(KUBECONFIG.as_bytes()).expect("write");
        let flags = ClientFlags {
            kubeconfig: Some(file.path().to_path_buf()),
            ..ClientFlags::default()
        };
        let client = build_client(
            &flags,
            ClientDefaults {
                qps: 50.0,
                burst: 100,
            },
        )
        .await
        .expect("client builds without contacting the apiserver");
        assert!(client.apiserver_version().await.is_err());
        let text = crate::metrics::encode_text();
        assert!(
            text.contains(
                r#"rest_client_requests_total{code="<error>",method="GET",host="127.0.0.1:1"}"#
            ),
            "{text}"
        );
        assert!(
            text.contains("rest_client_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}
