//! httpGet probes (upstream `pkg/probe/http`): a GET with keep-alive off, no certificate
//! verification, redirects followed only while they stay on the original host, a body
//! read of at most 10 KiB, success for 200–399.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::ProbeOutcome;
use super::tcp::{DialError, connect, join_host_port};

/// Upstream `maxRespBodyLength`.
pub const MAX_RESPONSE_BODY: usize = 10 * 1024;
/// Go's `http.Client` default redirect limit, which the probe checker keeps.
const MAX_REDIRECTS: usize = 10;

/// `User-Agent` of probe requests: `kube-probe/<major>.<minor>`.
pub fn user_agent() -> String {
    "kube-probe/1.36".to_string()
}

/// A resolved httpGet action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbeRequest {
    /// `http` or `https` (lower case).
    pub scheme: String,
    pub host: String,
    pub port: i32,
    /// Path plus optional query, as written in the probe.
    pub path: String,
    /// `httpHeaders`, in order; a `Host` header overrides the request host.
    pub headers: Vec<(String, String)>,
}

impl HttpProbeRequest {
    /// The URL as upstream's `formatURL` prints it in error messages.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme,
            join_host_port(&self.host, self.port),
            self.path
        )
    }
}

/// One hop of a (possibly redirected) request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hop {
    https: bool,
    host: String,
    port: u16,
    path_and_query: String,
}

impl Hop {
    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!(
            "{scheme}://{}{}",
            join_host_port(&self.host, i32::from(self.port)),
            self.path_and_query
        )
    }
}

/// Why a request got no final response; `Display` is Go's `http.Client` message, which
/// becomes the probe's output.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("unsupported protocol scheme \"{0}\"")]
    Scheme(String),
    #[error("invalid port {0}")]
    Port(i32),
    #[error("Get \"{url}\": {source}")]
    Get { url: String, source: Box<HttpError> },
    #[error("Get \"{0}\": stopped after 10 redirects")]
    TooManyRedirects(String),
    #[error("failed to parse Location header {location:?}: {source}")]
    Location {
        location: String,
        source: http::uri::InvalidUri,
    },
    #[error("Location header {0:?} has no host")]
    LocationHost(String),
    #[error("invalid TLS server name {host:?}: {source}")]
    ServerName {
        host: String,
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("invalid probe request: {0}")]
    Request(http::Error),
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

impl HttpError {
    fn get(url: &str, source: HttpError) -> Self {
        HttpError::Get {
            url: url.to_string(),
            source: Box::new(source),
        }
    }
}

