//! tcpSocket probes (upstream `pkg/probe/tcp`): success when a connection opens in time.

use std::time::Duration;

use tokio::net::TcpStream;

use super::ProbeOutcome;

/// Formats `host:port` the way Go's `net.JoinHostPort` does.
pub(crate) fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Go-style text for a failed dial (`connect: connection refused`, `i/o timeout`).
pub(crate) fn dial_error_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        std::io::ErrorKind::HostUnreachable => "connect: no route to host".to_string(),
        std::io::ErrorKind::NetworkUnreachable => "connect: network is unreachable".to_string(),
        _ => e.to_string(),
    }
}

/// A failed dial; `Display` is Go's `net.Dial` message, which becomes the probe output.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("dial tcp {addr}: i/o timeout")]
    Timeout { addr: String },
    #[error("dial tcp {addr}: {}", dial_error_text(.source))]
    Io {
        addr: String,
        source: std::io::Error,
    },
}

pub(crate) async fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, DialError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => Err(DialError::Timeout {
            addr: addr.to_string(),
        }),
        Ok(Err(source)) => Err(DialError::Io {
            addr: addr.to_string(),
            source,
        }),
        Ok(Ok(stream)) => Ok(stream),
    }
}

/// Opens and closes a TCP connection; the output is the dial error on failure.
pub async fn probe_tcp(host: &str, port: i32, timeout: Duration) -> (ProbeOutcome, String) {
    let addr = join_host_port(host, port);
    match connect(&addr, timeout).await {
        Ok(stream) => {
            drop(stream);
            (ProbeOutcome::Success, String::new())
        }
        Err(e) => (ProbeOutcome::Failure, e.to_string()),
    }
}
