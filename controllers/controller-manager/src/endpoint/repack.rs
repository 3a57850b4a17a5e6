//! Upstream `pkg/api/v1/endpoints.RepackSubsets` and the controller's
//! `truncateEndpoints`: one subset per distinct address set, sorted, so the
//! Endpoints written for the same pods is always the same object.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset};

/// Upstream `maxCapacity`: addresses kept before truncation.
pub const MAX_CAPACITY: usize = 1000;

/// Upstream `addressKey`: the IP and the target's UID.
type AddrKey = (String, String);
/// An `EndpointPort` as a map key; port -1 is upstream's "no ports" sentinel.
type PortKey = (Option<String>, i32, Option<String>, Option<String>);

fn addr_key(addr: &EndpointAddress) -> AddrKey {
    let uid = addr.target_ref.as_ref().and_then(|t| t.uid.clone());
    (addr.ip.clone(), uid.unwrap_or_default())
}

fn port_key(p: &EndpointPort) -> PortKey {
    (
        p.name.clone(),
        p.port,
        p.protocol.clone(),
        p.app_protocol.clone(),
    )
}

fn port_of(key: PortKey) -> EndpointPort {
    EndpointPort {
        name: key.0,
        port: key.1,
        protocol: key.2,
        app_protocol: key.3,
    }
}

