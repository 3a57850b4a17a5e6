//! One probe execution (upstream `prober.go` `runProbe`): picks the handler, resolves
//! hosts and named ports, and returns the outcome with upstream's output text.

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::error::ProbeError;
use super::exec::probe_exec;
use super::grpc::probe_grpc;
use super::http::{HttpProbeRequest, probe_http};
use super::target::ProbeTarget;
use super::tcp::probe_tcp;

/// Upstream `probeType`; `Display` gives the capitalised form used in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeType {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeType {
    pub const ALL: [ProbeType; 3] = [
        ProbeType::Liveness,
        ProbeType::Readiness,
        ProbeType::Startup,
    ];

    /// Lower-case name (`liveness`), as in the `Killing` message and metrics labels.
    pub fn lower(self) -> &'static str {
        match self {
            ProbeType::Liveness => "liveness",
            ProbeType::Readiness => "readiness",
            ProbeType::Startup => "startup",
        }
    }

    /// The container's probe of this type.
    pub fn spec(self, container: &k8s_openapi::api::core::v1::Container) -> Option<&Probe> {
        match self {
            ProbeType::Liveness => container.liveness_probe.as_ref(),
            ProbeType::Readiness => container.readiness_probe.as_ref(),
            ProbeType::Startup => container.startup_probe.as_ref(),
        }
    }
}

impl std::fmt::Display for ProbeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProbeType::Liveness => "Liveness",
            ProbeType::Readiness => "Readiness",
            ProbeType::Startup => "Startup",
        })
    }
}

/// Raw probe outcome (upstream `probe.Result`); `Warning` counts as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    Success,
    Warning,
    Failure,
    Unknown,
}

/// Message of the `Killing` event when a failed probe restarts a container.
pub fn kill_message(container_name: &str, probe_type: ProbeType) -> String {
    format!(
        "Container {container_name} failed {} probe, will be restarted",
        probe_type.lower()
    )
}

/// Default `timeoutSeconds`.
const DEFAULT_TIMEOUT_SECONDS: i32 = 1;

fn resolve_port(port: &IntOrString, target: &ProbeTarget) -> Result<i32, ProbeError> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match target.named_ports.get(name) {
            Some(n) => *n,
            // A numeric string is accepted by upstream's intstr handling.
            None => name
                .parse::<i32>()
                .map_err(|_| ProbeError::PortNotFound(name.clone()))?,
        },
    };
    if number > 0 && number < 65536 {
        Ok(number)
    } else {
        Err(ProbeError::InvalidPort(number))
    }
}

fn host_or_pod_ip(host: Option<&str>, target: &ProbeTarget) -> Result<String, ProbeError> {
    match host.filter(|h| !h.is_empty()) {
        Some(h) => Ok(h.to_string()),
        None => target
            .pod_ip
            .clone()
            .filter(|ip| !ip.is_empty())
            .ok_or(ProbeError::NoPodIp),
    }
}

/// Runs `probe` once. `Err` is a probe *error* (upstream: result unknown, retried).
pub async fn run_probe(
    probe: &Probe,
    target: &ProbeTarget,
    container_id: &str,
) -> Result<(ProbeOutcome, String), ProbeError> {
    let timeout = Duration::from_secs(
        u64::try_from(
            probe
                .timeout_seconds
                .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
                .max(1),
        )
        .unwrap_or(1),
    );
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        return probe_exec(target.exec.as_ref(), container_id, &cmd, timeout).await;
    }
    if let Some(get) = &probe.http_get {
        let request = HttpProbeRequest {
            scheme: get.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase(),
            host: host_or_pod_ip(get.host.as_deref(), target)?,
            port: resolve_port(&get.port, target)?,
            path: get.path.clone().unwrap_or_default(),
            headers: get
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        };
        return Ok(probe_http(&request, timeout).await);
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = host_or_pod_ip(tcp.host.as_deref(), target)?;
        let port = resolve_port(&tcp.port, target)?;
        return Ok(probe_tcp(&host, port, timeout).await);
    }
    if let Some(grpc) = &probe.grpc {
        let host = host_or_pod_ip(None, target)?;
        let service = grpc.service.clone().unwrap_or_default();
        return Ok(probe_grpc(&host, grpc.port, &service, timeout).await);
    }
    Err(ProbeError::MissingHandler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prober::target::{ContainerExec, ExecError, ExecOutput};
    use std::collections::HashMap;
    use std::sync::Arc;

    struct NoExec;
    #[async_trait::async_trait]
    impl ContainerExec for NoExec {
        async fn exec_sync(
            &self,
            _: &str,
            _: &[String],
            _: Duration,
        ) -> Result<ExecOutput, ExecError> {
            Err(ExecError::Runtime("unused".into()))
        }
    }

    fn target() -> ProbeTarget {
        ProbeTarget {
            pod_ip: Some("10.1.2.3".into()),
            named_ports: HashMap::from([("http".to_string(), 8080)]),
            exec: Arc::new(NoExec),
        }
    }

    #[test]
    fn resolves_ports() {
        let t = target();
        let cases = [
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("http".into()), Ok(8080)),
            (IntOrString::String("9090".into()), Ok(9090)),
            (
                IntOrString::String("metrics".into()),
                Err("port metrics not found".to_string()),
            ),
            (
                IntOrString::Int(0),
                Err("invalid port number: 0".to_string()),
            ),
            (
                IntOrString::Int(70000),
                Err("invalid port number: 70000".to_string()),
            ),
        ];
        for (port, want) in cases {
            assert_eq!(
                resolve_port(&port, &t).map_err(|e| e.to_string()),
                want,
                "{port:?}"
            );
        }
    }

    #[test]
    fn names_probe_types_and_kill_message() {
        assert_eq!(ProbeType::Liveness.to_string(), "Liveness");
        assert_eq!(
            kill_message("web", ProbeType::Liveness),
            "Container web failed liveness probe, will be restarted"
        );
        assert_eq!(
            kill_message("web", ProbeType::Startup),
            "Container web failed startup probe, will be restarted"
        );
    }

    #[tokio::test]
    async fn probe_without_handler_is_an_error() {
        let r = run_probe(&Probe::default(), &target(), "c").await;
        assert_eq!(
            r.map_err(|e| e.to_string()),
            Err("missing probe handler".to_string())
        );
    }
}
