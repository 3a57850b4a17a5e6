//! The hashes that name what controllers create, shared by every controller
//! that needs one: `pod-template-hash` (Deployment → ReplicaSet, upstream
//! `controller.ComputeHash`) and `controller-revision-hash` (DaemonSet and
//! StatefulSet ControllerRevisions, upstream `history.HashControllerRevision`
//! over the `getPatch` bytes). They must equal upstream's bit for bit, or a
//! swap of the controller-manager on a live cluster rolls every workload.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// Upstream `rand.SafeEncodeString`'s alphabet (no vowels, no 0/1/3).
const SAFE_ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot serialize the pod template: {0}")]
    Serialize(#[from] serde_json::Error),
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

/// The `pod-template-hash` of a template: upstream `controller.ComputeHash`
/// feeds FNV-32a the template, then the collision count, and prints the sum
/// through [`safe_encode`].
///
/// Deviation until the spew-compatible dump lands: upstream hashes
/// `hashutil.DeepHashObject`'s `%#v` dump of the Go struct; this hashes the
/// template's JSON, so names differ from stock kube-controller-manager's.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let canonical = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv32a(FNV32_OFFSET, &canonical);
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(h, &bytes);
    }
    safe_encode(&h.to_string())
}

/// The bytes a DaemonSet or StatefulSet stores in its ControllerRevision's
/// `data` (upstream `getPatch`): `{"spec":{"template":{…,"$patch":"replace"}}}`
/// with every object's keys sorted, as Go's `json.Marshal` of a map prints.
pub fn template_patch(template: &PodTemplateSpec) -> Result<Vec<u8>, HashError> {
    let mut template = serde_json::to_value(template)?;
    if let serde_json::Value::Object(map) = &mut template {
        map.insert("$patch".into(), serde_json::Value::String("replace".into()));
    }
    let patch = serde_json::json!({ "spec": { "template": template } });
    Ok(serde_json::to_vec(&patch)?)
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
        assert_eq!(patch, br#"{"spec":{"template":{"$patch":"replace"}}}"#);
    }

    #[test]
    fn revision_hash_depends_on_collision_count() {
        assert_ne!(
            controller_revision_hash(b"x", None),
            controller_revision_hash(b"x", Some(1))
        );
    }
}
