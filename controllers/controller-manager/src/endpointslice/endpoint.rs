//! Pod → Endpoint and Service port → EndpointPort translation (upstream
//! `staging/src/k8s.io/endpointslice/utils.go`: `podToEndpoint`,
//! `getEndpointPorts`, `FindPort`, `ShouldPodBeInEndpoints`).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controller_utils::is_pod_ready;

pub const ADDRESS_TYPE_IPV4: &str = "IPv4";
pub const ADDRESS_TYPE_IPV6: &str = "IPv6";
/// `v1.LabelTopologyZone`.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

fn protocol_of(p: Option<&String>) -> &str {
    p.map(String::as_str).unwrap_or("TCP")
}

/// Upstream `ShouldPodBeInEndpoints(pod, includeTerminating=true)`: no
/// terminal pods, no pods without an IP.
pub fn should_pod_be_in_endpoints(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Failed") | Some("Succeeded")) {
        return false;
    }
    status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    })
}

/// Upstream `FindPort`: a numeric targetPort is used as is; a named one is
/// looked up (name and protocol) in the containers, then in restartable
/// init (sidecar) containers. `None` when the pod does not expose it.
pub fn find_port(pod: &Pod, svc_port: &ServicePort) -> Option<i32> {
    let target = svc_port
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(svc_port.port));
    match target {
        IntOrString::Int(n) => Some(n),
        IntOrString::String(name) => {
            let protocol = protocol_of(svc_port.protocol.as_ref());
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && protocol_of(p.protocol.as_ref()) == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Upstream `getEndpointPorts`: the service ports the pod can serve, in
/// service order; ports the pod lacks are left out.
pub fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    spec.ports
        .iter()
        .flatten()
        .filter_map(|sp| {
            let port = find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(protocol_of(sp.protocol.as_ref()).to_string()),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// Pod IPs of one family, re-printed canonically (upstream `ParseIPSloppy`).
pub fn endpoint_addresses(pod: &Pod, address_type: &str) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .collect();
    if ips.is_empty()
        && let Some(ip) = status.pod_ip.as_deref()
    {
        ips.push(ip);
    }
    ips.into_iter()
        .filter_map(parse_ip_sloppy)
        .filter(|ip| match address_type {
            ADDRESS_TYPE_IPV6 => ip.is_ipv6(),
            ADDRESS_TYPE_IPV4 => ip.is_ipv4(),
            _ => false,
        })
        .map(|ip| ip.to_string())
        .collect()
}

/// Accepts IPv4 octets with leading zeros like Go's `ParseIPSloppy`.
pub fn parse_ip_sloppy(ip: &str) -> Option<IpAddr> {
    if let Ok(parsed) = ip.parse::<IpAddr>() {
        return Some(parsed);
    }
    let octets: Vec<u8> = ip
        .split('.')
        .map(|o| o.parse::<u8>().ok())
        .collect::<Option<Vec<u8>>>()?;
    let octets: [u8; 4] = octets.try_into().ok()?;
    Some(IpAddr::from(octets))
}

/// Upstream `ShouldSetHostname`.
pub fn should_set_hostname(pod: &Pod, service: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace
}

/// Upstream `podToEndpoint`: terminating pods are never ready unless the
/// service publishes not-ready addresses; serving follows readiness.
pub fn pod_to_endpoint(
    pod: &Pod,
    node: Option<&Node>,
    service: &Service,
    address_type: &str,
) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ready = publish_not_ready || (serving && !terminating);
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let zone = node
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(LABEL_TOPOLOGY_ZONE))
        .filter(|z| !z.is_empty())
        .cloned();
    let hostname = should_set_hostname(pod, service)
        .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
        .flatten();
    Endpoint {
        addresses: endpoint_addresses(pod, address_type),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_string()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        node_name,
        zone,
        hostname,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller_utils::testing::{pod, ready_since};
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodIP, PodSpec, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    fn with_ip(mut p: Pod, ip: &str) -> Pod {
        let status = p.status.get_or_insert_with(Default::default);
        status.pod_ip = Some(ip.into());
        status.pod_ips = Some(vec![PodIP { ip: ip.into() }]);
        p
    }

    fn with_ports(mut p: Pod, ports: &[(&str, i32, &str)]) -> Pod {
        let spec = p.spec.get_or_insert_with(PodSpec::default);
        spec.containers = vec![Container {
            name: "c".into(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, port, proto)| ContainerPort {
                        name: Some(n.to_string()),
                        container_port: *port,
                        protocol: Some(proto.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }];
        p
    }

    fn svc(ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sp(name: &str, target: IntOrString) -> ServicePort {
        ServicePort {
            name: Some(name.into()),
            port: 80,
            protocol: Some("TCP".into()),
            target_port: Some(target),
            ..Default::default()
        }
    }

    #[test]
    fn named_ports_resolve_per_pod_and_protocol() {
        let service = svc(vec![
            sp("http", IntOrString::String("web".into())),
            sp("metrics", IntOrString::Int(9090)),
            sp("dns", IntOrString::String("dns".into())),
        ]);
        let p = with_ports(pod("a"), &[("web", 8080, "TCP"), ("dns", 53, "UDP")]);
        let ports = endpoint_ports(&service, &p);
        let got: Vec<(Option<String>, Option<i32>)> =
            ports.into_iter().map(|p| (p.name, p.port)).collect();
        // "dns" is UDP in the pod but TCP in the service: not served.
        assert_eq!(
            got,
            vec![
                (Some("http".into()), Some(8080)),
                (Some("metrics".into()), Some(9090))
            ]
        );
        let other = with_ports(pod("b"), &[("web", 8081, "TCP")]);
        assert_eq!(endpoint_ports(&service, &other)[0].port, Some(8081));
    }

    #[test]
    fn pods_without_ip_or_terminal_are_excluded() {
        let cases = [
            (pod("a"), false),
            (with_ip(pod("a"), "10.0.0.1"), true),
            (
                crate::controller_utils::testing::phase(with_ip(pod("a"), "10.0.0.1"), "Succeeded"),
                false,
            ),
            (
                crate::controller_utils::testing::phase(with_ip(pod("a"), "10.0.0.1"), "Failed"),
                false,
            ),
        ];
        for (p, want) in cases {
            assert_eq!(should_pod_be_in_endpoints(&p), want);
        }
    }

    #[test]
    fn conditions_follow_upstream_pod_to_endpoint() {
        let terminating = |mut p: Pod| {
            p.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
            p
        };
        // (pod, publishNotReady) -> (ready, serving, terminating)
        let cases = [
            (with_ip(pod("a"), "10.0.0.1"), false, (false, false, false)),
            (
                ready_since(with_ip(pod("a"), "10.0.0.1"), 1),
                false,
                (true, true, false),
            ),
            (
                terminating(ready_since(with_ip(pod("a"), "10.0.0.1"), 1)),
                false,
                (false, true, true),
            ),
            (
                terminating(with_ip(pod("a"), "10.0.0.1")),
                false,
                (false, false, true),
            ),
            (
                terminating(with_ip(pod("a"), "10.0.0.1")),
                true,
                (true, false, true),
            ),
            (with_ip(pod("a"), "10.0.0.1"), true, (true, false, false)),
        ];
        for (p, publish, (ready, serving, term)) in cases {
            let mut service = svc(vec![]);
            if let Some(spec) = service.spec.as_mut() {
                spec.publish_not_ready_addresses = Some(publish);
            }
            let ep = pod_to_endpoint(&p, None, &service, ADDRESS_TYPE_IPV4);
            let c = ep.conditions.unwrap_or_default();
            assert_eq!(
                (c.ready, c.serving, c.terminating),
                (Some(ready), Some(serving), Some(term))
            );
            assert_eq!(ep.addresses, vec!["10.0.0.1".to_string()]);
        }
    }

    #[test]
    fn endpoint_carries_node_zone_hostname_and_target() {
        let mut p = with_ip(pod("a"), "10.0.0.1");
        let spec = p.spec.get_or_insert_with(PodSpec::default);
        spec.node_name = Some("n1".into());
        spec.hostname = Some("host-a".into());
        spec.subdomain = Some("web".into());
        let node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some([(LABEL_TOPOLOGY_ZONE.to_string(), "zone-a".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let ep = pod_to_endpoint(&p, Some(&node), &svc(vec![]), ADDRESS_TYPE_IPV4);
        assert_eq!(ep.node_name.as_deref(), Some("n1"));
        assert_eq!(ep.zone.as_deref(), Some("zone-a"));
        assert_eq!(ep.hostname.as_deref(), Some("host-a"));
        let target = ep.target_ref.unwrap_or_default();
        assert_eq!(
            (target.kind.as_deref(), target.name.as_deref()),
            (Some("Pod"), Some("a"))
        );
        assert!(
            pod_to_endpoint(&p, None, &svc(vec![]), ADDRESS_TYPE_IPV6)
                .addresses
                .is_empty()
        );
    }

    #[test]
    fn sloppy_ipv4_is_canonicalised() {
        let p = with_ip(pod("a"), "010.000.000.001");
        assert_eq!(
            endpoint_addresses(&p, ADDRESS_TYPE_IPV4),
            vec!["10.0.0.1".to_string()]
        );
    }
}
