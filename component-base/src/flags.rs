//! Reusable clap argument groups carrying upstream's flag names and defaults.
//!
//! Flags whose default differs between components (API QPS/burst, secure
//! port, lease name) are `Option`s here; each binary supplies its upstream
//! default when it resolves them (see [`ClientDefaults`]).
//!
//! Booleans follow pflag: `--flag` means true and `--flag=false` sets false;
//! a following separate token is never consumed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use crate::config::{DurationError, parse_duration};

/// clap value parser for Go duration strings (`15s`, `1m30s`).
pub fn duration_arg(s: &str) -> Result<Duration, DurationError> {
    parse_duration(s)
}

/// A flag value that is not one of Go's `strconv.ParseBool` spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid boolean value {0:?}")]
pub struct InvalidBool(pub String);

/// clap value parser for Go's `strconv.ParseBool` spellings.
pub fn go_bool_arg(s: &str) -> Result<bool, InvalidBool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(InvalidBool(s.to_string())),
    }
}

/// Splits a pflag `StringSlice` value (`a,b,c`); empty input is an empty list.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// `--kubeconfig`, `--master` and the client rate-limit flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientFlags {
    /// Path to kubeconfig file with authorization and master location information.
    #[arg(long, value_name = "string")]
    pub kubeconfig: Option<PathBuf>,
    /// The address of the Kubernetes API server (overrides any value in kubeconfig).
    #[arg(long, value_name = "string")]
    pub master: Option<String>,
    /// QPS to use while talking with kubernetes apiserver (component default when unset).
    #[arg(long = "kube-api-qps", value_name = "float32")]
    pub kube_api_qps: Option<f32>,
    /// Burst to use while talking with kubernetes apiserver (component default when unset).
    #[arg(long = "kube-api-burst", value_name = "int32")]
    pub kube_api_burst: Option<u32>,
    /// Content type of requests sent to apiserver. Accepted for compatibility;
    /// kube-rs always speaks JSON.
    #[arg(long = "kube-api-content-type", value_name = "string")]
    pub kube_api_content_type: Option<String>,
}

/// Per-component defaults for [`ClientFlags`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientDefaults {
    pub qps: f32,
    pub burst: u32,
}

/// `--bind-address`, `--secure-port` and the TLS serving flags.
#[derive(Debug, Clone, Args)]
pub struct SecureServingFlags {
    /// The IP address on which to listen for the --secure-port port.
    #[arg(long = "bind-address", default_value = "0.0.0.0", value_name = "ip")]
    pub bind_address: IpAddr,
    /// The port on which to serve HTTPS with authentication and authorization.
    /// If 0, don't serve HTTPS at all. (component default when unset)
    #[arg(long = "secure-port", value_name = "int")]
    pub secure_port: Option<u16>,
    /// The directory where the TLS certs are located. If --tls-cert-file and
    /// --tls-private-key-file are provided, this flag will be ignored.
    #[arg(long = "cert-dir", value_name = "string")]
    pub cert_dir: Option<PathBuf>,
    /// File containing the default x509 Certificate for HTTPS (CA cert, if any, concatenated after server cert).
    #[arg(long = "tls-cert-file", value_name = "string")]
    pub tls_cert_file: Option<PathBuf>,
    /// File containing the default x509 private key matching --tls-cert-file.
    #[arg(long = "tls-private-key-file", value_name = "string")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Comma-separated list of cipher suites for the server (IANA names).
    #[arg(
        long = "tls-cipher-suites",
        value_name = "strings",
        value_delimiter = ','
    )]
    pub tls_cipher_suites: Vec<String>,
    /// Minimum TLS version supported. Possible values: VersionTLS12, VersionTLS13.
    #[arg(long = "tls-min-version", value_name = "string")]
    pub tls_min_version: Option<String>,
}

impl Default for SecureServingFlags {
    fn default() -> Self {
        SecureServingFlags {
            bind_address: IpAddr::from([0, 0, 0, 0]),
            secure_port: None,
            cert_dir: None,
            tls_cert_file: None,
            tls_private_key_file: None,
            tls_cipher_suites: Vec::new(),
            tls_min_version: None,
        }
    }
}

