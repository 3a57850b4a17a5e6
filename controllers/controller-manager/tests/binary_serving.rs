//! Starts the real binary against an unreachable apiserver, checks
//! `https://127.0.0.1:<port>/healthz` and a clean exit on SIGTERM.

use std::time::Duration;

use test_support::serving::{
    ComponentProcess, TestDir, free_port, https_get, unreachable_kubeconfig,
};

#[tokio::test]
async fn serves_healthz_and_exits_cleanly_on_sigterm() {
    let dir = TestDir::new("kube-controller-manager-rs-test").expect("dir");
    let kubeconfig = unreachable_kubeconfig(dir.path()).expect("kubeconfig");
    let port = free_port().expect("port");
    let args = vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--secure-port={port}"),
        "--bind-address=127.0.0.1".to_string(),
        "--leader-elect=false".to_string(),
        "--controllers=*,bootstrapsigner".to_string(),
        format!("--cert-dir={}", dir.path().display()),
    ];
    let mut proc = ComponentProcess::spawn(
        env!("CARGO_BIN_EXE_kube-controller-manager-rs"),
        &args,
        dir.path(),
    )
    .expect("spawn");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let body = proc
        .wait_ok(Duration::from_secs(30), || https_get(addr, "/healthz", &[]))
        .await
        .expect("healthz");
    assert_eq!(body, "ok");
    assert_eq!(https_get(addr, "/livez", &[]).await.expect("livez").0, 200);
    // Only the exact always-allow paths skip authorization, as upstream.
    assert_eq!(
        https_get(addr, "/livez/ping", &[]).await.expect("livez").0,
        403
    );
    // --cert-dir keeps the generated pair on disk like upstream.
    assert!(dir.path().join("kube-controller-manager.crt").exists());
    let status = proc.terminate(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status}; log:\n{}", proc.log());
}
