//! Every JSON field of the Go template types is one k8s-openapi knows: a
//! field it did not know would be dropped when our informers decode a
//! Deployment, and the hash of a template that sets it would silently
//! differ from upstream's. Checked by walking the Go type table and
//! k8s-openapi's JSON schema side by side.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use super::schema::{INT_OR_STRING, Kind, QUANTITY, Schema, TIME};

struct Walk<'a> {
    go: &'a Schema,
    root: &'a Value,
    seen: BTreeSet<(String, String)>,
    missing: Vec<String>,
}

impl<'a> Walk<'a> {
    /// Follows `$ref`s and single-schema wrappers to the schema itself.
    fn resolve(&self, mut s: &'a Value) -> &'a Value {
        loop {
            if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or(r);
                let defs = self
                    .root
                    .get("$defs")
                    .or_else(|| self.root.get("definitions"));
                match defs.and_then(|d| d.get(name)) {
                    Some(next) => s = next,
                    None => panic!("unresolved {r}"),
                }
                continue;
            }
            let wrapped = ["allOf", "anyOf", "oneOf"].iter().find_map(|k| {
                let alts = s.get(*k)?.as_array()?;
                let mut non_null = alts
                    .iter()
                    .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"));
                let one = non_null.next()?;
                non_null.next().is_none().then_some(one)
            });
            match wrapped {
                Some(next) => s = next,
                None => return s,
            }
        }
    }

    fn check(&mut self, id: &str, schema: &'a Value, path: &str) {
        if [QUANTITY, INT_OR_STRING, TIME].contains(&id) {
            return;
        }
        let schema = self.resolve(schema);
        let key = (id.to_string(), schema.to_string());
        if !self.seen.insert(key) {
            return;
        }
        let t = self.go.ty(id).unwrap();
        match t.kind {
            Kind::Ptr => self.check(t.elem.as_deref().unwrap(), schema, path),
            Kind::Slice | Kind::Array => match schema.get("items") {
                Some(items) => self.check(t.elem.as_deref().unwrap(), items, &format!("{path}[]")),
                None => self
                    .missing
                    .push(format!("{path}: not a list in k8s-openapi")),
            },
            Kind::Map => match schema.get("additionalProperties") {
                Some(v) if v.is_object() => {
                    self.check(t.elem.as_deref().unwrap(), v, &format!("{path}{{}}"));
                }
                _ => self
                    .missing
                    .push(format!("{path}: not a map in k8s-openapi")),
            },
            Kind::Struct => {
                let props = schema.get("properties").and_then(Value::as_object);
                for f in &t.fields {
                    if f.json == "-" {
                        continue;
                    }
                    let ft = self.go.ty(&f.type_id).unwrap();
                    if f.inline && ft.kind == Kind::Struct {
                        self.check(&f.type_id, schema, path);
                        continue;
                    }
                    let field_path = format!("{path}.{}", f.json);
                    match props.and_then(|p| p.get(&f.json)) {
                        Some(fs) => self.check(&f.type_id, fs, &field_path),
                        None => self
                            .missing
                            .push(format!("{field_path} ({}.{})", t.go, f.name)),
                    }
                }
            }
            _ => {}
        }
    }
}

#[test]
fn k8s_openapi_knows_every_go_template_field() {
    let go = Schema::get().unwrap();
    let root = serde_json::to_value(schemars::schema_for!(PodTemplateSpec)).unwrap();
    let mut walk = Walk {
        go,
        root: &root,
        seen: BTreeSet::new(),
        missing: Vec::new(),
    };
    walk.check(&go.root, &root, "template");
    assert!(
        walk.missing.is_empty(),
        "fields of the Go template types k8s-openapi drops:\n{}",
        walk.missing.join("\n")
    );
}
