//! Small pieces shared by every renderer: which traffic counts as coming
//! from inside the cluster (`detectLocalMode`), and where NodePorts listen
//! (`nodePortAddresses`). Upstream `pkg/proxy/util`.

use std::net::IpAddr;

use crate::model::{Cidr, IpFamily};

/// Upstream `LocalTrafficDetector`, rendered as nftables match expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalDetector {
    /// No detection possible (e.g. `ClusterCIDR` mode without a clusterCIDR).
    NoOp,
    /// `ClusterCIDR` / `NodeCIDR`: source address inside these prefixes.
    Cidrs(Vec<Cidr>),
    /// `BridgeInterface`: packets arriving on this interface.
    Interface(String),
    /// `InterfaceNamePrefix`: packets arriving on interfaces with this prefix.
    InterfacePrefix(String),
}

impl LocalDetector {
    pub fn is_implemented(&self) -> bool {
        !matches!(self, LocalDetector::NoOp)
            && !matches!(self, LocalDetector::Cidrs(c) if c.is_empty())
    }

    fn cidr_list(cidrs: &[Cidr]) -> String {
        if cidrs.len() == 1 {
            cidrs[0].to_string()
        } else {
            let joined: Vec<String> = cidrs.iter().map(Cidr::to_string).collect();
            format!("{{ {} }}", joined.join(", "))
        }
    }

    /// Match for "from inside the cluster" (empty when not implemented).
    pub fn if_local_nft(&self, family: IpFamily) -> String {
        let ip = nft_family_keyword(family);
        match self {
            LocalDetector::NoOp => String::new(),
            LocalDetector::Cidrs(c) => format!("{ip} saddr {}", Self::cidr_list(c)),
            LocalDetector::Interface(i) => format!("iifname \"{i}\""),
            LocalDetector::InterfacePrefix(p) => format!("iifname \"{p}*\""),
        }
    }

    /// Match for "from outside the cluster" (empty when not implemented).
    pub fn if_not_local_nft(&self, family: IpFamily) -> String {
        let ip = nft_family_keyword(family);
        match self {
            LocalDetector::NoOp => String::new(),
            LocalDetector::Cidrs(c) => format!("{ip} saddr != {}", Self::cidr_list(c)),
            LocalDetector::Interface(i) => format!("iifname != \"{i}\""),
            LocalDetector::InterfacePrefix(p) => format!("iifname != \"{p}*\""),
        }
    }
}

/// `ip` or `ip6`: the nftables payload keyword and table family.
pub fn nft_family_keyword(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

/// Where NodePorts are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePortAddresses {
    /// Every local address (`fib daddr type local`), the default.
    MatchAll,
    /// Only these node addresses (resolved from `nodePortAddresses` CIDRs or
    /// the special value `primary`).
    Ips(Vec<IpAddr>),
}

impl NodePortAddresses {
    /// Resolves the `nodePortAddresses` setting against this node's
    /// addresses. Empty (or a CIDR matching everything) means MatchAll;
    /// `primary` means the node's primary IP(s).
    pub fn resolve(
        setting: &[String],
        family: IpFamily,
        node_ips: &[IpAddr],
        local_addrs: &[IpAddr],
    ) -> Self {
        let mut cidrs = Vec::new();
        let mut primary = false;
        for s in setting {
            if s == "primary" {
                primary = true;
            } else if let Ok(c) = s.parse::<Cidr>()
                && family.matches(c.addr)
            {
                if c.prefix_len == 0 {
                    return NodePortAddresses::MatchAll;
                }
                cidrs.push(c);
            }
        }
        if cidrs.is_empty() && !primary {
            return NodePortAddresses::MatchAll;
        }
        let mut ips: Vec<IpAddr> = local_addrs
            .iter()
            .copied()
            .filter(|ip| family.matches(*ip) && cidrs.iter().any(|c| c.contains(*ip)))
            .collect();
        if primary {
            ips.extend(node_ips.iter().copied().filter(|ip| family.matches(*ip)));
        }
        ips.sort();
        ips.dedup();
        NodePortAddresses::Ips(ips)
    }

    pub fn match_all(&self) -> bool {
        matches!(self, NodePortAddresses::MatchAll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_detector_renders_nft() {
        let d = LocalDetector::Cidrs(vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(d.if_local_nft(IpFamily::V4), "ip saddr 10.0.0.0/8");
        assert_eq!(d.if_not_local_nft(IpFamily::V4), "ip saddr != 10.0.0.0/8");
        let i = LocalDetector::InterfacePrefix("veth".into());
        assert_eq!(i.if_not_local_nft(IpFamily::V4), "iifname != \"veth*\"");
        assert!(!LocalDetector::NoOp.is_implemented());
        assert!(!LocalDetector::Cidrs(vec![]).is_implemented());
    }

    #[test]
    fn node_port_addresses_resolution() {
        let local: Vec<IpAddr> = ["10.1.0.5", "192.168.0.2", "127.0.0.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let node: Vec<IpAddr> = vec!["192.168.0.2".parse().unwrap()];
        let cases: Vec<(Vec<&str>, NodePortAddresses)> = vec![
            (vec![], NodePortAddresses::MatchAll),
            (vec!["0.0.0.0/0"], NodePortAddresses::MatchAll),
            (
                vec!["10.0.0.0/8"],
                NodePortAddresses::Ips(vec!["10.1.0.5".parse().unwrap()]),
            ),
            (
                vec!["primary"],
                NodePortAddresses::Ips(vec!["192.168.0.2".parse().unwrap()]),
            ),
            (vec!["fd00::/8"], NodePortAddresses::MatchAll),
        ];
        for (setting, want) in cases {
            let s: Vec<String> = setting.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                NodePortAddresses::resolve(&s, IpFamily::V4, &node, &local),
                want,
                "{setting:?}"
            );
        }
    }
}
