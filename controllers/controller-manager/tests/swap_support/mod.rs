//! The two controller-managers a swap test hands a cluster between: the
//! stock binary as a child process, ours in-process, each running only
//! `controllers`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube::Client;
use kube_controller_manager::ControllerManagerConfig;
use test_support::prereq;
use test_support::serving::{ComponentProcess, TestDir};
use tokio_util::sync::CancellationToken;

pub struct Stock {
    pub process: ComponentProcess,
    _dir: TestDir,
}

/// The stock kube-controller-manager against `kubeconfig`; `None` (skip)
/// only when the binary cannot be had and `FK_ALLOW_SKIP=1`.
pub fn start_stock(kubeconfig: &str, controllers: &str) -> Option<Stock> {
    let bin = prereq::or_skip(prereq::stock_bin("kube-controller-manager"))?;
    let dir = TestDir::new("stock-kcm").unwrap();
    let args = [
        format!("--kubeconfig={kubeconfig}"),
        format!("--controllers={controllers}"),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        "--v=2".into(),
    ];
    let process = ComponentProcess::spawn(bin.to_str().unwrap(), &args, dir.path()).unwrap();
    Some(Stock { process, _dir: dir })
}

/// Ours in-process; cancel the token and await the handle to stop it.
pub fn start_ours(
    client: &Client,
    controllers: &str,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let config = ControllerManagerConfig {
        controllers: controllers.split(',').map(String::from).collect(),
        ..Default::default()
    };
    let run = kube_controller_manager::run(client.clone(), config, shutdown.clone());
    let handle = tokio::spawn(async move {
        run.await.unwrap();
    });
    (shutdown, handle)
}
