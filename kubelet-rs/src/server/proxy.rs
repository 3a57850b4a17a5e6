//! Upgrade-aware proxying to the runtime's streaming server (upstream
//! `proxy.UpgradeAwareHandler` with `upgradeRequired`): the upgrade request
//! is replayed to the CRI streaming URL and, once both sides switched
//! protocols (SPDY/3.1 or WebSocket), the two connections are spliced byte
//! for byte.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("Upgrade request required")]
    UpgradeRequired,
    #[error("invalid streaming URL {0:?}")]
    Url(String),
    #[error("error dialing backend: {0}")]
    Dial(std::io::Error),
    #[error("error proxying to backend: {0}")]
    Http(#[from] hyper::Error),
    #[error("error building backend request: {0}")]
    Request(#[from] http::Error),
}

/// upstream `httpstream.IsUpgradeRequest`: `Connection` lists `upgrade`.
pub fn is_upgrade_request(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// The kubelet's proxy responder: a 500 with the error text.
pub fn error_response(err: &ProxyError) -> Response {
    tracing::error!(%err, "Error while proxying request");
    plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n"))
}

pub(crate) fn plain(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Proxies the upgrade request `req` to `location` (an `http://` URL).
pub async fn proxy_upgrade(location: &str, req: Request) -> Response {
    match try_proxy(location, req).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    }
}

async fn try_proxy(location: &str, mut req: Request) -> Result<Response, ProxyError> {
    if !is_upgrade_request(req.headers()) {
        return Err(ProxyError::UpgradeRequired);
    }
    let url: http::Uri = location
        .parse()
        .map_err(|_| ProxyError::Url(location.to_string()))?;
    let authority = url
        .authority()
        .filter(|_| url.scheme_str() == Some("http"))
        .ok_or_else(|| ProxyError::Url(location.to_string()))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((authority.host(), port))
        .await
        .map_err(ProxyError::Dial)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(err) = conn.with_upgrades().await {
            tracing::debug!(%err, "streaming backend connection ended");
        }
    });

    // Same method and headers, the backend's path and query.
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut backend_req = http::Request::builder()
        .method(req.method().clone())
        .uri(path)
        .body(Body::empty())?;
    for (name, value) in req.headers() {
        if name != header::HOST {
            backend_req.headers_mut().append(name, value.clone());
        }
    }
    backend_req.headers_mut().insert(
        header::HOST,
        HeaderValue::from_str(authority.as_str())
            .map_err(|_| ProxyError::Url(location.to_string()))?,
    );
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut backend_resp = sender.send_request(backend_req).await?;
    if backend_resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The backend refused (e.g. an unknown token): pass its answer through.
        let (parts, body) = backend_resp.into_parts();
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    let backend_upgrade = hyper::upgrade::on(&mut backend_resp);
    tokio::spawn(async move {
        let (client, backend) = match tokio::try_join!(client_upgrade, backend_upgrade) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!(%err, "failed to upgrade the streaming connections");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut backend = TokioIo::new(backend);
        match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            Ok((up, down)) => {
                tracing::debug!(up, down, "streaming connection closed");
            }
            Err(err) => tracing::debug!(%err, "streaming connection ended"),
        }
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .body(Body::empty())?;
    *resp.headers_mut() = backend_resp.headers().clone();
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_upgrades() {
        let mut h = http::HeaderMap::new();
        assert!(!is_upgrade_request(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade_request(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        assert!(!is_upgrade_request(&h));
    }
}
