//! Throughput figures for the hot paths, callable from a bench script or the ignored tests
//! below (`cargo test -p oibus-actors metrics_aggregator::bench -- --ignored --nocapture`).
//! They report durations; nothing here asserts timings.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{flush, DocCache, Document, ManualClock, MetricsError, MetricsHandle, Sample};

/// Time to count `n` events on the calling thread, spread over 64 samples, with the system
/// clock.
pub fn bench_count(n: u64) -> Duration {
    let handle = MetricsHandle::new();
    let samples = samples(64);
    let began = Instant::now();
    for i in 0..n {
        handle.count(&samples[(i % 64) as usize]);
    }
    let elapsed = began.elapsed();
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

/// Times one flush of `series` dirty series, counted within one minute.
pub fn bench_flush(series: usize) -> FlushBench {
    let at: DateTime<Utc> = DateTime::from_timestamp(1_715_350_920, 0).unwrap_or_default();
    let handle = MetricsHandle::with_clock(Arc::new(ManualClock::new(at)));
    for sample in samples(series) {
        handle.count_n(&sample, 3);
    }
    let counts = handle.drain();

    let began = Instant::now();
    let fresh = flush(&counts, |_| Ok::<_, MetricsError>(None));
    let fresh_time = began.elapsed();
    // The lookup never fails, so neither does the flush.
    let docs = fresh.unwrap_or_default();

    let mut cache = DocCache::new();
    cache.keep(docs.clone(), at);
    let began = Instant::now();
    let existing = flush(&counts, |key| Ok::<_, MetricsError>(cache.take(key)));
    let existing_time = began.elapsed();
    std::hint::black_box(existing.map(|d| d.len()).unwrap_or_default());

    let began = Instant::now();
    let encoded: Vec<(Vec<u8>, Vec<u8>)> = docs
        .iter()
        .map(|(k, d)| (k.as_bytes().to_vec(), d.to_json()))
        .collect();
    let encode = began.elapsed();
    let began = Instant::now();
    let decoded = encoded
        .iter()
        .filter(|(k, v)| Document::decode_stored(k, v).is_ok())
        .count();
    let decode = began.elapsed();
    std::hint::black_box(decoded);

    FlushBench {
        series,
        docs: docs.len(),
        fresh: fresh_time,
        existing: existing_time,
        encode,
        decode,
    }
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
    }

    #[test]
    #[ignore = "prints throughput figures"]
    fn flushing_10k_dirty_series() {
        for _ in 0..3 {
            println!("{}", bench_flush(10_000));
        }
    }

    #[test]
    fn bench_flush_makes_three_documents_per_series() {
        assert_eq!(bench_flush(10).docs, 30);
    }
}
