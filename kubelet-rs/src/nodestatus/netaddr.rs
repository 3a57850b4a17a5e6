//! The address of the interface carrying the default route (upstream `ChooseHostInterface`).

use std::net::IpAddr;

/// Interface name of the IPv4 default route in `/proc/net/route` text.
pub fn default_route_interface(route_table: &str) -> Option<String> {
    route_table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() > 2 && fields[1] == "00000000" && fields[2] != "00000000")
            .then(|| fields[0].to_string())
    })
}

/// First global IPv4 address of the default-route interface.
pub fn detect_node_ip() -> Option<IpAddr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    let iface = default_route_interface(&table)?;
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    addrs
        .filter(|a| a.interface_name == iface)
        .filter_map(|a| a.address?.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())))
        .find(|ip| !ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_default_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
                     eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\n";
        assert_eq!(default_route_interface(table).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\n"), None);
    }
}
