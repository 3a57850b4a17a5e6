//! Request authentication, in upstream's delegating order: front-proxy
//! request headers (only for certificates signed by the request-header CA),
//! then x509 client certificates, then bearer tokens via TokenReview; if none
//! succeeds and none errored, the request is anonymous.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use super::cache::TtlCache;
use super::{AUTHENTICATED_GROUP, CREDENTIAL_ID_KEY, UNAUTHENTICATED_GROUP, UserInfo};

#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    #[error("invalid CA bundle: {0}")]
    InvalidCa(String),
    /// Credentials were presented and rejected (→ 401), each with its reason.
    #[error("{}", join(.0))]
    Rejected(Vec<CredentialError>),
}

/// Why one presented credential did not authenticate the request.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("verifying certificate failed: {0}")]
    CertificateUnverified(#[source] rustls::Error),
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    #[error("x509: subject with cn={0} is not in the allowed list")]
    NameNotAllowed(String),
    #[error("invalid bearer token")]
    InvalidBearerToken,
    /// The TokenReview answered with an error of its own.
    #[error("{0}")]
    TokenReviewStatus(String),
    /// The TokenReview could not be made (the apiserver was not reached).
    #[error("TokenReview failed: {0}")]
    TokenReviewFailed(#[source] kube::Error),
    #[error("no credentials provided")]
    NoCredentials,
}

impl CredentialError {
    /// Whether asking again later may succeed (a failed request, not a
    /// rejected credential).
    pub fn is_retriable(&self) -> bool {
        matches!(self, CredentialError::TokenReviewFailed(_))
    }
}

fn join(errors: &[CredentialError]) -> String {
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    texts.join(", ")
}

/// A CA bundle that client certificates are verified against; swappable at
/// runtime (the configmap-backed CA is refreshed in the background).
#[derive(Clone, Default)]
pub struct CaVerifier(Arc<RwLock<Option<Arc<dyn ClientCertVerifier>>>>);

impl std::fmt::Debug for CaVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaVerifier")
    }
}

