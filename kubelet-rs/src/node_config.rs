//! Builds the kubelet library's configuration from `--config` and the flags
//! with upstream's precedence: a flag given on the command line wins over the
//! config file, which wins over the v1beta1 defaults.

use component_base::config::ConfigError;
use k8s_openapi::api::core::v1::Taint;
use kubelet::{KubeletConfig, KubeletConfiguration, KubeletFlags};

use component_base::args;

use crate::options::{
    CONFIG_API_VERSIONS, CONFIG_KIND, Options, Resolved, ServingConfigView, resolve_serving,
};

/// Loads `--config` (if any) and applies upstream's precedence.
pub fn resolve(options: Options, matches: &clap::ArgMatches) -> Result<Resolved, ConfigError> {
    let config_file = match &options.config {
        Some(path) => Some(component_base::config::load_value(
            path,
            CONFIG_KIND,
            CONFIG_API_VERSIONS,
        )?),
        None => None,
    };
    let view = match &config_file {
        Some(value) => Some(
            serde_json::from_value::<ServingConfigView>(value.clone()).map_err(|e| {
                ConfigError::Parse {
                    path: options
                        .config
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    message: e.to_string(),
                }
            })?,
        ),
        None => None,
    };
    let set_on_cli = |id: &str| args::set_on_command_line(matches, id);
    let serving = resolve_serving(&options, view.as_ref(), set_on_cli);
    let kubelet = kubelet_config(&options, config_file.as_ref(), set_on_cli)?;
    Ok(Resolved {
        options,
        serving,
        kubelet,
    })
}

/// `set_on_cli(id)` tells whether the clap argument `id` came from argv.
pub fn kubelet_config(
    o: &Options,
    file: Option<&serde_json::Value>,
    set_on_cli: impl Fn(&str) -> bool,
) -> Result<KubeletConfig, ConfigError> {
    let path = || {
        o.config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mut c = match file {
        Some(value) => {
            serde_json::from_value::<KubeletConfiguration>(value.clone()).map_err(|e| {
                ConfigError::Parse {
                    path: path(),
                    message: e.to_string(),
                }
            })?
        }
        None => KubeletConfiguration::default(),
    };
    if set_on_cli("cluster_dns") {
        c.cluster_dns = o.cluster_dns.clone();
    }
    if let (true, Some(domain)) = (set_on_cli("cluster_domain"), &o.cluster_domain) {
        c.cluster_domain = domain.clone();
    }
    if let (true, Some(max)) = (set_on_cli("max_pods"), o.max_pods) {
        c.max_pods = max;
    }
    if let (true, Some(p)) = (set_on_cli("pod_manifest_path"), &o.pod_manifest_path) {
        c.static_pod_path = p.display().to_string();
    }
    if let (true, Some(root)) = (set_on_cli("cgroup_root"), &o.cgroup_root) {
        c.cgroup_root = root.clone();
    }
    if let (true, Some(driver)) = (set_on_cli("cgroup_driver"), &o.cgroup_driver) {
        c.cgroup_driver = driver.clone();
    }
    if set_on_cli("container_runtime_endpoint") || file.is_none() {
        c.container_runtime_endpoint = o.container_runtime_endpoint.clone();
    }
    if set_on_cli("register_node") {
        c.register_node = o.register_node;
    }
    if set_on_cli("register_with_taints") {
        c.register_with_taints = o
            .register_with_taints
            .iter()
            .map(|t| parse_taint(t))
            .collect::<Result<_, _>>()
            .map_err(|e: TaintError| ConfigError::Parse {
                path: "--register-with-taints".to_string(),
                message: e.to_string(),
            })?;
    }
    let flags = KubeletFlags {
        hostname_override: o.hostname_override.clone(),
        node_ips: o.node_ip.clone(),
        node_labels: o.node_labels.clone().unwrap_or_default(),
        root_directory: o.root_dir.clone(),
        pod_infra_container_image: o.pod_infra_container_image.clone(),
        ..KubeletFlags::default()
    };
    Ok(KubeletConfig::from_component_config(c, flags))
}

/// A malformed `--register-with-taints` entry (upstream `ParseTaint`'s messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaintError {
    #[error("invalid taint spec: {0}")]
    Spec(String),
    #[error("invalid taint effect: {0}, unsupported taint effect")]
    Effect(String),
}

/// Parses upstream's `key[=value]:Effect` taint syntax (`ParseTaint`).
pub fn parse_taint(spec: &str) -> Result<Taint, TaintError> {
    let (kv, effect) = spec
        .rsplit_once(':')
        .ok_or_else(|| TaintError::Spec(spec.to_string()))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(TaintError::Effect(effect.to_string()));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(TaintError::Spec(spec.to_string()));
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_like_upstream() {
        let t = parse_taint("dedicated=gpu:NoSchedule").expect("valid");
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        let t = parse_taint("node-role.kubernetes.io/control-plane:NoSchedule").expect("valid");
        assert_eq!(t.value, None);
        assert!(parse_taint("foo=bar").is_err());
        assert!(parse_taint("foo=bar:Sometimes").is_err());
        assert!(parse_taint("=bar:NoSchedule").is_err());
    }
}
