//! Starts the real binary against an unreachable apiserver, checks the
//! plain-HTTP healthz and metrics servers and a clean exit on SIGTERM.

use std::time::Duration;

use test_support::serving::{
    ComponentProcess, TestDir, free_port, http_get, unreachable_kubeconfig,
};

#[tokio::test]
async fn serves_healthz_and_metrics_and_exits_cleanly_on_sigterm() {
    let dir = TestDir::new("kube-proxy-rs-test").expect("dir");
    let kubeconfig = unreachable_kubeconfig(dir.path()).expect("kubeconfig");
    let healthz_port = free_port().expect("port");
    let metrics_port = free_port().expect("port");
    let args = vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--healthz-bind-address=127.0.0.1:{healthz_port}"),
        format!("--metrics-bind-address=127.0.0.1:{metrics_port}"),
        "--proxy-mode=nftables".to_string(),
        "--hostname-override=test-node".to_string(),
        "--cleanup".to_string(),
    ];
    let mut proc = ComponentProcess::spawn(env!("CARGO_BIN_EXE_kube-proxy-rs"), &args, dir.path())
        .expect("spawn");
    let healthz = format!("127.0.0.1:{healthz_port}").parse().expect("addr");
    let metrics = format!("127.0.0.1:{metrics_port}").parse().expect("addr");
    proc.wait_ok(Duration::from_secs(30), || {
        http_get(healthz, "/healthz", &[])
    })
    .await
    .expect("healthz");
    let (code, body) = http_get(metrics, "/metrics", &[]).await.expect("metrics");
    assert_eq!(code, 200);
    assert!(body.contains("process_start_time_seconds"), "{body}");
    let status = proc.terminate(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status}; log:\n{}", proc.log());
}
