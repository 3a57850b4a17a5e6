//! The kubelet's command line: upstream's flag names and defaults, and the
//! serving/auth settings resolved from `--config` (KubeletConfiguration
//! kubelet.config.k8s.io/v1beta1) with upstream's precedence: flags given on
//! the command line override the file, the file overrides flag defaults.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use component_base::args::{self, Normalized};
use component_base::flags::{ClientDefaults, LoggingFlags, duration_arg, go_bool_arg};
use serde::Deserialize;

pub const COMPONENT: &str = "kubelet";
pub const CONFIG_KIND: &str = "KubeletConfiguration";
pub const CONFIG_API_VERSIONS: &[&str] = &["kubelet.config.k8s.io/v1beta1"];
/// upstream kubelet API client defaults (since v1.27).
pub const CLIENT_DEFAULTS: ClientDefaults = ClientDefaults {
    qps: 50.0,
    burst: 100,
};

/// Upstream kubelet booleans we accept and ignore.
pub const UPSTREAM_BOOL_FLAGS: &[&str] = &[
    "fail-swap-on",
    "enable-server",
    "enable-debugging-handlers",
    "enable-controller-attach-detach",
    "make-iptables-util-chains",
    "protect-kernel-defaults",
    "rotate-certificates",
    "rotate-server-certificates",
    "serialize-image-pulls",
    "cgroups-per-qos",
    "exit-on-lock-contention",
    "kernel-memcg-notification",
    "local-storage-capacity-isolation",
    "seccomp-default",
    "fail-cgroupv1",
    "enable-load-reader",
    "keep-terminated-pod-volumes",
    "experimental-mounter-path",
    "lock-file",
];

/// A `mapStringString` flag entry without `=` (upstream's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pair {0:?}, expect key=value")]
pub struct MalformedPair(String);

