//! Authorization of kubelet API requests (upstream `server/auth.go`): every
//! request is about `nodes/<subresource>` of this node. `KubeletFineGrainedAuthz`
//! is GA (locked on) in v1.36, so `/pods`, `/runningpods`, `/healthz` and
//! `/configz` are first checked as `nodes/pods|healthz|configz` and then fall
//! back to `nodes/proxy`.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use component_base::auth::authz::{AccessReviewer, AuthzError};
use component_base::auth::{
    Attributes, AuthFilter, Authenticator, Authorizer, Decision, ResourceAttributes, UserInfo,
};

/// upstream `isSubpath`: `path` itself or anything below it.
fn is_subpath(subpath: &str, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    subpath == path
        || (subpath.starts_with(path) && subpath.as_bytes().get(path.len()) == Some(&b'/'))
}

/// The subresources a request is checked against, in order (first allowed wins).
pub fn subresources(path: &str) -> Vec<&'static str> {
    let mut out = Vec::with_capacity(2);
    if is_subpath(path, "/pods") || is_subpath(path, "/runningpods/") {
        out.push("pods");
    } else if is_subpath(path, "/healthz") {
        out.push("healthz");
    } else if is_subpath(path, "/configz") {
        out.push("configz");
    }
    let coarse = if is_subpath(path, "/stats/") {
        "stats"
    } else if is_subpath(path, "/metrics") {
        "metrics"
    } else if is_subpath(path, "/logs/") {
        "log"
    } else if is_subpath(path, "/checkpoint/") {
        "checkpoint"
    } else if is_subpath(path, "/statusz") {
        "statusz"
    } else if is_subpath(path, "/flagz") {
        "configz"
    } else {
        "proxy"
    };
    out.push(coarse);
    out
}

/// The API verb of an HTTP method (empty for anything else, as upstream).
pub fn api_verb(method: &http::Method) -> &'static str {
    match *method {
        http::Method::POST => "create",
        http::Method::GET => "get",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "",
    }
}

/// upstream `GetRequestAttributes`: one record per subresource to try.
pub fn request_attributes(
    node: &str,
    user: &UserInfo,
    method: &http::Method,
    uri: &http::Uri,
) -> Vec<Attributes> {
    let path = uri.path();
    subresources(path)
        .into_iter()
        .map(|subresource| with_subresource(node, user, api_verb(method), path, subresource))
        .collect()
}

fn with_subresource(
    node: &str,
    user: &UserInfo,
    verb: &str,
    path: &str,
    subresource: &str,
) -> Attributes {
    Attributes {
        user: user.clone(),
        verb: verb.to_string(),
        path: path.to_string(),
        resource: Some(ResourceAttributes {
            version: "v1".to_string(),
            resource: "nodes".to_string(),
            subresource: subresource.to_string(),
            name: node.to_string(),
            ..ResourceAttributes::default()
        }),
    }
}

/// Wraps the SubjectAccessReview authorizer so a request the filter describes
/// with its first (fine-grained) subresource is retried with the fallbacks.
pub struct FineGrainedReviewer {
    pub inner: Arc<dyn AccessReviewer>,
}

#[async_trait::async_trait]
impl AccessReviewer for FineGrainedReviewer {
    async fn review(&self, attrs: &Attributes) -> Result<Decision, AuthzError> {
        let Some(resource) = &attrs.resource else {
            return self.inner.review(attrs).await;
        };
        let mut last = Decision::NoOpinion(String::new());
        for subresource in subresources(&attrs.path) {
            let candidate = with_subresource(
                &resource.name,
                &attrs.user,
                &attrs.verb,
                &attrs.path,
                subresource,
            );
            match self.inner.review(&candidate).await {
                Ok(Decision::Allow) => return Ok(Decision::Allow),
                Ok(other) => last = other,
                Err(err) => {
                    return Err(AuthzError::While {
                        attributes: format!(
                            "user={}, verb={}, resource=nodes, subresource={subresource}",
                            attrs.user.name, attrs.verb
                        ),
                        source: Box::new(err),
                    });
                }
            }
        }
        Ok(last)
    }
}

