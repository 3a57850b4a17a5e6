//! Prometheus text format 0.0.4 as client_golang's `expfmt` writes it: the
//! endpoints upstream serves from their own registries (`/metrics/resource`,
//! `/metrics/probes`, `/metrics/cadvisor`), with optional sample timestamps.

use std::fmt::Write;

/// Content type of the text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`: shortest digits, exponent
/// form when the decimal exponent is below -4 or at least 6 (`1.5e+09`).
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` is the shortest round-trip form: `1.5e9`, `-2.5e-5`.
    let sci = format!("{v:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return sci;
    };
    if (-4..6).contains(&exp) {
        return format!("{v}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// Label value escaping of the text format (`\\`, `\"`, `\n`).
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// One sample: labels in the order given, value, optional timestamp (ms).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A metric family: name, help (with upstream's `[STABLE]`/`[ALPHA]` prefix),
/// type and samples. Families with no samples are not written (as expfmt).
#[derive(Clone, Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: &'static str,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64, ts: Option<i64>) {
        self.samples.push(Sample {
            labels,
            value,
            timestamp_ms: ts,
        });
    }
}

/// Writes families sorted by name, samples sorted by label values (client_golang's order).
pub fn render(mut families: Vec<Family>) -> String {
    families.sort_by(|a, b| a.name.cmp(b.name));
    let mut out = String::new();
    for mut f in families.into_iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for s in &mut f.samples {
            s.labels.sort_by(|a, b| a.0.cmp(b.0));
        }
        f.samples.sort_by(|a, b| a.labels.cmp(&b.labels));
        for s in &f.samples {
            out.push_str(f.name);
            if !s.labels.is_empty() {
                out.push('{');
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                out.push_str(&labels.join(","));
                out.push('}');
            }
            let _ = write!(out, " {}", go_float(s.value));
            if let Some(ts) = s.timestamp_ms {
                let _ = write!(out, " {ts}");
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_go_formats_them() {
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(1_624_396_278.302), "1.624396278302e+09");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(-2.5e-7), "-2.5e-07");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn renders_sorted_families_with_timestamps() {
        let mut b = Family::new("b_total", "counter", "[STABLE] B");
        b.push(
            vec![("pod", "y".into()), ("namespace", "n".into())],
            2.0,
            Some(7),
        );
        b.push(
            vec![("pod", "x\"q".into()), ("namespace", "n".into())],
            1.0,
            None,
        );
        let a = Family::new("a", "gauge", "[ALPHA] empty");
        let text = render(vec![b, a]);
        assert_eq!(
            text,
            "# HELP b_total [STABLE] B\n# TYPE b_total counter\n\
             b_total{namespace=\"n\",pod=\"x\\\"q\"} 1\n\
             b_total{namespace=\"n\",pod=\"y\"} 2 7\n"
        );
    }
}
