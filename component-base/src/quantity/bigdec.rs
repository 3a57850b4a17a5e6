//! Exact signed decimals of unbounded size: `±mag × 10^exp`.
//!
//! Upstream keeps small quantities in an `int64 × 10^scale` fast path and
//! falls back to `inf.Dec` (a `big.Int` mantissa with an int32 scale). We keep
//! a single representation equivalent to the fallback, so every value upstream
//! can hold is held exactly here too. The magnitude is stored in base 10^9
//! limbs, which makes the decimal shifts that dominate quantity arithmetic
//! cheap and keeps string conversion trivial.

use std::cmp::Ordering;

const LIMB_BASE: u64 = 1_000_000_000;
const LIMB_DIGITS: u64 = 9;
const POW10: [u32; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// Unsigned magnitude: little-endian base-10^9 limbs without leading zero
/// limbs; zero is the empty vector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Mag(Vec<u32>);

impl Mag {
    pub(crate) fn from_u128(mut v: u128) -> Self {
        let mut limbs = Vec::new();
        while v > 0 {
            limbs.push((v % u128::from(LIMB_BASE)) as u32);
            v /= u128::from(LIMB_BASE);
        }
        Mag(limbs)
    }

    /// Parses a string of ASCII digits (the caller has validated them).
    pub(crate) fn from_digits(digits: &str) -> Self {
        let bytes = digits.trim_start_matches('0').as_bytes();
        let mut limbs = Vec::with_capacity(bytes.len() / 9 + 1);
        let mut end = bytes.len();
        while end > 0 {
            let start = end.saturating_sub(LIMB_DIGITS as usize);
            let limb = bytes[start..end]
                .iter()
                .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
            limbs.push(limb);
            end = start;
        }
        let mut mag = Mag(limbs);
        mag.trim();
        mag
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn to_u128(&self) -> Option<u128> {
        let mut v: u128 = 0;
        for limb in self.0.iter().rev() {
            v = v
                .checked_mul(u128::from(LIMB_BASE))?
                .checked_add(u128::from(*limb))?;
        }
        Some(v)
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    /// Number of decimal digits (0 for zero).
    pub(crate) fn digit_count(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(top) => {
                let top_digits = POW10.iter().take_while(|p| **p <= *top).count() as u64;
                (self.0.len() as u64 - 1) * LIMB_DIGITS + top_digits
            }
        }
    }

    pub(crate) fn cmp_mag(&self, other: &Mag) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    pub(crate) fn add(&self, other: &Mag) -> Mag {
        let (long, short) = if self.0.len() >= other.0.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut out = Vec::with_capacity(long.0.len() + 1);
        let mut carry = 0u64;
        for (i, limb) in long.0.iter().enumerate() {
            let sum = u64::from(*limb) + u64::from(short.0.get(i).copied().unwrap_or(0)) + carry;
            out.push((sum % LIMB_BASE) as u32);
            carry = sum / LIMB_BASE;
        }
        if carry > 0 {
            out.push(carry as u32);
        }
        Mag(out)
    }

    /// `self - other`; the caller guarantees `self >= other`.
    pub(crate) fn sub(&self, other: &Mag) -> Mag {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter().enumerate() {
            let mut diff =
                i64::from(*limb) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = 0;
            if diff < 0 {
                diff += LIMB_BASE as i64;
                borrow = 1;
            }
            out.push(diff as u32);
        }
        let mut mag = Mag(out);
        mag.trim();
        mag
    }

    pub(crate) fn mul_small(&mut self, factor: u32) {
        if factor == 0 {
            self.0.clear();
            return;
        }
        let mut carry = 0u64;
        for limb in self.0.iter_mut() {
            let prod = u64::from(*limb) * u64::from(factor) + carry;
            *limb = (prod % LIMB_BASE) as u32;
            carry = prod / LIMB_BASE;
        }
        while carry > 0 {
            self.0.push((carry % LIMB_BASE) as u32);
            carry /= LIMB_BASE;
        }
    }

    pub(crate) fn mul_pow10(&mut self, k: u64) {
        if self.is_zero() || k == 0 {
            return;
        }
        let whole_limbs = (k / LIMB_DIGITS) as usize;
        if whole_limbs > 0 {
            self.0.splice(0..0, std::iter::repeat_n(0, whole_limbs));
        }
        self.mul_small(POW10[(k % LIMB_DIGITS) as usize]);
    }

    pub(crate) fn mul_pow2(&mut self, mut k: u32) {
        while k > 0 {
            let step = k.min(31);
            self.mul_small(1u32 << step);
            k -= step;
        }
    }

    /// Divides in place and returns the remainder.
    pub(crate) fn divrem_small(&mut self, divisor: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let cur = rem * LIMB_BASE + u64::from(*limb);
            *limb = (cur / u64::from(divisor)) as u32;
            rem = cur % u64::from(divisor);
        }
        self.trim();
        rem as u32
    }

    /// Number of trailing decimal zeros (0 for zero).
    pub(crate) fn trailing_zeros(&self) -> u64 {
        let Some(first_nonzero) = self.0.iter().position(|l| *l != 0) else {
            return 0;
        };
        let mut limb = self.0[first_nonzero];
        let mut zeros = first_nonzero as u64 * LIMB_DIGITS;
        while limb.is_multiple_of(10) {
            limb /= 10;
            zeros += 1;
        }
        zeros
    }

    /// Divides by 10^k and reports whether anything non-zero was discarded.
    pub(crate) fn div_pow10(&mut self, k: u64) -> bool {
        if k >= self.digit_count() {
            let had_value = !self.is_zero();
            self.0.clear();
            return had_value;
        }
        let whole_limbs = (k / LIMB_DIGITS) as usize;
        let mut inexact = self.0[..whole_limbs].iter().any(|l| *l != 0);
        self.0.drain(..whole_limbs);
        inexact |= self.divrem_small(POW10[(k % LIMB_DIGITS) as usize]) != 0;
        inexact
    }

    pub(crate) fn increment(&mut self) {
        *self = self.add(&Mag(vec![1]));
    }

    pub(crate) fn to_decimal_string(&self) -> String {
        let Some((top, rest)) = self.0.split_last() else {
            return "0".to_string();
        };
        let mut out = top.to_string();
        for limb in rest.iter().rev() {
            out.push_str(&format!("{limb:09}"));
        }
        out
    }
}

/// A signed exact decimal `(-1)^neg × mag × 10^exp`, normalised so that the
/// mantissa has no trailing zeros and zero is `(false, 0, 0)`; equal values
/// therefore have equal representations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Dec {
    pub(crate) neg: bool,
    pub(crate) mag: Mag,
    pub(crate) exp: i64,
}

