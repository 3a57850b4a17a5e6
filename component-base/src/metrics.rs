//! The process-wide metrics registry (upstream's `legacyregistry`) and its
//! `/metrics` text encoding, plus the standard `process_*` metrics.
//!
//! prometheus-client appends `_total` to counter names when encoding, so a
//! counter registered as `rest_client_requests` is exposed as
//! `rest_client_requests_total`, matching upstream's name.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use nix::sys::resource::{Resource, getrlimit};
use nix::unistd::SysconfVar;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Metric, Registry};

/// Content type of [`encode_text`]'s output.
pub const TEXT_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct Global {
    registry: Registry,
    names: HashSet<String>,
}

fn global() -> MutexGuard<'static, Global> {
    static GLOBAL: OnceLock<Mutex<Global>> = OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            let mut registry = Registry::default();
            registry.register_collector(Box::new(ProcessCollector));
            Mutex::new(Global {
                registry,
                names: HashSet::new(),
            })
        })
        .lock()
        // A panic while encoding does not corrupt the registry.
        .unwrap_or_else(PoisonError::into_inner)
}

/// Registers `metric` under `name` in the global registry. Registering the
/// same name twice keeps the first metric and returns `false`, so callers
/// should keep their metric handles in a `OnceLock`/`LazyLock`.
pub fn register<M: Metric>(name: &str, help: &str, metric: M) -> bool {
    let mut global = global();
    if !global.names.insert(name.to_string()) {
        tracing::debug!(name, "metric already registered; keeping the first");
        return false;
    }
    global.registry.register(name, help, metric);
    true
}

/// Registers a collector that produces metrics on every scrape.
pub fn register_collector(collector: Box<dyn Collector>) {
    global().registry.register_collector(collector);
}

/// Encodes every registered metric in the text exposition format.
pub fn encode_text() -> String {
    let global = global();
    let mut out = String::new();
    if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &global.registry) {
        tracing::error!(%err, "failed to encode metrics");
    }
    out
}

/// Values of `/proc/self/stat` the process metrics need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStat {
    pub cpu_ticks: u64,
    pub start_ticks_since_boot: u64,
    pub virtual_bytes: u64,
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`; the command name may contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `fields[0]` is field 3 (state) of proc(5).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(ProcStat {
        cpu_ticks: field(14)? + field(15)?,
        start_ticks_since_boot: field(22)?,
        virtual_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

/// Parses the `btime` line of `/proc/stat` (boot time, Unix seconds).
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A sysconf value, or 0 when the system does not say.
fn sysconf(var: SysconfVar) -> i64 {
    nix::unistd::sysconf(var).ok().flatten().unwrap_or(0)
}

#[derive(Debug)]
struct ProcessCollector;

impl ProcessCollector {
    fn sample() -> Option<Vec<(&'static str, &'static str, f64, bool)>> {
        let stat = parse_proc_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let ticks = sysconf(SysconfVar::CLK_TCK).max(1) as f64;
        let page = sysconf(SysconfVar::PAGE_SIZE).max(1) as f64;
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64;
        let max_fds = getrlimit(Resource::RLIMIT_NOFILE).map_or(0.0, |(soft, _)| soft as f64);
        Some(vec![
            (
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                stat.cpu_ticks as f64 / ticks,
                true,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                boot as f64 + stat.start_ticks_since_boot as f64 / ticks,
                false,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stat.rss_pages as f64 * page,
                false,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stat.virtual_bytes as f64,
                false,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                open_fds,
                false,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max_fds,
                false,
            ),
        ])
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(samples) = Self::sample() else {
            return Ok(());
        };
        for (name, help, value, is_counter) in samples {
            if is_counter {
                let counter = ConstCounter::new(value);
                counter.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    counter.metric_type(),
                )?)?;
            } else {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn parses_proc_stat_with_spaces_in_comm() {
        let text = "1234 (kube (sched) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 5000 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_proc_stat(text).expect("parses");
        assert_eq!(
            stat,
            ProcStat {
                cpu_ticks: 300,
                start_ticks_since_boot: 5000,
                virtual_bytes: 104_857_600,
                rss_pages: 2560
            }
        );
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn parses_btime() {
        assert_eq!(
            parse_boot_time("cpu 1 2\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_boot_time("cpu 1 2\n"), None);
    }

    #[test]
    fn registers_and_encodes() {
        let counter: Counter = Counter::default();
        assert!(register(
            "ferrokube_test_things",
            "Things seen.",
            counter.clone()
        ));
        assert!(!register(
            "ferrokube_test_things",
            "Again.",
            Counter::<u64>::default()
        ));
        counter.inc_by(3);
        let text = encode_text();
        assert!(
            text.contains("# TYPE ferrokube_test_things counter"),
            "{text}"
        );
        assert!(text.contains("ferrokube_test_things_total 3"), "{text}");
        assert!(text.contains("process_start_time_seconds"), "{text}");
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
        assert!(text.contains("process_cpu_seconds_total"), "{text}");
    }
}
