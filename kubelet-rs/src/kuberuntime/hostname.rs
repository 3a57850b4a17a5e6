//! A pod's hostname and domain (upstream kubelet_pods.go `GeneratePodHostNameAndDomain`,
//! `truncatePodHostnameIfNeeded`, and `util.GetNodenameForKernel`). The short hostname
//! and the domain feed the managed `/etc/hosts`; the kernel hostname (the sandbox's UTS
//! name) is the FQDN only with `setHostnameAsFQDN`.

use k8s_openapi::api::core::v1::Pod;

/// Linux hostnames are at most 63 characters (64 bytes with the terminating NUL).
const HOSTNAME_MAX_LEN: usize = 63;
/// The kernel nodename field holds 64 characters.
const FQDN_MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    #[error("pod HostnameOverride {value:?} is not a valid DNS subdomain: {reason}")]
    InvalidOverride { value: String, reason: String },
    #[error("pod Hostname {value:?} is not a valid DNS label: {reason}")]
    InvalidHostname { value: String, reason: String },
    #[error("pod Subdomain {value:?} is not a valid DNS label: {reason}")]
    InvalidSubdomain { value: String, reason: String },
    #[error("hostname for pod {pod:?} was invalid: {hostname:?}")]
    EmptyAfterTruncation { pod: String, hostname: String },
    #[error(
        "failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long ({FQDN_MAX_LEN} characters is the max, {} characters requested)",
        .fqdn.len()
    )]
    FqdnTooLong { fqdn: String },
}

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Upstream `IsDNS1123Label`: the joined messages, `None` when valid.
fn dns1123_label_error(value: &str) -> Option<String> {
    let mut errs = Vec::new();
    if value.len() > HOSTNAME_MAX_LEN {
        errs.push(format!(
            "must be no more than {HOSTNAME_MAX_LEN} characters"
        ));
    }
    let shape_ok = value.starts_with(is_label_char)
        && value.ends_with(is_label_char)
        && value.chars().all(|c| is_label_char(c) || c == '-');
    if !shape_ok {
        errs.push(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{DNS1123_LABEL_FMT}')"
        ));
    }
    (!errs.is_empty()).then(|| errs.join(";"))
}

/// Upstream `IsDNS1123Subdomain`: dot-separated labels, at most 253 characters.
fn dns1123_subdomain_error(value: &str) -> Option<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let shape_ok = !value.is_empty()
        && value.split('.').all(|l| {
            l.starts_with(is_label_char)
                && l.ends_with(is_label_char)
                && l.chars().all(|c| is_label_char(c) || c == '-')
        });
    if !shape_ok {
        errs.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*')"
        ));
    }
    (!errs.is_empty()).then(|| errs.join(";"))
}

/// Caps a hostname at 63 characters, then drops trailing `-` and `.`.
fn truncate_hostname(pod_name: &str, hostname: &str) -> Result<String, HostnameError> {
    if hostname.len() <= HOSTNAME_MAX_LEN {
        return Ok(hostname.to_string());
    }
    let cut = (0..=HOSTNAME_MAX_LEN)
        .rev()
        .find(|i| hostname.is_char_boundary(*i))
        .unwrap_or(0);
    let truncated = hostname[..cut].trim_end_matches(['-', '.']);
    tracing::warn!(
        pod = pod_name,
        truncated,
        "hostname for pod was too long, truncated it"
    );
    if truncated.is_empty() {
        return Err(HostnameError::EmptyAfterTruncation {
            pod: pod_name.to_string(),
            hostname: hostname.to_string(),
        });
    }
    Ok(truncated.to_string())
}

