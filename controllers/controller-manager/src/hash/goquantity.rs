//! How Go holds a `resource.Quantity` after decoding it (upstream
//! `resource.ParseQuantity`, which both the JSON and the protobuf decoders
//! call on the served string): spew prints the struct's private fields, so a
//! hash over a template with resources depends on them, not on the string.
//!
//! The result is shaped like the Go struct (`i`, `d`, `s`, `Format`, and for
//! the arbitrary-precision path `inf.Dec{unscaled big.Int{neg, abs}, scale}`
//! with `abs` as little-endian 64-bit words) so the schema-driven printer in
//! `gospew` prints it as spew does.

use serde_json::{Value, json};

use super::HashError;

/// Upstream `maxInt64Factors`: the decimal digits an int64 always holds.
const MAX_INT64_FACTORS: i32 = 18;
/// Upstream `Nano` scale: the smallest the fast path keeps.
const NANO: i32 = -9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DecimalExponent,
    BinarySI,
    DecimalSI,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::DecimalExponent => "DecimalExponent",
            Format::BinarySI => "BinarySI",
            Format::DecimalSI => "DecimalSI",
        }
    }
}

/// The pieces of upstream `parseQuantityString`.
struct Parts<'a> {
    positive: bool,
    /// The number as written (sign, digits, fraction), for the slow path.
    value: &'a str,
    /// Integer digits without leading zeros ("0" when none).
    num: &'a str,
    /// Fraction digits.
    denom: &'a str,
    suffix: &'a str,
}

fn bad(s: &str) -> HashError {
    HashError::Quantity(s.to_string())
}

fn digits_end(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(b.len(), |p| from + p)
}

fn parse_parts(s: &str) -> Result<Parts<'_>, HashError> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    while pos < b.len() && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= b.len() {
        return Ok(Parts {
            positive,
            value: "0",
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_end = digits_end(b, pos);
    let num = if num_end == pos {
        "0"
    } else {
        &s[pos..num_end]
    };
    pos = num_end;
    let mut denom = "";
    if pos < b.len() && b[pos] == b'.' {
        let start = pos + 1;
        let end = digits_end(b, start);
        denom = &s[start..end];
        pos = end;
    }
    let value = &s[..pos];
    let suffix = &s[pos..];
    // Upstream accepts suffix letters, then an optional sign and digits.
    let rest = suffix.trim_start_matches(|c| "eEinumkKMGTP".contains(c));
    let rest = rest.strip_prefix(['-', '+']).unwrap_or(rest);
    if !rest.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad(s));
    }
    Ok(Parts {
        positive,
        value,
        num,
        denom,
        suffix,
    })
}

/// Upstream `suffixHandler.interpret`: (base, exponent, format).
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(e) = dec {
        return Some((10, e, Format::DecimalSI));
    }
    let bin = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(e) = bin {
        return Some((2, e, Format::BinarySI));
    }
    let exp = suffix.strip_prefix(['e', 'E'])?;
    if exp.is_empty() {
        return None;
    }
    let parsed: i64 = exp.parse().ok()?;
    // Go converts with int32(parsed): keep the low 32 bits.
    Some((10, parsed as i32, Format::DecimalExponent))
}

/// The Go-shaped value of `ParseQuantity(s)`.
pub(crate) fn go_quantity(s: &str) -> Result<Value, HashError> {
    if s.is_empty() {
        return Err(bad(s));
    }
    if s == "0" {
        return Ok(int_amount(0, 0, Some(s), Format::DecimalSI));
    }
    let p = parse_parts(s)?;
    let (base, exponent, format) = interpret(p.suffix).ok_or_else(|| bad(s))?;

    let mut scale = 0i32;
    let mut mantissa = 1i64;
    let precision = match format {
        Format::DecimalExponent | Format::DecimalSI => {
            scale = exponent;
            MAX_INT64_FACTORS - (p.num.len() + p.denom.len()) as i32
        }
        Format::BinarySI => {
            if exponent >= 0 && p.denom.is_empty() {
                mantissa = 1i64.checked_shl(exponent as u32).unwrap_or(0);
                15 - p.num.len() as i32 - (exponent * 3 / 10) - 1
            } else {
                -1
            }
        }
    };

    if precision >= 0 {
        scale -= p.denom.len() as i32;
        if scale >= NANO {
            let shifted = format!("{}{}", p.num, p.denom);
            let value: i64 = shifted.parse().map_err(|_| bad(s))?;
            if let Some(mut result) = value.checked_mul(mantissa) {
                if !p.positive {
                    result = -result;
                }
                let canonical = match format {
                    Format::BinarySI => exponent % 10 == 0 && (value & 0x07) != 0,
                    _ => scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0'),
                };
                return Ok(int_amount(result, scale, canonical.then_some(s), format));
            }
        }
    }
    slow_path(s, &p, base, exponent, format)
}

