//! Resource quantities as the kubelet reads them off pod specs: milli-values and whole
//! values, rounded up like `resource.Quantity.MilliValue()` / `Value()`. Parsing is
//! `component_base::quantity`'s; this only adapts optional quantities.

use std::collections::BTreeMap;

use component_base::quantity::ParsedQuantity;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// `Quantity.MilliValue()` of a quantity string (surrounding whitespace trimmed, as
/// upstream's JSON decoding does), via the shared exact parser. `None` if malformed.
pub fn milli(text: &str) -> Option<i128> {
    text.trim()
        .parse::<ParsedQuantity>()
        .ok()
        .map(|q| i128::from(q.milli_value()))
}

/// `Quantity.MilliValue()`; malformed or absent quantities count as zero.
pub fn milli_value(q: Option<&Quantity>) -> i64 {
    parsed(q).map_or(0, |q| q.milli_value())
}

/// `Quantity.Value()` (whole units, rounded up).
pub fn value(q: Option<&Quantity>) -> i64 {
    parsed(q).map_or(0, |q| q.value())
}

fn parsed(q: Option<&Quantity>) -> Option<ParsedQuantity> {
    q.and_then(|q| ParsedQuantity::try_from(q).ok())
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
            assert_eq!(milli(text), want, "{text}");
        }
        assert_eq!(value(Some(&Quantity("1500m".into()))), 2);
        assert_eq!(milli_value(Some(&Quantity("2".into()))), 2000);
    }
}
