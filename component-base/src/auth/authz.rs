//! Request authorization, in upstream's delegating order: privileged groups
//! (`system:masters`), `--authorization-always-allow-paths`, then
//! SubjectAccessReview. Anything not allowed is forbidden.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes as KResourceAttributes, SubjectAccessReview,
    SubjectAccessReviewSpec,
};

use super::cache::TtlCache;
use super::{Attributes, Decision, MASTERS_GROUP};

/// The non-resource verb of an HTTP method (upstream's RequestInfo:
/// the lower-cased method).
pub fn non_resource_verb(method: &http::Method) -> String {
    method.as_str().to_ascii_lowercase()
}

/// Validated `--authorization-always-allow-paths` (upstream's path authorizer:
/// exact paths, or prefixes ending in `*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlwaysAllowPaths {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only trailing * allowed in {0:?}")]
pub struct InvalidPathPattern(pub String);

impl AlwaysAllowPaths {
    pub fn new(patterns: &[String]) -> Result<Self, InvalidPathPattern> {
        let mut out = AlwaysAllowPaths::default();
        for pattern in patterns {
            // upstream strips a leading slash before matching; so do we.
            let p = pattern.trim_start_matches('/');
            if let Some(prefix) = p.strip_suffix('*') {
                if prefix.contains('*') {
                    return Err(InvalidPathPattern(pattern.clone()));
                }
                out.prefixes.push(prefix.to_string());
            } else if p.contains('*') {
                return Err(InvalidPathPattern(pattern.clone()));
            } else {
                out.exact.push(p.to_string());
            }
        }
        Ok(out)
    }

