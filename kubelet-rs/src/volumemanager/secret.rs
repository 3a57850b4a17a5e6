//! secret volume payload (upstream `pkg/volume/secret` `MakePayload`).

use k8s_openapi::api::core::v1::{KeyToPath, Secret};

use super::atomic_writer::{FileProjection, Payload};
use super::error::SetupError;

fn mode_bits(mode: i32) -> u32 {
    u32::try_from(mode).unwrap_or(0) & 0o7777
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
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, data) in values {
                payload.insert(
                    key.to_string(),
                    FileProjection {
                        data: data.to_vec(),
                        mode: mode_bits(default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = values.get(item.key.as_str()) else {
                    if optional {
                        continue;
                    }
                    return Err(SetupError::MissingSecretKey(item.key.clone()));
                };
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: data.to_vec(),
                        mode: mode_bits(item.mode.unwrap_or(default_mode)),
                    },
                );
            }
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
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
                mode: 0o600
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
