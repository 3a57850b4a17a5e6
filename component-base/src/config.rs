//! Component-config files (KubeSchedulerConfiguration, KubeletConfiguration,
//! KubeProxyConfiguration, …) and Go duration strings.
//!
//! Upstream decodes these files strictly first and, like the kubelet and
//! kube-proxy, falls back to lenient decoding with a warning when the only
//! problem is an unknown field. We do the same: an unknown `apiVersion` or
//! `kind` is an error, an unknown field is a `warn!`.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a component-config type declares about itself.
pub trait ComponentConfig: Serialize + DeserializeOwned {
    /// The `kind` this type decodes, e.g. `KubeSchedulerConfiguration`.
    const KIND: &'static str;
    /// Every `apiVersion` accepted, e.g. `["kubescheduler.config.k8s.io/v1"]`.
    const API_VERSIONS: &'static [&'static str];
    /// Upstream's `SetDefaults_*` for fields serde's `#[serde(default)]` cannot
    /// express (defaults that depend on other fields).
    fn set_defaults(&mut self) {}
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to parse config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config file {path} has no apiVersion or kind")]
    MissingTypeMeta { path: String },
    #[error(
        "no kind {kind:?} is registered for version {api_version:?} (config file {path}; supported: {supported})"
    )]
    UnknownVersion {
        path: String,
        kind: String,
        api_version: String,
        supported: String,
    },
    #[error("config file {path} has kind {found:?}, expected {expected:?}")]
    WrongKind {
        path: String,
        found: String,
        expected: String,
    },
}

/// Reads and decodes a component-config file (YAML or JSON).
pub fn load_file<T: ComponentConfig>(path: &Path) -> Result<T, ConfigError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: display.clone(),
        source,
    })?;
    decode::<T>(&text, &display)
}

/// Decodes component-config text; `origin` names the source in errors.
pub fn decode<T: ComponentConfig>(text: &str, origin: &str) -> Result<T, ConfigError> {
    let parse_err = |message: String| ConfigError::Parse {
        path: origin.to_string(),
        message,
    };
    // serde_yaml reads JSON too (JSON is YAML 1.2).
    let value: serde_json::Value =
        serde_yaml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
    check_type_meta::<T>(&value, origin)?;
    let mut config: T =
        serde_json::from_value(value.clone()).map_err(|e| parse_err(e.to_string()))?;
    let known = serde_json::to_value(&config).map_err(|e| parse_err(e.to_string()))?;
    for field in unknown_fields(&value, &known) {
        tracing::warn!(
            config = origin,
            kind = T::KIND,
            field,
            "unknown field in config file; ignoring it"
        );
    }
    config.set_defaults();
    Ok(config)
}

fn check_type_meta<T: ComponentConfig>(
    value: &serde_json::Value,
    origin: &str,
) -> Result<(), ConfigError> {
    check_type_meta_of(value, origin, T::KIND, T::API_VERSIONS)
}

fn check_type_meta_of(
    value: &serde_json::Value,
    origin: &str,
    expected_kind: &str,
    api_versions: &[&str],
) -> Result<(), ConfigError> {
    let api_version = value.get("apiVersion").and_then(|v| v.as_str());
    let kind = value.get("kind").and_then(|v| v.as_str());
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        return Err(ConfigError::MissingTypeMeta {
            path: origin.to_string(),
        });
    };
    if kind != expected_kind {
        return Err(ConfigError::WrongKind {
            path: origin.to_string(),
            found: kind.to_string(),
            expected: expected_kind.to_string(),
        });
    }
    if !api_versions.contains(&api_version) {
        return Err(ConfigError::UnknownVersion {
            path: origin.to_string(),
            kind: kind.to_string(),
            api_version: api_version.to_string(),
            supported: api_versions.join(", "),
        });
    }
    Ok(())
}