fn key_value_map(s: &str) -> Result<BTreeMap<String, String>, MalformedPair> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| MalformedPair(pair.to_string()))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// kubelet flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kubelet",
    about = "The kubelet is the primary \"node agent\" that runs on each node."
)]
pub struct Options {
    /// The Kubelet will load its initial configuration from this file.
    #[arg(long, value_name = "string")]
    pub config: Option<PathBuf>,
    /// Path to a kubeconfig file, specifying how to connect to the API server.
    #[arg(long, value_name = "string")]
    pub kubeconfig: Option<PathBuf>,
    /// Path to a kubeconfig file that will be used to get client certificate for kubelet.
    #[arg(long = "bootstrap-kubeconfig", value_name = "string")]
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// If non-empty, will use this string as identification instead of the actual hostname.
    #[arg(long = "hostname-override", value_name = "string")]
    pub hostname_override: Option<String>,
    /// IP address (or comma-separated dual-stack IP addresses) of the node.
    #[arg(long = "node-ip", value_delimiter = ',', value_name = "string")]
    pub node_ip: Vec<IpAddr>,
    /// The endpoint of remote runtime service.
    #[arg(
        long = "container-runtime-endpoint",
        default_value = "unix:///run/containerd/containerd.sock",
        value_name = "string"
    )]
    pub container_runtime_endpoint: String,
    /// Directory path for managing kubelet files (volume mounts, etc).
    #[arg(
        long = "root-dir",
        default_value = "/var/lib/kubelet",
        value_name = "string"
    )]
    pub root_dir: PathBuf,
    /// The directory where the TLS certs are located.
    #[arg(
        long = "cert-dir",
        default_value = "/var/lib/kubelet/pki",
        value_name = "string"
    )]
    pub cert_dir: PathBuf,
    /// Labels to add when registering the node in the cluster (key=value pairs separated by ',').
    #[arg(long = "node-labels", value_parser = key_value_map, value_name = "mapStringString")]
    pub node_labels: Option<BTreeMap<String, String>>,
    /// Register the node with the apiserver.
    #[arg(long = "register-node", default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool_arg, value_name = "bool")]
    pub register_node: bool,
    /// Register the node with the given list of taints ("<key>=<value>:<effect>").
    #[arg(
        long = "register-with-taints",
        value_delimiter = ',',
        value_name = "taints"
    )]
    pub register_with_taints: Vec<String>,
    /// Specified image will not be pruned by the image garbage collector.
    #[arg(
        long = "pod-infra-container-image",
        default_value = "registry.k8s.io/pause:3.10.2",
        value_name = "string"
    )]
    pub pod_infra_container_image: String,
    /// Path to the directory containing static pod files to run (staticPodPath).
    #[arg(long = "pod-manifest-path", value_name = "string")]
    pub pod_manifest_path: Option<PathBuf>,
    /// Optional root cgroup to use for pods.
    #[arg(long = "cgroup-root", value_name = "string")]
    pub cgroup_root: Option<String>,
    /// Driver that the kubelet uses to manipulate cgroups on the host. Possible values: 'cgroupfs', 'systemd'.
    #[arg(long = "cgroup-driver", value_name = "string")]
    pub cgroup_driver: Option<String>,
    /// Comma-separated list of DNS server IP address.
    #[arg(long = "cluster-dns", value_delimiter = ',', value_name = "strings")]
    pub cluster_dns: Vec<String>,
    /// Domain for this cluster.
    #[arg(long = "cluster-domain", value_name = "string")]
    pub cluster_domain: Option<String>,
    /// Number of Pods that can run on this Kubelet.
    #[arg(long = "max-pods", value_name = "int32")]
    pub max_pods: Option<i32>,
    /// The IP address for the Kubelet to serve on.
    #[arg(long, default_value = "0.0.0.0", value_name = "ip")]
    pub address: IpAddr,
    /// The port for the Kubelet to serve on.
    #[arg(long, default_value_t = 10250, value_name = "int32")]
    pub port: u16,
    /// The IP address for the healthz server to serve on.
    #[arg(
        long = "healthz-bind-address",
        default_value = "127.0.0.1",
        value_name = "ip"
    )]
    pub healthz_bind_address: IpAddr,
    /// The port of the localhost healthz endpoint (set to 0 to disable).
    #[arg(long = "healthz-port", default_value_t = 10248, value_name = "int32")]
    pub healthz_port: u16,
    /// File containing x509 Certificate used for serving HTTPS.
    #[arg(long = "tls-cert-file", value_name = "string")]
    pub tls_cert_file: Option<PathBuf>,
    /// File containing x509 private key matching --tls-cert-file.
    #[arg(long = "tls-private-key-file", value_name = "string")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Comma-separated list of cipher suites for the server.
    #[arg(
        long = "tls-cipher-suites",
        value_delimiter = ',',
        value_name = "strings"
    )]
    pub tls_cipher_suites: Vec<String>,
    /// Minimum TLS version supported.
    #[arg(long = "tls-min-version", value_name = "string")]
    pub tls_min_version: Option<String>,
    /// If set, any request presenting a client certificate signed by one of the authorities in the client-ca-file is authenticated.
    #[arg(long = "client-ca-file", value_name = "string")]
    pub client_ca_file: Option<PathBuf>,
    /// Enables anonymous requests to the Kubelet server.
    #[arg(long = "anonymous-auth", default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool_arg, value_name = "bool")]
    pub anonymous_auth: bool,
    /// Use the TokenReview API to determine authentication for bearer tokens.
    #[arg(long = "authentication-token-webhook", default_value_t = false, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", action = ArgAction::Set,
          value_parser = go_bool_arg, value_name = "bool")]
    pub authentication_token_webhook: bool,
    /// The duration to cache responses from the webhook token authenticator.
    #[arg(long = "authentication-token-webhook-cache-ttl", default_value = "2m", value_parser = duration_arg, value_name = "duration")]
    pub authentication_token_webhook_cache_ttl: Duration,
    /// Authorization mode for Kubelet server. Valid options are AlwaysAllow or Webhook.
    #[arg(
        long = "authorization-mode",
        default_value = "AlwaysAllow",
        value_name = "string"
    )]
    pub authorization_mode: String,
    /// The duration to cache 'authorized' responses from the webhook authorizer.
    #[arg(long = "authorization-webhook-cache-authorized-ttl", default_value = "5m", value_parser = duration_arg, value_name = "duration")]
    pub authorization_webhook_cache_authorized_ttl: Duration,
    /// The duration to cache 'unauthorized' responses from the webhook authorizer.
    #[arg(long = "authorization-webhook-cache-unauthorized-ttl", default_value = "30s", value_parser = duration_arg, value_name = "duration")]
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
    /// QPS to use while talking with kubernetes apiserver.
    #[arg(long = "kube-api-qps", value_name = "int32")]
    pub kube_api_qps: Option<f32>,
    /// Burst to use while talking with kubernetes apiserver.
    #[arg(long = "kube-api-burst", value_name = "int32")]
    pub kube_api_burst: Option<u32>,
    /// Content type of requests sent to apiserver.
    #[arg(long = "kube-api-content-type", value_name = "string")]
    pub kube_api_content_type: Option<String>,
    #[command(flatten)]
    pub logs: LoggingFlags,
}

