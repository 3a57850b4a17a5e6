//! Canonical quantity strings as Go's `resource.Quantity` prints them.

const BINARY_SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// A `BinarySI` quantity: the largest binary suffix that divides exactly, else a plain number.
pub fn format_binary_si(bytes: i64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    let mut value = bytes;
    let mut suffix = None;
    for s in BINARY_SUFFIXES {
        if value % 1024 != 0 {
            break;
        }
        value /= 1024;
        suffix = Some(s);
    }
    match suffix {
        Some(s) => format!("{value}{s}"),
        None => bytes.to_string(),
    }
}

/// A `DecimalSI` count (cpu cores, pods): milli-values print with `m`.
pub fn format_decimal_milli(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(format_binary_si(0), "0");
        assert_eq!(format_binary_si(8_236_683_264), "8043636Ki");
        assert_eq!(format_binary_si(1024 * 1024 * 1024), "1Gi");
        assert_eq!(format_binary_si(2 * 1024 * 1024), "2Mi");
        assert_eq!(format_binary_si(237_764_976_390), "237764976390");
        assert_eq!(format_decimal_milli(2000), "2");
        assert_eq!(format_decimal_milli(1500), "1500m");
    }
}