/// JSON paths present in `input` but absent from `known` (the decoded value
/// re-encoded), i.e. the fields the type ignored.
pub fn unknown_fields(input: &serde_json::Value, known: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_unknown(input, known, "", &mut out);
    out
}

fn collect_unknown(
    input: &serde_json::Value,
    known: &serde_json::Value,
    prefix: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (key, value) in input {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match known.get(key) {
                    Some(known_value) => collect_unknown(value, known_value, &path, out),
                    // A null the type dropped (an unset Option) is not unknown.
                    None if value.is_null() || key == "apiVersion" || key == "kind" => {}
                    None => out.push(path),
                }
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (i, (value, known_value)) in input.iter().zip(known).enumerate() {
                collect_unknown(value, known_value, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses Go's `time.ParseDuration` syntax (`15s`, `1m30s`, `100ms`, `1.5h`,
/// `0`). Negative durations are rejected: no flag we parse accepts them.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    let s = input.strip_prefix('+').unwrap_or(input);
    if let Some(magnitude) = s.strip_prefix('-') {
        // Go accepts "-0"; anything else negative is meaningless for us.
        if !magnitude.is_empty() && magnitude.chars().all(|c| c == '0') {
            return Ok(Duration::ZERO);
        }
        return Err(err("negative durations are not allowed"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err("empty duration"));
    }
    let mut rest = s;
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err("expected a number"));
        }
        let value: f64 = number.parse().map_err(|_| err("expected a number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        total_nanos += value * scale;
    }
    if total_nanos > u64::MAX as f64 {
        return Err(err("overflow"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Formats like Go's `time.Duration.String()` (`1m30s`, `100ms`, `1h0m0s`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos, 1_000_000));
    }
    let secs_total = d.as_secs();
    let hours = secs_total / 3600;
    let minutes = (secs_total % 3600) / 60;
    let seconds = trim_fraction(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

fn trim_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `#[serde(with = "component_base::config::duration_serde")]` for
/// `metav1.Duration` fields (strings such as `"15s"`).
pub mod duration_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Like [`duration_serde`] for `Option<Duration>` fields.
pub mod opt_duration_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| super::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `clientConnection` of component configs (componentbaseconfig
/// `ClientConnectionConfiguration`). Zero values mean "component default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientConnectionConfiguration {
    pub kubeconfig: String,
    pub accept_content_types: String,
    pub content_type: String,
    #[serde(rename = "qps")]
    pub qps: f32,
    pub burst: i32,
}

/// `leaderElection` of component configs (componentbaseconfig
/// `LeaderElectionConfiguration`). Unset durations are zero until
/// [`LeaderElectionConfiguration::to_flags`] applies upstream defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LeaderElectionConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_elect: Option<bool>,
    #[serde(with = "duration_serde")]
    pub lease_duration: Duration,
    #[serde(with = "duration_serde")]
    pub renew_deadline: Duration,
    #[serde(with = "duration_serde")]
    pub retry_period: Duration,
    pub resource_lock: String,
    pub resource_name: String,
    pub resource_namespace: String,
}

impl LeaderElectionConfiguration {
    /// The config with upstream defaults for unset fields, as flags.
    pub fn to_flags(&self) -> crate::flags::LeaderElectionFlags {
        let d = crate::flags::LeaderElectionFlags::default();
        let or = |v: Duration, default: Duration| if v.is_zero() { default } else { v };
        let or_str = |v: &str, default: &str| {
            if v.is_empty() {
                default.to_string()
            } else {
                v.to_string()
            }
        };
        crate::flags::LeaderElectionFlags {
            leader_elect: self.leader_elect.unwrap_or(d.leader_elect),
            leader_elect_lease_duration: or(self.lease_duration, d.leader_elect_lease_duration),
            leader_elect_renew_deadline: or(self.renew_deadline, d.leader_elect_renew_deadline),
            leader_elect_retry_period: or(self.retry_period, d.leader_elect_retry_period),
            leader_elect_resource_lock: or_str(&self.resource_lock, &d.leader_elect_resource_lock),
            leader_elect_resource_name: Some(self.resource_name.clone()).filter(|n| !n.is_empty()),
            leader_elect_resource_namespace: or_str(
                &self.resource_namespace,
                &d.leader_elect_resource_namespace,
            ),
        }
    }

    /// upstream's `ApplyLeaderElectionTo`: flags given on the command line
    /// (`set_on_cli(field_name)`) override the config file.
    pub fn with_cli_overrides(
        &self,
        cli: &crate::flags::LeaderElectionFlags,
        set_on_cli: impl Fn(&str) -> bool,
    ) -> crate::flags::LeaderElectionFlags {
        let mut out = self.to_flags();
        if set_on_cli("leader_elect") {
            out.leader_elect = cli.leader_elect;
        }
        if set_on_cli("leader_elect_lease_duration") {
            out.leader_elect_lease_duration = cli.leader_elect_lease_duration;
        }
        if set_on_cli("leader_elect_renew_deadline") {
            out.leader_elect_renew_deadline = cli.leader_elect_renew_deadline;
        }
        if set_on_cli("leader_elect_retry_period") {
            out.leader_elect_retry_period = cli.leader_elect_retry_period;
        }
        if set_on_cli("leader_elect_resource_lock") {
            out.leader_elect_resource_lock = cli.leader_elect_resource_lock.clone();
        }
        if set_on_cli("leader_elect_resource_name") {
            out.leader_elect_resource_name = cli.leader_elect_resource_name.clone();
        }
        if set_on_cli("leader_elect_resource_namespace") {
            out.leader_elect_resource_namespace = cli.leader_elect_resource_namespace.clone();
        }
        out
    }
}

/// Checks `apiVersion`/`kind` of component-config text and returns it as
/// JSON, for callers that decode the body themselves.
pub fn decode_value(
    text: &str,
    origin: &str,
    kind: &str,
    api_versions: &[&str],
) -> Result<serde_json::Value, ConfigError> {
    let value: serde_json::Value = serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_string(),
        message: e.to_string(),
    })?;
    check_type_meta_of(&value, origin, kind, api_versions)?;
    Ok(value)
}

/// Reads a component-config file and returns it as checked JSON.
pub fn load_value(
    path: &Path,
    kind: &str,
    api_versions: &[&str],
) -> Result<serde_json::Value, ConfigError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: display.clone(),
        source,
    })?;
    decode_value(&text, &display, kind, api_versions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn parses_go_durations() {
        let cases = [
            ("15s", Duration::from_secs(15)),
            ("1m30s", Duration::from_secs(90)),
            ("100ms", Duration::from_millis(100)),
            ("1.5h", Duration::from_secs(5400)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("2h45m", Duration::from_secs(9900)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("+5s", Duration::from_secs(5)),
            (".5s", Duration::from_millis(500)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for input in ["", "15", "1x", "s", "-5s", "1..2s", "abc", "5s3"] {
            assert!(parse_duration(input).is_err(), "{input} should fail");
        }
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(15), "15s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_micros(3), "3µs"),
            (Duration::from_nanos(12), "12ns"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want);
            assert_eq!(parse_duration(want), Ok(d), "round trip {want}");
        }
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, rename_all = "camelCase")]
    struct TestConfig {
        api_version: String,
        kind: String,
        name: String,
        #[serde(with = "duration_serde")]
        period: Duration,
        nested: Nested,
        derived: String,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, rename_all = "camelCase")]
    struct Nested {
        enabled: bool,
    }

    impl ComponentConfig for TestConfig {
        const KIND: &'static str = "TestConfiguration";
        const API_VERSIONS: &'static [&'static str] = &["test.config.k8s.io/v1"];
        fn set_defaults(&mut self) {
            if self.derived.is_empty() {
                self.derived = format!("{}-derived", self.name);
            }
        }
    }

    #[test]
    fn decodes_yaml_and_applies_defaults() {
        let text = "apiVersion: test.config.k8s.io/v1\nkind: TestConfiguration\nname: a\nperiod: 1m30s\nnested:\n  enabled: true\n";
        let cfg: TestConfig = decode(text, "test").expect("valid config");
        assert_eq!(cfg.period, Duration::from_secs(90));
        assert!(cfg.nested.enabled);
        assert_eq!(cfg.derived, "a-derived");
    }

    #[test]
    fn decodes_json() {
        let text =
            r#"{"apiVersion":"test.config.k8s.io/v1","kind":"TestConfiguration","name":"j"}"#;
        let cfg: TestConfig = decode(text, "test").expect("valid config");
        assert_eq!(cfg.name, "j");
    }

    #[test]
    fn rejects_unknown_version_and_kind() {
        let bad_version = "apiVersion: test.config.k8s.io/v9\nkind: TestConfiguration\n";
        let err = decode::<TestConfig>(bad_version, "f").expect_err("unknown version");
        assert!(matches!(err, ConfigError::UnknownVersion { .. }), "{err}");
        assert!(err.to_string().contains("test.config.k8s.io/v9"));
        let bad_kind = "apiVersion: test.config.k8s.io/v1\nkind: Other\n";
        assert!(matches!(
            decode::<TestConfig>(bad_kind, "f"),
            Err(ConfigError::WrongKind { .. })
        ));
        assert!(matches!(
            decode::<TestConfig>("name: x\n", "f"),
            Err(ConfigError::MissingTypeMeta { .. })
        ));
    }

    #[test]
    fn finds_unknown_fields_without_failing() {
        let text = "apiVersion: test.config.k8s.io/v1\nkind: TestConfiguration\nbogus: 1\nnested:\n  enabled: true\n  extra: x\n";
        let cfg: TestConfig = decode(text, "f").expect("unknown fields only warn");
        assert!(cfg.nested.enabled);
        let input: serde_json::Value = serde_yaml::from_str(text).expect("yaml");
        let known = serde_json::to_value(&cfg).expect("encode");
        assert_eq!(
            unknown_fields(&input, &known),
            vec!["bogus", "nested.extra"]
        );
    }

    #[test]
    fn load_file_reports_missing_file() {
        let err = load_file::<TestConfig>(Path::new("/nonexistent/ferrokube.yaml"))
            .expect_err("missing file");
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn leader_election_config_and_cli_overrides() {
        let text = "leaseDuration: 30s\nresourceName: custom\nleaderElect: false\n";
        let cfg: LeaderElectionConfiguration = serde_yaml::from_str(text).expect("valid");
        let flags = cfg.to_flags();
        assert!(!flags.leader_elect);
        assert_eq!(flags.leader_elect_lease_duration, Duration::from_secs(30));
        assert_eq!(flags.leader_elect_renew_deadline, Duration::from_secs(10));
        assert_eq!(flags.leader_elect_resource_name.as_deref(), Some("custom"));
        assert_eq!(flags.leader_elect_resource_namespace, "kube-system");

        let cli = crate::flags::LeaderElectionFlags {
            leader_elect: true,
            leader_elect_lease_duration: Duration::from_secs(60),
            ..crate::flags::LeaderElectionFlags::default()
        };
        let merged = cfg.with_cli_overrides(&cli, |f| f == "leader_elect");
        assert!(merged.leader_elect, "explicit flag wins");
        assert_eq!(
            merged.leader_elect_lease_duration,
            Duration::from_secs(30),
            "config wins over default flag"
        );
    }

    #[test]
    fn decode_value_checks_type_meta() {
        let v = decode_value("apiVersion: a/v1\nkind: K\nx: 1\n", "t", "K", &["a/v1"]).expect("ok");
        assert_eq!(v["x"], 1);
        assert!(decode_value("apiVersion: a/v2\nkind: K\n", "t", "K", &["a/v1"]).is_err());
    }
}
