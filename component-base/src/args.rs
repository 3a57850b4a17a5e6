//! Rewrites argv before clap sees it so upstream command lines work unchanged.
//!
//! * `-v=4`, `-v 4`, `-v4` become `--v=4` (pflag's `v` shorthand; clap has no
//!   single-dash long options).
//! * Flags the component does not implement are dropped — upstream manifests
//!   pass many of them and a replacement must not crash on one. An unknown
//!   `--flag value` consumes the next token only when it does not start with
//!   `-` and `flag` is not one of upstream's booleans (so `--profiling
//!   --v=2` keeps `--v=2`).
//!
//! Logging is not set up yet when argv is parsed, so the dropped flags are
//! returned and logged by [`Normalized::warn_dropped`] once it is.

use std::collections::HashMap;

/// Upstream booleans shared by every component (component-base logs,
/// profiling, generic serving). Components add their own table.
pub const COMMON_UPSTREAM_BOOL_FLAGS: &[&str] = &[
    "add-dir-header",
    "alsologtostderr",
    "contention-profiling",
    "disable-http2-serving",
    "enable-contention-profiling",
    "log-json-split-stream",
    "log-text-split-stream",
    "logtostderr",
    "one-output",
    "permit-address-sharing",
    "permit-port-sharing",
    "profiling",
    "skip-headers",
    "skip-log-headers",
    "version",
];

/// Result of [`normalize`]: the argv to hand to clap and what was removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalized {
    pub args: Vec<String>,
    /// The removed tokens, one entry per flag (`--flag=value` or `--flag value`).
    pub dropped: Vec<String>,
}

impl Normalized {
    /// Logs one warning per dropped flag; call after logging is initialised.
    pub fn warn_dropped(&self) {
        for flag in &self.dropped {
            tracing::warn!(flag = %flag, "ignoring unsupported upstream flag");
        }
    }
}

/// How a known long flag consumes values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    /// Takes no separate value token (booleans, `--help`).
    NoSeparateValue,
    /// `--flag value` consumes the next token.
    Value,
}

/// The long flags a clap command accepts and whether each takes a value.
fn known_flags(cmd: &clap::Command) -> HashMap<String, Arity> {
    let mut known = HashMap::new();
    known.insert("help".to_string(), Arity::NoSeparateValue);
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let takes_value = arg.get_action().takes_values();
        let optional_value = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
        let arity = if takes_value && !optional_value {
            Arity::Value
        } else {
            Arity::NoSeparateValue
        };
        known.insert(long.to_string(), arity);
        for alias in arg.get_all_aliases().unwrap_or_default() {
            known.insert(alias.to_string(), arity);
        }
    }
    known
}

/// Normalises `argv` (including `argv[0]`) for `cmd`; `upstream_bools` lists
/// the component's upstream boolean flags we do not implement.
pub fn normalize<I, S>(argv: I, cmd: &clap::Command, upstream_bools: &[&str]) -> Normalized
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let known = known_flags(cmd);
    let is_upstream_bool =
        |name: &str| upstream_bools.contains(&name) || COMMON_UPSTREAM_BOOL_FLAGS.contains(&name);
    let mut tokens = argv.into_iter().map(Into::into).peekable();
    let mut out = Normalized::default();
    if let Some(program) = tokens.next() {
        out.args.push(program);
    }
    while let Some(token) = tokens.next() {
        if token == "--" {
            out.args.push(token);
            out.args.extend(tokens.by_ref());
            break;
        }
        if let Some(rest) = token.strip_prefix("--") {
            let (name, inline_value) = match rest.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (rest, None),
            };
            match known.get(name) {
                Some(arity) => {
                    out.args.push(token.clone());
                    if inline_value.is_none()
                        && *arity == Arity::Value
                        && let Some(value) = tokens.next()
                    {
                        out.args.push(value);
                    }
                }
                None => {
                    let mut dropped = token.clone();
                    let consumes_next = inline_value.is_none()
                        && !is_upstream_bool(name)
                        && tokens.peek().is_some_and(|next| !next.starts_with('-'));
                    if consumes_next && let Some(value) = tokens.next() {
                        dropped = format!("{token} {value}");
                    }
                    out.dropped.push(dropped);
                }
            }
            continue;
        }
        if let Some(rest) = token.strip_prefix("-v") {
            let value = match rest.strip_prefix('=') {
                Some(v) => Some(v.to_string()),
                None if rest.is_empty() => tokens.next_if(|t| !t.starts_with('-')),
                None if rest.chars().all(|c| c.is_ascii_digit()) => Some(rest.to_string()),
                None => None,
            };
            match value {
                Some(v) => out.args.push(format!("--v={v}")),
                None if rest.is_empty() => out.args.push("--v".to_string()),
                None => out.dropped.push(token),
            }
            continue;
        }
        if token == "-h" {
            out.args.push(token);
            continue;
        }
        if token.starts_with('-') && token.len() > 1 {
            // Go-style single-dash long flags (`-kubeconfig=x`) and unknown
            // shorthands: pflag would reject them, we drop them.
            out.dropped.push(token);
            continue;
        }
        out.args.push(token);
    }
    out
}

