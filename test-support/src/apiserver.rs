//! Brings up a throwaway etcd + stock kube-apiserver on loopback for
//! integration tests: a fresh PKI made with `openssl` (CA, serving cert,
//! admin client cert CN=admin O=system:masters, service-account keys) in a
//! temp dir, random free ports, and an admin kubeconfig. Everything is
//! killed when the [`TestApiServer`] is dropped.
//!
//! Tests call [`TestApiServer::start`]; the binaries come from [`prereq`]
//! (kube-apiserver from `hack/kube-bin/path`, etcd from `PATH` or the same
//! script), and a missing one fails the test unless `FK_ALLOW_SKIP=1`.
//!

use kube::config::{KubeConfigOptions, Kubeconfig};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::prereq;

pub struct TestApiServer {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    dir: tempfile::TempDir,
    etcd: Child,
    apiserver: Child,
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// CA, apiserver serving cert, admin client cert and service-account keys.
fn make_pki(dir: &Path) -> Result<(), String> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.crt",
    ];
    ca.extend(ec);
    ca.extend([
        "-subj",
        "/CN=ferrokube-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]);
    run(dir, "openssl", &ca)?;
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,\
         DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1\n\
         extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
    )
    .map_err(|e| e.to_string())?;
    fs::write(
        dir.join("client.ext"),
        "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n",
    )
    .map_err(|e| e.to_string())?;
    for (name, subject, ext) in [
        ("apiserver", "/CN=kube-apiserver", "server.ext"),
        ("admin", "/O=system:masters/CN=admin", "client.ext"),
    ] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let mut req = vec![
            "req", "-new", "-keyout", &key, "-out", &csr, "-subj", subject,
        ];
        req.extend(ec);
        run(dir, "openssl", &req)?;
        run(
            dir,
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                ext,
            ],
        )?;
    }
    run(dir, "openssl", &["genrsa", "-out", "sa.key", "2048"])?;
    run(
        dir,
        "openssl",
        &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
    )
}

fn write_kubeconfig(dir: &Path, url: &str) -> Result<PathBuf, String> {
    let abs = |f: &str| dir.join(f).display().to_string();
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    \
         certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    client-certificate: {crt}\n    \
         client-key: {key}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: admin\n\
         current-context: test\n",
        ca = abs("ca.crt"),
        crt = abs("admin.crt"),
        key = abs("admin.key"),
    );
    let path = dir.join("admin.kubeconfig");
    fs::write(&path, yaml).map_err(|e| e.to_string())?;
    Ok(path)
}

fn spawn_logged(dir: &Path, log: &str, program: &Path, args: &[String]) -> Result<Child, String> {
    let file = fs::File::create(dir.join(log)).map_err(|e| e.to_string())?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))
}

