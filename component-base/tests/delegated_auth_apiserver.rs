//! Delegated authentication/authorization against a real kube-apiserver:
//! TokenReview for a ServiceAccount token, SubjectAccessReview decided by
//! RBAC, and the client CA looked up in
//! `kube-system/extension-apiserver-authentication`.
//!
//! Needs the stock kube-apiserver (from `hack/kube-bin/path`) and etcd (from
//! PATH, else the same script); fails without them unless `FK_ALLOW_SKIP=1`.
// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support::prereq;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use component_base::auth::delegating::build_filter;
use component_base::flags::{AuthenticationFlags, AuthorizationFlags};
use component_base::serving::{HealthRegistry, component_router, serve_https, tls};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{ObjectMeta, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use test_support::serving::{
    ClientIdentity, ComponentProcess, TestDir, free_port, https_get, https_get_as,
};
use tokio_util::sync::CancellationToken;

/// CA, apiserver serving pair, admin client pair and service-account keys.
struct Pki {
    ca: PathBuf,
    apiserver_cert: PathBuf,
    apiserver_key: PathBuf,
    admin_cert_pem: String,
    admin_key_pem: String,
    sa_key: PathBuf,
    sa_pub: PathBuf,
    kubeconfig: PathBuf,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pki file");
    path
}

fn pki(dir: &Path, apiserver_port: u16) -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().expect("key");
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    server
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).expect("server cert");

    let admin_key = KeyPair::generate().expect("key");
    let mut admin = CertificateParams::new(Vec::<String>::new()).expect("params");
    admin
        .distinguished_name
        .push(DnType::CommonName, "kubernetes-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &issuer).expect("admin cert");

    let sa = KeyPair::generate().expect("sa key");
    let ca = write(dir, "ca.crt", &ca_cert.pem());
    let admin_crt = write(dir, "admin.crt", &admin_cert.pem());
    let admin_key_path = write(dir, "admin.key", &admin_key.serialize_pem());
    let kubeconfig = write(
        dir,
        "admin.kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{apiserver_port}\n    certificate-authority: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: admin\ncurrent-context: c\nusers:\n- name: admin\n  user:\n    client-certificate: {}\n    client-key: {}\n",
            ca.display(),
            admin_crt.display(),
            admin_key_path.display()
        ),
    );
    Pki {
        apiserver_cert: write(dir, "apiserver.crt", &server_cert.pem()),
        apiserver_key: write(dir, "apiserver.key", &server_key.serialize_pem()),
        admin_cert_pem: admin_cert.pem(),
        admin_key_pem: admin_key.serialize_pem(),
        sa_key: write(dir, "sa.key", &sa.serialize_pem()),
        sa_pub: write(dir, "sa.pub", &sa.public_key_pem()),
        ca,
        kubeconfig,
    }
}

