//! Service reachability: ask a Service for `/hostname` from inside a pod
//! until the answers cover the wanted nodes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::{E2eError, exec::exec};

/// The nodes whose pods answered: `hostnames` are pod names (what
/// `/hostname` returns), `pod_nodes` maps pod name -> node name.
pub fn nodes_reached(
    hostnames: &BTreeSet<String>,
    pod_nodes: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    hostnames
        .iter()
        .filter_map(|h| pod_nodes.get(h).cloned())
        .collect()
}

/// Requests `url` from inside `client_pod` (busybox wget under a 5 s
/// `timeout`: Debian's busybox wget crashes on its own `-T`) up to
/// `max_attempts` times, stopping early once pods on `want_nodes` distinct
/// nodes have answered. Returns the distinct hostnames seen.
pub async fn hostnames_via(
    pods: &Api<Pod>,
    client_pod: &str,
    url: &str,
    pod_nodes: &BTreeMap<String, String>,
    want_nodes: usize,
    max_attempts: usize,
) -> Result<BTreeSet<String>, E2eError> {
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    for _ in 0..max_attempts {
        let out = exec(
            pods,
            client_pod,
            None,
            &["timeout", "5", "wget", "-q", "-O-", url],
        )
        .await?;
        if out.exit_code == 0 {
            seen.insert(out.stdout.trim().to_string());
        } else {
            failures.push(format!("exit {}: {}", out.exit_code, out.stderr.trim()));
        }
        if nodes_reached(&seen, pod_nodes).len() >= want_nodes {
            return Ok(seen);
        }
    }
    if seen.is_empty() {
        return Err(E2eError::Check(format!(
            "no answer from {url} in {max_attempts} attempts from pod {client_pod}: {}",
            failures.join("; ")
        )));
    }
    Ok(seen)
}

/// The answer addresses in busybox `nslookup` output: the "Address:" lines
/// after the first "Name:" line (the ones before it describe the server).
pub fn nslookup_addresses(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .collect()
}

/// Resolves `fqdn` from inside `pod` with busybox nslookup (5 s timeout);
/// the addresses, empty when the name does not resolve.
pub async fn resolve_in_pod(
    pods: &Api<Pod>,
    pod: &str,
    fqdn: &str,
) -> Result<Vec<String>, E2eError> {
    let out = exec(pods, pod, None, &["timeout", "5", "nslookup", fqdn]).await?;
    Ok(if out.exit_code == 0 {
        nslookup_addresses(&out.stdout)
    } else {
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nslookup_answers_skip_the_server_lines() {
        let out = "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\n\nName:\tweb.ns.svc.cluster.local\nAddress: 10.96.12.34\n\n";
        assert_eq!(nslookup_addresses(out), vec!["10.96.12.34".to_string()]);
        let two =
            "Server: s\nAddress: s:53\nName: a\nAddress: 1.1.1.1\nName: a\nAddress: 2.2.2.2\n";
        assert_eq!(
            nslookup_addresses(two),
            vec!["1.1.1.1".to_string(), "2.2.2.2".to_string()]
        );
        assert!(nslookup_addresses("** server can't find x: SERVFAIL\n").is_empty());
    }

    #[test]
    fn reached_nodes_come_from_known_pods_only() {
        let pod_nodes: BTreeMap<String, String> = [("a", "n1"), ("b", "n1"), ("c", "n2")]
            .into_iter()
            .map(|(p, n)| (p.to_string(), n.to_string()))
            .collect();
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let cases = [
            (set(&[]), set(&[])),
            (set(&["a", "b"]), set(&["n1"])),
            (set(&["a", "c"]), set(&["n1", "n2"])),
            (set(&["stranger"]), set(&[])),
        ];
        for (hostnames, want) in cases {
            assert_eq!(nodes_reached(&hostnames, &pod_nodes), want, "{hostnames:?}");
        }
    }
}
