//! Starts the real binary against an unreachable apiserver, checks
//! `https://127.0.0.1:<port>/healthz` (10250-style, anonymous + AlwaysAllow
//! by flag defaults) and `http://127.0.0.1:<healthz-port>/healthz`, then a
//! clean exit on SIGTERM.

use std::time::Duration;

use test_support::serving::{
    ComponentProcess, TestDir, free_port, http_get, https_get, unreachable_kubeconfig,
};

#[tokio::test]
async fn serves_healthz_and_exits_cleanly_on_sigterm() {
    let dir = TestDir::new("kubelet-rs-test").expect("dir");
    let kubeconfig = unreachable_kubeconfig(dir.path()).expect("kubeconfig");
    let port = free_port().expect("port");
    let healthz_port = free_port().expect("port");
    let args = vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--address=127.0.0.1".to_string(),
        format!("--port={port}"),
        format!("--healthz-port={healthz_port}"),
        format!("--cert-dir={}", dir.path().display()),
        format!("--root-dir={}", dir.path().display()),
        "--hostname-override=test-node".to_string(),
        "--fail-swap-on=false".to_string(),
    ];
    let mut proc = ComponentProcess::spawn(env!("CARGO_BIN_EXE_kubelet-rs"), &args, dir.path())
        .expect("spawn");
    let https = format!("127.0.0.1:{port}").parse().expect("addr");
    let http = format!("127.0.0.1:{healthz_port}").parse().expect("addr");
    let body = proc
        .wait_ok(Duration::from_secs(30), || {
            https_get(https, "/healthz", &[])
        })
        .await
        .expect("https healthz");
    assert_eq!(body, "ok");
    let (code, body) = http_get(http, "/healthz", &[]).await.expect("http healthz");
    assert_eq!((code, body.as_str()), (200, "ok"));
    // The self-signed serving pair lands in --cert-dir like upstream.
    assert!(dir.path().join("kubelet.crt").exists());
    let status = proc.terminate(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status}; log:\n{}", proc.log());
}
