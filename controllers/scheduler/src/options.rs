//! kube-scheduler's command line: upstream's flag names and defaults, and
//! the `--config` file's `clientConnection`/`leaderElection` sections
//! resolved against the flags the way upstream's `Options.ApplyTo` does.

use std::path::PathBuf;

use clap::Parser;
use component_base::args::{self, Normalized};
use component_base::config::{
    ClientConnectionConfiguration, ComponentConfig, ConfigError, LeaderElectionConfiguration,
};
use component_base::flags::{
    AuthenticationFlags, AuthorizationFlags, ClientDefaults, ClientFlags, LeaderElectionFlags,
    LoggingFlags, SecureServingFlags,
};
use serde::{Deserialize, Serialize};

pub const COMPONENT: &str = "kube-scheduler";
/// upstream `DefaultKubeSchedulerPort`.
pub const DEFAULT_SECURE_PORT: u16 = 10259;
/// upstream v1 defaults for `clientConnection`.
pub const CLIENT_DEFAULTS: ClientDefaults = ClientDefaults {
    qps: 50.0,
    burst: 100,
};

/// Upstream kube-scheduler booleans we accept and ignore (see `args`).
pub const UPSTREAM_BOOL_FLAGS: &[&str] = &["profiling", "contention-profiling"];

/// kube-scheduler flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kube-scheduler",
    about = "The Kubernetes scheduler is a control plane process which assigns Pods to Nodes."
)]
pub struct Options {
    /// The path to the configuration file.
    #[arg(long, value_name = "string")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientFlags,
    #[command(flatten)]
    pub serving: SecureServingFlags,
    #[command(flatten)]
    pub authn: AuthenticationFlags,
    #[command(flatten)]
    pub authz: AuthorizationFlags,
    #[command(flatten)]
    pub leader_election: LeaderElectionFlags,
    #[command(flatten)]
    pub logs: LoggingFlags,
}

/// The parts of `KubeSchedulerConfiguration` the binary resolves itself;
/// everything else is kept verbatim for `kube_scheduler::SchedulerConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeSchedulerConfiguration {
    pub api_version: String,
    pub kind: String,
    pub client_connection: ClientConnectionConfiguration,
    pub leader_election: LeaderElectionConfiguration,
    /// profiles, parallelism, backoffs, extenders, … (decoded by the library).
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl ComponentConfig for KubeSchedulerConfiguration {
    const KIND: &'static str = "KubeSchedulerConfiguration";
    const API_VERSIONS: &'static [&'static str] = &["kubescheduler.config.k8s.io/v1"];
}

/// Flags and config file resolved into what the binary runs with.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub options: Options,
    pub client: ClientFlags,
    pub leader_election: LeaderElectionFlags,
    /// The whole `--config` file as JSON (`None` without `--config`), for
    /// `kube_scheduler::SchedulerConfig::from_component_config`.
    pub component_config: Option<serde_json::Value>,
}

/// Parses argv (normalised first; see `component_base::args`).
pub fn parse(argv: impl IntoIterator<Item = String>) -> (Options, clap::ArgMatches, Normalized) {
    args::parse::<Options>(argv, UPSTREAM_BOOL_FLAGS)
}

/// upstream `Options.ApplyTo`: without `--config` the flags rule; with it,
/// the file's `clientConnection` replaces the client flags (`--master`
/// still applies) and only leader-election flags given on the command line
/// override its `leaderElection`.
pub fn resolve(options: Options, matches: &clap::ArgMatches) -> Result<Resolved, ConfigError> {
    let Some(path) = options.config.clone() else {
        return Ok(Resolved {
            client: options.client.clone(),
            leader_election: options.leader_election.clone(),
            component_config: None,
            options,
        });
    };
    let file: KubeSchedulerConfiguration = component_base::config::load_file(&path)?;
    Ok(resolve_with_file(options, &file, |id| {
        args::set_on_command_line(matches, id)
    }))
}