/// upstream's DelegatingAuthenticationOptions flags.
#[derive(Debug, Clone, Args)]
pub struct AuthenticationFlags {
    /// kubeconfig file pointing at the 'core' kubernetes server with enough rights to create tokenreviews.authentication.k8s.io.
    #[arg(long = "authentication-kubeconfig", value_name = "string")]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// If false, the authentication-kubeconfig will be used to lookup missing authentication configuration from the cluster.
    #[arg(long = "authentication-skip-lookup", default_value_t = false, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", action = ArgAction::Set,
          value_parser = go_bool_arg, value_name = "bool")]
    pub authentication_skip_lookup: bool,
    /// The duration to cache responses from the webhook token authenticator.
    #[arg(long = "authentication-token-webhook-cache-ttl", default_value = "10s",
          value_parser = duration_arg, value_name = "duration")]
    pub authentication_token_webhook_cache_ttl: Duration,
    /// If true, failures to look up missing authentication configuration from the cluster are not considered fatal.
    #[arg(long = "authentication-tolerate-lookup-failure", default_value_t = false, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", action = ArgAction::Set,
          value_parser = go_bool_arg, value_name = "bool")]
    pub authentication_tolerate_lookup_failure: bool,
    /// If set, any request presenting a client certificate signed by one of the authorities in the client-ca-file is authenticated with an identity corresponding to the CommonName of the client certificate.
    #[arg(long = "client-ca-file", value_name = "string")]
    pub client_ca_file: Option<PathBuf>,
    /// Root certificate bundle to use to verify client certificates on incoming requests before trusting usernames in headers specified by --requestheader-username-headers.
    #[arg(long = "requestheader-client-ca-file", value_name = "string")]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// List of client certificate common names to allow to provide usernames in headers specified by --requestheader-username-headers. If empty, any client certificate validated by the authorities in --requestheader-client-ca-file is allowed.
    #[arg(
        long = "requestheader-allowed-names",
        value_delimiter = ',',
        value_name = "strings"
    )]
    pub requestheader_allowed_names: Vec<String>,
    /// List of request headers to inspect for usernames. X-Remote-User is common.
    #[arg(
        long = "requestheader-username-headers",
        value_delimiter = ',',
        default_value = "X-Remote-User",
        value_name = "strings"
    )]
    pub requestheader_username_headers: Vec<String>,
    /// List of request headers to inspect for UIDs. X-Remote-Uid is suggested.
    #[arg(
        long = "requestheader-uid-headers",
        value_delimiter = ',',
        value_name = "strings"
    )]
    pub requestheader_uid_headers: Vec<String>,
    /// List of request headers to inspect for groups. X-Remote-Group is suggested.
    #[arg(
        long = "requestheader-group-headers",
        value_delimiter = ',',
        default_value = "X-Remote-Group",
        value_name = "strings"
    )]
    pub requestheader_group_headers: Vec<String>,
    /// List of request header prefixes to inspect. X-Remote-Extra- is suggested.
    #[arg(
        long = "requestheader-extra-headers-prefix",
        value_delimiter = ',',
        default_value = "X-Remote-Extra-",
        value_name = "strings"
    )]
    pub requestheader_extra_headers_prefix: Vec<String>,
}

impl Default for AuthenticationFlags {
    fn default() -> Self {
        AuthenticationFlags {
            authentication_kubeconfig: None,
            authentication_skip_lookup: false,
            authentication_token_webhook_cache_ttl: Duration::from_secs(10),
            authentication_tolerate_lookup_failure: false,
            client_ca_file: None,
            requestheader_client_ca_file: None,
            requestheader_allowed_names: Vec::new(),
            requestheader_username_headers: vec!["X-Remote-User".into()],
            requestheader_uid_headers: Vec::new(),
            requestheader_group_headers: vec!["X-Remote-Group".into()],
            requestheader_extra_headers_prefix: vec!["X-Remote-Extra-".into()],
        }
    }
}

