//! projected volume payload (upstream `pkg/volume/projected` `collectData`).

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Pod, ProjectedVolumeSource, Secret, ServiceAccountTokenProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::atomic_writer::{FileProjection, Payload};
use super::error::SetupError;
use super::ownership::{fs_group, fs_user};
use super::source::ObjectSource;
use super::token::TokenManager;
use super::{DEFAULT_MODE, configmap, downwardapi, secret};

/// Everything a projected volume reads from.
pub(crate) struct ProjectionContext<'a> {
    pub pod: &'a Pod,
    pub objects: &'a dyn ObjectSource,
    pub tokens: &'a TokenManager,
    pub node_allocatable: &'a BTreeMap<String, Quantity>,
}

/// The TokenRequest upstream sends for a serviceAccountToken projection.
pub(crate) fn token_request(pod: &Pod, projection: &ServiceAccountTokenProjection) -> TokenRequest {
    TokenRequest {
        metadata: ObjectMeta::default(),
        spec: Some(TokenRequestSpec {
            audiences: Some(
                projection
                    .audience
                    .iter()
                    .filter(|a| !a.is_empty())
                    .cloned()
                    .collect(),
            ),
            // The API defaults this to 3600; kube-api-access volumes ask for 3607.
            expiration_seconds: Some(projection.expiration_seconds.unwrap_or(3600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        }),
        status: None,
    }
}

pub(crate) async fn collect(
    source: &ProjectedVolumeSource,
    ctx: &ProjectionContext<'_>,
) -> Result<Payload, SetupError> {
    let default_mode = source.default_mode.unwrap_or(DEFAULT_MODE as i32);
    let namespace = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for projection in source.sources.iter().flatten() {
        let part = if let Some(s) = &projection.secret {
            let optional = s.optional == Some(true);
            match ctx.objects.secret(namespace, &s.name).await {
                Ok(Some(found)) => {
                    secret::make_payload(s.items.as_deref(), &found, default_mode, optional)
                }
                Ok(None) if optional => secret::make_payload(
                    s.items.as_deref(),
                    &Secret::default(),
                    default_mode,
                    optional,
                ),
                Ok(None) => Err(SetupError::NotFound {
                    kind: "secret",
                    name: s.name.clone(),
                }),
                Err(e) => Err(e.into()),
            }
        } else if let Some(c) = &projection.config_map {
            let optional = c.optional == Some(true);
            match ctx.objects.config_map(namespace, &c.name).await {
                Ok(Some(found)) => {
                    configmap::make_payload(c.items.as_deref(), &found, default_mode, optional)
                }
                Ok(None) if optional => configmap::make_payload(
                    c.items.as_deref(),
                    &ConfigMap::default(),
                    default_mode,
                    optional,
                ),
                Ok(None) => Err(SetupError::NotFound {
                    kind: "configmap",
                    name: c.name.clone(),
                }),
                Err(e) => Err(e.into()),
            }
        } else if let Some(d) = &projection.downward_api {
            downwardapi::collect(
                d.items.as_deref().unwrap_or_default(),
                ctx.pod,
                default_mode,
                ctx.node_allocatable,
            )
        } else if let Some(t) = &projection.service_account_token {
            service_account_token(t, default_mode, ctx, namespace).await
        } else if projection.cluster_trust_bundle.is_some() {
            Err(SetupError::UnsupportedProjection("clusterTrustBundle"))
        } else if projection.pod_certificate.is_some() {
            Err(SetupError::UnsupportedProjection("podCertificate"))
        } else {
            continue;
        };
        match part {
            Ok(files) => payload.extend(files),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(payload),
        1 => Err(errors.remove(0)),
        _ => Err(SetupError::Aggregate(errors)),
    }
}

async fn service_account_token(
    projection: &ServiceAccountTokenProjection,
    default_mode: i32,
    ctx: &ProjectionContext<'_>,
    namespace: &str,
) -> Result<Payload, SetupError> {
    let service_account = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let request = token_request(ctx.pod, projection);
    let response = ctx
        .tokens
        .get_token(ctx.objects, namespace, &service_account, &request)
        .await?;
    let token = response
        .status
        .and_then(|s| s.token)
        .ok_or(SetupError::NoToken)?;
    // A token readable only by its owner once the pod runs as a set user or group.
    let fs_user = fs_user(ctx.pod);
    let mode = if fs_user.is_some() || fs_group(ctx.pod).is_some() {
        0o600
    } else {
        u32::try_from(default_mode).unwrap_or(0) & 0o7777
    };
    Ok(Payload::from([(
        projection.path.clone(),
        FileProjection {
            data: token.into_bytes(),
            mode,
            fs_user,
        },
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumemanager::error::aggregate;

    #[test]
    fn aggregates_like_go() {
        assert_eq!(aggregate::<String>(&["a".into()]), "a");
        assert_eq!(aggregate::<String>(&["a".into(), "b".into()]), "[a, b]");
    }

    #[test]
    fn builds_bound_token_request() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let projection = ServiceAccountTokenProjection {
            audience: None,
            expiration_seconds: Some(3607),
            path: "token".into(),
        };
        let spec = token_request(&pod, &projection).spec.unwrap_or_default();
        assert_eq!(spec.audiences, Some(vec![]));
        assert_eq!(spec.expiration_seconds, Some(3607));
        let bound = spec.bound_object_ref.unwrap_or_default();
        assert_eq!(
            (bound.kind.as_deref(), bound.uid.as_deref()),
            (Some("Pod"), Some("u1"))
        );
    }
}
