//! Health checking (upstream `pkg/proxy/healthcheck`): the proxier's own
//! health behind `:10256`, and per-Service health check node ports for
//! `externalTrafficPolicy: Local` LoadBalancers.

pub mod http;
pub mod proxier_health;
pub mod service_health;

pub use proxier_health::{HealthResponse, ProxierHealth, TO_BE_DELETED_TAINT};
pub use service_health::ServiceHealthServer;
