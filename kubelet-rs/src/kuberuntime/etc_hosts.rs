//! The kubelet-managed `/etc/hosts` (upstream kubelet_pods.go `shouldMountHostsFile`,
//! `makeHostsMount`, `ensureHostsFile`, `managedHostsFileContent`,
//! `nodeHostsFileContent`, `hostsEntriesFromHostAliases`).
//!
//! Every container that does not mount something at `/etc/hosts` itself gets
//! `<pod dir>/etc-hosts` bind-mounted there, rewritten at each container start. A pod on
//! the pod network gets a generated file (localhost lines, its IPs with hostname and
//! FQDN, its `hostAliases`); a host-network pod gets a copy of the node's file (with its
//! own header and the aliases appended).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, HostAlias, Pod};

/// Where the file goes in the container, and where the node's own file is.
pub const ETC_HOSTS_PATH: &str = "/etc/hosts";
/// Name of the mount in upstream's `kubecontainer.Mount`.
pub const MANAGED_HOSTS_MOUNT_NAME: &str = "k8s-managed-etc-hosts";
const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HOSTS_HEADER_WITH_HOST_NETWORK: &str =
    "# Kubernetes-managed hosts file (host network).\n";
const HOSTS_FILE_MODE: u32 = 0o644;

/// `shouldMountHostsFile` plus makeMounts' check: a pod-network pod once it has an IP,
/// a host-network pod always; never a container that mounts its own `/etc/hosts`.
pub fn should_mount_hosts_file(pod: &Pod, container: &Container, pod_ips: &[String]) -> bool {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let own_mount = container
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == ETC_HOSTS_PATH);
    (!pod_ips.is_empty() || host_network) && !own_mount
}

/// `getEtcHostsPath`: `<pod dir>/etc-hosts`.
pub fn etc_hosts_path(pod_dir: &Path) -> PathBuf {
    pod_dir.join("etc-hosts")
}

/// `hostsEntriesFromHostAliases`: a blank line, a comment, then one line per alias IP.
pub fn hosts_entries_from_host_aliases(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    out
}

/// `managedHostsFileContent`: the generated file of a pod on the pod network.
pub fn managed_hosts_file_content(
    pod_ips: &[String],
    hostname: &str,
    domain: &str,
    aliases: &[HostAlias],
) -> String {
    let mut out = String::from(MANAGED_HOSTS_HEADER);
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in pod_ips {
        if domain.is_empty() {
            out.push_str(&format!("{ip}\t{hostname}\n"));
        } else {
            out.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n"));
        }
    }
    out.push_str(&hosts_entries_from_host_aliases(aliases));
    out
}

/// `nodeHostsFileContent`: the node's file under the host-network header, plus aliases.
pub fn node_hosts_file_content(node_hosts: &[u8], aliases: &[HostAlias]) -> Vec<u8> {
    let mut out = MANAGED_HOSTS_HEADER_WITH_HOST_NETWORK.as_bytes().to_vec();
    out.extend_from_slice(node_hosts);
    out.extend_from_slice(hosts_entries_from_host_aliases(aliases).as_bytes());
    out
}

/// What one pod's hosts file is made of.
pub struct HostsFileInputs<'a> {
    pub pod_ips: &'a [String],
    pub hostname: &'a str,
    pub domain: &'a str,
    pub aliases: &'a [HostAlias],
    pub host_network: bool,
    /// The node's hosts file, copied for host-network pods (`/etc/hosts`).
    pub node_hosts: &'a Path,
}