impl Dec {
    pub(crate) fn new(neg: bool, mag: Mag, exp: i64) -> Self {
        let mut d = Dec { neg, mag, exp };
        d.normalize();
        d
    }

    pub(crate) fn from_i128(value: i128, exp: i64) -> Self {
        Dec::new(value < 0, Mag::from_u128(value.unsigned_abs()), exp)
    }

    fn normalize(&mut self) {
        if self.mag.is_zero() {
            self.neg = false;
            self.exp = 0;
            return;
        }
        let tz = self.mag.trailing_zeros();
        if tz > 0 {
            self.mag.div_pow10(tz);
            self.exp += tz as i64;
        }
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.mag.is_zero()
    }

    pub(crate) fn signum(&self) -> i32 {
        match (self.is_zero(), self.neg) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        }
    }

    pub(crate) fn neg(&self) -> Dec {
        let mut out = self.clone();
        out.neg = !out.neg && !out.is_zero();
        out
    }

    pub(crate) fn abs(&self) -> Dec {
        Dec {
            neg: false,
            ..self.clone()
        }
    }

    /// Mantissa scaled so that the exponent becomes `exp` (must be <= self.exp).
    fn mag_at(&self, exp: i64) -> Mag {
        let mut mag = self.mag.clone();
        mag.mul_pow10((self.exp - exp) as u64);
        mag
    }

    fn cmp_abs(&self, other: &Dec) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        // The position of the most significant digit settles most comparisons
        // without aligning (which could mean writing out a huge exponent).
        let self_top = self.mag.digit_count() as i64 + self.exp;
        let other_top = other.mag.digit_count() as i64 + other.exp;
        if self_top != other_top {
            return self_top.cmp(&other_top);
        }
        if self.exp == other.exp {
            return self.mag.cmp_mag(&other.mag);
        }
        let exp = self.exp.min(other.exp);
        self.mag_at(exp).cmp_mag(&other.mag_at(exp))
    }

    pub(crate) fn add(&self, other: &Dec) -> Dec {
        if other.is_zero() {
            return self.clone();
        }
        if self.is_zero() {
            return other.clone();
        }
        let exp = self.exp.min(other.exp);
        let (a, b) = (self.mag_at(exp), other.mag_at(exp));
        if self.neg == other.neg {
            return Dec::new(self.neg, a.add(&b), exp);
        }
        match a.cmp_mag(&b) {
            Ordering::Equal => Dec::default(),
            Ordering::Greater => Dec::new(self.neg, a.sub(&b), exp),
            Ordering::Less => Dec::new(other.neg, b.sub(&a), exp),
        }
    }

    pub(crate) fn sub(&self, other: &Dec) -> Dec {
        self.add(&other.neg())
    }

    /// Rounds away from zero so that no digits below 10^`exp` remain; returns
    /// the rounded value and whether it was exact (upstream `AsScale`).
    pub(crate) fn round_away(&self, exp: i64) -> (Dec, bool) {
        if self.exp >= exp || self.is_zero() {
            return (self.clone(), true);
        }
        let mut mag = self.mag.clone();
        let inexact = mag.div_pow10((exp - self.exp) as u64);
        if inexact {
            mag.increment();
        }
        (Dec::new(self.neg, mag, exp), !inexact)
    }

    /// The magnitude as an integer, if the value is integral and fits.
    pub(crate) fn abs_integer_u128(&self) -> Option<u128> {
        if self.exp < 0 {
            return None;
        }
        if self.mag.digit_count() as i64 + self.exp > 38 {
            return None;
        }
        let mut mag = self.mag.clone();
        mag.mul_pow10(self.exp as u64);
        mag.to_u128()
    }

    /// `self / 10^scale`, rounded away from zero, saturated to the i64 range.
    pub(crate) fn scaled_i64(&self, scale: i64) -> i64 {
        let shifted = Dec {
            exp: self.exp - scale,
            ..self.clone()
        };
        let (rounded, _) = shifted.round_away(0);
        let limit = if self.neg {
            i64::MIN.unsigned_abs()
        } else {
            i64::MAX as u64
        };
        let magnitude = rounded
            .abs_integer_u128()
            .map_or(u128::from(limit), |m| m.min(u128::from(limit)));
        if self.neg {
            (magnitude as i128).wrapping_neg() as i64
        } else {
            magnitude as i64
        }
    }
}