/// Upstream `RepackSubsets`: not-ready wins over ready for the same address
/// and port; addresses sorted by IP then UID, subsets by address set.
pub fn repack_subsets(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let mut all: BTreeMap<AddrKey, EndpointAddress> = BTreeMap::new();
    let mut by_port: BTreeMap<PortKey, BTreeMap<AddrKey, bool>> = BTreeMap::new();
    for subset in subsets {
        let sentinel = [EndpointPort {
            port: -1,
            ..Default::default()
        }];
        let ports = subset.ports.as_deref().filter(|p| !p.is_empty());
        for port in ports.unwrap_or(&sentinel) {
            let addrs = by_port.entry(port_key(port)).or_default();
            let ready = subset.addresses.iter().flatten().map(|a| (a, true));
            let not_ready = subset.not_ready_addresses.iter().flatten();
            for (addr, is_ready) in ready.chain(not_ready.map(|a| (a, false))) {
                let key = addr_key(addr);
                all.entry(key.clone()).or_insert_with(|| addr.clone());
                let state = addrs.entry(key).or_insert(is_ready);
                *state = *state && is_ready;
            }
        }
    }
    let mut groups: BTreeMap<Vec<(AddrKey, bool)>, Vec<EndpointPort>> = BTreeMap::new();
    for (port, addrs) in by_port {
        let ports = groups.entry(addrs.into_iter().collect()).or_default();
        if port.1 > 0 {
            ports.push(port_of(port));
        }
    }
    groups
        .into_iter()
        .map(|(addrs, ports)| {
            let pick = |want: bool| {
                let out: Vec<EndpointAddress> = addrs
                    .iter()
                    .filter(|(_, ready)| *ready == want)
                    .filter_map(|(key, _)| all.get(key).cloned())
                    .collect();
                (!out.is_empty()).then_some(out)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

fn count(list: &Option<Vec<EndpointAddress>>) -> usize {
    list.as_ref().map_or(0, Vec::len)
}

/// Upstream `truncateEndpoints`: over [`MAX_CAPACITY`] addresses, keep a
/// share of each subset proportional to its size, not-ready ones first to
/// go. Returns whether anything was truncated.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut can_be_added = max;
    for subset in subsets.iter_mut() {
        let list = if truncate_ready {
            subset.not_ready_addresses = None;
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        let in_subset = count(list);
        let share = (in_subset * max).div_ceil(total).min(can_be_added);
        if let Some(addrs) = list.as_mut() {
            addrs.truncate(share);
            can_be_added -= addrs.len();
        }
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ObjectReference;

    use super::*;

    fn addr(ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            ..Default::default()
        }
    }

    fn port(name: &str, n: i32) -> EndpointPort {
        EndpointPort {
            name: Some(name.into()),
            port: n,
            protocol: Some("TCP".into()),
            ..Default::default()
        }
    }

    fn subset(ready: &[&str], not_ready: &[&str], ports: &[&EndpointPort]) -> EndpointSubset {
        let list =
            |ips: &[&str]| (!ips.is_empty()).then(|| ips.iter().map(|ip| addr(ip)).collect());
        EndpointSubset {
            addresses: list(ready),
            not_ready_addresses: list(not_ready),
            ports: (!ports.is_empty()).then(|| ports.iter().map(|p| (*p).clone()).collect()),
        }
    }

    /// Cases from upstream `TestPackSubsets`.
    #[test]
    fn repack_follows_upstream_cases() {
        let p1 = port("", 111);
        let p2 = port("p", 222);
        let cases: Vec<(&str, Vec<EndpointSubset>, Vec<EndpointSubset>)> = vec![
            ("empty everything", vec![], vec![]),
            (
                "empty ports",
                vec![subset(&["1.2.3.4"], &[], &[])],
                vec![subset(&["1.2.3.4"], &[], &[])],
            ),
            (
                "one set, one port",
                vec![subset(&["1.2.3.4"], &[], &[&p1])],
                vec![subset(&["1.2.3.4"], &[], &[&p1])],
            ),
            (
                "one address, two ports merge",
                vec![
                    subset(&["1.2.3.4"], &[], &[&p1]),
                    subset(&["1.2.3.4"], &[], &[&p2]),
                ],
                vec![subset(&["1.2.3.4"], &[], &[&p1, &p2])],
            ),
            (
                "two addresses, one port merge",
                vec![
                    subset(&["5.6.7.8"], &[], &[&p1]),
                    subset(&["1.2.3.4"], &[], &[&p1]),
                ],
                vec![subset(&["1.2.3.4", "5.6.7.8"], &[], &[&p1])],
            ),
            (
                "not ready trumps ready",
                vec![
                    subset(&["1.2.3.4"], &[], &[&p1]),
                    subset(&[], &["1.2.3.4"], &[&p1]),
                ],
                vec![subset(&[], &["1.2.3.4"], &[&p1])],
            ),
            (
                "ready and not ready on one port",
                vec![
                    subset(&["1.2.3.4"], &[], &[&p1]),
                    subset(&[], &["5.6.7.8"], &[&p1]),
                ],
                vec![subset(&["1.2.3.4"], &["5.6.7.8"], &[&p1])],
            ),
            (
                "different addresses per port stay apart",
                vec![
                    subset(&["1.2.3.4"], &[], &[&p1]),
                    subset(&["5.6.7.8"], &[], &[&p2]),
                ],
                vec![
                    subset(&["1.2.3.4"], &[], &[&p1]),
                    subset(&["5.6.7.8"], &[], &[&p2]),
                ],
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(repack_subsets(&input), want, "{name}");
        }
    }

    #[test]
    fn same_ip_different_targets_are_distinct() {
        let with_uid = |uid: &str| EndpointAddress {
            target_ref: Some(ObjectReference {
                uid: Some(uid.into()),
                ..Default::default()
            }),
            ..addr("1.2.3.4")
        };
        let input = EndpointSubset {
            addresses: Some(vec![with_uid("b"), with_uid("a")]),
            ..Default::default()
        };
        let out = repack_subsets(&[input]);
        let uids: Vec<_> = out[0]
            .addresses
            .iter()
            .flatten()
            .filter_map(|a| a.target_ref.as_ref()?.uid.clone())
            .collect();
        assert_eq!(uids, vec!["a".to_string(), "b".to_string()]);
    }

    fn many(prefix: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("{prefix}.{}.{}", i / 250, i % 250))
            .collect()
    }

    /// Cases from upstream `TestTruncateEndpoints`: (ready, not ready) per
    /// subset in, the counts kept out.
    #[test]
    fn truncation_is_proportional() {
        /// (ready, not ready) per subset.
        type Counts = Vec<(usize, usize)>;
        let cases: Vec<(Counts, Counts)> = vec![
            (vec![(500, 200)], vec![(500, 200)]),
            (vec![(500, 600)], vec![(500, 500)]),
            (vec![(1200, 200)], vec![(1000, 0)]),
            (vec![(500, 600), (500, 600)], vec![(500, 0), (500, 0)]),
            (
                vec![(200, 600), (200, 600), (300, 400)],
                vec![(200, 113), (200, 113), (300, 74)],
            ),
        ];
        for (input, want) in cases {
            let mut subsets: Vec<EndpointSubset> = input
                .iter()
                .enumerate()
                .map(|(i, (r, n))| {
                    let ready = many(&format!("10.{i}"), *r);
                    let not_ready = many(&format!("11.{i}"), *n);
                    let refs = |v: &[String]| v.iter().map(|s| addr(s)).collect::<Vec<_>>();
                    EndpointSubset {
                        addresses: Some(refs(&ready)),
                        not_ready_addresses: Some(refs(&not_ready)),
                        ports: None,
                    }
                })
                .collect();
            let over = input.iter().map(|(r, n)| r + n).sum::<usize>() > MAX_CAPACITY;
            assert_eq!(truncate(&mut subsets), over, "{input:?}");
            let got: Vec<(usize, usize)> = subsets
                .iter()
                .map(|s| (count(&s.addresses), count(&s.not_ready_addresses)))
                .collect();
            assert_eq!(got, want, "{input:?}");
        }
    }
}
