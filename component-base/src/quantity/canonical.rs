//! Upstream `Quantity.CanonicalizeBytes`: the serialised form of a value in a
//! given format.
//!
//! - DecimalSI / DecimalExponent: all factors of ten move into the exponent,
//!   which is then lowered to a multiple of three; DecimalSI spells it as an
//!   SI suffix (n … E) and falls back to `e<exp>` outside that range.
//! - BinarySI: values strictly between -1024 and 1024, and values with a
//!   fractional part, are written as DecimalSI; otherwise all factors of 1024
//!   move into a Ki … Ei suffix, falling back to the exact decimal
//!   (exponent) form past Ei.

use super::Format;
use super::bigdec::{Dec, Mag};

pub(super) fn canonical(amount: &Dec, format: Format) -> String {
    if amount.is_zero() {
        return "0".to_string();
    }
    if format != Format::BinarySI {
        return decimal(amount, format);
    }
    if amount.abs() < Dec::from_i128(1024, 0) {
        return decimal(amount, Format::DecimalSI);
    }
    let (rounded, exact) = amount.round_away(0);
    if !exact {
        return decimal(amount, Format::DecimalSI);
    }
    binary(&rounded).unwrap_or_else(|| decimal(amount, Format::DecimalExponent))
}

fn sign(amount: &Dec) -> &'static str {
    if amount.neg { "-" } else { "" }
}

fn decimal(amount: &Dec, format: Format) -> String {
    let mut mag = amount.mag.clone();
    let mut exp = amount.exp;
    let surplus = exp.rem_euclid(3);
    if surplus != 0 {
        mag.mul_pow10(surplus as u64);
        exp -= surplus;
    }
    let suffix = match (format, exp) {
        (Format::DecimalSI, -9) => "n".to_string(),
        (Format::DecimalSI, -6) => "u".to_string(),
        (Format::DecimalSI, -3) => "m".to_string(),
        (_, 0) => String::new(),
        (Format::DecimalSI, 3) => "k".to_string(),
        (Format::DecimalSI, 6) => "M".to_string(),
        (Format::DecimalSI, 9) => "G".to_string(),
        (Format::DecimalSI, 12) => "T".to_string(),
        (Format::DecimalSI, 15) => "P".to_string(),
        (Format::DecimalSI, 18) => "E".to_string(),
        _ => format!("e{exp}"),
    };
    format!("{}{}{}", sign(amount), mag.to_decimal_string(), suffix)
}

/// Base-1024 form of an integral value, or None when it needs a larger
/// suffix than Ei.
fn binary(rounded: &Dec) -> Option<String> {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    // 10^70 is a multiple of 2^70 = 1024^7, so such values need no suffix
    // search (and must not be written out digit by digit).
    if rounded.exp >= 70 {
        return None;
    }
    let mut mag: Mag = rounded.mag.clone();
    mag.mul_pow10(rounded.exp as u64);
    let mut power = 0;
    loop {
        let mut quotient = mag.clone();
        if quotient.divrem_small(1024) != 0 {
            break;
        }
        power += 1;
        if power >= SUFFIXES.len() {
            return None;
        }
        mag = quotient;
    }
    Some(format!(
        "{}{}{}",
        sign(rounded),
        mag.to_decimal_string(),
        SUFFIXES[power]
    ))
}
