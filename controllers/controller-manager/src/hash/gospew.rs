//! go-spew's `%#v` under upstream's hashing config (`k8s.io/utils/dump.ForHash`:
//! methods disabled, map keys sorted, no pointer addresses or capacities),
//! printed from a served object's JSON by walking the Go type table.
//!
//! The object is taken as kube-controller-manager's informers decode it from
//! protobuf: an empty list or map arrives as nil, so `[]` and `{}` print as
//! spew's `<nil>` exactly as absent ones do.

use serde_json::Value;

use super::HashError;
use super::goquantity::go_quantity;
use super::gotime::go_time;
use super::schema::{FIELDS_V1, GoType, INT_OR_STRING, Kind, QUANTITY, Schema, TIME};

/// `dump.ForHash(v)` for a value of Go type `id`.
pub(crate) fn for_hash(schema: &Schema, id: &str, value: &Value) -> Result<String, HashError> {
    let mut p = Printer {
        schema,
        out: String::new(),
    };
    p.format(id, Some(value), false)?;
    Ok(p.out)
}

struct Printer<'s> {
    schema: &'s Schema,
    out: String,
}

/// `Value::Null` is Go's nil/zero, as an absent key is.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn shape(t: &GoType, v: &Value) -> HashError {
    HashError::Shape {
        go_type: t.go.clone(),
        value: v.to_string(),
    }
}

impl Printer<'_> {
    /// spew `formatState.format`; `ignore_type` is its `ignoreNextType`
    /// (set for slice elements, map keys and values, and pointees).
    fn format(&mut self, id: &str, v: Option<&Value>, ignore_type: bool) -> Result<(), HashError> {
        let t = self.schema.ty(id)?;
        let v = present(v);
        if t.kind == Kind::Ptr {
            return self.format_ptr(t, v, ignore_type);
        }
        if !ignore_type {
            self.out.push('(');
            self.out.push_str(&t.go);
            self.out.push(')');
        }
        // Types whose JSON is not their Go layout: print their Go layout.
        let converted = match (id, v) {
            (QUANTITY, Some(Value::String(s))) => Some(go_quantity(s)?),
            (INT_OR_STRING, Some(Value::Number(n))) => Some(serde_json::json!({
                "Type": 0, "IntVal": n, "StrVal": ""
            })),
            (INT_OR_STRING, Some(Value::String(s))) => Some(serde_json::json!({
                "Type": 1, "IntVal": 0, "StrVal": s
            })),
            (TIME, Some(Value::String(s))) => Some(go_time(s)?),
            (QUANTITY | INT_OR_STRING | TIME, Some(other)) => return Err(shape(t, other)),
            // Its JSON is free-form; Go holds the raw bytes.
            (FIELDS_V1, Some(_)) => return Err(HashError::Unsupported(t.go.clone())),
            _ => None,
        };
        self.format_value(t, converted.as_ref().or(v))
    }

    /// spew `formatPtr` for a single level of indirection (the API types
    /// have no `**T`).
    fn format_ptr(
        &mut self,
        t: &GoType,
        v: Option<&Value>,
        ignore_type: bool,
    ) -> Result<(), HashError> {
        let (elem_id, elem) = self.schema.elem(t)?;
        match (v, ignore_type) {
            (None, true) => self.out.push_str("<nil>"),
            (None, false) => {
                self.out.push('(');
                self.out.push_str(&t.go);
                self.out.push_str(")<nil>");
            }
            (Some(v), ignore) => {
                if ignore {
                    self.out.push_str("<*>");
                } else {
                    self.out.push_str("(*");
                    self.out.push_str(&elem.go);
                    self.out.push(')');
                }
                self.format(elem_id, Some(v), true)?;
            }
        }
        Ok(())
    }

    fn format_value(&mut self, t: &GoType, v: Option<&Value>) -> Result<(), HashError> {
        match t.kind {
            Kind::Bool => match v {
                None => self.out.push_str("false"),
                Some(Value::Bool(b)) => self.out.push_str(if *b { "true" } else { "false" }),
                Some(other) => return Err(shape(t, other)),
            },
            Kind::Int | Kind::Uint => match v {
                None => self.out.push('0'),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
                    self.out.push_str(&n.to_string());
                }
                Some(other) => return Err(shape(t, other)),
            },
            Kind::String => match v {
                None => {}
                Some(Value::String(s)) => self.out.push_str(s),
                Some(other) => return Err(shape(t, other)),
            },
            Kind::Float => return Err(HashError::Unsupported(t.go.clone())),
            Kind::Slice | Kind::Array => {
                let items = match v {
                    None => None,
                    Some(Value::Array(items)) => Some(items),
                    Some(other) => return Err(shape(t, other)),
                };
                match items {
                    Some(items) if !items.is_empty() || t.kind == Kind::Array => {
                        let (elem_id, _) = self.schema.elem(t)?;
                        self.out.push('[');
                        for (i, item) in items.iter().enumerate() {
                            if i > 0 {
                                self.out.push(' ');
                            }
                            self.format(elem_id, Some(item), true)?;
                        }
                        self.out.push(']');
                    }
                    _ => self.out.push_str("<nil>"),
                }
            }
            Kind::Map => {
                let entries = match v {
                    None => None,
                    Some(Value::Object(m)) => Some(m),
                    Some(other) => return Err(shape(t, other)),
                };
                match entries {
                    Some(m) if !m.is_empty() => {
                        let key_id = t.key.as_deref().ok_or_else(|| {
                            HashError::Schema(format!("{} has no key type", t.go))
                        })?;
                        let (elem_id, _) = self.schema.elem(t)?;
                        let mut keys: Vec<&String> = m.keys().collect();
                        keys.sort();
                        self.out.push_str("map[");
                        for (i, k) in keys.into_iter().enumerate() {
                            if i > 0 {
                                self.out.push(' ');
                            }
                            self.format(key_id, Some(&Value::String(k.clone())), true)?;
                            self.out.push(':');
                            self.format(elem_id, m.get(k), true)?;
                        }
                        self.out.push(']');
                    }
                    _ => self.out.push_str("<nil>"),
                }
            }
            Kind::Struct => {
                let obj = match v {
                    None => None,
                    Some(Value::Object(m)) => Some(m),
                    Some(other) => return Err(shape(t, other)),
                };
                self.out.push('{');
                for (i, f) in t.fields.iter().enumerate() {
                    if i > 0 {
                        self.out.push(' ');
                    }
                    self.out.push_str(&f.name);
                    self.out.push(':');
                    let ft = self.schema.ty(&f.type_id)?;
                    let fv = if f.inline && ft.kind == Kind::Struct {
                        v
                    } else {
                        obj.and_then(|o| o.get(&f.json))
                    };
                    self.format(&f.type_id, fv, false)?;
                }
                self.out.push('}');
            }
            Kind::Ptr => return Err(HashError::Schema(format!("{}: nested pointer", t.go))),
        }
        Ok(())
    }
}
