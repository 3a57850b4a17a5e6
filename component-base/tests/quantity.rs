//! Upstream `k8s.io/apimachinery/pkg/api/resource` quantity_test.go tables,
//! ported to `ParsedQuantity`.

use std::cmp::Ordering;

use component_base::quantity::{Format, ParsedQuantity, Quantity, QuantityError};

use Format::{BinarySI, DecimalExponent, DecimalSI};

fn q(value: i64, scale: i32, format: Format) -> ParsedQuantity {
    ParsedQuantity::new_scaled(value, scale).with_format(format)
}

fn parse(s: &str) -> ParsedQuantity {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

/// Upstream TestQuantityParse: input, expected value and format.
fn parse_table() -> Vec<(&'static str, ParsedQuantity)> {
    let max_allowed = ParsedQuantity::new(i64::MAX, BinarySI);
    vec![
        ("0", q(0, 0, DecimalSI)),
        ("0n", q(0, 0, DecimalSI)),
        ("0u", q(0, 0, DecimalSI)),
        ("0m", q(0, 0, DecimalSI)),
        ("0Ki", q(0, 0, BinarySI)),
        ("0k", q(0, 0, DecimalSI)),
        ("0Mi", q(0, 0, BinarySI)),
        ("0M", q(0, 0, DecimalSI)),
        ("0Gi", q(0, 0, BinarySI)),
        ("0G", q(0, 0, DecimalSI)),
        ("0Ti", q(0, 0, BinarySI)),
        ("0T", q(0, 0, DecimalSI)),
        ("1", q(1, 0, DecimalSI)),
        ("1Ki", q(1024, 0, BinarySI)),
        ("8Ki", q(8 * 1024, 0, BinarySI)),
        ("7Mi", q(7 * 1024 * 1024, 0, BinarySI)),
        ("6Gi", q(6 * 1024 * 1024 * 1024, 0, BinarySI)),
        ("5Ti", q(5 << 40, 0, BinarySI)),
        ("4Pi", q(4 << 50, 0, BinarySI)),
        ("3Ei", q(3 << 60, 0, BinarySI)),
        ("10Ti", q(10 << 40, 0, BinarySI)),
        ("100Ti", q(100 << 40, 0, BinarySI)),
        ("5n", q(5, -9, DecimalSI)),
        ("4u", q(4, -6, DecimalSI)),
        ("3m", q(3, -3, DecimalSI)),
        ("9", q(9, 0, DecimalSI)),
        ("8k", q(8, 3, DecimalSI)),
        ("50k", q(5, 4, DecimalSI)),
        ("7M", q(7, 6, DecimalSI)),
        ("6G", q(6, 9, DecimalSI)),
        ("5T", q(5, 12, DecimalSI)),
        ("40T", q(4, 13, DecimalSI)),
        ("300T", q(3, 14, DecimalSI)),
        ("2P", q(2, 15, DecimalSI)),
        ("1E", q(1, 18, DecimalSI)),
        ("1E-3", q(1, -3, DecimalExponent)),
        ("1e3", q(1, 3, DecimalExponent)),
        ("1E6", q(1, 6, DecimalExponent)),
        ("1e9", q(1, 9, DecimalExponent)),
        ("1E12", q(1, 12, DecimalExponent)),
        ("1e15", q(1, 15, DecimalExponent)),
        ("1E18", q(1, 18, DecimalExponent)),
        ("1e14", q(1, 14, DecimalExponent)),
        ("1e13", q(1, 13, DecimalExponent)),
        ("100.035k", q(100035, 0, DecimalSI)),
        ("0.001", q(1, -3, DecimalSI)),
        ("0.0005k", q(5, -1, DecimalSI)),
        ("0.005", q(5, -3, DecimalSI)),
        ("0.05", q(5, -2, DecimalSI)),
        ("0.5", q(5, -1, DecimalSI)),
        ("0.00050k", q(5, -1, DecimalSI)),
        ("0.00500", q(5, -3, DecimalSI)),
        ("0.05000", q(5, -2, DecimalSI)),
        ("0.50000", q(5, -1, DecimalSI)),
        ("0.5e0", q(5, -1, DecimalExponent)),
        ("0.5e-1", q(5, -2, DecimalExponent)),
        ("0.5e-2", q(5, -3, DecimalExponent)),
        ("10.035M", q(10035, 3, DecimalSI)),
        ("1.2e3", q(12, 2, DecimalExponent)),
        ("1.3E+6", q(13, 5, DecimalExponent)),
        ("1.40e9", q(14, 8, DecimalExponent)),
        ("1.53E12", q(153, 10, DecimalExponent)),
        ("1.6e15", q(16, 14, DecimalExponent)),
        ("1.7E18", q(17, 17, DecimalExponent)),
        ("9.01", q(901, -2, DecimalSI)),
        ("8.1k", q(81, 2, DecimalSI)),
        ("7.123456M", q(7123456, 0, DecimalSI)),
        ("6.987654321G", q(6987654321, 0, DecimalSI)),
        ("5.444T", q(5444, 9, DecimalSI)),
        ("40.1T", q(401, 11, DecimalSI)),
        ("300.2T", q(3002, 11, DecimalSI)),
        ("2.5P", q(25, 14, DecimalSI)),
        ("1.01E", q(101, 16, DecimalSI)),
        // Things that saturate/round.
        ("3.001n", q(4, -9, DecimalSI)),
        ("1.1E-9", q(2, -9, DecimalExponent)),
        ("0.0000000001", q(1, -9, DecimalSI)),
        ("0.0000000005", q(1, -9, DecimalSI)),
        ("0.00000000050", q(1, -9, DecimalSI)),
        ("0.5e-9", q(1, -9, DecimalExponent)),
        ("0.9n", q(1, -9, DecimalSI)),
        ("0.00000012345", q(124, -9, DecimalSI)),
        ("0.00000012354", q(124, -9, DecimalSI)),
        ("9Ei", max_allowed.clone()),
        ("9223372036854775807Ki", max_allowed),
        ("12E", q(12, 18, DecimalSI)),
        // Fractional binary values.
        ("100.035Ki", q(10243584, -2, BinarySI)),
        ("0.5Mi", q(512 * 1024, 0, BinarySI)),
        ("0.05Gi", q(536870912, -1, BinarySI)),
        ("0.025Ti", q(274877906944, -1, BinarySI)),
        // Things written by trolls.
        ("0.000000000001Ki", q(2, -9, DecimalSI)),
        (".001", q(1, -3, DecimalSI)),
        (".0001k", q(100, -3, DecimalSI)),
        ("1.", q(1, 0, DecimalSI)),
        ("1.G", q(1, 9, DecimalSI)),
    ]
}

#[test]
fn parse_matches_upstream_table() {
    for (input, expect) in parse_table() {
        let got = parse(input);
        assert_eq!(got, expect, "{input}: got {got}, want {expect}");
        assert_eq!(got.format(), expect.format(), "{input}");

        let negative = parse(&format!("-{input}"));
        assert_eq!(negative, -expect.clone(), "-{input}");
        assert_eq!(negative.format(), expect.format(), "-{input}");

        let plus = parse(&format!("+{input}"));
        assert_eq!(plus, expect, "+{input}");
        assert_eq!(plus.format(), expect.format(), "+{input}");
    }
}

#[test]
fn parse_rejects_malformed_input() {
    let cases = [
        ("", QuantityError::FormatWrong),
        ("1.1.M", QuantityError::FormatWrong),
        ("1+1.0M", QuantityError::FormatWrong),
        ("0.1mi", QuantityError::Suffix),
        ("0.1am", QuantityError::FormatWrong),
        ("aoeu", QuantityError::FormatWrong),
        (".5i", QuantityError::Suffix),
        ("1i", QuantityError::Suffix),
        ("-3.01i", QuantityError::Suffix),
        ("-3.01e-", QuantityError::Suffix),
        ("1e4294967297", QuantityError::Suffix),
        (" 1", QuantityError::FormatWrong),
        ("1 ", QuantityError::FormatWrong),
        ("Non-Numeric", QuantityError::FormatWrong),
        ("1g", QuantityError::FormatWrong),
        ("1e", QuantityError::Suffix),
    ];
    for (input, want) in cases {
        assert_eq!(
            input.parse::<ParsedQuantity>().err(),
            Some(want),
            "{input:?}"
        );
    }
}

#[test]
fn degenerate_numbers_parse_as_zero_like_upstream() {
    for input in [".", "-.", "+", "-", "00", "-0", "0.0e5"] {
        let got = parse(input);
        assert!(got.is_zero(), "{input}");
        assert_eq!(got.to_string(), "0", "{input}");
    }
}

/// Upstream TestQuantityString: value, canonical string, an alternate
/// spelling that must canonicalise to it.
#[test]
fn canonical_strings_match_upstream() {
    let table: Vec<(ParsedQuantity, &str, &str)> = vec![
        (q(1024 * 1024 * 1024, 0, BinarySI), "1Gi", "1024Mi"),
        (q(300 * 1024 * 1024, 0, BinarySI), "300Mi", "307200Ki"),
        (q(6 * 1024, 0, BinarySI), "6Ki", ""),
        (
            q(1001 * 1024 * 1024 * 1024, 0, BinarySI),
            "1001Gi",
            "1025024Mi",
        ),
        (q(1 << 40, 0, BinarySI), "1Ti", "1024Gi"),
        (q(5, 0, BinarySI), "5", "5000m"),
        (q(500, -3, BinarySI), "500m", "0.5"),
        (q(1, 9, DecimalSI), "1G", "1000M"),
        (q(1000, 6, DecimalSI), "1G", "0.001T"),
        (q(1000000, 3, DecimalSI), "1G", ""),
        (q(1000000000, 0, DecimalSI), "1G", ""),
        (q(1, -3, DecimalSI), "1m", "1000u"),
        (q(80, -3, DecimalSI), "80m", ""),
        (q(1080, -3, DecimalSI), "1080m", "1.08"),
        (q(108, -2, DecimalSI), "1080m", "1080000000n"),
        (q(10800, -4, DecimalSI), "1080m", ""),
        (q(300, 6, DecimalSI), "300M", ""),
        (q(1, 12, DecimalSI), "1T", ""),
        (q(1, 18, DecimalSI), "1E", ""),
        (q(1, 21, DecimalSI), "1e21", "1000E"),
        (q(5, 21, DecimalSI), "5e21", "5000E"),
        (q(1, 24, DecimalSI), "1e24", "1000000E"),
        (q(1, 70, BinarySI), "10e69", ""),
        (q(2, 70, BinarySI), "20e69", ""),
        (q(1, 72, BinarySI), "1e72", ""),
        (q(1234567, 6, DecimalSI), "1234567M", ""),
        (q(1234567, -3, BinarySI), "1234567m", ""),
        (q(3, 3, DecimalSI), "3k", ""),
        (q(1025, 0, BinarySI), "1025", ""),
        (q(0, 0, DecimalSI), "0", ""),
        (q(0, 0, BinarySI), "0", ""),
        (q(1, 9, DecimalExponent), "1e9", ".001e12"),
        (q(1, -3, DecimalExponent), "1e-3", "0.001e0"),
        (q(1, -9, DecimalExponent), "1e-9", "1000e-12"),
        (q(80, -3, DecimalExponent), "80e-3", ""),
        (q(300, 6, DecimalExponent), "300e6", ""),
        (q(1, 12, DecimalExponent), "1e12", ""),
        (q(1, 3, DecimalExponent), "1e3", ""),
        (q(3, 3, DecimalExponent), "3e3", ""),
        (q(0, 0, DecimalExponent), "0", "00"),
        (q(1, -9, DecimalSI), "1n", ""),
        (q(80, -9, DecimalSI), "80n", ""),
        (q(1080, -9, DecimalSI), "1080n", ""),
        (q(108, -8, DecimalSI), "1080n", ""),
        (q(10800, -10, DecimalSI), "1080n", ""),
        (q(1, -6, DecimalSI), "1u", ""),
        (q(80, -6, DecimalSI), "80u", ""),
        (q(1080, -6, DecimalSI), "1080u", ""),
    ];
    for (value, expect, alternate) in &table {
        assert_eq!(value.to_string(), *expect, "{value:?}");
        // Parsing the canonical form re-emits it.
        assert_eq!(parse(expect).to_string(), *expect);
        assert_eq!(parse(expect).canonical_string(), *expect);
        if !alternate.is_empty() {
            assert_eq!(
                parse(alternate).to_string(),
                *expect,
                "alternate {alternate}"
            );
        }
        if !value.is_zero() {
            assert_eq!((-value.clone()).to_string(), format!("-{expect}"));
        }
    }
}

#[test]
fn strings_below_nano_use_exponent_notation() {
    assert_eq!(q(1, -12, DecimalSI).to_string(), "1e-12");
    assert_eq!(q(1, -10, DecimalSI).to_string(), "100e-12");
}

#[test]
fn binary_past_exbi_falls_back_to_exact_decimal() {
    let mut q = parse("1Ei");
    for _ in 1..1024 {
        q += parse("1Ei");
    }
    assert_eq!(q.to_string(), "1180591620717411303424");
    assert_eq!(parse(&q.to_string()), q);
    assert_eq!(ParsedQuantity::new(2000, BinarySI).to_string(), "2000");
    assert_eq!(ParsedQuantity::new(-2000, BinarySI).to_string(), "-2000");
}

/// Upstream TestQuantityParseEmit.
#[test]
fn parse_then_emit() {
    let table = [
        ("1Ki", "1Ki"),
        ("1Mi", "1Mi"),
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("1000M", "1G"),
        (".001Ki", "1024m"),
        (".000001Ki", "1024u"),
        (".000000001Ki", "1024n"),
        (".000000000001Ki", "2n"),
        // From the task brief and common manifests.
        ("1.5Gi", "1536Mi"),
        ("0.1", "100m"),
        ("1000m", "1"),
        ("1e3", "1e3"),
        ("1.5", "1500m"),
        ("128974848", "128974848"),
        ("129e6", "129e6"),
        ("129M", "129M"),
        ("123Mi", "123Mi"),
        ("250m", "250m"),
    ];
    for (input, expect) in table {
        assert_eq!(parse(input).to_string(), expect, "{input}");
        assert_eq!(
            parse(&format!("-{input}")).to_string(),
            format!("-{expect}")
        );
    }
}

#[test]
fn upstream_keeps_some_inputs_verbatim() {
    // Upstream caches the input string on its int64 fast path when it looks
    // canonical, and re-emits it as-is.
    assert_eq!(parse("+1").to_string(), "+1");
    assert_eq!(parse("1E3").to_string(), "1E3");
    assert_eq!(parse("1E3").canonical_string(), "1e3");
    assert_eq!(parse("01Ki").to_string(), "01Ki");
    // Any change drops the cached form.
    assert_eq!((parse("+1") + ParsedQuantity::zero()).to_string(), "1");
    assert_eq!(parse("+1").to_quantity(), Quantity("+1".to_string()));
}

/// Upstream TestQuantityCmp and TestQuantityCmpInt64AndDec.
#[test]
fn compare_across_formats_and_scales() {
    let cases = [
        (parse("0"), parse("0"), Ordering::Equal),
        (parse("100m"), parse("50m"), Ordering::Greater),
        (parse("50m"), parse("100m"), Ordering::Less),
        (parse("10000T"), parse("100Gi"), Ordering::Greater),
        (parse("1Gi"), parse("1024Mi"), Ordering::Equal),
        (parse("1G"), parse("1Gi"), Ordering::Less),
        (
            q(901, -2, DecimalSI),
            q(901, -2, DecimalSI),
            Ordering::Equal,
        ),
        (q(90, -1, DecimalSI), q(901, -2, DecimalSI), Ordering::Less),
        (
            q(901, -2, DecimalSI),
            q(900, -2, DecimalSI),
            Ordering::Greater,
        ),
        (q(0, 1, DecimalSI), q(0, -1, DecimalSI), Ordering::Equal),
        (q(800, -3, DecimalSI), q(1, 0, DecimalSI), Ordering::Less),
        (
            q(800, -3, DecimalSI),
            q(79, -2, DecimalSI),
            Ordering::Greater,
        ),
        (
            q(i64::MAX, 0, DecimalSI),
            q(1, -1, DecimalSI),
            Ordering::Greater,
        ),
        (
            q(i64::MAX, 1, DecimalSI),
            q(1, 0, DecimalSI),
            Ordering::Greater,
        ),
        (
            q(i64::MAX, 1, DecimalSI),
            q(1, 1, DecimalSI),
            Ordering::Greater,
        ),
        (
            q(i64::MAX, -16, DecimalSI),
            q(1, 3, DecimalSI),
            Ordering::Less,
        ),
        (
            q(i64::MIN, 0, DecimalSI),
            q(0, 0, DecimalSI),
            Ordering::Less,
        ),
        (
            q(i64::MIN, -18, DecimalSI),
            q(-1, 0, DecimalSI),
            Ordering::Less,
        ),
        (
            q(i64::MIN, -19, DecimalSI),
            q(-1, 0, DecimalSI),
            Ordering::Greater,
        ),
        (
            q(1_000_000_000_000_000_000, -17, DecimalSI),
            q(1, 1, DecimalSI),
            Ordering::Equal,
        ),
        (
            q(1_000_000_000_000_000_000, -17, DecimalSI),
            q(-10, 0, DecimalSI),
            Ordering::Greater,
        ),
        (
            q(-1_000_000_000_000_000_000, -17, DecimalSI),
            q(-10, 0, DecimalSI),
            Ordering::Equal,
        ),
        (
            q(1_000_000_000_000_000_000, -17, DecimalSI),
            q(1, 0, DecimalSI),
            Ordering::Greater,
        ),
        (
            q(1_000_000_000_000_000_001, -17, DecimalSI),
            q(1, 1, DecimalSI),
            Ordering::Greater,
        ),
        (
            q(999_999_999_999_999_999, -17, DecimalSI),
            q(1, 1, DecimalSI),
            Ordering::Less,
        ),
    ];
    for (a, b, want) in cases {
        assert_eq!(a.cmp(&b), want, "{a:?} vs {b:?}");
        assert_eq!(b.cmp(&a), want.reverse(), "{b:?} vs {a:?}");
    }
    assert_eq!(parse("1500m").cmp_i64(1), Ordering::Greater);
    assert_eq!(parse("1k").cmp_i64(1000), Ordering::Equal);
}

#[test]
fn add_and_sub_keep_left_format_unless_left_is_zero() {
    // Upstream TestQuantityAddZeroPreservesSuffix / SubZeroPreservesSuffix.
    for value in ["100m", "1Gi"] {
        let v = parse(value);
        assert_eq!((v.clone() + parse("0")).to_string(), value);
        assert_eq!((parse("0") + v.clone()).to_string(), value);
        assert_eq!((v.clone() - parse("0")).to_string(), value);
        assert_eq!((parse("0") - v.clone()).to_string(), (-v).to_string());
    }
    // Upstream TestSub.
    let cases = [
        (q(10, 0, DecimalSI), q(1, 1, DecimalSI), q(0, 0, DecimalSI)),
        (q(10, 0, DecimalSI), q(1, 0, BinarySI), q(9, 0, DecimalSI)),
        (q(10, 0, BinarySI), q(1, 0, DecimalSI), q(9, 0, BinarySI)),
        (
            ParsedQuantity::zero(),
            q(50, 0, DecimalSI),
            q(-50, 0, DecimalSI),
        ),
        (
            q(50, 0, DecimalSI),
            ParsedQuantity::zero(),
            q(50, 0, DecimalSI),
        ),
    ];
    for (a, b, want) in cases {
        let got = a.clone() - b.clone();
        assert_eq!(got, want, "{a} - {b}");
        assert_eq!(got.format(), want.format(), "{a} - {b}");
    }
    // Format of the left operand, canonicalised in it.
    assert_eq!((parse("1Gi") + parse("1G")).to_string(), "2073741824");
    assert_eq!((parse("1Gi") + parse("512Mi")).to_string(), "1536Mi");
    assert_eq!((parse("1") + parse("500m")).to_string(), "1500m");
    assert_eq!((parse("1e3") + parse("1k")).to_string(), "2e3");
    let mut acc = parse("100m");
    acc += parse("900m");
    acc -= parse("2");
    assert_eq!(acc.to_string(), "-1");
    let total: ParsedQuantity = ["1Gi", "1Gi", "2Gi"].iter().map(|s| parse(s)).sum();
    assert_eq!(total.to_string(), "4Gi");
}

#[test]
fn arithmetic_past_int64_stays_exact() {
    // Upstream TestNegAndSubAtMostNegative.
    let most_negative = q(i64::MIN, 0, DecimalSI);
    assert_eq!((-most_negative.clone()).to_string(), "9223372036854775808");
    assert_eq!(
        (ParsedQuantity::zero() - most_negative.clone()).to_string(),
        "9223372036854775808"
    );
    assert_eq!(
        (q(1, 0, DecimalSI) - most_negative).to_string(),
        "9223372036854775809"
    );
    assert_eq!(
        (-q(i64::MIN, -3, DecimalSI)).to_string(),
        "9223372036854775808m"
    );
    assert_eq!(
        (q(1, -3, DecimalSI) - q(i64::MIN, -3, DecimalSI)).to_string(),
        "9223372036854775809m"
    );
    let big = parse("100000000000000000000000000000000000000000000E");
    assert_eq!((&big + &parse("1n")) - big.clone(), parse("1n"));
}

#[test]
fn neg_keeps_format() {
    assert_eq!((-q(901, -2, DecimalSI)).to_string(), "-9010m");
    let n = -q(10, 0, BinarySI);
    assert_eq!((n.clone(), n.format()), (q(-10, 0, BinarySI), BinarySI));
    assert_eq!(-ParsedQuantity::zero(), ParsedQuantity::zero());
}

/// Upstream TestQuantityRoundUp.
#[test]
fn round_up_to_scale() {
    let cases = [
        ("9.01", -3, q(901, -2, DecimalSI), true),
        ("9.01", -2, q(901, -2, DecimalSI), true),
        ("9.01", -1, q(91, -1, DecimalSI), false),
        ("9.01", 0, q(10, 0, DecimalSI), false),
        ("9.01", 1, q(10, 0, DecimalSI), false),
        ("9.01", 2, q(100, 0, DecimalSI), false),
        ("-9.01", -3, q(-901, -2, DecimalSI), true),
        ("-9.01", -2, q(-901, -2, DecimalSI), true),
        ("-9.01", -1, q(-91, -1, DecimalSI), false),
        ("-9.01", 0, q(-10, 0, DecimalSI), false),
        ("-9.01", 1, q(-10, 0, DecimalSI), false),
        ("-9.01", 2, q(-100, 0, DecimalSI), false),
    ];
    for (input, scale, want, exact) in cases {
        let mut got = parse(input);
        assert_eq!(got.round_up(scale), exact, "{input} at {scale}");
        assert_eq!(got, want, "{input} at {scale}");
    }
}

/// Upstream TestNegativeValueRoundsAwayFromZero plus TestMilliNewSet,
/// TestNewSet, TestNewScaledSet and TestScaledValue.
#[test]
fn value_and_milli_value_round_away_from_zero() {
    let cases = [
        ("-.484785E-7466", -1, -1),
        (".484785E-7466", 1, 1),
        ("-.484785E-1", -1, -49),
        (".484785E-1", 1, 49),
        ("-0.0005", -1, -1),
        ("0.0005", 1, 1),
        ("-1500m", -2, -1500),
        ("1500m", 2, 1500),
        ("-9.5000000001Gi", -10200547329, -10200547328108),
        ("9.5000000001Gi", 10200547329, 10200547328108),
        ("-1", -1, -1000),
        ("1", 1, 1000),
        ("0", 0, 0),
        ("100m", 1, 100),
        ("1n", 1, 1),
        ("2Gi", 2147483648, 2147483648000),
        ("10E", i64::MAX, i64::MAX),
        ("-10E", i64::MIN, i64::MIN),
    ];
    for (input, value, milli) in cases {
        let got = parse(input);
        assert_eq!((got.value(), got.milli_value()), (value, milli), "{input}");
    }
}

#[test]
fn constructors_match_upstream() {
    let milli = [
        (1, DecimalSI, "1m"),
        (1000, DecimalSI, "1"),
        (1234000, DecimalSI, "1234"),
        (1024, BinarySI, "1024m"),
        (1024 * 1024, BinarySI, "1048576m"),
    ];
    for (value, format, expect) in milli {
        let got = ParsedQuantity::new_milli(value, format);
        assert_eq!(got.to_string(), expect);
        assert_eq!(parse(expect).milli_value(), value);
    }
    let whole = [
        (1, DecimalSI, "1"),
        (1000, DecimalSI, "1k"),
        (1234000, DecimalSI, "1234k"),
        (1024, BinarySI, "1Ki"),
        (1000000, DecimalExponent, "1e6"),
        (1024 * 1024, BinarySI, "1Mi"),
    ];
    for (value, format, expect) in whole {
        assert_eq!(ParsedQuantity::new(value, format).to_string(), expect);
        assert_eq!(parse(expect).value(), value);
    }
    let scaled = [
        (1, -9, "1n"),
        (1000, -9, "1u"),
        (1, -6, "1u"),
        (1000, -6, "1m"),
        (1, -3, "1m"),
        (1000, -3, "1"),
        (1, 0, "1"),
        (0, -9, "0"),
        (0, 0, "0"),
    ];
    for (value, scale, expect) in scaled {
        assert_eq!(ParsedQuantity::new_scaled(value, scale).to_string(), expect);
        assert_eq!(parse(expect).scaled_value(scale), value);
    }
    let scaled_value = [
        (-9, -9, 1),
        (-9, -6, 1),
        (-9, -3, 1),
        (-9, 0, 1),
        (-6, -9, 1000),
        (-6, 0, 1),
        (-3, -9, 1_000_000),
        (-3, -6, 1000),
        (0, -9, 1_000_000_000),
        (0, -3, 1000),
        (2, -2, 10_000),
    ];
    for (from, to, want) in scaled_value {
        assert_eq!(
            ParsedQuantity::new_scaled(1, from).scaled_value(to),
            want,
            "{from}->{to}"
        );
    }
}

#[test]
fn converts_from_and_to_k8s_openapi_quantity() {
    // Upstream's JSON decoding trims whitespace (TestJSONWhitespace).
    for (raw, expect) in [(" 1", "1"), ("1 ", "1"), ("10", "10"), (" -1", "-1")] {
        let parsed = ParsedQuantity::try_from(&Quantity(raw.to_string()))
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        assert_eq!(parsed.to_quantity(), Quantity(expect.to_string()));
    }
    assert!(ParsedQuantity::try_from(Quantity("1.1.1".to_string())).is_err());
    let q: Quantity = parse("1536Mi").into();
    assert_eq!(q.0, "1536Mi");
    let json = serde_json::to_string(&parse("1.5Gi")).unwrap_or_default();
    assert_eq!(json, "\"1536Mi\"");
    let back: Result<ParsedQuantity, _> = serde_json::from_str("\" 250m \"");
    assert_eq!(back.ok(), Some(parse("250m")));
}

#[test]
fn equal_values_hash_alike() {
    use std::collections::HashSet;
    let set: HashSet<ParsedQuantity> = ["1Gi", "1024Mi", "1073741824", "1073741824000m"]
        .iter()
        .map(|s| parse(s))
        .collect();
    assert_eq!(set.len(), 1);
}

/// Deterministic pseudo-random values (no extra dependency needed).
fn lcg_values(count: usize) -> Vec<i64> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // Mix magnitudes: small, medium and near the i64/4 bound.
            let raw = (state >> 1) as i64;
            let v = match i % 3 {
                0 => raw % 10_000,
                1 => raw % 1_000_000_000_000,
                _ => raw / 4,
            };
            if state & 1 == 0 { v } else { -v }
        })
        .collect()
}

