//! Exact resource quantities, matching `k8s.io/apimachinery/pkg/api/resource`.
//!
//! k8s-openapi's [`Quantity`] is only a string; [`ParsedQuantity`] is the
//! parsed value with upstream's grammar, rounding (to nano, away from zero),
//! BinarySI capping (at 2^63-1), format memory and canonical serialisation.
//!
//! Representation choice: one exact big decimal (base-10^9 limbs and an
//! unbounded exponent) instead of upstream's int64 fast path plus `inf.Dec`
//! fallback. Every value either of upstream's representations can hold is
//! held exactly, and arithmetic never loses precision (upstream's corner
//! cases at `MinInt64` and `MinInt32` scales simply do not arise). One
//! deliberate divergence, only reachable past the int64 range: `value()` /
//! `milli_value()` saturate at the i64 bounds, as upstream's int64 path
//! does, where its `inf.Dec` path wraps around.

mod bigdec;
mod canonical;
mod parse;

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

pub use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use bigdec::Dec;

/// How a quantity is written out (upstream `resource.Format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `12e6`
    DecimalExponent,
    /// `12Mi` (12 × 2^20)
    BinarySI,
    /// `12M` (12 × 10^6)
    DecimalSI,
}

impl Format {
    /// The upstream spelling of the format name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::DecimalExponent => "DecimalExponent",
            Format::BinarySI => "BinarySI",
            Format::DecimalSI => "DecimalSI",
        }
    }
}

/// Upstream's parse errors, with upstream's messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// `ErrFormatWrong`
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    FormatWrong,
    /// `ErrNumeric`
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// `ErrSuffix`
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// A parsed, exact resource quantity (upstream `resource.Quantity`).
///
/// Equality, ordering and hashing look at the numeric value only, so
/// `1Gi == 1024Mi == 1073741824`.
#[derive(Clone, Debug)]
pub struct ParsedQuantity {
    amount: Dec,
    format: Format,
    /// The input string when upstream would re-emit it verbatim (its `s`
    /// cache): cleared by any change to the value or format.
    original: Option<Box<str>>,
}

impl ParsedQuantity {
    /// Zero, DecimalSI.
    pub fn zero() -> Self {
        ParsedQuantity {
            amount: Dec::default(),
            format: Format::DecimalSI,
            original: None,
        }
    }

    /// `value` in the given format (upstream `NewQuantity`).
    pub fn new(value: i64, format: Format) -> Self {
        Self::from_scaled(value, 0, format)
    }

    /// `value / 1000` in the given format (upstream `NewMilliQuantity`).
    pub fn new_milli(value: i64, format: Format) -> Self {
        Self::from_scaled(value, -3, format)
    }

    /// `value × 10^scale`, DecimalSI (upstream `NewScaledQuantity`).
    pub fn new_scaled(value: i64, scale: i32) -> Self {
        Self::from_scaled(value, scale, Format::DecimalSI)
    }

    fn from_scaled(value: i64, scale: i32, format: Format) -> Self {
        ParsedQuantity {
            amount: Dec::from_i128(i128::from(value), i64::from(scale)),
            format,
            original: None,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The same value, serialised in another format.
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self.original = None;
        self
    }

    /// `ceil(q)` away from zero, saturating at the i64 bounds (upstream `Value`).
    pub fn value(&self) -> i64 {
        self.amount.scaled_i64(0)
    }

    /// `ceil(q × 1000)` away from zero, saturating (upstream `MilliValue`).
    pub fn milli_value(&self) -> i64 {
        self.amount.scaled_i64(-3)
    }

    /// `ceil(q / 10^scale)` away from zero, saturating (upstream `ScaledValue`).
    pub fn scaled_value(&self, scale: i32) -> i64 {
        self.amount.scaled_i64(i64::from(scale))
    }

    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// -1, 0 or 1.
    pub fn sign(&self) -> i32 {
        self.amount.signum()
    }

    /// Compares with an integer (upstream `CmpInt64`).
    pub fn cmp_i64(&self, other: i64) -> Ordering {
        self.amount.cmp(&Dec::from_i128(i128::from(other), 0))
    }

    /// Rounds away from zero to a multiple of 10^scale; returns whether the
    /// value was already exact (upstream `RoundUp`).
    pub fn round_up(&mut self, scale: i32) -> bool {
        let (rounded, exact) = self.amount.round_away(i64::from(scale));
        if !exact {
            self.amount = rounded;
            self.original = None;
        }
        exact
    }

    /// The canonical string computed from the value, ignoring any input
    /// string upstream would have kept verbatim.
    pub fn canonical_string(&self) -> String {
        canonical::canonical(&self.amount, self.format)
    }

    /// The string upstream's `String()` / JSON encoding produce.
    pub fn to_quantity(&self) -> Quantity {
        Quantity(self.to_string())
    }

    fn set_amount(&mut self, amount: Dec, other_format: Format) {
        // Upstream: a zero receiver takes the other operand's format.
        if self.amount.is_zero() {
            self.format = other_format;
        }
        self.amount = amount;
        self.original = None;
    }
}

impl Default for ParsedQuantity {
    fn default() -> Self {
        Self::zero()
    }
}

impl FromStr for ParsedQuantity {
    type Err = QuantityError;