    pub fn matches(&self, path: &str) -> bool {
        let p = path.trim_start_matches('/');
        self.exact.iter().any(|e| e == p) || self.prefixes.iter().any(|pre| p.starts_with(pre))
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// Why an authorizer could not decide (→ 500, never cached).
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// The SubjectAccessReview request failed (the apiserver was not reached).
    #[error("SubjectAccessReview failed: {0}")]
    ReviewFailed(#[source] kube::Error),
    /// A wrapping authorizer's failure, with what it was asking
    /// (the kubelet's fine-grained subresource checks).
    #[error("Authorization error ({attributes}): {source}")]
    While {
        attributes: String,
        #[source]
        source: Box<AuthzError>,
    },
}

/// Asks whether a request is allowed (SubjectAccessReview in production).
#[async_trait::async_trait]
pub trait AccessReviewer: Send + Sync {
    async fn review(&self, attrs: &Attributes) -> Result<Decision, AuthzError>;
}

/// Builds the SubjectAccessReview spec for `attrs`.
pub fn access_review_spec(attrs: &Attributes) -> SubjectAccessReviewSpec {
    let user = &attrs.user;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut spec = SubjectAccessReviewSpec {
        user: non_empty(&user.name),
        uid: non_empty(&user.uid),
        groups: (!user.groups.is_empty()).then(|| user.groups.clone()),
        extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
        ..SubjectAccessReviewSpec::default()
    };
    match &attrs.resource {
        Some(r) => {
            spec.resource_attributes = Some(KResourceAttributes {
                namespace: non_empty(&r.namespace),
                verb: non_empty(&attrs.verb),
                group: non_empty(&r.group),
                version: non_empty(&r.version),
                resource: non_empty(&r.resource),
                subresource: non_empty(&r.subresource),
                name: non_empty(&r.name),
                ..KResourceAttributes::default()
            })
        }
        None => {
            spec.non_resource_attributes = Some(NonResourceAttributes {
                path: non_empty(&attrs.path),
                verb: non_empty(&attrs.verb),
            })
        }
    }
    spec
}

/// Maps a SubjectAccessReview status to a decision, as upstream's webhook
/// authorizer does.
pub fn access_review_decision(review: &SubjectAccessReview) -> Decision {
    let Some(status) = &review.status else {
        return Decision::NoOpinion(String::new());
    };
    let reason = status.reason.clone().unwrap_or_default();
    if status.allowed {
        Decision::Allow
    } else if status.denied == Some(true) {
        Decision::Deny(reason)
    } else {
        Decision::NoOpinion(reason)
    }
}

/// SubjectAccessReview through the authorization kubeconfig's client.
pub struct KubeAccessReviewer {
    pub client: kube::Client,
}

#[async_trait::async_trait]
impl AccessReviewer for KubeAccessReviewer {
    async fn review(&self, attrs: &Attributes) -> Result<Decision, AuthzError> {
        let api: kube::Api<SubjectAccessReview> = kube::Api::all(self.client.clone());
        let review = SubjectAccessReview {
            spec: access_review_spec(attrs),
            ..SubjectAccessReview::default()
        };
        let created = api
            .create(&kube::api::PostParams::default(), &review)
            .await
            .map_err(AuthzError::ReviewFailed)?;
        Ok(access_review_decision(&created))
    }
}

/// Caches allowed decisions for `allow_ttl` and the rest for `deny_ttl`.
pub struct CachedAccessReviewer {
    inner: Arc<dyn AccessReviewer>,
    allow_ttl: Duration,
    deny_ttl: Duration,
    cache: TtlCache<Attributes, Decision>,
}

impl CachedAccessReviewer {
    pub fn new(inner: Arc<dyn AccessReviewer>, allow_ttl: Duration, deny_ttl: Duration) -> Self {
        CachedAccessReviewer {
            inner,
            allow_ttl,
            deny_ttl,
            cache: TtlCache::default(),
        }
    }
}

#[async_trait::async_trait]
impl AccessReviewer for CachedAccessReviewer {
    async fn review(&self, attrs: &Attributes) -> Result<Decision, AuthzError> {
        if let Some(hit) = self.cache.get(attrs, Instant::now()) {
            return Ok(hit);
        }
        let decision = self.inner.review(attrs).await?;
        let ttl = if decision == Decision::Allow {
            self.allow_ttl
        } else {
            self.deny_ttl
        };
        self.cache
            .insert(attrs.clone(), decision.clone(), ttl, Instant::now());
        Ok(decision)
    }
}

/// The union of configured authorizers.
#[derive(Clone, Default)]
pub struct Authorizer {
    /// upstream default: `system:masters`.
    pub always_allow_groups: Vec<String>,
    pub always_allow_paths: AlwaysAllowPaths,
    pub webhook: Option<Arc<dyn AccessReviewer>>,
    /// Allow everything (the kubelet's `--authorization-mode=AlwaysAllow`).
    pub always_allow: bool,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("always_allow_groups", &self.always_allow_groups)
            .field("always_allow_paths", &self.always_allow_paths)
            .field("webhook", &self.webhook.is_some())
            .field("always_allow", &self.always_allow)
            .finish()
    }
}

impl Authorizer {
    /// The decision without the webhook: `Some(Allow)` when a local rule
    /// allows, `None` when only the webhook could.
    pub fn local_decision(&self, attrs: &Attributes) -> Option<Decision> {
        if self.always_allow {
            return Some(Decision::Allow);
        }
        if attrs
            .user
            .groups
            .iter()
            .any(|g| self.always_allow_groups.contains(g))
        {
            return Some(Decision::Allow);
        }
        if attrs.resource.is_none() && self.always_allow_paths.matches(&attrs.path) {
            return Some(Decision::Allow);
        }
        None
    }