impl CaVerifier {
    pub fn from_certs(certs: &[CertificateDer<'static>]) -> Result<Self, AuthnError> {
        let ca = CaVerifier::default();
        ca.set(certs)?;
        Ok(ca)
    }

    /// Replaces the trusted CAs; an empty bundle unconfigures the verifier.
    pub fn set(&self, certs: &[CertificateDer<'static>]) -> Result<(), AuthnError> {
        let verifier = if certs.is_empty() {
            None
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs {
                roots
                    .add(cert.clone())
                    .map_err(|e| AuthnError::InvalidCa(e.to_string()))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| AuthnError::InvalidCa(e.to_string()))?;
            Some(verifier)
        };
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = verifier;
        Ok(())
    }

    pub fn is_configured(&self) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// `None` when unconfigured or no chain was presented, else whether the
    /// chain verifies (for client auth) against the CA.
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> Option<Result<(), CredentialError>> {
        let verifier = self.0.read().unwrap_or_else(|e| e.into_inner()).clone()?;
        let (leaf, intermediates) = chain.split_first()?;
        Some(
            verifier
                .verify_client_cert(leaf, intermediates, UnixTime::now())
                .map(|_| ())
                .map_err(CredentialError::CertificateUnverified),
        )
    }
}

/// `--requestheader-*` settings.
#[derive(Debug, Clone, Default)]
pub struct RequestHeaderConfig {
    pub ca: CaVerifier,
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub uid_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_headers_prefix: Vec<String>,
}

/// Subject CN and O of a certificate.
pub fn subject_names(der: &CertificateDer<'_>) -> Result<(String, Vec<String>), CredentialError> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| CredentialError::InvalidCertificate(e.to_string()))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let orgs = cert
        .subject()
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Ok((cn, orgs))
}

/// upstream's `CommonNameUserConversion`: CN → name, O → groups, the
/// certificate's SHA-256 as credential id. An empty CN is no user.
pub fn user_from_cert(der: &CertificateDer<'_>) -> Result<Option<UserInfo>, CredentialError> {
    let (cn, orgs) = subject_names(der)?;
    if cn.is_empty() {
        return Ok(None);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    let fingerprint: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let mut user = UserInfo {
        name: cn,
        groups: orgs,
        ..UserInfo::default()
    };
    user.extra.insert(
        CREDENTIAL_ID_KEY.to_string(),
        vec![format!("X509SHA256={fingerprint}")],
    );
    Ok(Some(user))
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
}

/// Decodes `%XX` escapes in extra keys (upstream's `unescapeExtraKey`).
fn unescape_extra_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&key[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_string())
}

/// upstream's request-header authenticator, given an already-verified
/// front-proxy certificate: `None` when no username header is set.
pub fn user_from_headers(headers: &HeaderMap, cfg: &RequestHeaderConfig) -> Option<UserInfo> {
    let name = cfg
        .username_headers
        .iter()
        .find_map(|h| header_values(headers, h).next())?
        .to_string();
    let uid = cfg
        .uid_headers
        .iter()
        .find_map(|h| header_values(headers, h).next())
        .unwrap_or_default()
        .to_string();
    let groups = cfg
        .group_headers
        .iter()
        .flat_map(|h| header_values(headers, h).map(str::to_string))
        .collect();
    let mut user = UserInfo {
        name,
        uid,
        groups,
        ..UserInfo::default()
    };
    for (header, value) in headers {
        let header = header.as_str();
        for prefix in &cfg.extra_headers_prefix {
            let prefix = prefix.to_ascii_lowercase();
            let Some(rest) = header.strip_prefix(prefix.as_str()) else {
                continue;
            };
            if let Ok(value) = value.to_str() {
                user.extra
                    .entry(unescape_extra_key(rest))
                    .or_default()
                    .push(value.to_string());
            }
        }
    }
    Some(user)
}

/// The bearer token of an `Authorization` header: `Ok(None)` when there is
/// none, `Err` for `Bearer` with an empty token.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<String>, CredentialError> {
    let Some(value) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let mut parts = value.trim().splitn(3, ' ');
    let scheme = parts.next().unwrap_or_default();
    let Some(token) = parts.next() else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    if token.is_empty() {
        return Err(CredentialError::InvalidBearerToken);
    }
    Ok(Some(token.to_string()))
}

/// upstream's `AuthenticatedGroupAdder`.
pub fn add_authenticated_group(mut user: UserInfo) -> UserInfo {
    let has = user
        .groups
        .iter()
        .any(|g| g == AUTHENTICATED_GROUP || g == UNAUTHENTICATED_GROUP);
    if !has {
        user.groups.push(AUTHENTICATED_GROUP.to_string());
    }
    user
}

/// Validates bearer tokens (TokenReview in production).
#[async_trait::async_trait]
pub trait TokenReviewer: Send + Sync {
    /// `Ok(Some(user))` authenticated, `Ok(None)` rejected, `Err` on failure
    /// to ask (or a review that carries an error).
    async fn review(&self, token: &str) -> Result<Option<UserInfo>, CredentialError>;
}

/// TokenReview through the authentication kubeconfig's client.
pub struct KubeTokenReviewer {
    pub client: kube::Client,
}

/// Maps a TokenReview status to the reviewer result.
pub fn token_review_result(review: &TokenReview) -> Result<Option<UserInfo>, CredentialError> {
    let Some(status) = &review.status else {
        return Ok(None);
    };
    if status.authenticated != Some(true) {
        return match status.error.as_deref() {
            Some(err) if !err.is_empty() => {
                Err(CredentialError::TokenReviewStatus(err.to_string()))
            }
            _ => Ok(None),
        };
    }
    let user = status.user.clone().unwrap_or_default();
    Ok(Some(UserInfo {
        name: user.username.unwrap_or_default(),
        uid: user.uid.unwrap_or_default(),
        groups: user.groups.unwrap_or_default(),
        extra: user.extra.unwrap_or_default().into_iter().collect(),
    }))
}

#[async_trait::async_trait]
impl TokenReviewer for KubeTokenReviewer {
    async fn review(&self, token: &str) -> Result<Option<UserInfo>, CredentialError> {
        let api: kube::Api<TokenReview> = kube::Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let created = api
            .create(&kube::api::PostParams::default(), &review)
            .await
            .map_err(CredentialError::TokenReviewFailed)?;
        token_review_result(&created)
    }
}

/// Caches reviews for `ttl` keyed by the token's SHA-256 (failures to ask
/// are not cached), like upstream's token cache.
pub struct CachedTokenReviewer {
    inner: Arc<dyn TokenReviewer>,
    ttl: Duration,
    cache: TtlCache<Vec<u8>, Option<UserInfo>>,
}

impl CachedTokenReviewer {
    pub fn new(inner: Arc<dyn TokenReviewer>, ttl: Duration) -> Self {
        CachedTokenReviewer {
            inner,
            ttl,
            cache: TtlCache::default(),
        }
    }
}

#[async_trait::async_trait]
impl TokenReviewer for CachedTokenReviewer {
    async fn review(&self, token: &str) -> Result<Option<UserInfo>, CredentialError> {
        let key = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .to_vec();
        if let Some(hit) = self.cache.get(&key, Instant::now()) {
            return Ok(hit);
        }
        let result = self.inner.review(token).await?;
        self.cache
            .insert(key, result.clone(), self.ttl, Instant::now());
        Ok(result)
    }
}

/// The union of configured authenticators.
#[derive(Clone, Default)]
pub struct Authenticator {
    pub request_header: Option<RequestHeaderConfig>,
    pub client_ca: CaVerifier,
    pub token: Option<Arc<dyn TokenReviewer>>,
    /// Unauthenticated requests become `system:anonymous` (delegated
    /// authentication always enables this; the kubelet has a flag).
    pub anonymous: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("request_header", &self.request_header.is_some())
            .field("client_ca", &self.client_ca.is_configured())
            .field("token", &self.token.is_some())
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

impl Authenticator {
    /// Authenticates a request from its headers and TLS client chain.
    /// `Err` means 401 Unauthorized.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        client_chain: &[CertificateDer<'static>],
    ) -> Result<UserInfo, AuthnError> {
        let mut errors: Vec<CredentialError> = Vec::new();
        if let Some(user) = self.try_request_header(headers, client_chain, &mut errors) {
            return Ok(add_authenticated_group(user));
        }
        match self.client_ca.verify(client_chain) {
            Some(Ok(())) => match client_chain.first().map(user_from_cert) {
                Some(Ok(Some(user))) => return Ok(add_authenticated_group(user)),
                Some(Err(err)) => errors.push(err),
                _ => {}
            },
            Some(Err(err)) => errors.push(err),
            None => {}
        }
        if let Some(reviewer) = &self.token {
            match bearer_token(headers) {
                Ok(Some(token)) => match reviewer.review(&token).await {
                    Ok(Some(user)) => return Ok(add_authenticated_group(user)),
                    Ok(None) => errors.push(CredentialError::InvalidBearerToken),
                    Err(err) => errors.push(err),
                },
                Ok(None) => {}
                Err(err) => errors.push(err),
            }
        }
        if !errors.is_empty() {
            return Err(AuthnError::Rejected(errors));
        }
        if self.anonymous {
            return Ok(UserInfo::anonymous());
        }
        Err(AuthnError::Rejected(vec![CredentialError::NoCredentials]))
    }