/// upstream's DelegatingAuthorizationOptions flags.
#[derive(Debug, Clone, Args)]
pub struct AuthorizationFlags {
    /// kubeconfig file pointing at the 'core' kubernetes server with enough rights to create subjectaccessreviews.authorization.k8s.io.
    #[arg(long = "authorization-kubeconfig", value_name = "string")]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// A list of HTTP paths to skip during authorization, i.e. these are authorized without contacting the 'core' kubernetes server.
    #[arg(
        long = "authorization-always-allow-paths",
        value_delimiter = ',',
        default_value = "/healthz,/readyz,/livez",
        value_name = "strings"
    )]
    pub authorization_always_allow_paths: Vec<String>,
    /// The duration to cache 'authorized' responses from the webhook authorizer.
    #[arg(long = "authorization-webhook-cache-authorized-ttl", default_value = "10s",
          value_parser = duration_arg, value_name = "duration")]
    pub authorization_webhook_cache_authorized_ttl: Duration,
    /// The duration to cache 'unauthorized' responses from the webhook authorizer.
    #[arg(long = "authorization-webhook-cache-unauthorized-ttl", default_value = "10s",
          value_parser = duration_arg, value_name = "duration")]
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
}

impl Default for AuthorizationFlags {
    fn default() -> Self {
        AuthorizationFlags {
            authorization_kubeconfig: None,
            authorization_always_allow_paths: vec![
                "/healthz".into(),
                "/readyz".into(),
                "/livez".into(),
            ],
            authorization_webhook_cache_authorized_ttl: Duration::from_secs(10),
            authorization_webhook_cache_unauthorized_ttl: Duration::from_secs(10),
        }
    }
}

/// upstream's LeaderElectionConfiguration flags (component-base/config/options).
#[derive(Debug, Clone, Args)]
pub struct LeaderElectionFlags {
    /// Start a leader election client and gain leadership before executing the main loop.
    #[arg(long = "leader-elect", default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool_arg,
          value_name = "bool")]
    pub leader_elect: bool,
    /// The duration that non-leader candidates will wait after observing a leadership renewal until attempting to acquire leadership.
    #[arg(long = "leader-elect-lease-duration", default_value = "15s",
          value_parser = duration_arg, value_name = "duration")]
    pub leader_elect_lease_duration: Duration,
    /// The interval between attempts by the acting master to renew a leadership slot before it stops leading.
    #[arg(long = "leader-elect-renew-deadline", default_value = "10s",
          value_parser = duration_arg, value_name = "duration")]
    pub leader_elect_renew_deadline: Duration,
    /// The duration the clients should wait between attempting acquisition and renewal of a leadership.
    #[arg(long = "leader-elect-retry-period", default_value = "2s",
          value_parser = duration_arg, value_name = "duration")]
    pub leader_elect_retry_period: Duration,
    /// The type of resource object that is used for locking during leader election. Supported option is 'leases'.
    #[arg(
        long = "leader-elect-resource-lock",
        default_value = "leases",
        value_name = "string"
    )]
    pub leader_elect_resource_lock: String,
    /// The name of resource object that is used for locking during leader election (component name when unset).
    #[arg(long = "leader-elect-resource-name", value_name = "string")]
    pub leader_elect_resource_name: Option<String>,
    /// The namespace of resource object that is used for locking during leader election.
    #[arg(
        long = "leader-elect-resource-namespace",
        default_value = "kube-system",
        value_name = "string"
    )]
    pub leader_elect_resource_namespace: String,
}

impl Default for LeaderElectionFlags {
    fn default() -> Self {
        LeaderElectionFlags {
            leader_elect: true,
            leader_elect_lease_duration: Duration::from_secs(15),
            leader_elect_renew_deadline: Duration::from_secs(10),
            leader_elect_retry_period: Duration::from_secs(2),
            leader_elect_resource_lock: "leases".into(),
            leader_elect_resource_name: None,
            leader_elect_resource_namespace: "kube-system".into(),
        }
    }
}

