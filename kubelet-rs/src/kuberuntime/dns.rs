//! Pod DNS configuration (upstream `pkg/kubelet/network/dns`).

use k8s_openapi::api::core::v1::Pod;

use crate::cri::api::DnsConfig;

/// Upstream limits on search paths.
pub const MAX_DNS_SEARCH_PATHS: usize = 32;
pub const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;

/// What `/etc/resolv.conf` of the host says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostResolv {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Parses resolv.conf text (last `search` line wins, like glibc).
pub fn parse_resolv_conf(text: &str) -> HostResolv {
    let mut out = HostResolv::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => out.nameservers.extend(fields.next().map(str::to_string)),
            Some("search") => {
                out.searches = fields
                    .map(|s| s.trim_end_matches('.').to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            Some("options") => out.options.extend(fields.map(str::to_string)),
            _ => {}
        }
    }
    out
}

/// Cluster DNS settings of the kubelet.
#[derive(Clone, Debug, Default)]
pub struct ClusterDns {
    pub servers: Vec<String>,
    pub domain: String,
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for i in items {
        if !list.contains(&i) {
            list.push(i);
        }
    }
}

/// Merges options by name: later values of the same option replace earlier ones.
fn merge_options(base: Vec<String>, extra: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for opt in base.into_iter().chain(extra) {
        let name = opt.split(':').next().unwrap_or_default().to_string();
        match out
            .iter()
            .position(|o| o.split(':').next() == Some(name.as_str()))
        {
            Some(i) => out[i] = opt,
            None => out.push(opt),
        }
    }
    out
}

fn trim_searches(searches: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = 0;
    for s in searches.into_iter().take(MAX_DNS_SEARCH_PATHS) {
        if chars + s.len() + usize::from(!out.is_empty()) > MAX_DNS_SEARCH_LIST_CHARS {
            break;
        }
        chars += s.len() + usize::from(!out.is_empty());
        out.push(s);
    }
    out
}

/// `GetPodDNS`: the sandbox's resolver config for `pod`.
pub fn pod_dns(pod: &Pod, cluster: &ClusterDns, host: &HostResolv) -> DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let use_cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    } && !cluster.servers.is_empty();
    let mut cfg = match policy {
        "None" => DnsConfig::default(),
        _ if use_cluster => {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let d = &cluster.domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            push_unique(&mut searches, host.searches.clone());
            DnsConfig {
                servers: cluster.servers.clone(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => DnsConfig {
            servers: host.nameservers.clone(),
            searches: host.searches.clone(),
            options: host.options.clone(),
        },
    };
    if let Some(extra) = spec.dns_config {
        push_unique(&mut cfg.servers, extra.nameservers.unwrap_or_default());
        push_unique(&mut cfg.searches, extra.searches.unwrap_or_default());
        let opts = extra
            .options
            .unwrap_or_default()
            .into_iter()
            .map(|o| match o.value {
                Some(v) => format!("{}:{v}", o.name.unwrap_or_default()),
                None => o.name.unwrap_or_default(),
            })
            .collect();
        cfg.options = merge_options(cfg.options, opts);
    }
    cfg.searches = trim_searches(cfg.searches);
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};

    fn pod(policy: Option<&str>, host_network: bool, extra: Option<PodDNSConfig>) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                namespace: Some("ns1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                dns_policy: policy.map(str::to_string),
                host_network: Some(host_network),
                dns_config: extra,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn dns_policies() {
        let cluster = ClusterDns {
            servers: vec!["10.96.0.10".into()],
            domain: "cluster.local".into(),
        };
        let host = parse_resolv_conf("nameserver 1.1.1.1\nsearch corp.example.\noptions edns0\n");
        assert_eq!(host.searches, vec!["corp.example"]);

        let c = pod_dns(&pod(None, false, None), &cluster, &host);
        assert_eq!(c.servers, vec!["10.96.0.10"]);
        assert_eq!(
            c.searches,
            vec![
                "ns1.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(c.options, vec!["ndots:5"]);

        let hostnet = pod_dns(&pod(None, true, None), &cluster, &host);
        assert_eq!(hostnet.servers, vec!["1.1.1.1"]);
        let with_host_net = pod_dns(
            &pod(Some("ClusterFirstWithHostNet"), true, None),
            &cluster,
            &host,
        );
        assert_eq!(with_host_net.servers, vec!["10.96.0.10"]);
        let default = pod_dns(&pod(Some("Default"), false, None), &cluster, &host);
        assert_eq!(default.options, vec!["edns0"]);

        let extra = PodDNSConfig {
            nameservers: Some(vec!["8.8.8.8".into()]),
            searches: Some(vec!["x.example".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: Some("single-request".into()),
                    value: None,
                },
            ]),
        };
        let none = pod_dns(
            &pod(Some("None"), false, Some(extra.clone())),
            &cluster,
            &host,
        );
        assert_eq!(none.servers, vec!["8.8.8.8"]);
        assert_eq!(none.options, vec!["ndots:2", "single-request"]);
        let merged = pod_dns(&pod(None, false, Some(extra)), &cluster, &host);
        assert_eq!(merged.servers, vec!["10.96.0.10", "8.8.8.8"]);
        assert_eq!(merged.options, vec!["ndots:2", "single-request"]);
        assert_eq!(
            merged.searches.last().map(String::as_str),
            Some("x.example")
        );

        let no_cluster = pod_dns(&pod(None, false, None), &ClusterDns::default(), &host);
        assert_eq!(no_cluster.servers, vec!["1.1.1.1"]);
    }
}