    fn try_request_header(
        &self,
        headers: &HeaderMap,
        chain: &[CertificateDer<'static>],
        errors: &mut Vec<CredentialError>,
    ) -> Option<UserInfo> {
        let cfg = self.request_header.as_ref()?;
        match cfg.ca.verify(chain)? {
            Ok(()) => {}
            Err(err) => {
                errors.push(err);
                return None;
            }
        }
        if !cfg.allowed_names.is_empty() {
            let cn = chain
                .first()
                .and_then(|c| subject_names(c).ok())
                .map(|(cn, _)| cn)
                .unwrap_or_default();
            if !cfg.allowed_names.contains(&cn) {
                errors.push(CredentialError::NameNotAllowed(cn));
                return None;
            }
        }
        user_from_headers(headers, cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        der: CertificateDer<'static>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("ca");
        Ca {
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn client_cert(ca: &Ca, cn: &str, orgs: &[&str]) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        for org in orgs {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *org);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params
            .signed_by(&key, &ca.issuer)
            .expect("leaf")
            .der()
            .clone()
    }

    struct FakeReviewer {
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenReviewer for FakeReviewer {
        async fn review(&self, token: &str) -> Result<Option<UserInfo>, CredentialError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match token {
                "good" => Ok(Some(UserInfo {
                    name: "alice".into(),
                    groups: vec!["devs".into()],
                    ..UserInfo::default()
                })),
                "broken" => Err(CredentialError::TokenReviewStatus(
                    "apiserver unreachable".into(),
                )),
                _ => Ok(None),
            }
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        map
    }

    fn request_header_cfg(ca: &Ca, allowed: &[&str]) -> RequestHeaderConfig {
        RequestHeaderConfig {
            ca: CaVerifier::from_certs(std::slice::from_ref(&ca.der)).expect("ca"),
            allowed_names: allowed.iter().map(|s| s.to_string()).collect(),
            username_headers: vec!["X-Remote-User".into()],
            uid_headers: vec![],
            group_headers: vec!["X-Remote-Group".into()],
            extra_headers_prefix: vec!["X-Remote-Extra-".into()],
        }
    }

    #[tokio::test]
    async fn decision_table() {
        let client_ca = ca("client-ca");
        let proxy_ca = ca("front-proxy-ca");
        let other_ca = ca("other");
        let authn = Authenticator {
            request_header: Some(request_header_cfg(&proxy_ca, &["front-proxy-client"])),
            client_ca: CaVerifier::from_certs(std::slice::from_ref(&client_ca.der)).expect("ca"),
            token: Some(Arc::new(FakeReviewer {
                calls: AtomicUsize::new(0),
            })),
            anonymous: true,
        };
        let admin = client_cert(&client_ca, "admin", &["system:masters"]);
        let proxy = client_cert(&proxy_ca, "front-proxy-client", &[]);
        let proxy_not_allowed = client_cert(&proxy_ca, "someone-else", &[]);
        let stranger = client_cert(&other_ca, "mallory", &[]);
        let proxied = headers(&[
            ("X-Remote-User", "bob"),
            ("X-Remote-Group", "g1"),
            ("X-Remote-Group", "g2"),
            ("X-Remote-Extra-Scopes%2fa", "s1"),
        ]);

        // No credentials: anonymous.
        let user = authn
            .authenticate(&HeaderMap::new(), &[])
            .await
            .expect("anon");
        assert_eq!(user, UserInfo::anonymous());

        // Client cert signed by the client CA: CN/O.
        let user = authn
            .authenticate(&HeaderMap::new(), std::slice::from_ref(&admin))
            .await
            .expect("x509");
        assert_eq!(user.name, "admin");
        assert_eq!(user.groups, ["system:masters", "system:authenticated"]);
        assert!(user.extra[CREDENTIAL_ID_KEY][0].starts_with("X509SHA256="));

        // Front proxy with an allowed name: headers are trusted.
        let user = authn
            .authenticate(&proxied, std::slice::from_ref(&proxy))
            .await
            .expect("requestheader");
        assert_eq!(user.name, "bob");
        assert_eq!(user.groups, ["g1", "g2", "system:authenticated"]);
        assert_eq!(user.extra["scopes/a"], ["s1"]);

        // Front-proxy CA but not an allowed name: rejected.
        assert!(
            authn
                .authenticate(&proxied, std::slice::from_ref(&proxy_not_allowed))
                .await
                .is_err()
        );
        // Headers alone (or with a client-CA cert) are not trusted.
        let user = authn
            .authenticate(&proxied, std::slice::from_ref(&admin))
            .await
            .expect("x509 wins");
        assert_eq!(user.name, "admin");
        // Unknown CA: 401, not anonymous.
        assert!(
            authn
                .authenticate(&HeaderMap::new(), std::slice::from_ref(&stranger))
                .await
                .is_err()
        );

        // Tokens.
        let user = authn
            .authenticate(&headers(&[("Authorization", "Bearer good")]), &[])
            .await
            .expect("token");
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["devs", "system:authenticated"]);
        for bad in ["Bearer bad", "Bearer broken", "Bearer  x"] {
            assert!(
                authn
                    .authenticate(&headers(&[("Authorization", bad)]), &[])
                    .await
                    .is_err(),
                "{bad}"
            );
        }
        // Basic auth is not ours to judge, and upstream trims "Bearer " to
        // "Bearer" (no token at all): both anonymous.
        for header in ["Basic Zm9v", "Bearer "] {
            let user = authn
                .authenticate(&headers(&[("Authorization", header)]), &[])
                .await
                .expect("anon");
            assert_eq!(user.name, "system:anonymous", "{header}");
        }

        let no_anon = Authenticator {
            anonymous: false,
            ..authn.clone()
        };
        assert!(no_anon.authenticate(&HeaderMap::new(), &[]).await.is_err());
    }

    #[tokio::test]
    async fn token_cache_honours_ttl() {
        let fake = Arc::new(FakeReviewer {
            calls: AtomicUsize::new(0),
        });
        let cached = CachedTokenReviewer::new(fake.clone(), Duration::from_secs(60));
        for _ in 0..3 {
            assert!(cached.review("good").await.expect("ok").is_some());
            assert!(cached.review("bad").await.expect("ok").is_none());
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
        // Errors are not cached.
        assert!(cached.review("broken").await.is_err());
        assert!(cached.review("broken").await.is_err());
        assert_eq!(fake.calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn token_review_mapping() {
        use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo as KUser};
        let mut review = TokenReview::default();
        assert!(matches!(token_review_result(&review), Ok(None)));
        review.status = Some(TokenReviewStatus {
            authenticated: Some(false),
            error: Some("token expired".into()),
            ..TokenReviewStatus::default()
        });
        assert!(matches!(
            token_review_result(&review),
            Err(CredentialError::TokenReviewStatus(m)) if m == "token expired"
        ));
        review.status = Some(TokenReviewStatus {
            authenticated: Some(true),
            user: Some(KUser {
                username: Some("system:serviceaccount:kube-system:x".into()),
                uid: Some("u1".into()),
                groups: Some(vec!["system:serviceaccounts".into()]),
                extra: None,
            }),
            ..TokenReviewStatus::default()
        });
        let user = token_review_result(&review).expect("ok").expect("user");
        assert_eq!(user.name, "system:serviceaccount:kube-system:x");
        assert_eq!(user.uid, "u1");
    }

    #[test]
    fn bearer_parsing() {
        assert!(matches!(bearer_token(&HeaderMap::new()), Ok(None)));
        assert!(matches!(
            bearer_token(&headers(&[("Authorization", "bearer abc")])),
            Ok(Some(t)) if t == "abc"
        ));
        assert!(matches!(
            bearer_token(&headers(&[("Authorization", "Basic abc")])),
            Ok(None)
        ));
        assert!(matches!(
            bearer_token(&headers(&[("Authorization", "Bearer  x")])),
            Err(CredentialError::InvalidBearerToken)
        ));
    }

    #[test]
    fn extra_key_unescaping() {
        assert_eq!(unescape_extra_key("scopes%2fa"), "scopes/a");
        assert_eq!(unescape_extra_key("plain"), "plain");
        assert_eq!(unescape_extra_key("bad%zz"), "bad%zz");
    }
}