fn log_tail(dir: &Path, log: &str) -> String {
    let text = fs::read_to_string(dir.join(log)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl TestApiServer {
    /// Starts etcd and kube-apiserver and waits for `/readyz`. A missing
    /// binary fails the test, or is `None` (with `SKIP: ...` printed) under
    /// `FK_ALLOW_SKIP=1`; panics if bring-up fails.
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// As [`Self::start`], with extra kube-apiserver flags (a later flag
    /// wins), e.g. `--disable-admission-plugins=ServiceAccount` where no
    /// controller-manager runs to create default ServiceAccounts.
    pub async fn start_with(extra_args: &[&str]) -> Option<Self> {
        let apiserver_bin = prereq::or_skip(prereq::stock_bin("kube-apiserver"))?;
        let etcd_bin = prereq::or_skip(prereq::etcd_bin())?;
        match Self::bring_up(&apiserver_bin, &etcd_bin, extra_args).await {
            Ok(server) => Some(server),
            Err(e) => panic!("test apiserver bring-up failed: {e}"),
        }
    }

    async fn bring_up(
        apiserver_bin: &Path,
        etcd_bin: &Path,
        extra_args: &[&str],
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        make_pki(d)?;
        let (client_port, peer_port, secure_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_client = format!("http://127.0.0.1:{client_port}");
        let etcd_peer = format!("http://127.0.0.1:{peer_port}");
        let etcd_args: Vec<String> = [
            "--name=test".to_string(),
            format!("--data-dir={}", d.join("etcd").display()),
            format!("--listen-client-urls={etcd_client}"),
            format!("--advertise-client-urls={etcd_client}"),
            format!("--listen-peer-urls={etcd_peer}"),
            format!("--initial-advertise-peer-urls={etcd_peer}"),
            format!("--initial-cluster=test={etcd_peer}"),
        ]
        .into();
        let etcd = spawn_logged(d, "etcd.log", etcd_bin, &etcd_args)?;
        let file = |f: &str| d.join(f).display().to_string();
        let mut apiserver_args: Vec<String> = vec![
            format!("--etcd-servers={etcd_client}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={secure_port}"),
            format!("--cert-dir={}", file("certs")),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", file("sa.pub")),
            format!("--service-account-signing-key-file={}", file("sa.key")),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            format!("--client-ca-file={}", file("ca.crt")),
            format!("--tls-cert-file={}", file("apiserver.crt")),
            format!("--tls-private-key-file={}", file("apiserver.key")),
            "--authorization-mode=Node,RBAC".into(),
        ];
        apiserver_args.extend(extra_args.iter().map(|a| a.to_string()));
        let apiserver = spawn_logged(d, "apiserver.log", apiserver_bin, &apiserver_args)?;
        let url = format!("https://127.0.0.1:{secure_port}");
        write_kubeconfig(d, &url)?;
        let mut server = Self {
            url,
            dir,
            etcd,
            apiserver,
        };
        server.wait_ready(Duration::from_secs(90)).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let client = self.client().await;
        let start = Instant::now();
        loop {
            for (child, log) in [
                (&mut self.etcd, "etcd.log"),
                (&mut self.apiserver, "apiserver.log"),
            ] {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "{log}: exited with {status}:\n{}",
                        log_tail(self.dir.path(), log)
                    ));
                }
            }
            let req = http::Request::get("/readyz").body(Vec::new());
            if let Ok(req) = req
                && let Ok(body) = client.request_text(req).await
                && body.trim() == "ok"
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "not ready after {limit:?}:\n{}",
                    log_tail(self.dir.path(), "apiserver.log")
                ));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// The directory with the PKI (`ca.crt`, `ca.key`, `admin.crt`, ...);
    /// also a scratch directory that lives as long as the server.
    pub fn pki_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The apiserver's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default()
    }

    /// The admin (system:masters) client configuration. Like client-go's
    /// clients (and ours, `component_base::client`), it does not retry a
    /// 429/503 the server sent without `Retry-After`: kube-client's default
    /// backoff would make a test that expects a refusal (an eviction a PDB
    /// blocks) wait minutes for it.
    pub async fn admin_config(&self) -> kube::Config {
        let kubeconfig = match Kubeconfig::read_from(self.kubeconfig()) {
            Ok(k) => k,
            Err(e) => panic!("reading test kubeconfig: {e}"),
        };
        match kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await
        {
            Ok(mut c) => {
                c.default_retry = false;
                c
            }
            Err(e) => panic!("loading test kubeconfig: {e}"),
        }
    }

    /// An admin (system:masters) client.
    pub async fn client(&self) -> kube::Client {
        match kube::Client::try_from(self.admin_config().await) {
            Ok(c) => c,
            Err(e) => panic!("building test client: {e}"),
        }
    }
}

/// A client that impersonates `user` with the admin's credentials (e.g.
/// `system:kube-controller-manager`, to run under its RBAC).
pub fn impersonating(admin: &kube::Config, user: &str) -> kube::Client {
    let mut config = admin.clone();
    config.auth_info.impersonate = Some(user.to_string());
    match kube::Client::try_from(config) {
        Ok(c) => c,
        Err(e) => panic!("building impersonating client: {e}"),
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
