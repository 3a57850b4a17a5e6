//! Service reachability: ask a Service for `/hostname` from inside a pod
//! until the answers cover the wanted nodes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::{E2eError, exec::exec};

/// The nodes whose pods answered: `hostnames` are pod names (what
/// `/hostname` returns), `pod_nodes` maps pod name -> node name.
pub fn nodes_reached(hostnames: &BTreeSet<String>, pod_nodes: &BTreeMap<String, String>) -> BTreeSet<String> {
    hostnames.iter().filter_map(|h| pod_nodes.get(h).cloned()).collect()
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
        let out = exec(pods, client_pod, None, &["timeout", "5", "wget", "-q", "-O-", url]).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