impl PartialOrd for Dec {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dec {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.signum(), other.signum()) {
            (a, b) if a != b => a.cmp(&b),
            (-1, _) => other.cmp_abs(self),
            _ => self.cmp_abs(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str, exp: i64) -> Dec {
        let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
        Dec::new(neg, Mag::from_digits(digits), exp)
    }

    #[test]
    fn mag_round_trips_decimal_strings() {
        for s in [
            "0",
            "1",
            "999999999",
            "1000000000",
            "123456789012345678901234567890",
        ] {
            assert_eq!(Mag::from_digits(s).to_decimal_string(), s);
        }
        assert_eq!(Mag::from_digits("000120").to_decimal_string(), "120");
    }

    #[test]
    fn mag_digit_counts_and_trailing_zeros() {
        assert_eq!(Mag::from_digits("0").digit_count(), 0);
        assert_eq!(Mag::from_digits("7").digit_count(), 1);
        assert_eq!(Mag::from_digits("1000000000").digit_count(), 10);
        assert_eq!(Mag::from_digits("1000000000").trailing_zeros(), 9);
        assert_eq!(Mag::from_digits("12300000000000").trailing_zeros(), 11);
    }

    #[test]
    fn mag_arithmetic_matches_u128() {
        let values: [u128; 6] = [
            0,
            1,
            999_999_999,
            1_000_000_000,
            12_345_678_901_234_567,
            1 << 90,
        ];
        for a in values {
            for b in values {
                let (ma, mb) = (Mag::from_u128(a), Mag::from_u128(b));
                assert_eq!(ma.add(&mb).to_u128(), Some(a + b), "{a}+{b}");
                assert_eq!(ma.cmp_mag(&mb), a.cmp(&b), "{a} cmp {b}");
                if a >= b {
                    assert_eq!(ma.sub(&mb).to_u128(), Some(a - b), "{a}-{b}");
                }
            }
            let mut m = Mag::from_u128(a);
            m.mul_pow10(11);
            assert_eq!(m.to_u128(), a.checked_mul(100_000_000_000), "{a}e11");
            let mut m = Mag::from_u128(a);
            let rem = m.divrem_small(1024);
            assert_eq!((m.to_u128(), rem as u128), (Some(a / 1024), a % 1024));
        }
        let mut m = Mag::from_u128(3);
        m.mul_pow2(60);
        assert_eq!(m.to_u128(), Some(3u128 << 60));
    }