/// Normalises `argv` for `T` and parses it, exiting like clap on `--help`
/// or invalid input. Returns the matches too, for "was this flag given on
/// the command line" questions ([`set_on_command_line`]).
pub fn parse<T: clap::Parser>(
    argv: impl IntoIterator<Item = String>,
    upstream_bools: &[&str],
) -> (T, clap::ArgMatches, Normalized) {
    let cmd = T::command();
    let normalized = normalize(argv, &cmd, upstream_bools);
    let matches = cmd.get_matches_from(&normalized.args);
    let opts = T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    (opts, matches, normalized)
}

/// Whether the argument with clap id `id` (the field name) was given on the
/// command line rather than defaulted.
pub fn set_on_command_line(matches: &clap::ArgMatches, id: &str) -> bool {
    matches.ids().any(|i| i.as_str() == id)
        && matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{LeaderElectionFlags, LoggingFlags};
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Opts {
        #[command(flatten)]
        logs: LoggingFlags,
        #[command(flatten)]
        le: LeaderElectionFlags,
        #[arg(long)]
        kubeconfig: Option<String>,
    }

    fn run(args: &[&str]) -> Normalized {
        let argv = std::iter::once("prog").chain(args.iter().copied());
        normalize(argv, &Opts::command(), &["enable-garbage-collector"])
    }

    #[test]
    fn table() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&["-v=4"], &["--v=4"], &[]),
            (&["-v", "4"], &["--v=4"], &[]),
            (&["-v4"], &["--v=4"], &[]),
            (&["--v", "4"], &["--v", "4"], &[]),
            (&["--v=4"], &["--v=4"], &[]),
            (
                &["--kubeconfig", "/k", "--leader-elect"],
                &["--kubeconfig", "/k", "--leader-elect"],
                &[],
            ),
            (&["--leader-elect=false"], &["--leader-elect=false"], &[]),
            // Unknown flag with inline value.
            (
                &["--feature-gates=A=true", "--v=2"],
                &["--v=2"],
                &["--feature-gates=A=true"],
            ),
            // Unknown flag consumes the next non-flag token.
            (
                &["--profiling-port", "9", "--v=2"],
                &["--v=2"],
                &["--profiling-port 9"],
            ),
            // ... but not the next flag.
            (&["--unknown", "--v=2"], &["--v=2"], &["--unknown"]),
            // Upstream booleans never eat a following token.
            (
                &["--profiling", "positional"],
                &["positional"],
                &["--profiling"],
            ),
            (
                &["--enable-garbage-collector", "x"],
                &["x"],
                &["--enable-garbage-collector"],
            ),
            // Go-style single-dash long flags are dropped.
            (&["-kubeconfig=/x"], &[], &["-kubeconfig=/x"]),
            (&["-vmodule=x"], &[], &["-vmodule=x"]),
            (&["-h"], &["-h"], &[]),
            (&["--help"], &["--help"], &[]),
            (&["--", "--whatever"], &["--", "--whatever"], &[]),
        ];
        for (input, want_args, want_dropped) in cases {
            let got = run(input);
            let mut expected = vec!["prog".to_string()];
            expected.extend(want_args.iter().map(|s| s.to_string()));
            assert_eq!(got.args, expected, "args for {input:?}");
            assert_eq!(got.dropped, *want_dropped, "dropped for {input:?}");
        }
    }

    #[test]
    fn normalized_args_parse_with_clap() {
        let n = run(&[
            "-v",
            "5",
            "--bind-address=0.0.0.0",
            "--leader-elect",
            "--contention-profiling",
            "--kubeconfig",
            "/etc/k.conf",
        ]);
        let opts = Opts::try_parse_from(&n.args).expect("parses");
        assert_eq!(opts.logs.v, 5);
        assert!(opts.le.leader_elect);
        assert_eq!(opts.kubeconfig.as_deref(), Some("/etc/k.conf"));
        assert_eq!(
            n.dropped,
            ["--bind-address=0.0.0.0", "--contention-profiling"]
        );
    }

    #[test]
    fn command_line_sources() {
        let (opts, matches, _) = parse::<Opts>(
            ["prog", "--leader-elect=false", "-v", "3"].map(String::from),
            &[],
        );
        assert!(!opts.le.leader_elect);
        assert!(set_on_command_line(&matches, "leader_elect"));
        assert!(set_on_command_line(&matches, "v"));
        assert!(!set_on_command_line(
            &matches,
            "leader_elect_lease_duration"
        ));
        assert!(!set_on_command_line(&matches, "no_such_flag"));
    }
}
