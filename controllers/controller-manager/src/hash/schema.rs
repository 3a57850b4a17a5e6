//! The Go types reachable from `v1.PodTemplateSpec`, as reflection over
//! k8s.io/api v0.36 reports them (`go_types.json`, written by
//! `hack/hash-vectors`). Upstream's hashes print Go values — go-spew walks
//! fields in declaration order and names every type, encoding/json emits
//! zero values of fields without `omitempty` — so both printers here are
//! driven by this table rather than by k8s-openapi's Rust types.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use super::HashError;

/// One Go type: `go` is what `reflect.Type.String()` (and so spew) prints.
#[derive(Debug, Deserialize)]
pub(crate) struct GoType {
    pub go: String,
    pub kind: Kind,
    #[serde(default)]
    pub elem: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub fields: Vec<GoField>,
    /// The type has its own `MarshalJSON`.
    #[serde(default)]
    pub marshaler: bool,
}

/// A struct field, in declaration order.
#[derive(Debug, Deserialize)]
pub(crate) struct GoField {
    /// The Go field name (what spew prints).
    pub name: String,
    /// The JSON key (the Go name for unexported and untagged fields).
    pub json: String,
    #[serde(default)]
    pub omitempty: bool,
    #[serde(default)]
    pub omitzero: bool,
    /// An embedded struct whose fields JSON flattens into its parent.
    #[serde(default)]
    pub inline: bool,
    #[serde(rename = "type")]
    pub type_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Bool,
    Int,
    Uint,
    Float,
    String,
    Ptr,
    Slice,
    Array,
    Map,
    Struct,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Schema {
    /// The type id of `v1.PodTemplateSpec`.
    pub root: String,
    pub types: HashMap<String, GoType>,
}

/// Type ids of the types whose Go representation differs from their JSON.
pub(crate) const QUANTITY: &str = "k8s.io/apimachinery/pkg/api/resource.Quantity";
pub(crate) const INT_OR_STRING: &str = "k8s.io/apimachinery/pkg/util/intstr.IntOrString";
pub(crate) const TIME: &str = "k8s.io/apimachinery/pkg/apis/meta/v1.Time";
pub(crate) const FIELDS_V1: &str = "k8s.io/apimachinery/pkg/apis/meta/v1.FieldsV1";

static SCHEMA: LazyLock<Result<Schema, serde_json::Error>> =
    LazyLock::new(|| serde_json::from_str(include_str!("go_types.json")));

impl Schema {
    /// The table compiled into the binary.
    pub(crate) fn get() -> Result<&'static Schema, HashError> {
        SCHEMA
            .as_ref()
            .map_err(|e| HashError::Schema(format!("go_types.json: {e}")))
    }

    pub(crate) fn ty(&self, id: &str) -> Result<&GoType, HashError> {
        self.types
            .get(id)
            .ok_or_else(|| HashError::Schema(format!("no Go type {id}")))
    }

    pub(crate) fn elem<'a>(&'a self, t: &'a GoType) -> Result<(&'a str, &'a GoType), HashError> {
        let id = t
            .elem
            .as_deref()
            .ok_or_else(|| HashError::Schema(format!("{} has no element type", t.go)))?;
        Ok((id, self.ty(id)?))
    }
}