async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(err) if std::time::Instant::now() > deadline => panic!("{what}: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[tokio::test]
async fn delegated_auth_against_a_real_apiserver() {
    let Some(apiserver) = prereq::or_skip(prereq::stock_bin("kube-apiserver")) else {
        return;
    };
    let Some(etcd) = prereq::or_skip(prereq::etcd_bin()) else {
        return;
    };
    let dir = TestDir::new("component-base-apiserver").expect("dir");
    let (etcd_client, etcd_peer, apiserver_port) = (
        free_port().expect("port"),
        free_port().expect("port"),
        free_port().expect("port"),
    );
    let pki = pki(dir.path(), apiserver_port);
    let etcd_url = format!("http://127.0.0.1:{etcd_client}");
    let peer_url = format!("http://127.0.0.1:{etcd_peer}");
    let mut etcd = ComponentProcess::spawn(
        &etcd.display().to_string(),
        &[
            "--name=t".into(),
            format!("--data-dir={}", dir.path().join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=t={peer_url}"),
        ],
        dir.path(),
    )
    .expect("etcd");
    let mut kas = ComponentProcess::spawn(
        &apiserver.display().to_string(),
        &[
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={apiserver_port}"),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", pki.sa_pub.display()),
            format!(
                "--service-account-signing-key-file={}",
                pki.sa_key.display()
            ),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            format!("--client-ca-file={}", pki.ca.display()),
            format!("--tls-cert-file={}", pki.apiserver_cert.display()),
            format!("--tls-private-key-file={}", pki.apiserver_key.display()),
            "--authorization-mode=RBAC".into(),
            format!("--cert-dir={}", dir.path().display()),
        ],
        dir.path(),
    )
    .expect("kube-apiserver");
    let kas_addr = format!("127.0.0.1:{apiserver_port}").parse().expect("addr");
    kas.wait_ok(Duration::from_secs(90), || {
        https_get(kas_addr, "/readyz", &[])
    })
    .await
    .expect("apiserver ready");

    let config = component_base::client::load_config(Some(&pki.kubeconfig), None)
        .await
        .expect("admin kubeconfig");
    let admin = component_base::client::client_from_config(config, 50.0, 100).expect("client");

    // The component under test: delegated auth through the admin kubeconfig,
    // no caching of denials so the RBAC change below is seen at once.
    let authn = AuthenticationFlags {
        authentication_kubeconfig: Some(pki.kubeconfig.clone()),
        ..AuthenticationFlags::default()
    };
    let authz = AuthorizationFlags {
        authorization_kubeconfig: Some(pki.kubeconfig.clone()),
        authorization_webhook_cache_unauthorized_ttl: Duration::ZERO,
        ..AuthorizationFlags::default()
    };
    let stop = CancellationToken::new();
    let filter = build_filter(&authn, &authz, stop.clone())
        .await
        .expect("filter");
    let router = component_router(&HealthRegistry::new(), Router::new(), Some(filter));
    let (cert, key) =
        tls::generate_self_signed("localhost", &["127.0.0.1".parse().expect("ip")], &[])
            .expect("cert");
    let pair = tls::parse_pem_pair(cert.as_bytes(), key.as_bytes(), "t").expect("pair");
    let server = serve_https(
        "127.0.0.1:0".parse().expect("addr"),
        tls::server_config(pair, &[], None).expect("tls"),
        router,
        stop.clone(),
    )
    .await
    .expect("serve");
    let addr = server.local_addr;

    // A ServiceAccount token: authenticated by TokenReview, denied by RBAC.
    let sas: kube::Api<ServiceAccount> = kube::Api::namespaced(admin.clone(), "default");
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("prom".into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    retry("create serviceaccount", || async {
        sas.create(&PostParams::default(), &sa)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: None,
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = retry("token request", || async {
        sas.create_token_request("prom", &PostParams::default(), &request)
            .await
            .map_err(|e| e.to_string())
            .and_then(|t| {
                t.status
                    .and_then(|s| s.token)
                    .ok_or_else(|| "no token in status".to_string())
            })
    })
    .await;
    let bearer = format!("Bearer {token}");
    let headers = [("Authorization", bearer.as_str())];
    let (code, body) = https_get(addr, "/metrics", &headers).await.expect("get");
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(
            r#"User \"system:serviceaccount:default:prom\" cannot get path \"/metrics\""#
        ),
        "{body}"
    );
    assert_eq!(
        https_get(addr, "/metrics", &[("Authorization", "Bearer not-a-token")])
            .await
            .expect("get")
            .0,
        401
    );

    // Grant it like a Prometheus deployment would: now SAR allows.
    let roles: kube::Api<ClusterRole> = kube::Api::all(admin.clone());
    roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some("metrics-reader".into()),
                    ..ObjectMeta::default()
                },
                rules: Some(vec![PolicyRule {
                    non_resource_urls: Some(vec!["/metrics".into()]),
                    verbs: vec!["get".into()],
                    ..PolicyRule::default()
                }]),
                ..ClusterRole::default()
            },
        )
        .await
        .expect("clusterrole");
    let bindings: kube::Api<ClusterRoleBinding> = kube::Api::all(admin.clone());
    bindings
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some("prom-metrics".into()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "metrics-reader".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "prom".into(),
                    namespace: Some("default".into()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("binding");
    retry("metrics allowed after binding", || async {
        match https_get(addr, "/metrics", &headers).await {
            Ok((200, body)) if body.contains("process_start_time_seconds") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // The client CA comes from the apiserver's configmap (looked up because
    // --client-ca-file was not given): the admin cert is system:masters.
    let identity = ClientIdentity::from_pem(&pki.admin_cert_pem, &pki.admin_key_pem).expect("id");
    retry("client cert via configmap CA", || async {
        match https_get_as(addr, "/metrics", &[], Some(&identity)).await {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(
        https_get(addr, "/healthz", &[]).await.expect("get"),
        (200, "ok".into())
    );

    stop.cancel();
    server.task.await.expect("server stops");
    for (name, proc) in [("kube-apiserver", &mut kas), ("etcd", &mut etcd)] {
        if let Err(err) = proc.terminate(Duration::from_secs(20)) {
            eprintln!("{name} did not stop cleanly: {err}");
        }
    }
}
