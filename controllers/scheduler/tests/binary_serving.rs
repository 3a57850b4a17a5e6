//! Starts the real binary against an unreachable apiserver, checks
//! `https://127.0.0.1:<port>/healthz` and a clean exit on SIGTERM.

use std::time::Duration;

use test_support::serving::{
    ComponentProcess, TestDir, free_port, https_get, unreachable_kubeconfig,
};

#[tokio::test]
async fn serves_healthz_and_exits_cleanly_on_sigterm() {
    let dir = TestDir::new("kube-scheduler-rs-test").expect("dir");
    let kubeconfig = unreachable_kubeconfig(dir.path()).expect("kubeconfig");
    let port = free_port().expect("port");
    let args = vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--secure-port={port}"),
        "--bind-address=127.0.0.1".to_string(),
        // Leader election stays on: it keeps retrying while /healthz serves.
        "--leader-elect".to_string(),
        "--profiling".to_string(),
        "-v=4".to_string(),
    ];
    let mut proc =
        ComponentProcess::spawn(env!("CARGO_BIN_EXE_kube-scheduler-rs"), &args, dir.path())
            .expect("spawn");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let body = proc
        .wait_ok(Duration::from_secs(30), || https_get(addr, "/healthz", &[]))
        .await
        .expect("healthz");
    assert_eq!(body, "ok");
    let (code, verbose) = https_get(addr, "/healthz?verbose", &[])
        .await
        .expect("verbose");
    assert_eq!(code, 200);
    assert!(verbose.contains("[+]ping ok"), "{verbose}");
    assert!(verbose.contains("[+]leaderElection ok"), "{verbose}");
    assert!(verbose.ends_with("healthz check passed\n"), "{verbose}");
    // /metrics is not always-allowed and there is no authorization webhook.
    let (code, body) = https_get(addr, "/metrics", &[]).await.expect("metrics");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains(r#"cannot get path \"/metrics\""#), "{body}");
    let status = proc.terminate(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status}; log:\n{}", proc.log());
    let log = proc.log();
    assert!(log.contains("ignoring unsupported upstream flag"), "{log}");
}