struct Response {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

/// Runs an httpGet probe; the output is the body on success, upstream's message otherwise.
pub async fn probe_http(req: &HttpProbeRequest, timeout: Duration) -> (ProbeOutcome, String) {
    let first = match first_hop(req) {
        Ok(hop) => hop,
        Err(e) => return (ProbeOutcome::Failure, e.to_string()),
    };
    let url = first.url();
    let response = match tokio::time::timeout(timeout, follow(first, &req.headers)).await {
        Err(_) => {
            return (
                ProbeOutcome::Failure,
                format!(
                    "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                ),
            );
        }
        Ok(Err(e)) => return (ProbeOutcome::Failure, e.to_string()),
        Ok(Ok(r)) => r,
    };
    classify(response.status, &response.body)
}

/// Why [`http_get`] got no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpGetError {
    /// The TLS handshake failed (for lifecycle hooks: maybe a plain-HTTP server).
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Other(String),
    #[error("Get \"{0}\": context deadline exceeded")]
    Timeout(String),
}

/// The same GET as a probe (redirect rules, headers, no certificate checks) for callers
/// that only need the request to complete (lifecycle hooks): the final status code, or
/// why there was none. `None` waits as long as it takes.
pub async fn http_get(
    req: &HttpProbeRequest,
    timeout: Option<Duration>,
) -> Result<u16, HttpGetError> {
    let first = first_hop(req).map_err(|e| HttpGetError::Other(e.to_string()))?;
    let url = first.url();
    let request = follow(first, &req.headers);
    let result = match timeout {
        Some(t) => tokio::time::timeout(t, request)
            .await
            .map_err(|_| HttpGetError::Timeout(url))?,
        None => request.await,
    };
    result.map(|r| r.status).map_err(|e| {
        let tls =
            matches!(&e, HttpError::Get { source, .. } if matches!(**source, HttpError::Tls(_)));
        if tls {
            HttpGetError::Tls(e.to_string())
        } else {
            HttpGetError::Other(e.to_string())
        }
    })
}

/// Upstream's verdict on a final response.
fn classify(status: u16, body: &[u8]) -> (ProbeOutcome, String) {
    let body = String::from_utf8_lossy(body).into_owned();
    match status {
        200..=299 => (ProbeOutcome::Success, body),
        300..=399 => (
            ProbeOutcome::Warning,
            format!("Probe terminated redirects, Response body: {body}"),
        ),
        _ => (
            ProbeOutcome::Failure,
            format!("HTTP probe failed with statuscode: {status}"),
        ),
    }
}

fn first_hop(req: &HttpProbeRequest) -> Result<Hop, HttpError> {
    let https = match req.scheme.as_str() {
        "http" => false,
        "https" => true,
        other => return Err(HttpError::Scheme(other.to_string())),
    };
    let port = u16::try_from(req.port).map_err(|_| HttpError::Port(req.port))?;
    let path_and_query = if req.path.is_empty() {
        "/".to_string()
    } else if req.path.starts_with('/') {
        req.path.clone()
    } else {
        format!("/{}", req.path)
    };
    Ok(Hop {
        https,
        host: req.host.clone(),
        port,
        path_and_query,
    })
}

async fn follow(first: Hop, headers: &[(String, String)]) -> Result<Response, HttpError> {
    let original_host = first.host.clone();
    let mut hop = first;
    let mut requests_made = 0;
    loop {
        let url = hop.url();
        let response = send(&hop, headers)
            .await
            .map_err(|e| HttpError::get(&url, e))?;
        requests_made += 1;
        let is_redirect = matches!(response.status, 301 | 302 | 303 | 307 | 308);
        let Some(location) = response.location.as_deref().filter(|_| is_redirect) else {
            return Ok(response);
        };
        let next = resolve_location(&hop, location).map_err(|e| HttpError::get(&url, e))?;
        // Off-host redirects end the chain: the 3xx itself becomes the probe's response.
        if next.host != original_host {
            return Ok(response);
        }
        if requests_made >= MAX_REDIRECTS {
            return Err(HttpError::TooManyRedirects(next.url()));
        }
        hop = next;
    }
}

/// Resolves a `Location` header against the hop that returned it.
fn resolve_location(base: &Hop, location: &str) -> Result<Hop, HttpError> {
    let absolute = if location.starts_with("//") {
        Some(format!(
            "{}:{location}",
            if base.https { "https" } else { "http" }
        ))
    } else if location.starts_with("http://") || location.starts_with("https://") {
        Some(location.to_string())
    } else {
        None
    };
    if let Some(absolute) = absolute {
        let uri: http::Uri = absolute.parse().map_err(|source| HttpError::Location {
            location: location.to_string(),
            source,
        })?;
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .ok_or_else(|| HttpError::LocationHost(location.to_string()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_string());
        return Ok(Hop {
            https,
            host,
            port,
            path_and_query,
        });
    }
    let path_and_query = if location.starts_with('/') {
        location.to_string()
    } else {
        let path = base.path_and_query.split('?').next().unwrap_or("/");
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{location}")
    };
    Ok(Hop {
        path_and_query,
        ..base.clone()
    })
}

async fn send(hop: &Hop, headers: &[(String, String)]) -> Result<Response, HttpError> {
    let addr = join_host_port(&hop.host, i32::from(hop.port));
    let tcp = connect(&addr, Duration::from_secs(3600)).await?;
    let request = build_request(hop, headers)?;
    if hop.https {
        let name = rustls::pki_types::ServerName::try_from(hop.host.clone()).map_err(|source| {
            HttpError::ServerName {
                host: hop.host.clone(),
                source,
            }
        })?;
        let tls = tokio_rustls::TlsConnector::from(insecure_tls_config())
            .connect(name, tcp)
            .await
            .map_err(HttpError::Tls)?;
        exchange(tls, request).await
    } else {
        exchange(tcp, request).await
    }
}

fn build_request(
    hop: &Hop,
    headers: &[(String, String)],
) -> Result<http::Request<Empty<Bytes>>, HttpError> {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut builder = http::Request::builder()
        .method(http::Method::GET)
        .uri(hop.path_and_query.as_str());
    if !has("host") {
        builder = builder.header(
            http::header::HOST,
            join_host_port(&hop.host, i32::from(hop.port)),
        );
    }
    for (name, value) in headers {
        // An explicitly empty Accept header means "send none" upstream.
        if name.eq_ignore_ascii_case("accept") && value.is_empty() {
            continue;
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    if !has("user-agent") {
        builder = builder.header(http::header::USER_AGENT, user_agent());
    }
    if !has("accept") {
        builder = builder.header(http::header::ACCEPT, "*/*");
    }
    // Upstream disables keep-alive, which makes Go send `Connection: close`.
    builder = builder.header(http::header::CONNECTION, "close");
    builder.body(Empty::new()).map_err(HttpError::Request)
}

async fn exchange<S>(stream: S, request: http::Request<Empty<Bytes>>) -> Result<Response, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let result = async {
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = response.into_body();
        let mut buf = Vec::new();
        while buf.len() < MAX_RESPONSE_BODY {
            match body.frame().await {
                None => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
            }
        }
        // A longer body is truncated, not an error (upstream logs and carries on).
        buf.truncate(MAX_RESPONSE_BODY);
        Ok(Response {
            status,
            location,
            body: buf,
        })
    }
    .await;
    driver.abort();
    result
}

/// Probes skip certificate verification, like upstream's `InsecureSkipVerify: true`.
fn insecure_tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(AcceptAnyCertificate(provider.clone()));
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.dangerous()
                        .with_custom_certificate_verifier(verifier)
                        .with_no_client_auth()
                });
            match config {
                Ok(c) => Arc::new(c),
                // The ring provider always supports the default versions; keep a
                // config that fails handshakes rather than panic if that ever changes.
                Err(e) => {
                    tracing::error!(error = %e, "cannot build TLS config for HTTPS probes");
                    Arc::new(
                        rustls::ClientConfig::builder()
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth(),
                    )
                }
            }
        })
        .clone()
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(path: &str) -> Hop {
        Hop {
            https: false,
            host: "10.0.0.1".into(),
            port: 8080,
            path_and_query: path.into(),
        }
    }

    #[test]
    fn classifies_status_codes() {
        let cases = [
            (200, ProbeOutcome::Success, "ok"),
            (
                399,
                ProbeOutcome::Warning,
                "Probe terminated redirects, Response body: ok",
            ),
            (
                302,
                ProbeOutcome::Warning,
                "Probe terminated redirects, Response body: ok",
            ),
            (
                400,
                ProbeOutcome::Failure,
                "HTTP probe failed with statuscode: 400",
            ),
            (
                500,
                ProbeOutcome::Failure,
                "HTTP probe failed with statuscode: 500",
            ),
            (
                199,
                ProbeOutcome::Failure,
                "HTTP probe failed with statuscode: 199",
            ),
        ];
        for (status, outcome, msg) in cases {
            assert_eq!(
                classify(status, b"ok"),
                (outcome, msg.to_string()),
                "{status}"
            );
        }
    }

    #[test]
    fn resolves_locations() {
        let base = hop("/a/b?x=1");
        let cases = [
            ("/c", "10.0.0.1", 8080, "/c"),
            ("c", "10.0.0.1", 8080, "/a/c"),
            ("http://other:9/z", "other", 9, "/z"),
            ("//other/z", "other", 80, "/z"),
            ("https://10.0.0.1", "10.0.0.1", 443, "/"),
        ];
        for (loc, host, port, path) in cases {
            let next = resolve_location(&base, loc).unwrap_or_else(|e| panic!("{loc}: {e}"));
            assert_eq!(
                (next.host.as_str(), next.port, next.path_and_query.as_str()),
                (host, port, path),
                "{loc}"
            );
        }
    }

    #[test]
    fn formats_url_like_upstream() {
        let req = HttpProbeRequest {
            scheme: "http".into(),
            host: "::1".into(),
            port: 80,
            path: "/healthz".into(),
            headers: vec![],
        };
        assert_eq!(req.url(), "http://[::1]:80/healthz");
    }
}
