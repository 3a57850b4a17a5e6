//! Accept loops: HTTPS (tokio-rustls) and plain HTTP, serving an axum router
//! with per-connection peer information in the request extensions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Inserted into every request's extensions by the accept loop.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote_addr: SocketAddr,
    /// The client's certificate chain (leaf first); empty when none was sent
    /// or on plain HTTP. Not verified yet — see `auth::authn`.
    pub client_certs: Arc<Vec<CertificateDer<'static>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server: its bound address and task.
#[derive(Debug)]
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub task: JoinHandle<()>,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok((listener, local_addr))
}

/// Binds `addr` and serves `router` over TLS until `shutdown`.
pub async fn serve_https(
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: CancellationToken,
) -> Result<RunningServer, ServeError> {
    let (listener, local_addr) = bind(addr).await?;
    tracing::info!(address = %local_addr, "Serving securely");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let task = tokio::spawn(accept_loop(
        listener,
        shutdown,
        move |stream, remote, stop| {
            let acceptor = acceptor.clone();
            let router = router.clone();
            async move {
                let tls =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(err)) => {
                            tracing::debug!(%remote, %err, "TLS handshake error");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake timed out");
                            return;
                        }
                    };
                let certs = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default();
                let peer = PeerInfo {
                    remote_addr: remote,
                    client_certs: Arc::new(certs),
                };
                serve_connection(TokioIo::new(tls), peer, router, stop).await;
            }
        },
    ));
    Ok(RunningServer { local_addr, task })
}

/// Binds `addr` and serves `router` over plain HTTP until `shutdown`.
pub async fn serve_http(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> Result<RunningServer, ServeError> {
    let (listener, local_addr) = bind(addr).await?;
    tracing::info!(address = %local_addr, "Serving insecurely");
    let task = tokio::spawn(accept_loop(
        listener,
        shutdown,
        move |stream, remote, stop| {
            let router = router.clone();
            async move {
                let peer = PeerInfo {
                    remote_addr: remote,
                    client_certs: Arc::new(Vec::new()),
                };
                serve_connection(TokioIo::new(stream), peer, router, stop).await;
            }
        },
    ));
    Ok(RunningServer { local_addr, task })
}

async fn accept_loop<F, Fut>(listener: TcpListener, shutdown: CancellationToken, handle: F)
where
    F: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                tokio::spawn(handle(stream, remote, shutdown.clone()));
            }
            Err(err) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection<IO>(io: IO, peer: PeerInfo, router: Router, stop: CancellationToken)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer.clone());
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::trace!(%err, "connection closed with error");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
        }
    }
}
