//! The HTTPS stack end to end over real TLS: optional client certificates
//! reach the authenticator, front-proxy headers are only trusted from the
//! request-header CA, and upstream's 401/403/healthz responses come back.
// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use component_base::auth::authn::{
    CaVerifier, CredentialError, RequestHeaderConfig, TokenReviewer,
};
use component_base::auth::authz::{
    AccessReviewer, AlwaysAllowPaths, AuthzError, default_always_allow_groups,
};
use component_base::auth::{Attributes, AuthFilter, Authenticator, Authorizer, Decision, UserInfo};
use component_base::serving::{HealthCheck, HealthRegistry, component_router, serve_https, tls};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::CertificateDer;
use test_support::serving::{ClientIdentity, https_get, https_get_as};
use tokio_util::sync::CancellationToken;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

fn ca(cn: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("ca");
    Ca {
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

fn identity(ca: &Ca, cn: &str, orgs: &[&str]) -> ClientIdentity {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    for org in orgs {
        params
            .distinguished_name
            .push(DnType::OrganizationName, *org);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca.issuer).expect("leaf");
    ClientIdentity::from_pem(&cert.pem(), &key.serialize_pem()).expect("identity")
}

struct Tokens;

#[async_trait::async_trait]
impl TokenReviewer for Tokens {
    async fn review(&self, token: &str) -> Result<Option<UserInfo>, CredentialError> {
        Ok((token == "prometheus-token").then(|| UserInfo {
            name: "prometheus".into(),
            ..UserInfo::default()
        }))
    }
}

struct Sar;

#[async_trait::async_trait]
impl AccessReviewer for Sar {
    async fn review(&self, attrs: &Attributes) -> Result<Decision, AuthzError> {
        Ok(match (attrs.user.name.as_str(), attrs.path.as_str()) {
            ("prometheus", "/metrics") => Decision::Allow,
            _ => Decision::NoOpinion(String::new()),
        })
    }
}

#[tokio::test]
async fn tls_authn_authz_and_health() {
    let client_ca = ca("client-ca");
    let proxy_ca = ca("front-proxy-ca");
    let admin = identity(&client_ca, "admin", &["system:masters"]);
    let viewer = identity(&client_ca, "viewer", &[]);
    let front_proxy = identity(&proxy_ca, "front-proxy-client", &[]);
    let stranger = identity(&ca("elsewhere"), "mallory", &["system:masters"]);

    let authn = Authenticator {
        request_header: Some(RequestHeaderConfig {
            ca: CaVerifier::from_certs(std::slice::from_ref(&proxy_ca.der)).expect("ca"),
            allowed_names: vec!["front-proxy-client".into()],
            username_headers: vec!["X-Remote-User".into()],
            uid_headers: vec![],
            group_headers: vec!["X-Remote-Group".into()],
            extra_headers_prefix: vec!["X-Remote-Extra-".into()],
        }),
        client_ca: CaVerifier::from_certs(std::slice::from_ref(&client_ca.der)).expect("ca"),
        token: Some(Arc::new(Tokens)),
        anonymous: true,
    };
    let authz = Authorizer {
        always_allow_groups: default_always_allow_groups(),
        always_allow_paths: AlwaysAllowPaths::new(&[
            "/healthz".into(),
            "/readyz".into(),
            "/livez".into(),
        ])
        .expect("paths"),
        webhook: Some(Arc::new(Sar)),
        always_allow: false,
    };
    let health = HealthRegistry::new();
    health.readyz.add(HealthCheck::new("informer-sync", || {
        Err("not synced".into())
    }));
    let extra = Router::new().route(
        "/whoami",
        get(|user: axum::Extension<UserInfo>| async move { user.0.name }),
    );
    let router = component_router(&health, extra, Some(AuthFilter::new(authn, authz)));
    let (cert_pem, key_pem) =
        tls::generate_self_signed("localhost", &["127.0.0.1".parse().expect("ip")], &[])
            .expect("cert");
    let pair = tls::parse_pem_pair(cert_pem.as_bytes(), key_pem.as_bytes(), "t").expect("pair");
    let config = tls::server_config(pair, &[], None).expect("tls");
    let stop = CancellationToken::new();
    let server = serve_https(
        "127.0.0.1:0".parse().expect("addr"),
        config,
        router,
        stop.clone(),
    )
    .await
    .expect("serve");
    let addr = server.local_addr;

    // Health: always allowed, upstream formats.
    assert_eq!(
        https_get(addr, "/healthz", &[]).await.expect("get"),
        (200, "ok".into())
    );
    let (code, body) = https_get(addr, "/readyz", &[]).await.expect("get");
    assert_eq!(code, 500);
    assert_eq!(
        body,
        "[+]ping ok\n[+]log ok\n[-]informer-sync failed: reason withheld\nreadyz check failed\n"
    );
    // Sub-paths are not in the always-allow list (exact match, as upstream).
    assert_eq!(
        https_get(addr, "/readyz/ping", &[]).await.expect("get").0,
        403
    );
    let (code, body) = https_get_as(addr, "/readyz/informer-sync", &[], Some(&admin))
        .await
        .expect("get");
    assert_eq!(
        (code, body.as_str()),
        (500, "internal server error: not synced\n")
    );

    // Anonymous is forbidden from /metrics with upstream's message.
    let (code, body) = https_get(addr, "/metrics", &[]).await.expect("get");
    assert_eq!(code, 403);
    assert!(
        body.contains(
            r#""message":"forbidden: User \"system:anonymous\" cannot get path \"/metrics\"""#
        ),
        "{body}"
    );

    // system:masters via client cert: allowed without asking.
    let (code, body) = https_get_as(addr, "/metrics", &[], Some(&admin))
        .await
        .expect("get");
    assert_eq!(code, 200);
    assert!(body.contains("process_start_time_seconds"), "{body}");
    assert_eq!(
        https_get_as(addr, "/whoami", &[], Some(&admin))
            .await
            .expect("get"),
        (200, "admin".into())
    );
    // A valid client cert without rights: 403 naming the user.
    let (code, body) = https_get_as(addr, "/metrics", &[], Some(&viewer))
        .await
        .expect("get");
    assert_eq!(code, 403);
    assert!(
        body.contains(r#"User \"viewer\" cannot get path"#),
        "{body}"
    );
    // A certificate from an unknown CA is an authentication failure.
    let (code, body) = https_get_as(addr, "/healthz", &[], Some(&stranger))
        .await
        .expect("get");
    assert_eq!(code, 401, "{body}");

    // Front proxy: headers trusted only with the request-header CA's cert.
    let proxied = [
        ("X-Remote-User", "bob"),
        ("X-Remote-Group", "system:masters"),
    ];
    assert_eq!(
        https_get_as(addr, "/whoami", &proxied, Some(&front_proxy))
            .await
            .expect("get"),
        (200, "bob".into())
    );
    assert_eq!(
        https_get(addr, "/whoami", &proxied).await.expect("get").0,
        403
    );

    // Bearer tokens through the reviewer, then the access reviewer.
    let bearer = [("Authorization", "Bearer prometheus-token")];
    assert_eq!(
        https_get(addr, "/metrics", &bearer).await.expect("get").0,
        200
    );
    assert_eq!(
        https_get(addr, "/whoami", &bearer).await.expect("get").0,
        403
    );
    let bad = [("Authorization", "Bearer nope")];
    assert_eq!(https_get(addr, "/healthz", &bad).await.expect("get").0, 401);

    stop.cancel();
    server.task.await.expect("server stops");
}