/// The serving and authentication fields of a KubeletConfiguration file
/// (the full type belongs to the kubelet library; unknown fields are its
/// business, so they are not reported here).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServingConfigView {
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub healthz_bind_address: Option<IpAddr>,
    pub healthz_port: Option<u16>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub tls_cipher_suites: Option<Vec<String>>,
    pub tls_min_version: Option<String>,
    pub authentication: AuthenticationView,
    pub authorization: AuthorizationView,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthenticationView {
    pub x509: X509View,
    pub webhook: WebhookAuthnView,
    pub anonymous: AnonymousView,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct X509View {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WebhookAuthnView {
    pub enabled: Option<bool>,
    #[serde(
        rename = "cacheTTL",
        with = "component_base::config::opt_duration_serde"
    )]
    pub cache_ttl: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AnonymousView {
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthorizationView {
    pub mode: Option<String>,
    pub webhook: WebhookAuthzView,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WebhookAuthzView {
    #[serde(
        rename = "cacheAuthorizedTTL",
        with = "component_base::config::opt_duration_serde"
    )]
    pub cache_authorized_ttl: Option<Duration>,
    #[serde(
        rename = "cacheUnauthorizedTTL",
        with = "component_base::config::opt_duration_serde"
    )]
    pub cache_unauthorized_ttl: Option<Duration>,
}

/// Serving and auth settings after precedence is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletServing {
    pub address: IpAddr,
    pub port: u16,
    pub healthz_bind_address: IpAddr,
    pub healthz_port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub tls_cipher_suites: Vec<String>,
    pub tls_min_version: Option<String>,
    pub client_ca_file: Option<PathBuf>,
    pub anonymous: bool,
    pub token_webhook: bool,
    #[allow(dead_code)] // read by the kubelet server module once wired
    pub token_webhook_cache_ttl: Duration,
    pub authorization_mode: String,
    pub authorized_ttl: Duration,
    pub unauthorized_ttl: Duration,
}

/// Everything parsed: flags, the raw config file, the resolved serving.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub options: Options,
    pub serving: KubeletServing,
    /// What the kubelet library runs with (config file + flags).
    pub kubelet: kubelet::KubeletConfig,
}

/// Parses argv (normalised first; see `component_base::args`).
pub fn parse(argv: impl IntoIterator<Item = String>) -> (Options, clap::ArgMatches, Normalized) {
    args::parse::<Options>(argv, UPSTREAM_BOOL_FLAGS)
}