/// `GeneratePodHostNameAndDomain`: (short hostname, domain). The domain is
/// `<subdomain>.<namespace>.svc.<cluster domain>` when the pod names a subdomain.
pub fn pod_hostname_and_domain(
    pod: &Pod,
    cluster_domain: &str,
) -> Result<(String, String), HostnameError> {
    let spec = pod.spec.as_ref();
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    if let Some(over) = spec.and_then(|s| s.hostname_override.as_deref()) {
        if let Some(reason) = dns1123_subdomain_error(over) {
            return Err(HostnameError::InvalidOverride {
                value: over.to_string(),
                reason,
            });
        }
        return Ok((truncate_hostname(pod_name, over)?, String::new()));
    }
    let mut hostname = pod_name.to_string();
    if let Some(h) = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
    {
        if let Some(reason) = dns1123_label_error(h) {
            return Err(HostnameError::InvalidHostname {
                value: h.to_string(),
                reason,
            });
        }
        hostname = h.to_string();
    }
    let hostname = truncate_hostname(pod_name, &hostname)?;
    let domain = match spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
    {
        Some(sub) => {
            if let Some(reason) = dns1123_label_error(sub) {
                return Err(HostnameError::InvalidSubdomain {
                    value: sub.to_string(),
                    reason,
                });
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            format!("{sub}.{ns}.svc.{cluster_domain}")
        }
        None => String::new(),
    };
    Ok((hostname, domain))
}

/// `GetNodenameForKernel`: the FQDN with `setHostnameAsFQDN` and a domain, else the
/// short hostname.
pub fn nodename_for_kernel(
    hostname: &str,
    domain: &str,
    set_hostname_as_fqdn: Option<bool>,
) -> Result<String, HostnameError> {
    if domain.is_empty() || set_hostname_as_fqdn != Some(true) {
        return Ok(hostname.to_string());
    }
    let fqdn = format!("{hostname}.{domain}");
    if fqdn.len() > FQDN_MAX_LEN {
        return Err(HostnameError::FqdnTooLong { fqdn });
    }
    Ok(fqdn)
}

/// The sandbox's UTS hostname: [`pod_hostname_and_domain`] then [`nodename_for_kernel`].
pub fn kernel_hostname(pod: &Pod, cluster_domain: &str) -> Result<String, HostnameError> {
    let (hostname, domain) = pod_hostname_and_domain(pod, cluster_domain)?;
    let fqdn = pod.spec.as_ref().and_then(|s| s.set_hostname_as_fqdn);
    nodename_for_kernel(&hostname, &domain, fqdn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::api::ObjectMeta;

    fn pod(name: &str, hostname: Option<&str>, subdomain: Option<&str>, fqdn: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                hostname: hostname.map(str::to_string),
                subdomain: subdomain.map(str::to_string),
                set_hostname_as_fqdn: fqdn.then_some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn hostname_and_domain_like_upstream() {
        let ok = |p: &Pod| pod_hostname_and_domain(p, "cluster.local").unwrap();
        assert_eq!(
            ok(&pod("web-0", None, None, false)),
            ("web-0".into(), String::new())
        );
        assert_eq!(
            ok(&pod("web-0", Some("dns-querier-2"), Some("svc-2"), false)),
            (
                "dns-querier-2".into(),
                "svc-2.ns1.svc.cluster.local".to_string()
            )
        );
        // Pod names longer than 63 characters are cut and lose trailing '-' / '.'.
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        assert_eq!(ok(&pod(&long, None, None, false)).0, "a".repeat(62));
        let bad = pod_hostname_and_domain(&pod("p", Some("Bad_Name"), None, false), "c");
        assert!(matches!(bad, Err(HostnameError::InvalidHostname { .. })));
        let bad_sub = pod_hostname_and_domain(&pod("p", None, Some("a.b"), false), "c");
        assert!(matches!(
            bad_sub,
            Err(HostnameError::InvalidSubdomain { .. })
        ));
    }

    #[test]
    fn kernel_hostname_is_fqdn_only_when_asked() {
        let p = pod("p", Some("h"), Some("s"), false);
        assert_eq!(kernel_hostname(&p, "cluster.local").unwrap(), "h");
        let f = pod("p", Some("h"), Some("s"), true);
        assert_eq!(
            kernel_hostname(&f, "cluster.local").unwrap(),
            "h.s.ns1.svc.cluster.local"
        );
        let no_domain = pod("p", Some("h"), None, true);
        assert_eq!(kernel_hostname(&no_domain, "cluster.local").unwrap(), "h");
        let long = pod("p", Some(&"h".repeat(40)), Some("sub"), true);
        assert_eq!(
            kernel_hostname(&long, "cluster.local").map_err(|e| e.to_string()),
            Err(format!(
                "failed to construct FQDN from pod hostname and cluster domain, FQDN {}.sub.ns1.svc.cluster.local is too long (64 characters is the max, 66 characters requested)",
                "h".repeat(40)
            ))
        );
    }
}
