//! The item walk configMap and secret volumes share (upstream `MakePayload` in
//! `pkg/volume/configmap` and `pkg/volume/secret`): every key, or just `items`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::KeyToPath;

use super::atomic_writer::{FileProjection, Payload};
use super::error::SetupError;

fn mode_bits(mode: i32) -> u32 {
    u32::try_from(mode).unwrap_or(0) & 0o7777
}

/// Files from `values`: each key under its own name, or only `items` under their paths.
/// A missing item key fails with `missing(key)` unless `optional`.
pub(crate) fn payload(
    values: BTreeMap<&str, &[u8]>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
    missing: impl Fn(String) -> SetupError,
) -> Result<Payload, SetupError> {
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, data) in values {
                payload.insert(
                    key.to_string(),
                    FileProjection {
                        data: data.to_vec(),
                        mode: mode_bits(default_mode),
                        fs_user: None,
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
                    return Err(missing(item.key.clone()));
                };
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: data.to_vec(),
                        mode: mode_bits(item.mode.unwrap_or(default_mode)),
                        fs_user: None,
                    },
                );
            }
        }
    }
    Ok(payload)
}
