//! configMap volume payload (upstream `pkg/volume/configmap` `MakePayload`).

use std::collections::BTreeMap;

use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, KeyToPath};

use super::DEFAULT_MODE;
use super::atomic_writer::Payload;
use super::emptydir::{Medium, setup_dir};
use super::error::SetupError;
use super::key_to_path;
use super::source::ObjectSource;

/// Reads the configMap (an optional one may be missing), makes the volume's directory and
/// returns its files.
pub(crate) async fn set_up(
    objects: &dyn ObjectSource,
    namespace: &str,
    spec: &ConfigMapVolumeSource,
    dir: &Path,
) -> Result<Payload, SetupError> {
    let optional = spec.optional == Some(true);
    let cm = match objects.config_map(namespace, &spec.name).await? {
        Some(cm) => cm,
        None if optional => ConfigMap::default(),
        None => {
            return Err(SetupError::NotFound {
                kind: "configmap",
                name: spec.name.clone(),
            });
        }
    };
    setup_dir(dir, Medium::Disk)?;
    let mode = spec.default_mode.unwrap_or(DEFAULT_MODE as i32);
    make_payload(spec.items.as_deref(), &cm, mode, optional)
}

/// Files of a configMap volume: every key, or just `items`. `optional` tolerates missing keys.
pub(crate) fn make_payload(
    items: Option<&[KeyToPath]>,
    config_map: &ConfigMap,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, SetupError> {
    let mut values: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in config_map.data.iter().flatten() {
        values.insert(k, v.as_bytes());
    }
    for (k, v) in config_map.binary_data.iter().flatten() {
        values.insert(k, &v.0);
    }
    key_to_path::payload(
        values,
        items,
        default_mode,
        optional,
        SetupError::MissingConfigMapKey,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumemanager::FileProjection;

    fn cm() -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string()),
            ])),
            ..Default::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    #[test]
    fn projects_all_keys_or_items() {
        let all = make_payload(None, &cm(), 0o644, false).unwrap_or_default();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(all["a"].mode, 0o644);

        let items = [item("b", "dir/bee", Some(0o400))];
        let some = make_payload(Some(&items), &cm(), 0o644, false).unwrap_or_default();
        assert_eq!(some.len(), 1);
        assert_eq!(
            some["dir/bee"],
            FileProjection {
                data: b"2".to_vec(),
                mode: 0o400,
                fs_user: None,
            }
        );
    }

    #[test]
    fn missing_key_fails_unless_optional() {
        let items = [item("zzz", "z", None)];
        assert_eq!(
            make_payload(Some(&items), &cm(), 0o644, false).map_err(|e| e.to_string()),
            Err("configmap references non-existent config key: zzz".to_string())
        );
        assert_eq!(
            make_payload(Some(&items), &cm(), 0o644, true).map_err(|e| e.to_string()),
            Ok(Payload::new())
        );
    }
}