    /// Upstream `resource.ParseQuantity` (no surrounding whitespace allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse(s)
    }
}

impl TryFrom<&Quantity> for ParsedQuantity {
    type Error = QuantityError;

    /// Like upstream's JSON decoding, which trims surrounding whitespace.
    fn try_from(q: &Quantity) -> Result<Self, Self::Error> {
        q.0.trim().parse()
    }
}

impl TryFrom<Quantity> for ParsedQuantity {
    type Error = QuantityError;

    fn try_from(q: Quantity) -> Result<Self, Self::Error> {
        ParsedQuantity::try_from(&q)
    }
}

impl From<&ParsedQuantity> for Quantity {
    fn from(q: &ParsedQuantity) -> Self {
        q.to_quantity()
    }
}

impl From<ParsedQuantity> for Quantity {
    fn from(q: ParsedQuantity) -> Self {
        q.to_quantity()
    }
}

impl fmt::Display for ParsedQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.original {
            Some(s) => f.write_str(s),
            None => f.write_str(&self.canonical_string()),
        }
    }
}

impl PartialEq for ParsedQuantity {
    fn eq(&self, other: &Self) -> bool {
        self.amount == other.amount
    }
}

impl Eq for ParsedQuantity {}

impl PartialOrd for ParsedQuantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ParsedQuantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.amount.cmp(&other.amount)
    }
}

impl Hash for ParsedQuantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.amount.hash(state);
    }
}

impl AddAssign<&ParsedQuantity> for ParsedQuantity {
    fn add_assign(&mut self, rhs: &ParsedQuantity) {
        let sum = self.amount.add(&rhs.amount);
        self.set_amount(sum, rhs.format);
    }
}

impl AddAssign for ParsedQuantity {
    fn add_assign(&mut self, rhs: ParsedQuantity) {
        *self += &rhs;
    }
}

impl SubAssign<&ParsedQuantity> for ParsedQuantity {
    fn sub_assign(&mut self, rhs: &ParsedQuantity) {
        let difference = self.amount.sub(&rhs.amount);
        self.set_amount(difference, rhs.format);
    }
}

impl SubAssign for ParsedQuantity {
    fn sub_assign(&mut self, rhs: ParsedQuantity) {
        *self -= &rhs;
    }
}

impl Add for ParsedQuantity {
    type Output = ParsedQuantity;
    fn add(mut self, rhs: ParsedQuantity) -> ParsedQuantity {
        self += &rhs;
        self
    }
}

impl Add<&ParsedQuantity> for &ParsedQuantity {
    type Output = ParsedQuantity;
    fn add(self, rhs: &ParsedQuantity) -> ParsedQuantity {
        let mut out = self.clone();
        out += rhs;
        out
    }
}

impl Sub for ParsedQuantity {
    type Output = ParsedQuantity;
    fn sub(mut self, rhs: ParsedQuantity) -> ParsedQuantity {
        self -= &rhs;
        self
    }
}

impl Sub<&ParsedQuantity> for &ParsedQuantity {
    type Output = ParsedQuantity;
    fn sub(self, rhs: &ParsedQuantity) -> ParsedQuantity {
        let mut out = self.clone();
        out -= rhs;
        out
    }
}

impl Neg for ParsedQuantity {
    type Output = ParsedQuantity;
    /// Upstream `Neg`: keeps the format.
    fn neg(self) -> ParsedQuantity {
        ParsedQuantity {
            amount: self.amount.neg(),
            format: self.format,
            original: None,
        }
    }
}

impl std::iter::Sum for ParsedQuantity {
    fn sum<I: Iterator<Item = ParsedQuantity>>(iter: I) -> Self {
        iter.fold(ParsedQuantity::zero(), |acc, q| acc + q)
    }
}

impl<'a> std::iter::Sum<&'a ParsedQuantity> for ParsedQuantity {
    fn sum<I: Iterator<Item = &'a ParsedQuantity>>(iter: I) -> Self {
        iter.fold(ParsedQuantity::zero(), |mut acc, q| {
            acc += q;
            acc
        })
    }
}

impl serde::Serialize for ParsedQuantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ParsedQuantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.trim().parse().map_err(serde::de::Error::custom)
    }
}
