//! Conntrack cleanup for UDP Services (upstream `pkg/proxy/conntrack`): UDP
//! has no connection teardown, so flows pinned to a removed backend (or
//! rejected while a Service had no backends) must be deleted by hand.
//! Best effort: failures are logged, never fatal.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;

use tokio::process::Command;

use crate::model::{EndpointsMap, Protocol, ServicePortMap};

/// One `conntrack -D` invocation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deletion {
    /// Flows to a service IP:port (the Service just got its first endpoint,
    /// or was deleted).
    ServicePort { ip: IpAddr, port: u16 },
    /// Flows to a NodePort.
    NodePort { port: u16 },
    /// Flows to a service IP that were DNATed to a removed endpoint.
    Nat {
        service_ip: IpAddr,
        endpoint_ip: IpAddr,
    },
}

impl Deletion {
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-D", "-p", "udp"].iter().map(|s| s.to_string()).collect();
        match self {
            Deletion::ServicePort { ip, port } => {
                args.extend([
                    "--orig-dst".into(),
                    ip.to_string(),
                    "--dport".into(),
                    port.to_string(),
                ]);
            }
            Deletion::NodePort { port } => args.extend(["--dport".into(), port.to_string()]),
            Deletion::Nat {
                service_ip,
                endpoint_ip,
            } => {
                args.extend([
                    "--orig-dst".into(),
                    service_ip.to_string(),
                    "--dst-nat".into(),
                    endpoint_ip.to_string(),
                ]);
            }
        }
        args
    }
}

fn service_ips(svc: &crate::model::ServiceInfo) -> impl Iterator<Item = IpAddr> + '_ {
    std::iter::once(svc.cluster_ip)
        .chain(svc.external_ips.iter().copied())
        .chain(svc.load_balancer_vips.iter().copied())
}

/// Plans the deletions needed after moving from (`old_svcs`, `old_eps`) to
/// (`new_svcs`, `new_eps`). Only UDP ports matter.
pub fn plan(
    old_svcs: &ServicePortMap,
    old_eps: &EndpointsMap,
    new_svcs: &ServicePortMap,
    new_eps: &EndpointsMap,
) -> BTreeSet<Deletion> {
    let mut out = BTreeSet::new();
    let ready = |eps: Option<&Vec<crate::model::Endpoint>>| -> BTreeSet<(IpAddr, u16)> {
        eps.into_iter()
            .flatten()
            .filter(|e| e.ready || (e.serving && e.terminating))
            .map(|e| (e.ip, e.port))
            .collect()
    };
    for (spn, old) in old_svcs.iter().filter(|(s, _)| s.protocol == Protocol::Udp) {
        let before = ready(old_eps.get(spn));
        let after = match new_svcs.get(spn) {
            Some(_) => ready(new_eps.get(spn)),
            None => {
                for ip in service_ips(old) {
                    out.insert(Deletion::ServicePort { ip, port: old.port });
                }
                continue;
            }
        };
        for (ep_ip, _) in before.difference(&after) {
            for ip in service_ips(old) {
                out.insert(Deletion::Nat {
                    service_ip: ip,
                    endpoint_ip: *ep_ip,
                });
            }
        }
    }
    for (spn, new) in new_svcs.iter().filter(|(s, _)| s.protocol == Protocol::Udp) {
        let had = old_svcs.contains_key(spn) && !ready(old_eps.get(spn)).is_empty();
        let has = !ready(new_eps.get(spn)).is_empty();
        if has && !had {
            // Packets sent while there was no endpoint created reject/drop
            // flows that would otherwise black-hole the client.
            for ip in service_ips(new) {
                out.insert(Deletion::ServicePort { ip, port: new.port });
            }
            if new.node_port != 0 {
                out.insert(Deletion::NodePort {
                    port: new.node_port,
                });
            }
        }
    }
    out
}

/// The proxier's only access to the conntrack table (upstream
/// `conntrack.Interface`), so a sync can be unit-tested without the tool.
/// Best effort: failures are logged by the implementation, never returned.
pub trait Cleaner: Send {
    fn execute(&mut self, deletions: &BTreeSet<Deletion>) -> impl Future<Output = ()> + Send;
}

impl Cleaner for Conntrack {
    async fn execute(&mut self, deletions: &BTreeSet<Deletion>) {
        Conntrack::execute(self, deletions).await;
    }
}

/// The real cleaner: runs the `conntrack` tool (inside `netns` if set).
#[derive(Debug, Clone, Default)]
pub struct Conntrack {
    netns: Option<PathBuf>,
}

