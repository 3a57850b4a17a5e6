//! Turns the parsed flags into the library's [`ControllerManagerConfig`].

use component_base::app::AppError;
use kube_controller_manager::clientbuilder::ClientLimits;
use kube_controller_manager::{ConcurrentSyncs, ControllerManagerConfig};

use crate::options::{CLIENT_DEFAULTS, Options};

/// Upstream `--concurrent-*-syncs` → workers per controller (controllers
/// with a hard-coded count say so in their descriptor).
pub async fn controller_manager_config(o: &Options) -> Result<ControllerManagerConfig, AppError> {
    let c = &o.concurrency;
    let workers = |n: i32| usize::try_from(n.max(1)).unwrap_or(1);
    let concurrent = ConcurrentSyncs {
        replicaset: workers(c.concurrent_replicaset_syncs),
        replication_controller: workers(c.concurrent_rc_syncs),
        deployment: workers(c.concurrent_deployment_syncs),
        endpointslice: workers(c.concurrent_service_endpoint_syncs),
        endpoint: workers(c.concurrent_endpoint_syncs),
        endpointslice_mirroring: workers(c.mirroring_concurrent_service_endpoint_syncs),
        namespace: workers(c.concurrent_namespace_syncs),
        garbage_collector: workers(c.concurrent_gc_syncs),
        job: workers(c.concurrent_job_syncs),
        cron_job: workers(c.concurrent_cron_job_syncs),
        ttl_after_finished: workers(c.concurrent_ttl_after_finished_syncs),
        daemonset: workers(c.concurrent_daemonset_syncs),
        statefulset: workers(c.concurrent_statefulset_syncs),
    };
    let client_config = component_base::client::load_config(
        o.client.kubeconfig.as_deref(),
        o.client.master.as_deref(),
    )
    .await?;
    Ok(ControllerManagerConfig {
        controllers: o.generic.controllers.clone(),
        concurrent,
        root_ca: root_ca(o, &client_config)?,
        mirroring_max_endpoints_per_subset: workers(c.mirroring_max_endpoints_per_subset),
        cluster_name: o.generic.cluster_name.clone(),
        enable_garbage_collector: o.generic.enable_garbage_collector,
        min_resync_period: o.generic.min_resync_period,
        use_service_account_credentials: o.generic.use_service_account_credentials,
        base_client_config: Some(client_config),
        client_limits: ClientLimits {
            qps: o.client.kube_api_qps.unwrap_or(CLIENT_DEFAULTS.qps),
            burst: o.client.kube_api_burst.unwrap_or(CLIENT_DEFAULTS.burst),
        },
    })
}

/// `--root-ca-file`, or (upstream's fallback) the CA the client trusts.
/// Upstream does not fail without either (a kubeconfig with no CA is
/// valid); the root CA publisher then reports it and stays off.
fn root_ca(o: &Options, client_config: &kube::Config) -> Result<Option<Vec<u8>>, AppError> {
    if let Some(path) = &o.generic.root_ca_file {
        return std::fs::read(path).map(Some).map_err(|err| {
            AppError::Invalid(format!(
                "error reading root-ca-file at {}: {err}",
                path.display()
            ))
        });
    }
    let certs = client_config.root_cert.clone().unwrap_or_default();
    if certs.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        certs
            .iter()
            .map(|der| der_to_pem(der))
            .collect::<String>()
            .into_bytes(),
    ))
}

fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_syncs_flags_take_effect() {
        let argv = [
            "kube-controller-manager",
            "--master=http://127.0.0.1:9",
            "--concurrent-rc-syncs=3",
            "--concurrent-daemonset-syncs=4",
            "--concurrent-statefulset-syncs=6",
        ];
        let (o, _) = crate::options::parse(argv.map(String::from));
        let config = controller_manager_config(&o).await.expect("config");
        assert_eq!(config.concurrent.replication_controller, 3);
        assert_eq!(config.concurrent.replicaset, 5);
        assert_eq!(config.concurrent.daemonset, 4);
        assert_eq!(config.concurrent.statefulset, 6);
    }

    #[tokio::test]
    async fn endpoint_flags_take_effect() {
        let argv = [
            "kube-controller-manager",
            "--master=http://127.0.0.1:9",
            "--concurrent-endpoint-syncs=2",
            "--mirroring-concurrent-service-endpoint-syncs=3",
            "--mirroring-max-endpoints-per-subset=7",
        ];
        let (o, _) = crate::options::parse(argv.map(String::from));
        let config = controller_manager_config(&o).await.expect("config");
        assert_eq!(config.concurrent.endpoint, 2);
        assert_eq!(config.concurrent.endpointslice_mirroring, 3);
        assert_eq!(config.mirroring_max_endpoints_per_subset, 7);
        let (o, _) = crate::options::parse(["kube-controller-manager".to_string()]);
        assert_eq!(o.concurrency.mirroring_max_endpoints_per_subset, 1000);
    }

    #[test]
    fn pem_wraps_at_64_columns() {
        let pem = der_to_pem(&[0u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END CERTIFICATE-----"));
        assert_eq!(lines.len(), 5); // 100 bytes → 136 base64 chars → 3 lines
    }
}