    #[test]
    fn dec_normalises_and_compares() {
        assert_eq!(dec("1500", 0), dec("15", 2));
        assert_eq!(dec("-0", 5), Dec::default());
        assert!(dec("1", 30) > dec("999999999999", 0));
        assert!(dec("-1", 30) < dec("-999999999999", 0));
        assert!(dec("1", -9) > Dec::default());
        assert!(dec("-1", -9) < Dec::default());
        assert_eq!(dec("10", -1).cmp(&dec("1", 0)), Ordering::Equal);
        assert!(dec("101", -2) > dec("1", 0));
        assert!(dec("1", 2_000_000_000) > dec("9", 1_999_999_999));
    }

    #[test]
    fn dec_add_sub_across_exponents() {
        assert_eq!(dec("15", -1).add(&dec("5", -1)), dec("2", 0));
        assert_eq!(dec("1", 30).add(&dec("1", -9)).mag.digit_count(), 40);
        assert_eq!(dec("1", 0).sub(&dec("3", 0)), dec("-2", 0));
        assert_eq!(dec("-1", 3).add(&dec("1", 3)), Dec::default());
    }

    #[test]
    fn dec_rounds_away_from_zero() {
        assert_eq!(dec("3001", -12).round_away(-9), (dec("4", -9), false));
        assert_eq!(dec("-3001", -12).round_away(-9), (dec("-4", -9), false));
        assert_eq!(
            dec("1", -2_000_000_000).round_away(-9),
            (dec("1", -9), false)
        );
        assert_eq!(dec("3", -9).round_away(-9), (dec("3", -9), true));
    }

    #[test]
    fn dec_scaled_i64_rounds_up_and_saturates() {
        assert_eq!(dec("15", -1).scaled_i64(0), 2);
        assert_eq!(dec("-15", -1).scaled_i64(0), -2);
        assert_eq!(dec("1", -9).scaled_i64(-3), 1);
        assert_eq!(dec("1", 30).scaled_i64(0), i64::MAX);
        assert_eq!(dec("-1", 30).scaled_i64(0), i64::MIN);
        assert_eq!(dec("-9223372036854775808", 0).scaled_i64(0), i64::MIN);
        assert_eq!(dec("5", 0).scaled_i64(-3), 5000);
    }
}
