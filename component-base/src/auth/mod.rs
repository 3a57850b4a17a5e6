//! Delegated authentication and authorization, as upstream's
//! `DelegatingAuthenticationOptions`/`DelegatingAuthorizationOptions`:
//! client certificates (`--client-ca-file`), front-proxy request headers
//! (`--requestheader-*`), bearer tokens via TokenReview, and
//! SubjectAccessReview for everything not always allowed.
//!
//! The decisions are pure functions ([`authn`], [`authz`]); the API calls sit
//! behind the [`authn::TokenReviewer`] and [`authz::AccessReviewer`] traits;
//! [`filter`] is the axum middleware. The kubelet reuses all of it with its
//! own [`filter::AttributesFn`] (nodes/proxy, nodes/stats, …).

pub mod authn;
pub mod authz;
pub mod cache;
pub mod delegating;
pub mod filter;

use std::collections::BTreeMap;

pub use authn::Authenticator;
pub use authz::Authorizer;
pub use filter::AuthFilter;

pub const ANONYMOUS_USER: &str = "system:anonymous";
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
pub const MASTERS_GROUP: &str = "system:masters";
/// `user.CredentialIDKey`: the credential a user authenticated with.
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// An authenticated (or anonymous) user, like `user.Info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        UserInfo {
            name: ANONYMOUS_USER.to_string(),
            groups: vec![UNAUTHENTICATED_GROUP.to_string()],
            ..UserInfo::default()
        }
    }
}

/// Resource attributes of a request (the kubelet's `nodes/proxy` & co.).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ResourceAttributes {
    pub namespace: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

/// What is being authorized, like `authorizer.Attributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    /// Request path (non-resource requests).
    pub path: String,
    /// `Some` for resource requests.
    pub resource: Option<ResourceAttributes>,
}

/// Outcome of an authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
    NoOpinion(String),
}
