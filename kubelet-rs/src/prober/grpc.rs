//! grpc probes (upstream `pkg/probe/grpc`): `grpc.health.v1.Health/Check` over plaintext HTTP/2.

use std::time::Duration;

use super::ProbeOutcome;
use super::tcp::join_host_port;

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `HealthCheckResponse.ServingStatus` names, as upstream quotes them.
fn serving_status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// Go's `time.Duration` text for whole-second probe timeouts.
fn go_duration(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

pub(crate) async fn probe_grpc(
    host: &str,
    port: i32,
    service: &str,
    timeout: Duration,
) -> (ProbeOutcome, String) {
    let addr = join_host_port(host, port);
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => {
            return (
                ProbeOutcome::Failure,
                format!("error: failed to connect service at {addr:?}: {e}"),
            );
        }
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Err(_) => {
            return (
                ProbeOutcome::Failure,
                format!(
                    "timeout: failed to connect service {addr:?} within {}: context deadline exceeded",
                    go_duration(timeout)
                ),
            );
        }
        Ok(Err(e)) => {
            return (
                ProbeOutcome::Failure,
                format!("error: failed to connect service at {addr:?}: {e}"),
            );
        }
        Ok(Ok(c)) => c,
    };
    let mut client = tonic::client::Grpc::new(channel);
    let call = async {
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
        let request = tonic::Request::new(HealthCheckRequest {
            service: service.to_string(),
        });
        client.unary(request, path, codec).await
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => (
            ProbeOutcome::Failure,
            format!(
                "timeout: health rpc did not complete within {}",
                go_duration(timeout)
            ),
        ),
        Ok(Err(status)) => (ProbeOutcome::Failure, rpc_error_text(&status, timeout)),
        Ok(Ok(response)) => {
            let status = response.into_inner().status;
            if status == 1 {
                (ProbeOutcome::Success, "service healthy".to_string())
            } else {
                (
                    ProbeOutcome::Failure,
                    format!(
                        "service unhealthy (responded with {:?})",
                        serving_status_name(status)
                    ),
                )
            }
        }
    }
}

fn rpc_error_text(status: &tonic::Status, timeout: Duration) -> String {
    match status.code() {
        tonic::Code::Unimplemented => format!(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
            status.message()
        ),
        tonic::Code::DeadlineExceeded => format!(
            "timeout: health rpc did not complete within {}",
            go_duration(timeout)
        ),
        _ => format!("error: health rpc probe failed: {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_connection_is_a_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0");
        let Ok(listener) = listener else { return };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(1);
        drop(listener);
        let (outcome, msg) =
            probe_grpc("127.0.0.1", i32::from(port), "", Duration::from_secs(1)).await;
        assert_eq!(outcome, ProbeOutcome::Failure);
        assert!(
            msg.starts_with("error: failed to connect service at"),
            "{msg}"
        );
    }

    #[test]
    fn names_serving_status() {
        assert_eq!(serving_status_name(2), "NOT_SERVING");
        assert_eq!(go_duration(Duration::from_secs(3)), "3s");
    }
}
