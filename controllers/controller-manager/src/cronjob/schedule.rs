//! Cron schedules as upstream parses them (`robfig/cron/v3`
//! `ParseStandard` and `SpecSchedule.Next`): five fields, `@hourly`-style
//! descriptors, month and weekday names, `TZ=`/`CRON_TZ=` prefixes.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned, civil};

/// Why a schedule does not parse (upstream's `UnparseableSchedule` text).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("expected exactly 5 fields, found {0}: {1}")]
    FieldCount(usize, String),
    #[error("failed to parse int from {0}")]
    BadNumber(String),
    #[error("beginning of range ({0}) below minimum ({1}): {2}")]
    BelowMin(u32, u32, String),
    #[error("end of range ({0}) above maximum ({1}): {2}")]
    AboveMax(u32, u32, String),
    #[error("beginning of range ({0}) beyond end of range ({1}): {2}")]
    Reversed(u32, u32, String),
    #[error("step of range should be a positive number: {0}")]
    BadStep(String),
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("failed to parse duration {0}")]
    Duration(String),
    #[error("provided bad location {0}: {1}")]
    Location(String, String),
    #[error("empty spec string")]
    Empty,
}

const STAR: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// A parsed schedule: one bit set per allowed value (upstream `SpecSchedule`).
#[derive(Clone, Debug)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    tz: TimeZone,
    /// `@every <duration>` (upstream `ConstantDelaySchedule`), in whole
    /// seconds; the fields are unused then.
    every: Option<i64>,
}

impl Schedule {
    /// Upstream `cron.ParseStandard`. Without a `TZ=` prefix the schedule
    /// runs in `default_tz` (UTC for the controller, as its `time.Local`).
    pub fn parse(spec: &str, default_tz: &TimeZone) -> Result<Self, ScheduleError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let (tz, rest) = split_tz(spec, default_tz)?;
        if let Some(descriptor) = rest.strip_prefix('@') {
            return parse_descriptor(descriptor, rest, tz);
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ScheduleError::FieldCount(fields.len(), rest.to_string()));
        }
        Ok(Self {
            minute: field(fields[0], &MINUTE)?,
            hour: field(fields[1], &HOUR)?,
            dom: field(fields[2], &DOM)?,
            month: field(fields[3], &MONTH)?,
            dow: field(fields[4], &DOW)?,
            tz,
            every: None,
        })
    }

    /// The first activation strictly after `t` (whole minutes), or `None`
    /// when none falls within five years (e.g. `0 0 31 2 *`), as upstream's
    /// zero time.
    pub fn next(&self, t: Timestamp) -> Option<Timestamp> {
        if let Some(delay) = self.every {
            return Timestamp::from_second(t.as_second().checked_add(delay)?).ok();
        }
        // The upcoming second, then the search at minute granularity.
        let start = t.checked_add(1.second()).ok()?;
        let start = Timestamp::from_second(start.as_second()).ok()?;
        let mut z = start.to_zoned(self.tz.clone());
        let year_limit = z.year() + 5;
        let mut added = false;
        'wrap: loop {
            if z.year() > year_limit {
                return None;
            }
            while !bit(self.month, z.month()) {
                if !added {
                    added = true;
                    z = at(&z, z.date().first_of_month(), 0, 0)?;
                }
                z = z.checked_add(1.month()).ok()?;
                if z.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(&z) {
                if !added {
                    added = true;
                    z = at(&z, z.date(), 0, 0)?;
                }
                z = at(&z, z.date().tomorrow().ok()?, 0, 0)?;
                if z.day() == 1 {
                    continue 'wrap;
                }
            }
            while !bit(self.hour, z.hour()) {
                if !added {
                    added = true;
                    z = at(&z, z.date(), z.hour(), 0)?;
                }
                z = z.checked_add(1.hour()).ok()?;
                if z.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !bit(self.minute, z.minute()) {
                if !added {
                    added = true;
                    z = at(&z, z.date(), z.hour(), z.minute())?;
                }
                z = z.checked_add(1.minute()).ok()?;
                if z.minute() == 0 {
                    continue 'wrap;
                }
            }
            // The seconds field of a standard spec is 0: a start inside a
            // matching minute moves on to the next minute.
            if z.second() != 0 {
                added = true;
                z = at(&z, z.date(), z.hour(), z.minute())?
                    .checked_add(1.minute())
                    .ok()?;
                continue 'wrap;
            }
            return Some(z.timestamp());
        }
    }

    /// Upstream `dayMatches`: with `*` in either day field both must
    /// match, otherwise either.
    fn day_matches(&self, z: &Zoned) -> bool {
        let dom = bit(self.dom, z.day());
        let dow = bit(self.dow, z.weekday().to_sunday_zero_offset());
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }
}