/// Precedence: command line > config file (with v1beta1 defaults) > flag
/// defaults (upstream's legacy defaults: anonymous on, AlwaysAllow).
pub fn resolve_serving(
    o: &Options,
    file: Option<&ServingConfigView>,
    set_on_cli: impl Fn(&str) -> bool,
) -> KubeletServing {
    let Some(f) = file else {
        return KubeletServing {
            address: o.address,
            port: o.port,
            healthz_bind_address: o.healthz_bind_address,
            healthz_port: o.healthz_port,
            tls_cert_file: o.tls_cert_file.clone(),
            tls_private_key_file: o.tls_private_key_file.clone(),
            tls_cipher_suites: o.tls_cipher_suites.clone(),
            tls_min_version: o.tls_min_version.clone(),
            client_ca_file: o.client_ca_file.clone(),
            anonymous: o.anonymous_auth,
            token_webhook: o.authentication_token_webhook,
            token_webhook_cache_ttl: o.authentication_token_webhook_cache_ttl,
            authorization_mode: o.authorization_mode.clone(),
            authorized_ttl: o.authorization_webhook_cache_authorized_ttl,
            unauthorized_ttl: o.authorization_webhook_cache_unauthorized_ttl,
        };
    };
    fn pick<T: Clone>(cli: bool, flag: &T, file: Option<T>, v1beta1_default: T) -> T {
        if cli {
            flag.clone()
        } else {
            file.unwrap_or(v1beta1_default)
        }
    }
    let a = &f.authentication;
    let z = &f.authorization;
    KubeletServing {
        address: pick(
            set_on_cli("address"),
            &o.address,
            f.address,
            IpAddr::from([0, 0, 0, 0]),
        ),
        port: pick(set_on_cli("port"), &o.port, f.port, 10250),
        healthz_bind_address: pick(
            set_on_cli("healthz_bind_address"),
            &o.healthz_bind_address,
            f.healthz_bind_address,
            IpAddr::from([127, 0, 0, 1]),
        ),
        healthz_port: pick(
            set_on_cli("healthz_port"),
            &o.healthz_port,
            f.healthz_port,
            10248,
        ),
        tls_cert_file: pick(
            set_on_cli("tls_cert_file"),
            &o.tls_cert_file,
            Some(f.tls_cert_file.clone()),
            None,
        ),
        tls_private_key_file: pick(
            set_on_cli("tls_private_key_file"),
            &o.tls_private_key_file,
            Some(f.tls_private_key_file.clone()),
            None,
        ),
        tls_cipher_suites: pick(
            set_on_cli("tls_cipher_suites"),
            &o.tls_cipher_suites,
            f.tls_cipher_suites.clone(),
            Vec::new(),
        ),
        tls_min_version: pick(
            set_on_cli("tls_min_version"),
            &o.tls_min_version,
            Some(f.tls_min_version.clone()),
            None,
        ),
        client_ca_file: pick(
            set_on_cli("client_ca_file"),
            &o.client_ca_file,
            Some(a.x509.client_ca_file.clone()),
            None,
        ),
        anonymous: pick(
            set_on_cli("anonymous_auth"),
            &o.anonymous_auth,
            a.anonymous.enabled,
            false,
        ),
        token_webhook: pick(
            set_on_cli("authentication_token_webhook"),
            &o.authentication_token_webhook,
            a.webhook.enabled,
            true,
        ),
        token_webhook_cache_ttl: pick(
            set_on_cli("authentication_token_webhook_cache_ttl"),
            &o.authentication_token_webhook_cache_ttl,
            a.webhook.cache_ttl,
            Duration::from_secs(120),
        ),
        authorization_mode: pick(
            set_on_cli("authorization_mode"),
            &o.authorization_mode,
            z.mode.clone(),
            "Webhook".to_string(),
        ),
        authorized_ttl: pick(
            set_on_cli("authorization_webhook_cache_authorized_ttl"),
            &o.authorization_webhook_cache_authorized_ttl,
            z.webhook.cache_authorized_ttl,
            Duration::from_secs(300),
        ),
        unauthorized_ttl: pick(
            set_on_cli("authorization_webhook_cache_unauthorized_ttl"),
            &o.authorization_webhook_cache_unauthorized_ttl,
            z.webhook.cache_unauthorized_ttl,
            Duration::from_secs(30),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_config::resolve;

    fn parse_args(args: &[&str]) -> (Options, clap::ArgMatches, Normalized) {
        parse(
            std::iter::once("kubelet")
                .chain(args.iter().copied())
                .map(String::from),
        )
    }

    #[test]
    fn flag_defaults_are_upstream_legacy_defaults() {
        let (o, m, _) = parse_args(&[]);
        assert_eq!(
            o.container_runtime_endpoint,
            "unix:///run/containerd/containerd.sock"
        );
        assert_eq!(o.root_dir, PathBuf::from("/var/lib/kubelet"));
        assert!(o.register_node);
        let s = resolve(o, &m).expect("no file").serving;
        assert_eq!((s.port, s.healthz_port), (10250, 10248));
        assert_eq!(s.healthz_bind_address.to_string(), "127.0.0.1");
        assert!(s.anonymous);
        assert!(!s.token_webhook);
        assert_eq!(s.authorization_mode, "AlwaysAllow");
    }

    #[test]
    fn kubeadm_style_command_line() {
        let (o, _, n) = parse_args(&[
            "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config=/var/lib/kubelet/config.yaml",
            "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
            "--pod-infra-container-image=registry.k8s.io/pause:3.10",
            "--node-labels=a=b,c=d",
            "--node-ip=10.0.0.5",
            "--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule",
            "--fail-swap-on=false",
            "--rotate-certificates",
        ]);
        assert_eq!(o.node_ip, [IpAddr::from([10, 0, 0, 5])]);
        let labels = o.node_labels.expect("labels");
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["c"], "d");
        assert_eq!(n.dropped, ["--fail-swap-on=false", "--rotate-certificates"]);
    }

    #[test]
    fn config_file_then_cli_precedence() {
        let text = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nport: 11250\nhealthzPort: 11248\nauthentication:\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\n  webhook:\n    cacheTTL: 0s\nauthorization:\n  webhook:\n    cacheAuthorizedTTL: 1m\nstaticPodPath: /etc/kubernetes/manifests\n";
        let value =
            component_base::config::decode_value(text, "t", CONFIG_KIND, CONFIG_API_VERSIONS)
                .expect("valid");
        let view: ServingConfigView = serde_json::from_value(value).expect("view");
        let (o, _, _) = parse_args(&["--port=12250"]);
        let s = resolve_serving(&o, Some(&view), |id| id == "port");
        assert_eq!(s.port, 12250, "command line wins");
        assert_eq!(s.healthz_port, 11248, "file wins over flag default");
        assert!(!s.anonymous, "v1beta1 default");
        assert!(s.token_webhook, "v1beta1 default");
        assert_eq!(s.token_webhook_cache_ttl, Duration::ZERO);
        assert_eq!(s.authorization_mode, "Webhook");
        assert_eq!(s.authorized_ttl, Duration::from_secs(60));
        assert_eq!(
            s.client_ca_file,
            Some(PathBuf::from("/etc/kubernetes/pki/ca.crt"))
        );
    }
}
