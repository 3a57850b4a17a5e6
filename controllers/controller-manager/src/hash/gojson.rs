//! Go's `encoding/json` as upstream's `getPatch` uses it: `json.Marshal` of
//! the typed object (zero values of fields without `omitempty` included,
//! `omitzero` honoured), decoded into `map[string]interface{}` and marshaled
//! again — so keys come out sorted, every number goes through float64, and
//! strings are escaped the Go way (HTML characters and U+2028/U+2029 too).

use serde_json::{Map, Value};

use super::HashError;
use super::schema::{GoType, INT_OR_STRING, Kind, QUANTITY, Schema, TIME};

/// `json.Marshal` of a value of Go type `id`, as the generic value Go's
/// `json.Unmarshal` into `interface{}` would give back.
pub(crate) fn typed(schema: &Schema, id: &str, v: Option<&Value>) -> Result<Value, HashError> {
    let t = schema.ty(id)?;
    let v = v.filter(|v| !v.is_null());
    match id {
        // MarshalJSON: the canonical string (zero Quantity prints "0").
        QUANTITY => {
            return Ok(v.cloned().unwrap_or_else(|| Value::String("0".into())));
        }
        INT_OR_STRING => return Ok(v.cloned().unwrap_or_else(|| Value::from(0))),
        TIME => return Ok(v.cloned().unwrap_or(Value::Null)),
        _ if t.marshaler && t.kind != Kind::Ptr => {
            return Err(HashError::Unsupported(t.go.clone()));
        }
        _ => {}
    }
    Ok(match t.kind {
        Kind::Ptr => match v {
            None => Value::Null,
            Some(v) => typed(schema, schema.elem(t)?.0, Some(v))?,
        },
        Kind::Bool => v.cloned().unwrap_or(Value::Bool(false)),
        Kind::Int | Kind::Uint | Kind::Float => v.cloned().unwrap_or_else(|| Value::from(0)),
        Kind::String => v.cloned().unwrap_or_else(|| Value::String(String::new())),
        Kind::Slice | Kind::Array => match v {
            Some(Value::Array(items)) if !items.is_empty() => {
                let elem = schema.elem(t)?.0;
                Value::Array(
                    items
                        .iter()
                        .map(|i| typed(schema, elem, Some(i)))
                        .collect::<Result<_, _>>()?,
                )
            }
            // Decoded from protobuf, an empty list is nil: `null`.
            _ => Value::Null,
        },
        Kind::Map => match v {
            Some(Value::Object(m)) if !m.is_empty() => {
                let elem = schema.elem(t)?.0;
                let mut out = Map::new();
                for (k, item) in m {
                    out.insert(k.clone(), typed(schema, elem, Some(item))?);
                }
                Value::Object(out)
            }
            _ => Value::Null,
        },
        Kind::Struct => {
            let mut out = Map::new();
            struct_fields(schema, t, v, &mut out)?;
            Value::Object(out)
        }
    })
}

fn struct_fields(
    schema: &Schema,
    t: &GoType,
    v: Option<&Value>,
    out: &mut Map<String, Value>,
) -> Result<(), HashError> {
    let obj = v.and_then(Value::as_object);
    for f in &t.fields {
        if f.json == "-" {
            continue;
        }
        let ft = schema.ty(&f.type_id)?;
        if f.inline && ft.kind == Kind::Struct {
            struct_fields(schema, ft, v, out)?;
            continue;
        }
        let fv = obj.and_then(|o| o.get(&f.json)).filter(|v| !v.is_null());
        if f.omitempty && is_empty(ft, fv) {
            continue;
        }
        if f.omitzero && is_zero(schema, ft, fv)? {
            continue;
        }
        out.insert(f.json.clone(), typed(schema, &f.type_id, fv)?);
    }
    Ok(())
}

/// encoding/json's `isEmptyValue` on the Go value (structs are never empty;
/// an empty list or map is nil, so empty).
fn is_empty(t: &GoType, v: Option<&Value>) -> bool {
    if t.kind == Kind::Struct {
        return false;
    }
    let Some(v) = v else { return true };
    match (t.kind, v) {
        (Kind::Ptr, _) => false,
        (_, Value::Bool(b)) => !b,
        (_, Value::Number(n)) => n.as_f64() == Some(0.0),
        (_, Value::String(s)) => s.is_empty() && t.kind == Kind::String,
        (_, Value::Array(a)) => a.is_empty(),
        (_, Value::Object(m)) => m.is_empty(),
        (_, Value::Null) => true,
    }
}

/// `omitzero`: the Go zero value (for `metav1.Time`, its `IsZero`).
fn is_zero(schema: &Schema, t: &GoType, v: Option<&Value>) -> Result<bool, HashError> {
    let Some(v) = v else { return Ok(true) };
    Ok(match (t.kind, v) {
        (Kind::Ptr, _) => false,
        (Kind::Struct, Value::Object(m)) => {
            for f in &t.fields {
                let ft = schema.ty(&f.type_id)?;
                let fv = if f.inline && ft.kind == Kind::Struct {
                    Some(v)
                } else {
                    m.get(&f.json).filter(|v| !v.is_null())
                };
                if !is_zero(schema, ft, fv)? {
                    return Ok(false);
                }
            }
            true
        }
        (Kind::Struct, _) => false,
        _ => is_empty(t, Some(v)),
    })
}

/// Go `json.Marshal` of a generic value: sorted keys, float64 numbers, Go's
/// string escaping.
pub(crate) fn marshal(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => out.extend_from_slice(go_float(n.as_f64().unwrap_or(0.0)).as_bytes()),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                marshal(item, out);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(k, out);
                out.push(b':');
                if let Some(item) = m.get(k) {
                    marshal(item, out);
                }
            }
            out.push(b'}');
        }
    }
}

/// encoding/json's float64 encoder: `strconv.FormatFloat(f, 'f', -1, 64)`
/// below 1e21 (and from 1e-6), exponent form (`1e+21`, `1e-7`) outside.
fn go_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    let abs = f.abs();
    // Rust's `{:e}` is the shortest round-trip form, as Go's precision -1.
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let sign = if exp < 0 { "-" } else { "+" };
        return format!("{mantissa}e{sign}{}", exp.abs());
    }
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let point = exp + 1; // digits before the decimal point
    let mut s = String::new();
    if negative {
        s.push('-');
    }
    if point <= 0 {
        s.push_str("0.");
        s.push_str(&"0".repeat((-point) as usize));
        s.push_str(&digits);
    } else if (point as usize) >= digits.len() {
        s.push_str(&digits);
        s.push_str(&"0".repeat(point as usize - digits.len()));
    } else {
        s.push_str(&digits[..point as usize]);
        s.push('.');
        s.push_str(&digits[point as usize..]);
    }
    s
}

/// encoding/json's string encoder with HTML escaping on (`json.Marshal`).
fn string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_does() {
        // strconv.FormatFloat(float64(x), 'f', -1, 64) in Go.
        assert_eq!(go_float(30.0), "30");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(-1.0), "-1");
        assert_eq!(go_float(9007199254740993_i64 as f64), "9007199254740992");
        assert_eq!(go_float(i64::MAX as f64), "9223372036854776000");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.5), "0.5");
    }

    #[test]
    fn strings_escape_as_go_does() {
        let mut out = Vec::new();
        string("<a>&\"\\\u{2028}\u{7f}é\u{1}\n", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"\\u003ca\\u003e\\u0026\\\"\\\\\\u2028\u{7f}é\\u0001\\n\""
        );
    }
}