fn at(z: &Zoned, date: civil::Date, hour: i8, minute: i8) -> Option<Zoned> {
    date.at(hour, minute, 0, 0)
        .to_zoned(z.time_zone().clone())
        .ok()
}

fn bit(bits: u64, value: impl Into<i64>) -> bool {
    let v = value.into();
    (0..63).contains(&v) && bits & (1u64 << v) != 0
}

fn split_tz<'a>(
    spec: &'a str,
    default_tz: &TimeZone,
) -> Result<(TimeZone, &'a str), ScheduleError> {
    let prefixed = spec
        .strip_prefix("TZ=")
        .or_else(|| spec.strip_prefix("CRON_TZ="));
    let Some(rest) = prefixed else {
        return Ok((default_tz.clone(), spec));
    };
    let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let tz = load_location(name)?;
    Ok((tz, rest.trim()))
}

/// Go's `time.LoadLocation`: "" and "UTC" are UTC, else an IANA name.
pub fn load_location(name: &str) -> Result<TimeZone, ScheduleError> {
    if name.is_empty() || name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|e| ScheduleError::Location(name.to_string(), e.to_string()))
}

fn parse_descriptor(d: &str, spec: &str, tz: TimeZone) -> Result<Schedule, ScheduleError> {
    if let Some(duration) = d.strip_prefix("every ") {
        let nanos = go_duration_nanos(duration.trim())
            .ok_or_else(|| ScheduleError::Duration(duration.to_string()))?;
        // Upstream `cron.Every`: whole seconds, at least one.
        let every = i64::try_from((nanos / 1_000_000_000).max(1))
            .map_err(|_| ScheduleError::Duration(duration.to_string()))?;
        return Ok(Schedule {
            minute: 0,
            hour: 0,
            dom: 0,
            month: 0,
            dow: 0,
            tz,
            every: Some(every),
        });
    }
    let all = |b: &Bounds| range_bits(b.min, b.max, 1) | STAR;
    let one = |v: u32| 1u64 << v;
    let (minute, hour, dom, month, dow) = match d {
        "yearly" | "annually" => (one(0), one(0), one(1), one(1), all(&DOW)),
        "monthly" => (one(0), one(0), one(1), all(&MONTH), all(&DOW)),
        "weekly" => (one(0), one(0), all(&DOM), all(&MONTH), one(0)),
        "daily" | "midnight" => (one(0), one(0), all(&DOM), all(&MONTH), all(&DOW)),
        "hourly" => (one(0), all(&HOUR), all(&DOM), all(&MONTH), all(&DOW)),
        _ => return Err(ScheduleError::Descriptor(spec.to_string())),
    };
    Ok(Schedule {
        minute,
        hour,
        dom,
        month,
        dow,
        tz,
        every: None,
    })
}

/// Go's `time.ParseDuration` for non-negative values: `1h30m`, `90s`,
/// `1.5h`, `500ms`.
fn go_duration_nanos(s: &str) -> Option<u128> {
    const UNITS: [(&str, f64); 8] = [
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("μs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    if s == "0" {
        return Some(0);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (_, scale) = UNITS.iter().find(|(u, _)| *u == &rest[..unit_len])?;
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total as u128)
}

fn range_bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max)
        .step_by(step.max(1) as usize)
        .fold(0, |acc, v| acc | (1u64 << v))
}

/// Upstream `getField`: comma-separated ranges.
fn field(expr: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    expr.split(',').try_fold(0, |acc, r| Ok(acc | range(r, b)?))
}