#[test]
fn arithmetic_and_ordering_agree_with_integer_math() {
    let values = lcg_values(60);
    for &a in &values {
        let qa = ParsedQuantity::new_milli(a, DecimalSI);
        // Canonical strings re-parse to the same value, in every format.
        for format in [DecimalSI, BinarySI, DecimalExponent] {
            let q = qa.clone().with_format(format);
            assert_eq!(parse(&q.to_string()), q, "{a} as {format:?}: {q}");
        }
        assert_eq!(qa.milli_value(), a);
        for &b in &values {
            let qb = ParsedQuantity::new_milli(b, DecimalSI);
            assert_eq!(qa.cmp(&qb), a.cmp(&b), "{a} cmp {b}");
            let sum = i128::from(a) + i128::from(b);
            let got = (&qa + &qb).milli_value();
            assert_eq!(
                i128::from(got),
                sum.clamp(i64::MIN.into(), i64::MAX.into()),
                "{a}+{b}"
            );
            assert_eq!(
                (&qa - &qb).cmp(&ParsedQuantity::zero()),
                a.cmp(&b),
                "{a}-{b}"
            );
        }
    }
}

#[test]
fn binary_values_round_trip_through_their_canonical_form() {
    for &v in &lcg_values(60) {
        let q = ParsedQuantity::new(v, BinarySI);
        assert_eq!(parse(&q.to_string()), q, "{v}: {q}");
        assert_eq!(q.value(), v);
        let scaled = ParsedQuantity::new((v % (1 << 40)) << 20, BinarySI);
        assert_eq!(parse(&scaled.to_string()), scaled, "{scaled}");
    }
}