impl Conntrack {
    pub fn in_netns(path: impl Into<PathBuf>) -> Self {
        Self {
            netns: Some(path.into()),
        }
    }

    pub async fn execute(&self, deletions: &BTreeSet<Deletion>) {
        for d in deletions {
            let mut cmd = match &self.netns {
                Some(ns) => {
                    let mut c = Command::new("nsenter");
                    c.arg(format!("--net={}", ns.display())).arg("conntrack");
                    c
                }
                None => Command::new("conntrack"),
            };
            match cmd.args(d.args()).output().await {
                // Exit 1 with "0 flow entries" just means nothing matched.
                Ok(out)
                    if out.status.success()
                        || String::from_utf8_lossy(&out.stderr).contains("0 flow entries") =>
                {
                    tracing::debug!(deletion = ?d, "Cleared conntrack entries");
                }
                Ok(out) => {
                    tracing::warn!(deletion = ?d, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "Failed to clear conntrack entries")
                }
                Err(e) => tracing::warn!(deletion = ?d, error = %e, "Failed to run conntrack"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, NamespacedName, ServiceInfo, ServicePortName};

    fn spn(p: Protocol) -> ServicePortName {
        ServicePortName {
            service: NamespacedName::new("ns", "dns"),
            port: "dns".into(),
            protocol: p,
        }
    }

    fn svc(p: Protocol) -> ServiceInfo {
        ServiceInfo {
            cluster_ip: "172.30.0.10".parse().unwrap(),
            port: 53,
            protocol: p,
            node_port: 30053,
            session_affinity_timeout: None,
            external_ips: vec![],
            load_balancer_vips: vec![],
            load_balancer_source_ranges: vec![],
            external_policy_local: false,
            internal_policy_local: false,
            health_check_node_port: 0,
        }
    }

    fn ep(ip: &str) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 5353,
            ready: true,
            serving: true,
            terminating: false,
            node_name: None,
            zone_hints: Default::default(),
            node_hints: Default::default(),
            is_local: false,
        }
    }

    fn maps(p: Protocol, eps: &[&str]) -> (ServicePortMap, EndpointsMap) {
        let s = ServicePortMap::from([(spn(p), svc(p))]);
        let e = EndpointsMap::from([(spn(p), eps.iter().map(|i| ep(i)).collect())]);
        (s, e)
    }

    #[test]
    fn plans_udp_cleanup() {
        let svc_ip: IpAddr = "172.30.0.10".parse().unwrap();
        let (s0, e0) = (ServicePortMap::new(), EndpointsMap::new());
        let (s1, e1) = maps(Protocol::Udp, &["10.0.0.1", "10.0.0.2"]);
        let (s2, e2) = maps(Protocol::Udp, &["10.0.0.2"]);
        let (s3, e3) = maps(Protocol::Udp, &[]);

        // First endpoints: flush flows cached while the Service rejected.
        assert_eq!(
            plan(&s3, &e3, &s1, &e1),
            BTreeSet::from([
                Deletion::ServicePort {
                    ip: svc_ip,
                    port: 53
                },
                Deletion::NodePort { port: 30053 }
            ])
        );
        // An endpoint went away: flush flows NATed to it.
        assert_eq!(
            plan(&s1, &e1, &s2, &e2),
            BTreeSet::from([Deletion::Nat {
                service_ip: svc_ip,
                endpoint_ip: "10.0.0.1".parse().unwrap()
            }])
        );
        // Service deleted.
        assert_eq!(
            plan(&s2, &e2, &s0, &e0),
            BTreeSet::from([Deletion::ServicePort {
                ip: svc_ip,
                port: 53
            }])
        );
        // Nothing changed.
        assert!(plan(&s2, &e2, &s2, &e2).is_empty());
    }

    #[test]
    fn tcp_needs_no_cleanup() {
        let (s1, e1) = maps(Protocol::Tcp, &["10.0.0.1"]);
        let (s2, e2) = maps(Protocol::Tcp, &[]);
        assert!(plan(&s1, &e1, &s2, &e2).is_empty());
        assert!(plan(&s2, &e2, &s1, &e1).is_empty());
    }

    #[test]
    fn renders_conntrack_args() {
        let d = Deletion::Nat {
            service_ip: "172.30.0.10".parse().unwrap(),
            endpoint_ip: "10.0.0.1".parse().unwrap(),
        };
        assert_eq!(
            d.args().join(" "),
            "-D -p udp --orig-dst 172.30.0.10 --dst-nat 10.0.0.1"
        );
    }
}
