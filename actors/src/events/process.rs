//! The standard `process_*` metrics, read from `/proc/self` at every scrape. A file that cannot
//! be read leaves its metric out rather than failing the scrape.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

#[derive(Debug)]
pub(super) struct Process;

/// The figures of `/proc/self/stat` we expose, in clock ticks.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    utime: u64,
    stime: u64,
    /// Since boot.
    starttime: u64,
}

/// Parses `/proc/self/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted after its last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
    })
}

/// The boot time in Unix seconds, from the `btime` line of `/proc/stat`.
fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Resident pages, the second field of `/proc/self/statm`.
fn parse_statm_resident(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|v| *v > 0)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let ticks = sysconf(libc::_SC_CLK_TCK);
        let stat = read("/proc/self/stat").and_then(|t| parse_stat(&t));
        if let (Some(stat), Some(ticks)) = (&stat, ticks) {
            let cpu = (stat.utime + stat.stime) as f64 / ticks as f64;
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(metric)?;
            if let Some(btime) = read("/proc/stat").and_then(|t| parse_btime(&t)) {
                let start = btime as f64 + stat.starttime as f64 / ticks as f64;
                gauge(
                    &mut encoder,
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds",
                    start,
                )?;
            }
        }
        let pages = read("/proc/self/statm").and_then(|t| parse_statm_resident(&t));
        if let (Some(pages), Some(size)) = (pages, sysconf(libc::_SC_PAGESIZE)) {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                (pages * size) as f64,
            )?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                fds.count() as f64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis_of_the_name() {
        let text = "4242 (oibus (a) b) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                utime: 250,
                stime: 75,
                starttime: 123456
            })
        );
    }

    #[test]
    fn a_truncated_stat_line_gives_nothing() {
        assert_eq!(parse_stat("4242 (oibus) S 1 2 3"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn boot_time_and_resident_pages_are_read_from_their_lines() {
        assert_eq!(
            parse_btime("cpu 1 2 3\nbtime 1764000000\nprocesses 9\n"),
            Some(1764000000)
        );
        assert_eq!(parse_btime("cpu 1 2 3\n"), None);
        assert_eq!(
            parse_statm_resident("5000 1200 300 10 0 900 0\n"),
            Some(1200)
        );
    }

    #[test]
    fn this_process_reports_its_start_time_memory_fds_and_cpu() {
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Process));
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "process_cpu_seconds_total ",
            "process_start_time_seconds ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
    }
}
