//! The hashes that name what controllers create, shared by every controller
//! that needs one: `pod-template-hash` (Deployment → ReplicaSet, upstream
//! `controller.ComputeHash`) and `controller-revision-hash` (DaemonSet and
//! StatefulSet ControllerRevisions, upstream `history.HashControllerRevision`
//! over the `getPatch` bytes). They must equal upstream's bit for bit, or a
//! swap of the controller-manager on a live cluster rolls every workload.

mod gojson;
mod goquantity;
mod gospew;
mod gotime;
mod schema;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use schema::Schema;

/// Upstream `rand.SafeEncodeString`'s alphabet (no vowels, no 0/1/3).
const SAFE_ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot serialize the pod template: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("Go type table: {0}")]
    Schema(String),
    #[error("{value} is not a valid {go_type}")]
    Shape { go_type: String, value: String },
    #[error("quantity {0:?} is not one Go's ParseQuantity accepts")]
    Quantity(String),
    #[error("time {0:?} is not RFC 3339")]
    Time(String),
    #[error("hashing a value of Go type {0} is not supported")]
    Unsupported(String),
}

/// FNV-1a, 32 bit (Go `hash/fnv.New32a`).
pub(crate) fn fnv32a(state: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(state, |h, b| (h ^ u32::from(*b)).wrapping_mul(FNV32_PRIME))
}

/// FNV-1, 32 bit (Go `hash/fnv.New32`): multiply, then xor.
pub(crate) fn fnv32(state: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(state, |h, b| h.wrapping_mul(FNV32_PRIME) ^ u32::from(*b))
}

/// Upstream `rand.SafeEncodeString`.
pub fn safe_encode(s: &str) -> String {
    s.chars()
        .map(|c| SAFE_ALPHANUMS[(c as usize) % SAFE_ALPHANUMS.len()] as char)
        .collect()
}

/// What upstream's `hashutil.DeepHashObject` writes for a template: go-spew's
/// `%#v` of the Go `v1.PodTemplateSpec` (`dump.ForHash`).
pub fn template_dump(template: &PodTemplateSpec) -> Result<String, HashError> {
    let schema = Schema::get()?;
    let value = serde_json::to_value(template)?;
    gospew::for_hash(schema, &schema.root, &value)
}

/// The `pod-template-hash` of a template, as upstream `controller.ComputeHash`:
/// FNV-32a over [`template_dump`], then the collision count's four
/// little-endian bytes padded to eight, printed through [`safe_encode`].
pub fn try_pod_template_hash(
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
) -> Result<String, HashError> {
    let dump = template_dump(template)?;
    let mut h = fnv32a(FNV32_OFFSET, dump.as_bytes());
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(h, &bytes);
    }
    Ok(safe_encode(&h.to_string()))
}

/// [`try_pod_template_hash`] for callers that must name an object: a
/// template the Go table cannot print (a value the apiserver would not have
/// served) is logged as an error and hashed from its JSON instead, which
/// still names it stably but not as stock kube-controller-manager would.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    match try_pod_template_hash(template, collision_count) {
        Ok(hash) => hash,
        Err(err) => {
            tracing::error!(%err, "cannot hash the pod template as upstream does; naming it from its JSON");
            let canonical = serde_json::to_vec(template).unwrap_or_default();
            let mut h = fnv32a(FNV32_OFFSET, &canonical);
            if let Some(c) = collision_count {
                let mut bytes = [0u8; 8];
                bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
                h = fnv32a(h, &bytes);
            }
            safe_encode(&h.to_string())
        }
    }
}

/// The bytes a DaemonSet or StatefulSet stores in its ControllerRevision's
/// `data` (upstream `getPatch`): `{"spec":{"template":{…,"$patch":"replace"}}}`
/// with the template as Go's `json.Marshal` prints the typed object, then
/// decoded into a map and marshaled again (sorted keys, float64 numbers,
/// Go's string escaping).
pub fn template_patch(template: &PodTemplateSpec) -> Result<Vec<u8>, HashError> {
    let schema = Schema::get()?;
    let value = serde_json::to_value(template)?;
    let mut template = gojson::typed(schema, &schema.root, Some(&value))?;
    if let Value::Object(map) = &mut template {
        map.insert("$patch".into(), Value::String("replace".into()));
    }
    let patch = serde_json::json!({ "spec": { "template": template } });
    let mut out = Vec::new();
    gojson::marshal(&patch, &mut out);
    Ok(out)
}

/// Upstream `history.HashControllerRevision`: FNV-32 over the revision's raw
/// data, then the collision count printed in decimal.
pub fn controller_revision_hash(raw: &[u8], collision_count: Option<i32>) -> String {
    let mut h = fnv32(FNV32_OFFSET, raw);
    if let Some(c) = collision_count {
        h = fnv32(h, c.to_string().as_bytes());
    }
    safe_encode(&h.to_string())
}

#[cfg(test)]
mod fields;
#[cfg(test)]
mod vectors;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_encode_matches_upstream_alphabet() {
        // '0' is 48: 48 % 27 = 21 -> '4'; '9' is 57: 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode("09"), "4f");
    }

    #[test]
    fn fnv_variants_match_go() {
        // Go: fnv.New32a().Write("a") = 0xe40c292c; fnv.New32() = 0x050c5d7e.
        assert_eq!(fnv32a(FNV32_OFFSET, b"a"), 0xe40c_292c);
        assert_eq!(fnv32(FNV32_OFFSET, b"a"), 0x050c_5d7e);
    }

    #[test]
    fn template_patch_replaces_the_template() {
        let patch = template_patch(&PodTemplateSpec::default()).unwrap();
        // Go's json.Marshal of a zero template: every field without
        // omitempty, as the vectors show for served templates.
        let patch = String::from_utf8(patch).unwrap();
        assert!(
            patch.starts_with(r#"{"spec":{"template":{"$patch":"replace","metadata":{}"#),
            "{patch}"
        );
    }

    #[test]
    fn revision_hash_depends_on_collision_count() {
        assert_ne!(
            controller_revision_hash(b"x", None),
            controller_revision_hash(b"x", Some(1))
        );
    }
}
