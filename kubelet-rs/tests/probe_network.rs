//! httpGet / tcpSocket probes against real servers on 127.0.0.1.
// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support::prereq;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use k8s_openapi::api::core::v1::{HTTPGetAction, HTTPHeader, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubelet::prober::{
    ContainerExec, ExecError, ExecOutput, HttpProbeRequest, ProbeOutcome, ProbeTarget, probe_http,
    probe_tcp, run_probe,
};

async fn serve() -> u16 {
    let app = Router::new()
        .route("/ok", get(|| async { "healthy" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/redirect-local",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]) }),
        )
        .route(
            "/redirect-remote",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "http://elsewhere.invalid/ok")],
                    "moved",
                )
            }),
        )
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { "x".repeat(20 * 1024) }))
        .route(
            "/headers",
            get(|headers: HeaderMap| async move {
                let get = |h: &str| {
                    headers
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string()
                };
                format!(
                    "ua={} accept={} conn={} x={}",
                    get("user-agent"),
                    get("accept"),
                    get("connection"),
                    get("x-custom")
                )
                .into_response()
            }),
        );
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn request(port: u16, path: &str) -> HttpProbeRequest {
    HttpProbeRequest {
        scheme: "http".into(),
        host: "127.0.0.1".into(),
        port: i32::from(port),
        path: path.into(),
        headers: vec![],
    }
}