fn int_amount(value: i64, scale: i32, cached: Option<&str>, format: Format) -> Value {
    json!({
        "i": { "value": value, "scale": scale },
        "d": { "Dec": null },
        "s": cached.unwrap_or(""),
        "Format": format.as_str(),
    })
}

/// Upstream's `inf.Dec` path for what an int64 with a scale cannot hold.
fn slow_path(
    s: &str,
    p: &Parts<'_>,
    base: u32,
    exponent: i32,
    mut format: Format,
) -> Result<Value, HashError> {
    // inf.Dec.SetString(value): digits without the point, scale = fraction
    // length; the sign is dropped here and put back at the end, as upstream
    // does around its rounding.
    let digits = p
        .value
        .trim_start_matches(['-', '+'])
        .replace('.', "")
        .trim_start_matches('0')
        .to_string();
    let mut unscaled = Nat::from_decimal(&digits).ok_or_else(|| bad(s))?;
    let mut dec_scale: i64 = p.denom.len() as i64;
    if base == 10 {
        dec_scale -= i64::from(exponent);
    } else {
        unscaled.shl(exponent as u32);
    }
    if !unscaled.is_zero() {
        // Round(amount, Nano, RoundUp): the result always has scale 9.
        if dec_scale <= 9 {
            for _ in dec_scale..9 {
                unscaled.mul_small(10);
            }
        } else {
            let mut inexact = false;
            for _ in 9..dec_scale {
                inexact |= unscaled.div_small(10) != 0;
            }
            if inexact {
                unscaled.add_small(1);
            }
        }
        dec_scale = 9;
    }
    if format == Format::BinarySI && unscaled.exceeds_max_int64(dec_scale) {
        unscaled = Nat::from_u64(i64::MAX as u64);
        dec_scale = 0;
    }
    if format == Format::BinarySI && !unscaled.is_zero() && unscaled.is_below_one(dec_scale) {
        format = Format::DecimalSI;
    }
    let neg = !p.positive && !unscaled.is_zero();
    let abs: Value = if unscaled.is_zero() {
        Value::Null
    } else {
        Value::Array(unscaled.0.iter().map(|w| json!(w)).collect())
    };
    Ok(json!({
        "i": { "value": 0, "scale": 0 },
        "d": { "Dec": { "unscaled": { "neg": neg, "abs": abs }, "scale": dec_scale } },
        "s": "",
        "Format": format.as_str(),
    }))
}

/// A non-negative integer as Go's `big.nat`: little-endian 64-bit words,
/// no leading zero words.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Nat(Vec<u64>);

impl Nat {
    fn from_u64(v: u64) -> Self {
        let mut n = Nat(vec![v]);
        n.trim();
        n
    }

    fn from_decimal(digits: &str) -> Option<Self> {
        let mut n = Nat(Vec::new());
        for c in digits.bytes() {
            if !c.is_ascii_digit() {
                return None;
            }
            n.mul_small(10);
            n.add_small(u64::from(c - b'0'));
        }
        Some(n)
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn mul_small(&mut self, m: u64) {
        let mut carry = 0u128;
        for w in &mut self.0 {
            let v = u128::from(*w) * u128::from(m) + carry;
            *w = v as u64;
            carry = v >> 64;
        }
        if carry != 0 {
            self.0.push(carry as u64);
        }
        self.trim();
    }

    fn add_small(&mut self, a: u64) {
        let mut carry = u128::from(a);
        for w in &mut self.0 {
            if carry == 0 {
                break;
            }
            let v = u128::from(*w) + carry;
            *w = v as u64;
            carry = v >> 64;
        }
        if carry != 0 {
            self.0.push(carry as u64);
        }
    }

    /// Divides in place, returning the remainder.
    fn div_small(&mut self, d: u64) -> u64 {
        let mut rem = 0u128;
        for w in self.0.iter_mut().rev() {
            let cur = (rem << 64) | u128::from(*w);
            *w = (cur / u128::from(d)) as u64;
            rem = cur % u128::from(d);
        }
        self.trim();
        rem as u64
    }

    fn shl(&mut self, bits: u32) {
        for _ in 0..bits {
            self.mul_small(2);
        }
    }

    /// `self * 10^-scale > 2^63-1` (scale >= 0 here).
    fn exceeds_max_int64(&self, scale: i64) -> bool {
        let mut limit = Nat::from_u64(i64::MAX as u64);
        for _ in 0..scale.max(0) {
            limit.mul_small(10);
        }
        self.cmp_nat(&limit) == std::cmp::Ordering::Greater
    }

    /// `self * 10^-scale < 1`.
    fn is_below_one(&self, scale: i64) -> bool {
        let mut one = Nat::from_u64(1);
        for _ in 0..scale.max(0) {
            one.mul_small(10);
        }
        self.cmp_nat(&one) == std::cmp::Ordering::Less
    }

    fn cmp_nat(&self, other: &Nat) -> std::cmp::Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}