/// [`resolve`] for an already-decoded file (pure, for tests).
pub fn resolve_with_file(
    options: Options,
    file: &KubeSchedulerConfiguration,
    set_on_cli: impl Fn(&str) -> bool,
) -> Resolved {
    let cc = &file.client_connection;
    let client = ClientFlags {
        kubeconfig: Some(PathBuf::from(&cc.kubeconfig)).filter(|p| !p.as_os_str().is_empty()),
        master: options.client.master.clone(),
        kube_api_qps: Some(if cc.qps == 0.0 {
            CLIENT_DEFAULTS.qps
        } else {
            cc.qps
        }),
        kube_api_burst: Some(if cc.burst <= 0 {
            CLIENT_DEFAULTS.burst
        } else {
            cc.burst.unsigned_abs()
        }),
        kube_api_content_type: Some(cc.content_type.clone()).filter(|c| !c.is_empty()),
    };
    let leader_election = file
        .leader_election
        .with_cli_overrides(&options.leader_election, set_on_cli);
    let component_config = serde_json::to_value(file).ok();
    Resolved {
        options,
        client,
        leader_election,
        component_config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn argv(args: &[&str]) -> Vec<String> {
        std::iter::once("kube-scheduler")
            .chain(args.iter().copied())
            .map(String::from)
            .collect()
    }

    #[test]
    fn upstream_manifest_flags_parse() {
        // kubeadm's static pod command line.
        let (opts, _, normalized) = parse(argv(&[
            "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
            "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
            "--bind-address=127.0.0.1",
            "--kubeconfig=/etc/kubernetes/scheduler.conf",
            "--leader-elect=true",
            "--feature-gates=Foo=true",
            "--profiling",
            "-v=2",
        ]));
        assert_eq!(opts.serving.bind_address.to_string(), "127.0.0.1");
        assert!(opts.leader_election.leader_elect);
        assert_eq!(opts.logs.v, 2);
        assert_eq!(
            normalized.dropped,
            ["--feature-gates=Foo=true", "--profiling"]
        );
    }

    #[test]
    fn config_file_overrides_flags_like_upstream() {
        let (opts, _, _) = parse(argv(&[
            "--kubeconfig=/flag.conf",
            "--master=https://10.0.0.1:6443",
            "--leader-elect-lease-duration=60s",
            "--leader-elect-retry-period=5s",
        ]));
        let text = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: /file.conf\nleaderElection:\n  leaderElect: true\n  leaseDuration: 20s\n  resourceName: sched\nprofiles:\n- schedulerName: default-scheduler\n";
        let file: KubeSchedulerConfiguration =
            component_base::config::decode(text, "test").expect("valid");
        let resolved = resolve_with_file(opts, &file, |id| id == "leader_elect_retry_period");
        assert_eq!(
            resolved.client.kubeconfig.as_deref(),
            Some(std::path::Path::new("/file.conf"))
        );
        assert_eq!(
            resolved.client.master.as_deref(),
            Some("https://10.0.0.1:6443")
        );
        assert_eq!(resolved.client.kube_api_qps, Some(50.0));
        let le = &resolved.leader_election;
        assert_eq!(le.leader_elect_lease_duration, Duration::from_secs(20));
        assert_eq!(le.leader_elect_retry_period, Duration::from_secs(5));
        assert_eq!(le.leader_elect_resource_name.as_deref(), Some("sched"));
        let cc = resolved.component_config.expect("kept");
        assert_eq!(cc["profiles"][0]["schedulerName"], "default-scheduler");
    }

    #[test]
    fn without_config_flags_rule() {
        let (opts, matches, _) = parse(argv(&["--leader-elect=false"]));
        let resolved = resolve(opts, &matches).expect("no file to read");
        assert!(!resolved.leader_election.leader_elect);
        assert!(resolved.component_config.is_none());
    }
}
