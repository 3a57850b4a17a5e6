//! Per-Service health check servers (upstream `ServiceHealthServer`): a
//! LoadBalancer Service with `externalTrafficPolicy: Local` gets an HTTP
//! server on its `healthCheckNodePort` answering 200 while this node has
//! ready local endpoints (and the proxy is healthy), else 503, so the cloud
//! load balancer only sends traffic to nodes that can serve it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use super::ProxierHealth;
use crate::model::{EndpointsMap, NamespacedName, ServicePortMap};

struct Instance {
    port: u16,
    endpoints: usize,
    stop: CancellationToken,
}

type Shared = Arc<Mutex<BTreeMap<NamespacedName, Instance>>>;

pub struct ServiceHealthServer {
    node_ips: Vec<IpAddr>,
    services: Shared,
    proxier_health: ProxierHealth,
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, BTreeMap<NamespacedName, Instance>> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Upstream's body: a dedented, tab-indented JSON document.
pub fn body(svc: &NamespacedName, local_endpoints: usize, proxy_healthy: bool) -> String {
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": \"{}\",\n\t\t\"name\": \"{}\"\n\t}},\n\t\"localEndpoints\": {local_endpoints},\n\t\"serviceProxyHealthy\": {proxy_healthy}\n}}",
        svc.namespace, svc.name
    )
}

impl ServiceHealthServer {
    /// `node_ips` empty means every address (upstream listens on 0.0.0.0
    /// unless nodePortAddresses restricts it).
    pub fn new(node_ips: Vec<IpAddr>, proxier_health: ProxierHealth) -> Self {
        let node_ips = if node_ips.is_empty() {
            vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
        } else {
            node_ips
        };
        Self {
            node_ips,
            services: Arc::default(),
            proxier_health,
        }
    }

    /// Opens servers for new health check ports, closes unneeded ones.
    pub fn sync_services(&self, wanted: &BTreeMap<NamespacedName, u16>) {
        let mut services = lock(&self.services);
        services.retain(|nsn, inst| {
            let keep = wanted.get(nsn) == Some(&inst.port);
            if !keep {
                tracing::debug!(service = %nsn, port = inst.port, "Closing healthcheck");
                inst.stop.cancel();
            }
            keep
        });
        for (nsn, port) in wanted {
            if services.contains_key(nsn) {
                continue;
            }
            match self.listen(nsn, *port) {
                Ok(stop) => {
                    tracing::debug!(service = %nsn, port, "Opening healthcheck");
                    services.insert(
                        nsn.clone(),
                        Instance {
                            port: *port,
                            endpoints: 0,
                            stop,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(service = %nsn, port, error = %e, "Failed to start healthcheck")
                }
            }
        }
    }

    /// Records the number of ready local endpoints per Service.
    pub fn sync_endpoints(&self, counts: &BTreeMap<NamespacedName, usize>) {
        for (nsn, inst) in lock(&self.services).iter_mut() {
            inst.endpoints = counts.get(nsn).copied().unwrap_or(0);
        }
    }

    fn listen(&self, nsn: &NamespacedName, port: u16) -> std::io::Result<CancellationToken> {
        // Bind everything first so a failure leaves nothing half-open.
        let mut listeners = Vec::new();
        for ip in &self.node_ips {
            let std_listener = std::net::TcpListener::bind(SocketAddr::new(*ip, port))?;
            std_listener.set_nonblocking(true)?;
            listeners.push(tokio::net::TcpListener::from_std(std_listener)?);
        }
        let stop = CancellationToken::new();
        for listener in listeners {
            let (services, health, nsn, stop) = (
                self.services.clone(),
                self.proxier_health.clone(),
                nsn.clone(),
                stop.clone(),
            );
            let app = Router::new().fallback(move || {
                let count = lock(&services).get(&nsn).map(|i| i.endpoints);
                let healthy = health.is_healthy();
                let nsn = nsn.clone();
                async move { respond(&nsn, count, healthy) }
            });
            tokio::spawn(async move {
                let serve = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "Healthcheck server closed");
                }
            });
        }
        Ok(stop)
    }
}

impl Drop for ServiceHealthServer {
    fn drop(&mut self) {
        for inst in lock(&self.services).values() {
            inst.stop.cancel();
        }
    }
}

fn respond(nsn: &NamespacedName, count: Option<usize>, healthy: bool) -> Response {
    let Some(count) = count else {
        tracing::error!(service = %nsn, "Received request for closed healthcheck");
        return StatusCode::OK.into_response();
    };
    let status = if count != 0 && healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut resp = (status, body(nsn, count, healthy)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Health check node ports per Service (`ServicePortMap.HealthCheckNodePorts`).
pub fn health_check_node_ports(svcs: &ServicePortMap) -> BTreeMap<NamespacedName, u16> {
    svcs.iter()
        .filter(|(_, s)| s.health_check_node_port != 0)
        .map(|(n, s)| (n.service.clone(), s.health_check_node_port))
        .collect()
}

/// Ready local endpoints per Service (`EndpointsMap.LocalReadyEndpoints`).
pub fn local_ready_endpoints(eps: &EndpointsMap) -> BTreeMap<NamespacedName, usize> {
    let mut out = BTreeMap::new();
    for (spn, list) in eps {
        let n = list.iter().filter(|e| e.is_local && e.ready).count();
        if n > 0 {
            *out.entry(spn.service.clone()).or_insert(0) += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(port: u16) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        let status = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        assert!(
            buf.to_lowercase()
                .contains("x-content-type-options: nosniff"),
            "{buf}"
        );
        (status, body)
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn serves_local_endpoint_count() {
        let health = ProxierHealth::new(Duration::from_secs(60));
        let server = ServiceHealthServer::new(vec!["127.0.0.1".parse().unwrap()], health);
        let nsn = NamespacedName::new("ns", "lb");
        let port = free_port();
        server.sync_services(&BTreeMap::from([(nsn.clone(), port)]));
        let (status, body_text) = get(port).await;
        assert_eq!(status, 503);
        assert_eq!(body_text, body(&nsn, 0, true));
        server.sync_endpoints(&BTreeMap::from([(nsn.clone(), 2)]));
        let (status, body_text) = get(port).await;
        assert_eq!(status, 200);
        assert_eq!(
            body_text,
            "{\n\t\"service\": {\n\t\t\"namespace\": \"ns\",\n\t\t\"name\": \"lb\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
        );
        // Closing releases the port.
        server.sync_services(&BTreeMap::new());
        for _ in 0..50 {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("health check port {port} still bound after close");
    }
}