/// Log output format (`--logging-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// klog/component-base logs flags.
///
/// `-v` defaults to 0 like upstream; `args::normalize` rewrites `-v=4` and
/// `-v 4` to `--v=4` first (clap has no single-dash long options).
#[derive(Debug, Clone, Default, Args)]
pub struct LoggingFlags {
    /// number for the log level verbosity
    #[arg(long = "v", default_value_t = 0, value_name = "Level")]
    pub v: u8,
    /// comma-separated list of pattern=N settings for file-filtered logging (module paths here).
    #[arg(long = "vmodule", value_name = "pattern=N,...")]
    pub vmodule: Option<String>,
    /// Sets the log format. Permitted formats: "json", "text".
    #[arg(
        long = "logging-format",
        value_enum,
        default_value = "text",
        value_name = "string"
    )]
    pub logging_format: LogFormat,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct All {
        #[command(flatten)]
        client: ClientFlags,
        #[command(flatten)]
        serving: SecureServingFlags,
        #[command(flatten)]
        authn: AuthenticationFlags,
        #[command(flatten)]
        authz: AuthorizationFlags,
        #[command(flatten)]
        le: LeaderElectionFlags,
        #[command(flatten)]
        logs: LoggingFlags,
    }

    fn parse(args: &[&str]) -> All {
        let argv = std::iter::once("test").chain(args.iter().copied());
        All::try_parse_from(argv).expect("flags parse")
    }

    #[test]
    fn defaults_match_upstream() {
        let all = parse(&[]);
        assert_eq!(all.serving.bind_address.to_string(), "0.0.0.0");
        assert_eq!(
            all.authn.authentication_token_webhook_cache_ttl,
            Duration::from_secs(10)
        );
        assert_eq!(all.authn.requestheader_username_headers, ["X-Remote-User"]);
        assert_eq!(all.authn.requestheader_group_headers, ["X-Remote-Group"]);
        assert_eq!(
            all.authn.requestheader_extra_headers_prefix,
            ["X-Remote-Extra-"]
        );
        assert_eq!(
            all.authz.authorization_always_allow_paths,
            ["/healthz", "/readyz", "/livez"]
        );
        assert!(all.le.leader_elect);
        assert_eq!(all.le.leader_elect_lease_duration, Duration::from_secs(15));
        assert_eq!(all.le.leader_elect_renew_deadline, Duration::from_secs(10));
        assert_eq!(all.le.leader_elect_retry_period, Duration::from_secs(2));
        assert_eq!(all.le.leader_elect_resource_lock, "leases");
        assert_eq!(all.le.leader_elect_resource_namespace, "kube-system");
        assert_eq!(all.logs.v, 0);
        assert_eq!(all.logs.logging_format, LogFormat::Text);
        // Defaults must agree with the Default impls used by tests elsewhere.
        assert_eq!(
            format!("{:?}", all.authn),
            format!("{:?}", AuthenticationFlags::default())
        );
        assert_eq!(
            format!("{:?}", all.authz),
            format!("{:?}", AuthorizationFlags::default())
        );
        assert_eq!(
            format!("{:?}", all.le),
            format!("{:?}", LeaderElectionFlags::default())
        );
    }

    #[test]
    fn pflag_style_booleans() {
        assert!(parse(&["--leader-elect"]).le.leader_elect);
        assert!(!parse(&["--leader-elect=false"]).le.leader_elect);
        assert!(!parse(&["--leader-elect=0"]).le.leader_elect);
        assert!(parse(&["--leader-elect=True"]).le.leader_elect);
        // A bare boolean never eats the next token.
        let all = parse(&["--authentication-skip-lookup", "--v=3"]);
        assert!(all.authn.authentication_skip_lookup);
        assert_eq!(all.logs.v, 3);
    }

    #[test]
    fn durations_lists_and_values() {
        let all = parse(&[
            "--leader-elect-lease-duration=1m30s",
            "--leader-elect-retry-period",
            "100ms",
            "--authorization-always-allow-paths=/healthz,/metrics*",
            "--kube-api-qps=50",
            "--kube-api-burst=100",
            "--logging-format=json",
            "--secure-port=10259",
        ]);
        assert_eq!(all.le.leader_elect_lease_duration, Duration::from_secs(90));
        assert_eq!(all.le.leader_elect_retry_period, Duration::from_millis(100));
        assert_eq!(
            all.authz.authorization_always_allow_paths,
            ["/healthz", "/metrics*"]
        );
        assert_eq!(all.client.kube_api_qps, Some(50.0));
        assert_eq!(all.client.kube_api_burst, Some(100));
        assert_eq!(all.logs.logging_format, LogFormat::Json);
        assert_eq!(all.serving.secure_port, Some(10259));
    }

    #[test]
    fn bad_duration_is_rejected() {
        let argv = ["test", "--leader-elect-lease-duration=15"];
        assert!(All::try_parse_from(argv).is_err());
    }

    #[test]
    fn split_list_trims() {
        assert_eq!(split_list("a, b,,c"), ["a", "b", "c"]);
        assert!(split_list("").is_empty());
    }
}
