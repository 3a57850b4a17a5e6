//! The CRI log file format (`<RFC3339Nano> <stdout|stderr> <F|P> <content>`)
//! and upstream's log writer (since filter, timestamp prefix on the first
//! chunk of a line only, byte limit).

use jiff::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One parsed file line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage {
    pub timestamp: Timestamp,
    pub stream: Stream,
    /// The content; a partial (`P`) chunk has no trailing newline.
    pub log: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("timestamp is not found")]
    NoTimestamp,
    #[error("unexpected timestamp format: {0}")]
    Timestamp(String),
    #[error("stream type is not found")]
    NoStream,
    #[error("unexpected stream type {0:?}")]
    Stream(String),
    #[error("log tag is not found")]
    NoTag,
}

fn split_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let idx = line.iter().position(|b| *b == b' ')?;
    Some((&line[..idx], &line[idx + 1..]))
}

/// upstream `parseCRILog`.
pub fn parse_cri_line(line: &[u8]) -> Result<LogMessage, ParseError> {
    let (ts, rest) = split_field(line).ok_or(ParseError::NoTimestamp)?;
    let ts = String::from_utf8_lossy(ts);
    let timestamp: Timestamp = ts
        .parse()
        .map_err(|_| ParseError::Timestamp(ts.to_string()))?;
    let (stream, rest) = split_field(rest).ok_or(ParseError::NoStream)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => return Err(ParseError::Stream(String::from_utf8_lossy(other).into())),
    };
    let (tags, content) = split_field(rest).ok_or(ParseError::NoTag)?;
    // Tags are `:`-separated for forward compatibility; the first is F or P.
    let partial = tags.split(|b| *b == b':').next() == Some(b"P");
    let mut log = content.to_vec();
    if partial && log.last() == Some(&b'\n') {
        log.pop();
    }
    Ok(LogMessage {
        timestamp,
        stream,
        log,
    })
}

/// `RFC3339NanoFixed` in UTC: always nine fractional digits.
pub fn format_timestamp(ts: Timestamp) -> String {
    format!(
        "{}.{:09}Z",
        ts.strftime("%Y-%m-%dT%H:%M:%S"),
        ts.subsec_nanosecond()
    )
}

/// What the writer did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    More,
    /// The byte limit is used up: stop reading.
    LimitReached,
}

/// upstream `logWriter`: filters, prefixes and limits messages into a buffer.
#[derive(Debug)]
pub struct LogWriter {
    since: Option<Timestamp>,
    timestamps: bool,
    remain: i64,
    at_line_start: bool,
}

impl LogWriter {
    pub fn new(since: Option<Timestamp>, timestamps: bool, limit_bytes: Option<i64>) -> Self {
        LogWriter {
            since,
            timestamps,
            remain: limit_bytes.unwrap_or(i64::MAX),
            at_line_start: true,
        }
    }

    /// Appends `msg` to `out` as upstream would write it.
    pub fn write(&mut self, msg: &LogMessage, out: &mut Vec<u8>) -> Written {
        let add_prefix = self.at_line_start;
        self.at_line_start = msg.log.last().is_none_or(|b| *b == b'\n');
        if self.since.is_some_and(|since| msg.timestamp < since) {
            return Written::More;
        }
        let mut line = Vec::with_capacity(msg.log.len() + 32);
        if self.timestamps && add_prefix {
            line.extend_from_slice(format_timestamp(msg.timestamp).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&msg.log);
        let remain = usize::try_from(self.remain).unwrap_or(usize::MAX);
        line.truncate(remain);
        self.remain -= line.len() as i64;
        out.extend_from_slice(&line);
        if self.remain <= 0 {
            Written::LimitReached
        } else {
            Written::More
        }
    }
}

/// upstream `findTailLineStartIndex`: the offset where the last `n` lines of
/// `data` begin (`None` = all lines; a missing final newline still counts).
pub fn tail_start(data: &[u8], n: Option<i64>) -> usize {
    let Some(n) = n else { return 0 };
    if n <= 0 {
        return data.len();
    }
    let mut end = data.len();
    // A final newline terminates the last line rather than starting a new one.
    if data.last() == Some(&b'\n') {
        end -= 1;
    }
    let mut remaining = n;
    let mut i = end;
    while i > 0 {
        if data[i - 1] == b'\n' {
            remaining -= 1;
            if remaining == 0 {
                return i;
            }
        }
        i -= 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(line: &str) -> LogMessage {
        parse_cri_line(line.as_bytes()).expect("valid line")
    }

    #[test]
    fn parses_lines() {
        let m = msg("2016-10-06T00:17:09.669794202Z stdout F hello\n");
        assert_eq!(m.stream, Stream::Stdout);
        assert_eq!(m.log, b"hello\n");
        assert_eq!(
            m.timestamp,
            "2016-10-06T00:17:09.669794202Z"
                .parse::<Timestamp>()
                .expect("ts")
        );
        let p = msg("2016-10-06T00:17:09.669794202+02:00 stderr P:x part\n");
        assert_eq!((p.stream, p.log.as_slice()), (Stream::Stderr, &b"part"[..]));
        assert_eq!(
            parse_cri_line(b"nope"),
            Err(ParseError::NoTimestamp),
            "no delimiter"
        );
        assert!(matches!(
            parse_cri_line(b"2016-10-06T00:17:09Z stdin F x"),
            Err(ParseError::Stream(_))
        ));
        assert_eq!(
            parse_cri_line(b"2016-10-06T00:17:09Z stdout"),
            Err(ParseError::NoStream)
        );
        assert_eq!(
            parse_cri_line(b"2016-10-06T00:17:09Z stdout F"),
            Err(ParseError::NoTag)
        );
    }

    #[test]
    fn writer_joins_partials_and_limits() {
        let lines = [
            "2020-01-01T00:00:01.5Z stdout P a",
            "2020-01-01T00:00:02Z stdout F b\n",
            "2020-01-01T00:00:03Z stderr F c\n",
        ];
        let mut out = Vec::new();
        let mut w = LogWriter::new(None, true, None);
        for l in lines {
            assert_eq!(w.write(&msg(l), &mut out), Written::More);
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            "2020-01-01T00:00:01.500000000Z ab\n2020-01-01T00:00:03.000000000Z c\n"
        );

        let mut out = Vec::new();
        let mut w = LogWriter::new(
            Some("2020-01-01T00:00:02Z".parse().expect("ts")),
            false,
            Some(3),
        );
        assert_eq!(w.write(&msg(lines[0]), &mut out), Written::More);
        assert_eq!(w.write(&msg(lines[1]), &mut out), Written::More);
        assert_eq!(w.write(&msg(lines[2]), &mut out), Written::LimitReached);
        assert_eq!(out, b"b\nc");
    }

    #[test]
    fn tail_offsets() {
        let data = b"1\n2\n3\n";
        for (n, want) in [
            (None, 0),
            (Some(0), 6),
            (Some(1), 4),
            (Some(2), 2),
            (Some(3), 0),
            (Some(10), 0),
        ] {
            assert_eq!(tail_start(data, n), want, "{n:?}");
        }
        assert_eq!(tail_start(b"1\n2", Some(1)), 2);
        assert_eq!(tail_start(b"", Some(1)), 0);
    }
}
