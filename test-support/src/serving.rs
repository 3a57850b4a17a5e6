//! Probing a component's serving endpoints from tests: minimal HTTP/1.1 GETs
//! (HTTPS accepting any server certificate, as `curl -k` does) and a child
//! process wrapper that sends SIGTERM and checks the exit.
//!
//! Test support only: nothing here verifies server identity.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A directory removed on drop.
#[derive(Debug)]
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            component_base::app::uuid_v4()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TestDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A currently free loopback port (free when probed; good enough for tests).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Writes a kubeconfig whose server is a closed loopback port.
pub fn unreachable_kubeconfig(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: test\n",
    )?;
    Ok(path)
}

#[derive(Debug)]
struct AcceptAnyServerCert(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify; keep what was read.
    if let Err(err) = stream.read_to_end(&mut raw).await
        && raw.is_empty()
    {
        return Err(err);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("malformed response: {head:?}")))?;
    Ok((status, body.to_string()))
}

/// A client certificate chain and key to present.
#[derive(Debug)]
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// From PEM text (certificate chain, then key).
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Self, component_base::serving::tls::TlsError> {
        let pair = component_base::serving::tls::parse_pem_pair(
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
            "identity",
        )?;
        Ok(ClientIdentity {
            chain: pair.chain,
            key: pair.key,
        })
    }
}

/// `GET path` over HTTPS without verifying the server.
pub async fn https_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    https_get_as(addr, path, headers, None).await
}

/// [`https_get`] presenting `identity` as the client certificate.
pub async fn https_get_as(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    identity: Option<&ClientIdentity>,
) -> std::io::Result<(u16, String)> {
    let provider = rustls::crypto::ring::default_provider();
    let verifier = Arc::new(AcceptAnyServerCert(
        provider.signature_verification_algorithms,
    ));
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(std::io::Error::other)?,
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    exchange(tls, path, headers).await
}

/// `GET path` over plain HTTP.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    exchange(tokio::net::TcpStream::connect(addr).await?, path, headers).await
}

/// A spawned component binary, killed on drop if still running.
#[derive(Debug)]
pub struct ComponentProcess {
    child: Child,
    log: PathBuf,
}

impl ComponentProcess {
    /// Starts `bin args…` with stderr/stdout going to `<dir>/<name>.log`.
    pub fn spawn(bin: &str, args: &[String], dir: &Path) -> std::io::Result<Self> {
        let name = Path::new(bin)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "component".into());
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(ComponentProcess { child, log })
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Retries `probe` until it returns `(200, _)` or `timeout` passes.
    pub async fn wait_ok<F, Fut>(&mut self, timeout: Duration, probe: F) -> Result<String, String>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::io::Result<(u16, String)>>,
    {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited early with {status}; log:\n{}", self.log()));
            }
            match probe().await {
                Ok((200, body)) => return Ok(body),
                Ok((code, body)) => last = format!("HTTP {code}: {body}"),
                Err(err) => last = err.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "not ready after {timeout:?} ({last}); log:\n{}",
            self.log()
        ))
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| format!("kill: {e}"))?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!(
            "still running {timeout:?} after SIGTERM; log:\n{}",
            self.log()
        ))
    }
}

impl Drop for ComponentProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