#[tokio::test]
async fn http_probe_status_codes_redirects_and_limits() {
    let port = serve().await;
    let t = Duration::from_secs(1);
    let cases = [
        ("/ok", ProbeOutcome::Success, "healthy".to_string()),
        (
            "/fail",
            ProbeOutcome::Failure,
            "HTTP probe failed with statuscode: 500".to_string(),
        ),
        (
            "/missing",
            ProbeOutcome::Failure,
            "HTTP probe failed with statuscode: 404".to_string(),
        ),
        // Same-host redirects are followed.
        (
            "/redirect-local",
            ProbeOutcome::Success,
            "healthy".to_string(),
        ),
        // Off-host redirects end the chain as a warning (which counts as success).
        (
            "/redirect-remote",
            ProbeOutcome::Warning,
            "Probe terminated redirects, Response body: moved".to_string(),
        ),
        (
            "/loop",
            ProbeOutcome::Failure,
            format!("Get \"http://127.0.0.1:{port}/loop\": stopped after 10 redirects"),
        ),
        (
            "/slow",
            ProbeOutcome::Failure,
            format!(
                "Get \"http://127.0.0.1:{port}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ),
        ),
    ];
    for (path, outcome, output) in cases {
        let got = probe_http(&request(port, path), t).await;
        assert_eq!(got, (outcome, output), "{path}");
    }
    let (outcome, body) = probe_http(&request(port, "/big"), t).await;
    assert_eq!((outcome, body.len()), (ProbeOutcome::Success, 10 * 1024));
}

#[tokio::test]
async fn http_probe_sends_upstream_headers() {
    let port = serve().await;
    let (_, body) = probe_http(&request(port, "/headers"), Duration::from_secs(1)).await;
    assert_eq!(body, "ua=kube-probe/1.36 accept=*/* conn=close x=-");
    let mut custom = request(port, "/headers");
    custom.headers = vec![
        ("X-Custom".into(), "yes".into()),
        ("Accept".into(), String::new()),
    ];
    let (_, body) = probe_http(&custom, Duration::from_secs(1)).await;
    assert_eq!(body, "ua=kube-probe/1.36 accept=- conn=close x=yes");
}

#[tokio::test]
async fn http_probe_connection_refused() {
    let port = {
        let Ok(l) = std::net::TcpListener::bind("127.0.0.1:0") else {
            panic!("bind")
        };
        l.local_addr().map(|a| a.port()).unwrap_or(1)
    };
    let (outcome, msg) = probe_http(&request(port, "/"), Duration::from_secs(1)).await;
    assert_eq!(outcome, ProbeOutcome::Failure);
    assert_eq!(
        msg,
        format!(
            "Get \"http://127.0.0.1:{port}/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
}

#[tokio::test]
async fn tcp_probe_open_and_closed_ports() {
    let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
        panic!("bind")
    };
    let open = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    assert_eq!(
        probe_tcp("127.0.0.1", i32::from(open), Duration::from_secs(1)).await,
        (ProbeOutcome::Success, String::new())
    );
    drop(listener);
    let (outcome, msg) = probe_tcp("127.0.0.1", i32::from(open), Duration::from_secs(1)).await;
    assert_eq!(outcome, ProbeOutcome::Failure);
    assert_eq!(
        msg,
        format!("dial tcp 127.0.0.1:{open}: connect: connection refused")
    );
}

struct NoExec;
#[async_trait::async_trait]
impl ContainerExec for NoExec {
    async fn exec_sync(&self, _: &str, _: &[String], _: Duration) -> Result<ExecOutput, ExecError> {
        Err(ExecError::Runtime("not used".into()))
    }
}

#[tokio::test]
async fn run_probe_resolves_pod_ip_and_named_ports() {
    let port = serve().await;
    let target = ProbeTarget {
        pod_ip: Some("127.0.0.1".into()),
        named_ports: HashMap::from([("http".to_string(), i32::from(port))]),
        exec: Arc::new(NoExec),
    };
    let http = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/headers".into()),
            port: IntOrString::String("http".into()),
            http_headers: Some(vec![HTTPHeader {
                name: "X-Custom".into(),
                value: "v".into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let got = run_probe(&http, &target, "cid").await;
    assert_eq!(
        got,
        Ok((
            ProbeOutcome::Success,
            "ua=kube-probe/1.36 accept=*/* conn=close x=v".to_string()
        ))
    );
    let tcp = Probe {
        tcp_socket: Some(TCPSocketAction {
            host: None,
            port: IntOrString::Int(i32::from(port)),
        }),
        ..Default::default()
    };
    assert_eq!(
        run_probe(&tcp, &target, "cid").await,
        Ok((ProbeOutcome::Success, String::new()))
    );
    let unknown_port = Probe {
        tcp_socket: Some(TCPSocketAction {
            host: None,
            port: IntOrString::String("grpc".into()),
        }),
        ..Default::default()
    };
    assert_eq!(
        run_probe(&unknown_port, &target, "cid")
            .await
            .map_err(|e| e.to_string()),
        Err("port grpc not found".to_string())
    );
}

/// A one-shot HTTPS server with a self-signed certificate made by `openssl`;
/// `None` when openssl fails and `FK_ALLOW_SKIP=1` (else the test fails).
async fn serve_tls_once(dir: &std::path::Path) -> Option<u16> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=probe-test",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(dir)
        .output();
    match made {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            prereq::skip_or_fail(&format!(
                "openssl could not make a test certificate: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Err(e) => {
            prereq::skip_or_fail(&format!(
                "cannot run openssl to make a test certificate (apt-get install openssl): {e}"
            ));
            return None;
        }
    }
    // Past openssl nothing depends on the machine: a failure is a bug.
    let cert = CertificateDer::from_pem_file(dir.join("cert.pem")).expect("openssl's cert.pem");
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).expect("openssl's key.pem");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("TLS server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("listener address").port();
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut buf = vec![0u8; 4096];
        let _ = tls.read(&mut buf).await;
        let reply = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure";
        let _ = tls.write_all(reply.as_bytes()).await;
        let _ = tls.shutdown().await;
    });
    Some(port)
}

#[tokio::test]
async fn https_probe_skips_certificate_verification() {
    let Ok(tmp) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let Some(port) = serve_tls_once(tmp.path()).await else {
        return;
    };
    let mut req = request(port, "/");
    req.scheme = "https".into();
    let got = probe_http(&req, Duration::from_secs(2)).await;
    assert_eq!(got, (ProbeOutcome::Success, "secure".to_string()));
}
