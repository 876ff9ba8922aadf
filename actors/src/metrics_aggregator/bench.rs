//! Throughput figures for the hot paths, callable from a bench script or the ignored tests
//! below (`cargo test -p oibus-actors metrics_aggregator::bench -- --ignored --nocapture`).
//! They report durations; nothing here asserts timings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{flush, DocCache, Document, ManualClock, MetricsError, MetricsHandle, Sample};

/// Thread CPU time to count `n` events on the calling thread, spread over 64 samples, with the system
/// clock.
pub fn bench_count(n: u64) -> Duration {
    let handle = MetricsHandle::new();
    let samples = samples(64);
    let began = thread_cpu_time();
    for i in 0..n {
        handle.count(&samples[(i % 64) as usize]);
    }
    let elapsed = thread_cpu_time().saturating_sub(began);
    std::hint::black_box(handle.drain());
    elapsed
}

/// What [`bench_flush`] measured for `series` dirty series (3 documents each).
#[derive(Clone, Debug)]
pub struct FlushBench {
    pub series: usize,
    pub docs: usize,
    /// `flush` when no document exists yet (zero-filled creation).
    pub fresh: Duration,
    /// `flush` when every document exists, taken from a [`DocCache`].
    pub existing: Duration,
    /// `to_json` of every document.
    pub encode: Duration,
    /// `decode_stored` of every document.
    pub decode: Duration,
}

impl fmt::Display for FlushBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} series, {} docs: flush fresh {:?}, flush existing {:?}, encode {:?}, decode {:?}",
            self.series, self.docs, self.fresh, self.existing, self.encode, self.decode
        )
    }
}

/// Times (thread CPU time) one flush of `series` dirty series, counted within one minute.
/// Each figure is the best of [`ROUNDS`] runs.
pub fn bench_flush(series: usize) -> FlushBench {
    let at: DateTime<Utc> = DateTime::from_timestamp(1_715_350_920, 0).unwrap_or_default();
    let handle = MetricsHandle::with_clock(Arc::new(ManualClock::new(at)));
    for sample in samples(series) {
        handle.count_n(&sample, 3);
    }
    let counts = handle.drain();

    // The lookups never fail, so neither do the flushes.
    let fresh = best_of(|| flush(&counts, |_| Ok::<_, MetricsError>(None)).unwrap_or_default());
    let docs = flush(&counts, |_| Ok::<_, MetricsError>(None)).unwrap_or_default();
    let existing = best_of_with(
        || {
            let mut cache = DocCache::new();
            cache.keep(docs.clone(), at);
            cache
        },
        |mut cache| {
            flush(&counts, |key| Ok::<_, MetricsError>(cache.take(key))).unwrap_or_default()
        },
    );
    let encode_all = || -> Vec<(Vec<u8>, Vec<u8>)> {
        docs.iter()
            .map(|(k, d)| (k.as_bytes().to_vec(), d.to_json()))
            .collect()
    };
    let encode = best_of(encode_all);
    let encoded = encode_all();
    let decode = best_of(|| {
        encoded
            .iter()
            .filter(|(k, v)| Document::decode_stored(k, v).is_ok())
            .count()
    });

    FlushBench {
        series,
        docs: docs.len(),
        fresh,
        existing,
        encode,
        decode,
    }
}

/// Runs per figure of [`bench_flush`].
pub const ROUNDS: usize = 5;

fn best_of<T>(mut run: impl FnMut() -> T) -> Duration {
    best_of_with(|| (), |()| run())
}

/// The shortest time of `run`, each time on fresh input from `setup` (not timed).
fn best_of_with<I, T>(mut setup: impl FnMut() -> I, mut run: impl FnMut(I) -> T) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let input = setup();
            let began = thread_cpu_time();
            std::hint::black_box(run(input));
            thread_cpu_time().saturating_sub(began)
        })
        .min()
        .unwrap_or_default()
}

/// CPU time of the calling thread: unlike wall time, it does not grow when other processes
/// compete for the cores.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn samples(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            Sample::api(
                "/api/oianalytics/oibus/commands/status",
                "PUT",
                "200",
                &format!("user-{i}"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "prints throughput figures"]
    fn counting_throughput_on_one_thread() {
        let n = 2_000_000;
        let elapsed = bench_count(n);
        println!(
            "{n} counts in {elapsed:?}: {:.0} counts/s",
            n as f64 / elapsed.as_secs_f64()
        );
        // The line scripts/bench.sh collects.
        println!(
            "BENCH metric_counts_per_s {:.2} counts/s",
            n as f64 / elapsed.as_secs_f64()
        );
    }

    #[test]
    #[ignore = "prints throughput figures"]
    fn flushing_10k_dirty_series() {
        let bench = bench_flush(10_000);
        println!("{bench}");
        println!(
            "BENCH metric_flush_10k_series_ms {:.2} ms",
            bench.existing.as_secs_f64() * 1e3
        );
    }

    #[test]
    fn bench_flush_makes_three_documents_per_series() {
        assert_eq!(bench_flush(10).docs, 30);
    }
}
