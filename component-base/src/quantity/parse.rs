//! Upstream `ParseQuantity`: the hand-written scanner, the suffix table and
//! the rules that decide rounding, capping and whether the input string is
//! kept as the cached canonical form.

use super::bigdec::{Dec, Mag};
use super::{Format, ParsedQuantity, QuantityError};

/// The pieces of `<sign><digits>.<digits><suffix>` as upstream's
/// `parseQuantityString` splits them. `num` has its leading zeros removed
/// (and is "0" when nothing is left).
struct Scanned<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

const SUFFIX_CHARS: &[u8] = b"eEinumkKMGTP";

fn scan(s: &str) -> Result<Scanned<'_>, QuantityError> {
    let bytes = s.as_bytes();
    let end = bytes.len();
    let mut out = Scanned {
        positive: true,
        num: "0",
        denom: "",
        suffix: "",
    };
    let mut pos = 0;
    match bytes.first() {
        Some(b'-') => {
            out.positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && bytes[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(out);
    }
    let num_start = pos;
    while pos < end && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos > num_start {
        out.num = &s[num_start..pos];
    }
    if pos >= end {
        return Ok(out);
    }
    if bytes[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        out.denom = &s[denom_start..pos];
        if pos >= end {
            return Ok(out);
        }
    }
    let suffix_start = pos;
    while pos < end && SUFFIX_CHARS.contains(&bytes[pos]) {
        pos += 1;
    }
    if pos < end && (bytes[pos] == b'-' || bytes[pos] == b'+') {
        pos += 1;
    }
    while pos < end && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        // Something other than an exponent follows the suffix letters.
        return Err(QuantityError::FormatWrong);
    }
    out.suffix = &s[suffix_start..];
    Ok(out)
}

/// Upstream `quantitySuffixer.interpret`: (base, exponent, format).
fn interpret(suffix: &str) -> Option<(u32, i64, Format)> {
    let decimal = |exp| Some((10, exp, Format::DecimalSI));
    let binary = |exp| Some((2, exp, Format::BinarySI));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let exp: i64 = rest.parse().ok()?;
            // Upstream stores the exponent in an int32 that is later negated,
            // so it rejects anything outside ±MaxInt32.
            (exp.abs() <= i64::from(i32::MAX)).then_some((10, exp, Format::DecimalExponent))
        }
    }
}

/// Whether upstream's int64 fast path keeps the input string as the
/// quantity's serialised form (it then re-emits it verbatim, e.g. "+1" or
/// "1E3", instead of the computed canonical string).
fn upstream_keeps_input(scanned: &Scanned<'_>, base: u32, exponent: i64, format: Format) -> bool {
    let (num, denom) = (scanned.num, scanned.denom);
    let precision = match format {
        Format::BinarySI if denom.is_empty() => 15 - num.len() as i64 - exponent * 3 / 10 - 1,
        Format::BinarySI => -1,
        _ => 18 - (num.len() + denom.len()) as i64,
    };
    if precision < 0 {
        return false;
    }
    let scale = if base == 10 { exponent } else { 0 } - denom.len() as i64;
    if scale < -9 {
        return false;
    }
    let shifted = format!("{num}{denom}");
    let Ok(value) = shifted.parse::<i64>() else {
        return false;
    };
    let mantissa = if format == Format::BinarySI {
        1i64 << exponent
    } else {
        1
    };
    if value.checked_mul(mantissa).is_none() {
        return false;
    }
    match format {
        Format::BinarySI => value & 0x07 != 0,
        _ => scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0'),
    }
}

pub(super) fn parse(s: &str) -> Result<ParsedQuantity, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    if s == "0" {
        return Ok(ParsedQuantity {
            amount: Dec::default(),
            format: Format::DecimalSI,
            original: Some(s.into()),
        });
    }
    let scanned = scan(s)?;
    let (base, exponent, mut format) = interpret(scanned.suffix).ok_or(QuantityError::Suffix)?;

    let mut mag = Mag::from_digits(&format!("{}{}", scanned.num, scanned.denom));
    let mut exp = -(scanned.denom.len() as i64);
    if base == 10 {
        exp += exponent;
    } else {
        mag.mul_pow2(exponent as u32);
    }
    // Non-zero values are rounded away from zero to nano precision: asking
    // for a tiny amount of a resource should still get some of it.
    let (mut amount, _) = Dec::new(!scanned.positive, mag, exp).round_away(-9);

    if format == Format::BinarySI {
        let max_allowed = Dec::from_i128(i128::from(i64::MAX), 0);
        if amount.abs() > max_allowed {
            amount = if amount.neg {
                max_allowed.neg()
            } else {
                max_allowed
            };
        }
        if !amount.is_zero() && amount.abs() < Dec::from_i128(1, 0) {
            format = Format::DecimalSI;
        }
    }
    let original = upstream_keeps_input(&scanned, base, exponent, format).then(|| s.into());
    Ok(ParsedQuantity {
        amount,
        format,
        original,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_splits_like_upstream() {
        // Upstream TestParseQuantityString.
        let cases = [
            ("0.025Ti", true, "0", "025", "Ti"),
            ("1.025Ti", true, "1", "025", "Ti"),
            ("-1.025Ti", false, "1", "025", "Ti"),
            (".", true, "0", "", ""),
            ("-.", false, "0", "", ""),
            ("1E-3", true, "1", "", "E-3"),
        ];
        for (input, positive, num, denom, suffix) in cases {
            let got = scan(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (got.positive, got.num, got.denom, got.suffix),
                (positive, num, denom, suffix),
                "{input}"
            );
        }
    }

    #[test]
    fn exponent_suffix_bounds() {
        assert_eq!(interpret("e14"), Some((10, 14, Format::DecimalExponent)));
        assert_eq!(
            interpret("E2147483647"),
            Some((10, 2147483647, Format::DecimalExponent))
        );
        assert_eq!(
            interpret("E-2147483647"),
            Some((10, -2147483647, Format::DecimalExponent))
        );
        for bad in [
            "E2147483648",
            "E-2147483648",
            "E4294967297",
            "e",
            "ee5",
            "Ki2",
        ] {
            assert_eq!(interpret(bad), None, "{bad}");
        }
    }
}
