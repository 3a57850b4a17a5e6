//! Resource quantities as the kubelet uses them: milli-values and byte values, rounded
//! up like `resource.Quantity.MilliValue()` / `Value()`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Parses a quantity string to milli-units, rounding up. `None` if malformed.
pub fn parse_milli(text: &str) -> Option<i128> {
    let text = text.trim();
    let (sign, rest) = match text.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(split);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let mantissa: i128 = digits.parse().ok()?;
    let mut num = mantissa * 1000;
    let mut den: i128 = 10i128.checked_pow(frac_part.len() as u32)?;
    let (base, exp): (i128, i32) = match suffix {
        "" => (10, 0),
        "n" => (10, -9),
        "u" => (10, -6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" => (2, 10),
        "Mi" => (2, 20),
        "Gi" => (2, 30),
        "Ti" => (2, 40),
        "Pi" => (2, 50),
        "Ei" => (2, 60),
        s if s.starts_with(['e', 'E']) => (10, s[1..].parse().ok()?),
        _ => return None,
    };
    if exp >= 0 {
        num = num.checked_mul(base.checked_pow(exp as u32)?)?;
    } else {
        den = den.checked_mul(base.checked_pow((-exp) as u32)?)?;
    }
    Some(sign * ((num + den - 1) / den))
}

/// `Quantity.MilliValue()`; malformed or absent quantities count as zero.
pub fn milli_value(q: Option<&Quantity>) -> i64 {
    q.and_then(|q| parse_milli(&q.0)).unwrap_or(0) as i64
}

/// `Quantity.Value()` (whole units, rounded up).
pub fn value(q: Option<&Quantity>) -> i64 {
    let m = q.and_then(|q| parse_milli(&q.0)).unwrap_or(0);
    (if m >= 0 { (m + 999) / 1000 } else { m / 1000 }) as i64
}

/// Looks up a resource in an optional resource list.
pub fn get<'a>(list: Option<&'a BTreeMap<String, Quantity>>, name: &str) -> Option<&'a Quantity> {
    list.and_then(|l| l.get(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quantities() {
        let cases = [
            ("1", Some(1000)),
            ("500m", Some(500)),
            ("0.5", Some(500)),
            ("1.5", Some(1500)),
            ("100Mi", Some(100 * 1024 * 1024 * 1000)),
            ("1Gi", Some(1024 * 1024 * 1024 * 1000)),
            ("1k", Some(1_000_000)),
            ("1e3", Some(1_000_000)),
            ("1n", Some(1)),
            ("-2", Some(-2000)),
            ("", None),
            ("1Q", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_milli(text), want, "{text}");
        }
        assert_eq!(value(Some(&Quantity("1500m".into()))), 2);
        assert_eq!(milli_value(Some(&Quantity("2".into()))), 2000);
    }
}
