//! `PodLogOptions` from a `/containerLogs` query, as the kubelet decodes and
//! validates it (v1 parameter codec, `ValidatePodLogOptions` with
//! `PodLogsQuerySplitStreams` off, its v1.36 default).

use jiff::Timestamp;

/// The decoded options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<Timestamp>,
}

/// Why a query was refused; the bodies are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(r#"{{"message": "Unable to decode query."}}"#)]
    Decode,
    #[error(r#"{{"message": "Invalid request."}}"#)]
    Invalid,
}

fn parse_bool(v: &str) -> Result<bool, QueryError> {
    // strconv.ParseBool
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
        _ => Err(QueryError::Decode),
    }
}

fn parse_int(v: &str) -> Result<i64, QueryError> {
    v.parse().map_err(|_| QueryError::Decode)
}

/// Decodes and validates `pairs` (the URL query, already percent-decoded).
pub fn parse_log_options(pairs: &[(String, String)]) -> Result<LogOptions, QueryError> {
    let mut opts = LogOptions::default();
    // backwards compatibility: `tail` overrides `tailLines`, "all" means unset.
    let tail = pairs.iter().find(|(k, _)| k == "tail").map(|(_, v)| v);
    let mut stream = false;
    for (key, value) in pairs {
        match key.as_str() {
            "follow" => opts.follow = parse_bool(value)?,
            "previous" => opts.previous = parse_bool(value)?,
            "timestamps" => opts.timestamps = parse_bool(value)?,
            "tailLines" if tail.is_none() => opts.tail_lines = Some(parse_int(value)?),
            "limitBytes" => opts.limit_bytes = Some(parse_int(value)?),
            "sinceSeconds" => opts.since_seconds = Some(parse_int(value)?),
            "sinceTime" => {
                opts.since_time = Some(value.parse().map_err(|_| QueryError::Decode)?);
            }
            "stream" => stream = true,
            _ => {}
        }
    }
    if let Some(tail) = tail.filter(|t| !t.is_empty() && *t != "all") {
        opts.tail_lines = Some(parse_int(tail)?);
    }
    let invalid = opts.tail_lines.is_some_and(|t| t < 0)
        || opts.limit_bytes.is_some_and(|b| b < 1)
        || (opts.since_seconds.is_some() && opts.since_time.is_some())
        || opts.since_seconds.is_some_and(|s| s < 1)
        // `stream` "may not be specified" while PodLogsQuerySplitStreams is off.
        || stream;
    if invalid {
        return Err(QueryError::Invalid);
    }
    Ok(opts)
}

impl LogOptions {
    /// The earliest timestamp to show (`sinceSeconds` is relative to `now`).
    pub fn since(&self, now: Timestamp) -> Option<Timestamp> {
        if let Some(t) = self.since_time {
            return Some(t);
        }
        self.since_seconds
            .and_then(|s| now.checked_sub(jiff::SignedDuration::from_secs(s)).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn decodes_and_validates() {
        let ok = parse_log_options(&q(
            "follow=true&previous=1&timestamps=true&tailLines=5&limitBytes=10&sinceSeconds=3",
        ))
        .expect("valid");
        assert_eq!(
            ok,
            LogOptions {
                follow: true,
                previous: true,
                timestamps: true,
                tail_lines: Some(5),
                limit_bytes: Some(10),
                since_seconds: Some(3),
                since_time: None,
            }
        );
        assert_eq!(
            parse_log_options(&q("tail=7&tailLines=2"))
                .expect("valid")
                .tail_lines,
            Some(7)
        );
        assert_eq!(
            parse_log_options(&q("tail=all&tailLines=2"))
                .expect("valid")
                .tail_lines,
            None
        );
        let since = parse_log_options(&q("sinceTime=2024-01-02T03:04:05Z")).expect("valid");
        assert_eq!(
            since.since(Timestamp::UNIX_EPOCH),
            Some("2024-01-02T03:04:05Z".parse().expect("ts"))
        );
        for (query, err) in [
            ("follow=maybe", QueryError::Decode),
            ("tailLines=x", QueryError::Decode),
            ("sinceTime=yesterday", QueryError::Decode),
            ("tailLines=-1", QueryError::Invalid),
            ("limitBytes=0", QueryError::Invalid),
            ("sinceSeconds=0", QueryError::Invalid),
            (
                "sinceSeconds=5&sinceTime=2024-01-02T03:04:05Z",
                QueryError::Invalid,
            ),
            ("stream=Stdout", QueryError::Invalid),
        ] {
            assert_eq!(parse_log_options(&q(query)), Err(err), "{query}");
        }
        assert_eq!(
            QueryError::Decode.to_string(),
            r#"{"message": "Unable to decode query."}"#
        );
    }
}
