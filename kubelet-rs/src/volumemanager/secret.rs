//! secret volume payload (upstream `pkg/volume/secret` `MakePayload`).

use std::path::Path;

use k8s_openapi::api::core::v1::{KeyToPath, Secret, SecretVolumeSource};

use super::DEFAULT_MODE;
use super::atomic_writer::Payload;
use super::emptydir::{Medium, setup_dir};
use super::error::SetupError;
use super::key_to_path;
use super::source::ObjectSource;

/// Reads the secret (an optional one may be missing), makes the volume's directory on
/// `medium` (tmpfs) and returns its files.
pub(crate) async fn set_up(
    objects: &dyn ObjectSource,
    namespace: &str,
    spec: &SecretVolumeSource,
    dir: &Path,
    medium: Medium,
) -> Result<Payload, SetupError> {
    let optional = spec.optional == Some(true);
    let name = spec.secret_name.clone().unwrap_or_default();
    let found = match objects.secret(namespace, &name).await? {
        Some(s) => s,
        None if optional => Secret::default(),
        None => {
            return Err(SetupError::NotFound {
                kind: "secret",
                name,
            });
        }
    };
    setup_dir(dir, medium)?;
    let mode = spec.default_mode.unwrap_or(DEFAULT_MODE as i32);
    make_payload(spec.items.as_deref(), &found, mode, optional)
}

/// Files of a secret volume: every key of `data` (plus `stringData` should the apiserver
/// ever return it), or just `items`.
pub(crate) fn make_payload(
    items: Option<&[KeyToPath]>,
    secret: &Secret,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, SetupError> {
    let mut values: std::collections::BTreeMap<&str, &[u8]> = std::collections::BTreeMap::new();
    for (k, v) in secret.string_data.iter().flatten() {
        values.insert(k, v.as_bytes());
    }
    for (k, v) in secret.data.iter().flatten() {
        values.insert(k, &v.0);
    }
    key_to_path::payload(
        values,
        items,
        default_mode,
        optional,
        SetupError::MissingSecretKey,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumemanager::FileProjection;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn projects_secret_bytes() {
        let secret = Secret {
            data: Some(BTreeMap::from([(
                "tls.key".to_string(),
                ByteString(vec![0, 1, 2]),
            )])),
            ..Default::default()
        };
        let all = make_payload(None, &secret, 0o600, false).unwrap_or_default();
        assert_eq!(
            all["tls.key"],
            FileProjection {
                data: vec![0, 1, 2],
                mode: 0o600,
                fs_user: None,
            }
        );
        let items = [KeyToPath {
            key: "nope".into(),
            path: "p".into(),
            mode: None,
        }];
        assert_eq!(
            make_payload(Some(&items), &secret, 0o644, false).map_err(|e| e.to_string()),
            Err("references non-existent secret key: nope".to_string())
        );
    }
}
