//! The hashes checked against stock Kubernetes' own output
//! (`testdata/*.json`, written by `hack/hash-vectors` from
//! `hack/hash-vectors.d`): every template's spew dump, pod-template-hash
//! with and without a collision count, getPatch bytes and
//! controller-revision-hash, and how Go holds each quantity.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Deserialize;

use super::schema::{QUANTITY, Schema};
use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    name: String,
    template: serde_json::Value,
    dump: String,
    template_hashes: Vec<TemplateHash>,
    patch: String,
    revision_hashes: Vec<RevisionHash>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateHash {
    collision_count: Option<i32>,
    hash: String,
}

#[derive(Deserialize)]
struct RevisionHash {
    probe: Option<i32>,
    hash: String,
}

#[derive(Deserialize)]
struct QuantityVector {
    r#in: String,
    canonical: String,
    dump: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("testdata/vectors.json")).unwrap()
}

/// Where two dumps first differ, with context, for a readable failure.
fn first_difference(ours: &str, go: &str) -> String {
    let at = ours
        .bytes()
        .zip(go.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(go.len()));
    let from = at.saturating_sub(120);
    let ours_ctx = ours.get(from..(at + 120).min(ours.len())).unwrap_or("");
    let go_ctx = go.get(from..(at + 120).min(go.len())).unwrap_or("");
    format!("at byte {at}:\n ours: …{ours_ctx}…\n go:   …{go_ctx}…")
}

fn template_of(v: &Vector) -> PodTemplateSpec {
    serde_json::from_value(v.template.clone())
        .unwrap_or_else(|e| panic!("{}: k8s-openapi cannot read the template: {e}", v.name))
}

#[test]
fn spew_dump_matches_go_for_every_template() {
    for v in vectors() {
        let ours = template_dump(&template_of(&v)).unwrap();
        assert!(
            ours == v.dump,
            "{}: dump differs {}",
            v.name,
            first_difference(&ours, &v.dump)
        );
    }
}

#[test]
fn pod_template_hash_matches_go_for_every_template() {
    for v in vectors() {
        let template = template_of(&v);
        for h in &v.template_hashes {
            assert_eq!(
                try_pod_template_hash(&template, h.collision_count).unwrap(),
                h.hash,
                "{} with collisionCount {:?}",
                v.name,
                h.collision_count
            );
            assert_eq!(pod_template_hash(&template, h.collision_count), h.hash);
        }
    }
}

#[test]
fn template_patch_matches_go_for_every_template() {
    for v in vectors() {
        let ours = String::from_utf8(template_patch(&template_of(&v)).unwrap()).unwrap();
        assert!(
            ours == v.patch,
            "{}: patch differs {}",
            v.name,
            first_difference(&ours, &v.patch)
        );
    }
}

#[test]
fn controller_revision_hash_matches_go_for_every_template() {
    for v in vectors() {
        for h in &v.revision_hashes {
            assert_eq!(
                controller_revision_hash(v.patch.as_bytes(), h.probe),
                h.hash,
                "{} with probe {:?}",
                v.name,
                h.probe
            );
        }
    }
}

#[test]
fn quantities_are_held_as_go_parses_them() {
    let schema = Schema::get().unwrap();
    let vectors: Vec<QuantityVector> =
        serde_json::from_str(include_str!("testdata/quantities.json")).unwrap();
    for q in vectors {
        let value = serde_json::Value::String(q.canonical.clone());
        let mut ours = String::new();
        // As a map value: no type prefix, as the Go side printed it.
        let mut p = gospew::for_hash(schema, QUANTITY, &value).unwrap();
        if let Some(rest) = p.strip_prefix("(resource.Quantity)") {
            p = rest.to_string();
        }
        ours.push_str(&p);
        assert_eq!(ours, q.dump, "{} (served as {})", q.r#in, q.canonical);
    }
}