/// Upstream `getRange`: `*`, `?`, `a`, `a-b`, each with an optional `/step`.
fn range(expr: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    let (span, step) = match expr.split_once('/') {
        Some((span, step)) => (span, Some(step)),
        None => (expr, None),
    };
    let (start, mut end, mut extra) = if span == "*" || span == "?" {
        (b.min, b.max, STAR)
    } else {
        match span.split_once('-') {
            Some((lo, hi)) => (value(lo, b)?, value(hi, b)?, 0),
            None => {
                let v = value(span, b)?;
                (v, v, 0)
            }
        }
    };
    let step = match step {
        None => 1,
        Some(s) => {
            let step: u32 = s
                .parse()
                .map_err(|_| ScheduleError::BadNumber(s.to_string()))?;
            if step == 0 {
                return Err(ScheduleError::BadStep(expr.to_string()));
            }
            // "N/step" means "N-max/step".
            if !span.contains('-') && span != "*" && span != "?" {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
    };
    if start < b.min {
        return Err(ScheduleError::BelowMin(start, b.min, expr.to_string()));
    }
    if end > b.max {
        return Err(ScheduleError::AboveMax(end, b.max, expr.to_string()));
    }
    if start > end {
        return Err(ScheduleError::Reversed(start, end, expr.to_string()));
    }
    Ok(range_bits(start, end, step) | extra)
}

fn value(s: &str, b: &Bounds) -> Result<u32, ScheduleError> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        let offset = if b.min == 1 { 1 } else { 0 };
        return Ok(i as u32 + offset);
    }
    s.parse()
        .map_err(|_| ScheduleError::BadNumber(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, from: &str) -> Option<String> {
        Schedule::parse(spec, &TimeZone::UTC)
            .unwrap()
            .next(ts(from))
            .map(|t| t.to_string())
    }

    #[test]
    fn next_activations() {
        let cases = [
            ("* * * * *", "2016-05-19T10:00:00Z", "2016-05-19T10:01:00Z"),
            (
                "* * * * *",
                "2016-05-19T10:00:30.5Z",
                "2016-05-19T10:01:00Z",
            ),
            ("0 * * * *", "2016-05-19T10:00:00Z", "2016-05-19T11:00:00Z"),
            ("@hourly", "2016-05-19T10:30:00Z", "2016-05-19T11:00:00Z"),
            ("@daily", "2016-05-19T10:30:00Z", "2016-05-20T00:00:00Z"),
            ("@weekly", "2016-05-19T10:30:00Z", "2016-05-22T00:00:00Z"),
            ("@monthly", "2016-05-19T10:30:00Z", "2016-06-01T00:00:00Z"),
            ("@yearly", "2016-05-19T10:30:00Z", "2017-01-01T00:00:00Z"),
            (
                "*/15 * * * *",
                "2016-05-19T10:16:00Z",
                "2016-05-19T10:30:00Z",
            ),
            (
                "30 6-16/4 * * 1-5",
                "2016-05-19T10:30:00Z",
                "2016-05-19T14:30:00Z",
            ),
            (
                "30 6-16/4 * * 1-5",
                "2016-05-20T14:30:00Z",
                "2016-05-23T06:30:00Z",
            ),
            (
                "0 0 1 jan,JUL *",
                "2016-05-19T10:30:00Z",
                "2016-07-01T00:00:00Z",
            ),
            (
                "0 0 * * SUN",
                "2016-05-19T10:30:00Z",
                "2016-05-22T00:00:00Z",
            ),
            // Both day fields restricted: either matches.
            ("0 0 1 * 1", "2016-05-19T10:30:00Z", "2016-05-23T00:00:00Z"),
            (
                "TZ=America/New_York 0 9 * * *",
                "2016-05-19T10:30:00Z",
                "2016-05-19T13:00:00Z",
            ),
            (
                "CRON_TZ=Asia/Tokyo 0 9 * * *",
                "2016-05-19T10:30:00Z",
                "2016-05-20T00:00:00Z",
            ),
        ];
        for (spec, from, want) in cases {
            assert_eq!(
                next(spec, from).as_deref(),
                Some(want),
                "{spec} after {from}"
            );
        }
    }

    /// A wall time skipped by DST does not run that day (robfig steps
    /// the hours in absolute time).
    #[test]
    fn dst_gap_skips_the_day() {
        let spec = "TZ=America/New_York 30 2 * * *";
        let got = next(spec, "2016-03-12T12:00:00Z");
        assert_eq!(got.as_deref(), Some("2016-03-14T06:30:00Z"));
    }

    #[test]
    fn impossible_schedule_has_no_next() {
        assert_eq!(next("59 23 31 2 *", "2016-05-19T10:00:00Z"), None);
    }

    #[test]
    fn unparseable() {
        for spec in [
            "",
            "* * * *",
            "60 * * * *",
            "* * 0 * *",
            "5-1 * * * *",
            "*/0 * * * *",
            "@every",
            "@every 5x",
            "@every -5m",
            "@fortnightly",
            "TZ=Nowhere/Land * * * * *",
            "a * * * *",
        ] {
            assert!(Schedule::parse(spec, &TimeZone::UTC).is_err(), "{spec}");
        }
    }
}