/// The kubelet's auth filter: `authorizer.webhook` is wrapped with the
/// fine-grained fallback, requests map to `nodes/*` of `node`, denials get
/// upstream's plain-text body.
pub fn kubelet_auth_filter(
    node: &str,
    authenticator: Authenticator,
    mut authorizer: Authorizer,
) -> AuthFilter {
    authorizer.webhook = authorizer
        .webhook
        .take()
        .map(|inner| Arc::new(FineGrainedReviewer { inner }) as Arc<dyn AccessReviewer>);
    let node = node.to_string();
    AuthFilter::new(authenticator, authorizer)
        .with_attributes(move |user, method, uri| {
            let mut attrs = request_attributes(&node, user, method, uri);
            // `subresources` never returns an empty list.
            attrs.swap_remove(0)
        })
        .with_forbidden(forbidden)
}

/// upstream's denial: `Forbidden (user=…, verb=…, resource=nodes, subresource(s)=[pods proxy])`.
pub fn forbidden_body(attrs: &Attributes) -> String {
    let resource = attrs
        .resource
        .as_ref()
        .map(|r| r.resource.as_str())
        .unwrap_or_default();
    format!(
        "Forbidden (user={}, verb={}, resource={}, subresource(s)=[{}])\n",
        attrs.user.name,
        attrs.verb,
        resource,
        subresources(&attrs.path).join(" ")
    )
}

fn forbidden(attrs: &Attributes, _reason: &str) -> Response {
    let mut resp = (StatusCode::FORBIDDEN, forbidden_body(attrs)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_match_upstream() {
        let user = UserInfo {
            name: "u".into(),
            ..UserInfo::default()
        };
        let cases: &[(&str, &str, &str, &[&str])] = &[
            ("GET", "/pods", "get", &["pods", "proxy"]),
            ("GET", "/pods/", "get", &["pods", "proxy"]),
            ("GET", "/podsx", "get", &["proxy"]),
            ("GET", "/runningpods/", "get", &["pods", "proxy"]),
            ("GET", "/runningpods", "get", &["pods", "proxy"]),
            ("GET", "/healthz", "get", &["healthz", "proxy"]),
            ("GET", "/healthz/syncloop", "get", &["healthz", "proxy"]),
            ("GET", "/configz", "get", &["configz", "proxy"]),
            ("GET", "/flagz", "get", &["configz"]),
            ("GET", "/statusz", "get", &["statusz"]),
            ("GET", "/stats/summary", "get", &["stats"]),
            ("GET", "/stats", "get", &["stats"]),
            ("GET", "/metrics", "get", &["metrics"]),
            ("GET", "/metrics/cadvisor", "get", &["metrics"]),
            ("GET", "/logs/syslog", "get", &["log"]),
            ("POST", "/checkpoint/ns/p/c", "create", &["checkpoint"]),
            ("POST", "/exec/ns/p/c", "create", &["proxy"]),
            ("GET", "/exec/ns/p/c", "get", &["proxy"]),
            ("POST", "/run/ns/p/c", "create", &["proxy"]),
            ("PUT", "/x", "update", &["proxy"]),
            ("PATCH", "/x", "patch", &["proxy"]),
            ("DELETE", "/x", "delete", &["proxy"]),
            ("HEAD", "/containerLogs/ns/p/c", "", &["proxy"]),
        ];
        for (method, path, verb, subs) in cases {
            let method: http::Method = method.parse().expect("method");
            let uri: http::Uri = path.parse().expect("uri");
            let attrs = request_attributes("node-1", &user, &method, &uri);
            let got: Vec<&str> = attrs
                .iter()
                .map(|a| {
                    a.resource
                        .as_ref()
                        .map(|r| r.subresource.as_str())
                        .unwrap_or("")
                })
                .collect();
            assert_eq!(&got, subs, "{method} {path}");
            for a in &attrs {
                assert_eq!(a.verb, *verb, "{method} {path}");
                let r = a.resource.as_ref().expect("resource request");
                assert_eq!(
                    (
                        r.resource.as_str(),
                        r.name.as_str(),
                        r.group.as_str(),
                        r.version.as_str()
                    ),
                    ("nodes", "node-1", "", "v1")
                );
            }
        }
    }

    #[test]
    fn forbidden_lists_all_subresources() {
        let attrs = request_attributes(
            "n",
            &UserInfo {
                name: "bob".into(),
                ..UserInfo::default()
            },
            &http::Method::GET,
            &"/pods".parse().expect("uri"),
        );
        assert_eq!(
            forbidden_body(&attrs[0]),
            "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"
        );
    }
}
