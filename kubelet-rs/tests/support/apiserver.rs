//! A throwaway etcd + stock kube-apiserver on loopback, for tests that need the real API.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ApiServer {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    children: Vec<Child>,
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn spawn(cmd: &mut Command, log: PathBuf) -> Result<Child, String> {
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    cmd.stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))
}

impl ApiServer {
    /// Starts etcd and the stock kube-apiserver (binaries from
    /// [`super::prereq`]). A missing one fails the test, or is `Ok(None)`
    /// (with `SKIP: ...` printed) under `FK_ALLOW_SKIP=1`.
    pub fn start() -> Result<Option<Self>, String> {
        let Some(apiserver) = super::prereq::or_skip(super::prereq::stock_bin("kube-apiserver"))
        else {
            return Ok(None);
        };
        let Some(etcd) = super::prereq::or_skip(super::prereq::etcd_bin()) else {
            return Ok(None);
        };
        let dir = tempfile::Builder::new()
            .prefix("kubelet-apiserver-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let root = dir.path().to_path_buf();
        let (client_port, peer_port, secure_port) = (free_port()?, free_port()?, free_port()?);
        let mut children = Vec::new();
        children.push(spawn(
            Command::new(etcd)
                .arg("--data-dir")
                .arg(root.join("etcd"))
                .arg(format!(
                    "--listen-client-urls=http://127.0.0.1:{client_port}"
                ))
                .arg(format!(
                    "--advertise-client-urls=http://127.0.0.1:{client_port}"
                ))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
                ))
                .arg(format!(
                    "--initial-cluster=default=http://127.0.0.1:{peer_port}"
                )),
            root.join("etcd.log"),
        )?);
        let sa_key = root.join("sa.key");
        let status = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&sa_key)
            .arg("2048")
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("openssl genrsa failed".into());
        }
        let token = "kubelet-test-token";
        std::fs::write(
            root.join("tokens.csv"),
            format!("{token},admin,admin,system:masters\n"),
        )
        .map_err(|e| e.to_string())?;
        children.push(spawn(
            Command::new(apiserver)
                .arg(format!("--etcd-servers=http://127.0.0.1:{client_port}"))
                .arg(format!("--secure-port={secure_port}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg(format!("--cert-dir={}", root.join("certs").display()))
                .arg(format!(
                    "--token-auth-file={}",
                    root.join("tokens.csv").display()
                ))
                .arg(format!("--service-account-key-file={}", sa_key.display()))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    sa_key.display()
                ))
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                .arg("--service-cluster-ip-range=10.96.0.0/16")
                .arg("--authorization-mode=RBAC")
                .arg("--enable-priority-and-fairness=false")
                // No controller-manager creates the default ServiceAccount here.
                .arg("--disable-admission-plugins=ServiceAccount"),
            root.join("apiserver.log"),
        )?);
        let kubeconfig = root.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{secure_port}\n    insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: admin\ncurrent-context: test\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        Ok(Some(Self {
            dir,
            kubeconfig,
            children,
        }))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default()
    }

    /// A client once `/readyz` answers.
    pub async fn client(&self) -> Result<kube::Client, String> {
        let kc =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(|e| e.to_string())?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| e.to_string())?;
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            if let Ok(text) = client.request_text(req).await
                && text.trim() == "ok"
            {
                return Ok(client);
            }
            if Instant::now() > deadline {
                return Err(format!("apiserver never became ready:\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