/// `ensureHostsFile`: (re)writes `path` with mode 0644.
pub fn ensure_hosts_file(path: &Path, inputs: &HostsFileInputs<'_>) -> io::Result<()> {
    let content = if inputs.host_network {
        node_hosts_file_content(&std::fs::read(inputs.node_hosts)?, inputs.aliases)
    } else {
        managed_hosts_file_content(
            inputs.pod_ips,
            inputs.hostname,
            inputs.domain,
            inputs.aliases,
        )
        .into_bytes()
    };
    std::fs::write(path, content)?;
    // Explicit chmod: the umask applies to the create mode.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(HOSTS_FILE_MODE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, VolumeMount};

    fn alias(ip: &str, names: &[&str]) -> HostAlias {
        HostAlias {
            ip: ip.into(),
            hostnames: Some(names.iter().map(|n| n.to_string()).collect()),
        }
    }

    /// Upstream `TestManagedHostsFileContent` cases.
    #[test]
    fn managed_content_like_upstream() {
        let base = "# Kubernetes-managed hosts file.\n\
127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
fe00::0\tip6-mcastprefix\n\
fe00::1\tip6-allnodes\n\
fe00::2\tip6-allrouters\n";
        assert_eq!(
            managed_hosts_file_content(&["123.45.67.89".into()], "podFoo", "", &[]),
            format!("{base}123.45.67.89\tpodFoo\n")
        );
        assert_eq!(
            managed_hosts_file_content(
                &["203.0.113.1".into()],
                "podFoo",
                "domainFoo",
                &[alias("123.45.67.89", &["foo", "bar", "baz"])]
            ),
            format!(
                "{base}203.0.113.1\tpodFoo.domainFoo\tpodFoo\n\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\tbaz\n"
            )
        );
        assert_eq!(
            managed_hosts_file_content(
                &["203.0.113.1".into(), "fd00::6".into()],
                "podFoo",
                "domainFoo",
                &[
                    alias("123.45.67.89", &["foo", "bar", "baz"]),
                    alias("456.78.90.123", &["park", "doo", "boo"])
                ]
            ),
            format!(
                "{base}203.0.113.1\tpodFoo.domainFoo\tpodFoo\nfd00::6\tpodFoo.domainFoo\tpodFoo\n\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\tbaz\n456.78.90.123\tpark\tdoo\tboo\n"
            )
        );
    }

    #[test]
    fn host_network_copies_the_node_file() {
        let node = b"127.0.0.1\tlocalhost\n10.0.0.5\tnode-1\n";
        let got = node_hosts_file_content(node, &[alias("1.2.3.4", &["x"])]);
        assert_eq!(
            String::from_utf8_lossy(&got),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1\tlocalhost\n10.0.0.5\tnode-1\n\n# Entries added by HostAliases.\n1.2.3.4\tx\n"
        );
    }

    #[test]
    fn mounts_unless_the_container_brings_its_own() {
        let pod = |host_network: bool| Pod {
            spec: Some(PodSpec {
                host_network: Some(host_network),
                ..Default::default()
            }),
            ..Default::default()
        };
        let plain = Container::default();
        let own = Container {
            volume_mounts: Some(vec![VolumeMount {
                name: "h".into(),
                mount_path: "/etc/hosts".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let ips = ["10.1.1.1".to_string()];
        assert!(should_mount_hosts_file(&pod(false), &plain, &ips));
        assert!(!should_mount_hosts_file(&pod(false), &plain, &[]));
        assert!(should_mount_hosts_file(&pod(true), &plain, &[]));
        assert!(!should_mount_hosts_file(&pod(false), &own, &ips));
    }

    #[test]
    fn ensure_writes_with_mode_0644() {
        let dir = tempfile::tempdir().unwrap();
        let path = etc_hosts_path(dir.path());
        let ips = ["10.1.1.1".to_string()];
        let inputs = HostsFileInputs {
            pod_ips: &ips,
            hostname: "web",
            domain: "",
            aliases: &[],
            host_network: false,
            node_hosts: Path::new("/nonexistent"),
        };
        ensure_hosts_file(&path, &inputs).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n"));
        assert!(text.ends_with("10.1.1.1\tweb\n"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let host = HostsFileInputs {
            host_network: true,
            ..inputs
        };
        assert!(ensure_hosts_file(&path, &host).is_err());
    }
}