    /// Authorizes `attrs`; `Err` means the webhook could not be asked (500).
    pub async fn authorize(&self, attrs: &Attributes) -> Result<Decision, AuthzError> {
        if let Some(decision) = self.local_decision(attrs) {
            return Ok(decision);
        }
        match &self.webhook {
            Some(webhook) => webhook.review(attrs).await,
            None => Ok(Decision::NoOpinion(String::new())),
        }
    }
}

/// upstream's default privileged groups.
pub fn default_always_allow_groups() -> Vec<String> {
    vec![MASTERS_GROUP.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ResourceAttributes, UserInfo};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct FakeSar {
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl AccessReviewer for FakeSar {
        async fn review(&self, attrs: &Attributes) -> Result<Decision, AuthzError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(match (attrs.user.name.as_str(), attrs.path.as_str()) {
                ("prometheus", "/metrics") => Decision::Allow,
                ("evil", _) => Decision::Deny("explicitly denied".into()),
                _ => Decision::NoOpinion(String::new()),
            })
        }
    }

    fn attrs(user: &str, groups: &[&str], verb: &str, path: &str) -> Attributes {
        Attributes {
            user: UserInfo {
                name: user.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                ..UserInfo::default()
            },
            verb: verb.into(),
            path: path.into(),
            resource: None,
        }
    }

    #[test]
    fn path_patterns() {
        let paths = AlwaysAllowPaths::new(&[
            "/healthz".into(),
            "/readyz".into(),
            "/livez".into(),
            "/debug/*".into(),
        ])
        .expect("valid");
        let cases = [
            ("/healthz", true),
            ("/healthz/ping", false),
            ("/livez", true),
            ("/debug/pprof/heap", true),
            ("/debug", false),
            ("/metrics", false),
        ];
        for (path, want) in cases {
            assert_eq!(paths.matches(path), want, "{path}");
        }
        assert!(AlwaysAllowPaths::new(&["/a*b".into()]).is_err());
        assert!(AlwaysAllowPaths::new(&["/a/*/b*".into()]).is_err());
    }

    #[test]
    fn verbs_are_lowercased_methods() {
        assert_eq!(non_resource_verb(&http::Method::GET), "get");
        assert_eq!(non_resource_verb(&http::Method::POST), "post");
        assert_eq!(non_resource_verb(&http::Method::PATCH), "patch");
        assert_eq!(non_resource_verb(&http::Method::DELETE), "delete");
    }

    #[tokio::test]
    async fn decision_table() {
        let sar = Arc::new(FakeSar {
            calls: AtomicUsize::new(0),
        });
        let authz = Authorizer {
            always_allow_groups: default_always_allow_groups(),
            always_allow_paths: AlwaysAllowPaths::new(&["/healthz".into()]).expect("valid"),
            webhook: Some(Arc::new(CachedAccessReviewer::new(
                sar.clone(),
                Duration::from_secs(10),
                Duration::from_secs(10),
            ))),
            always_allow: false,
        };
        let cases = [
            (
                attrs(
                    "system:anonymous",
                    &["system:unauthenticated"],
                    "get",
                    "/healthz",
                ),
                Decision::Allow,
            ),
            (
                attrs("admin", &["system:masters"], "get", "/metrics"),
                Decision::Allow,
            ),
            (attrs("prometheus", &[], "get", "/metrics"), Decision::Allow),
            (
                attrs("evil", &[], "get", "/metrics"),
                Decision::Deny("explicitly denied".into()),
            ),
            (
                attrs("nobody", &[], "get", "/metrics"),
                Decision::NoOpinion(String::new()),
            ),
        ];
        for (a, want) in &cases {
            assert_eq!(&authz.authorize(a).await.expect("decides"), want, "{a:?}");
        }
        let webhook_calls = sar.calls.load(Ordering::SeqCst);
        assert_eq!(webhook_calls, 3);
        for (a, want) in &cases {
            assert_eq!(&authz.authorize(a).await.expect("decides"), want);
        }
        assert_eq!(sar.calls.load(Ordering::SeqCst), webhook_calls, "cached");

        // Resource requests never match always-allow paths.
        let mut resource = attrs("x", &[], "get", "/healthz");
        resource.resource = Some(ResourceAttributes {
            resource: "nodes".into(),
            subresource: "proxy".into(),
            ..ResourceAttributes::default()
        });
        assert_eq!(authz.local_decision(&resource), None);

        let no_webhook = Authorizer {
            webhook: None,
            ..authz.clone()
        };
        assert_eq!(
            no_webhook
                .authorize(&attrs("prometheus", &[], "get", "/metrics"))
                .await
                .expect("decides"),
            Decision::NoOpinion(String::new())
        );
    }

    #[test]
    fn sar_spec_and_status() {
        use k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus;
        let spec = access_review_spec(&attrs("bob", &["g"], "get", "/metrics"));
        let nra = spec.non_resource_attributes.expect("non-resource");
        assert_eq!(nra.path.as_deref(), Some("/metrics"));
        assert_eq!(nra.verb.as_deref(), Some("get"));
        assert_eq!(spec.user.as_deref(), Some("bob"));
        assert!(spec.resource_attributes.is_none());

        let mut review = SubjectAccessReview::default();
        let mut set = |allowed, denied: Option<bool>, reason: &str| {
            review.status = Some(SubjectAccessReviewStatus {
                allowed,
                denied,
                reason: Some(reason.into()),
                ..SubjectAccessReviewStatus::default()
            });
            access_review_decision(&review)
        };
        assert_eq!(set(true, None, ""), Decision::Allow);
        assert_eq!(set(false, Some(true), "no"), Decision::Deny("no".into()));
        assert_eq!(set(false, None, "meh"), Decision::NoOpinion("meh".into()));
    }
}
