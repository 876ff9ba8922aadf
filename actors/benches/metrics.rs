//! Throughput figures for the metrics hot paths: counting, flushing and the store write.
//! `scripts/bench.sh` runs this (`cargo bench -p oibus-actors --bench metrics`) and collects the
//! `BENCH <name> <value> <unit>` lines; `cargo bench -p oibus-actors --bench metrics -- flushing`
//! runs only the figures whose name contains `flushing`. They report durations; nothing here
//! asserts timings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use oibus_actors::metrics_aggregator::actor::write_counts;
use oibus_actors::metrics_aggregator::{
    DocCache, DocKey, Document, ManualClock, MetricsError, MetricsHandle, MinuteCount, Sample,
};
use oibus_actors::store::Store;

/// Each figure: its name (for the filter) and what prints its lines.
const BENCHES: [(&str, fn()); 3] = [
    (
        "counting_throughput_on_one_thread",
        counting_throughput_on_one_thread,
    ),
    ("flushing_10k_dirty_series", flushing_10k_dirty_series),
    (
        "flushing_10k_dirty_series_into_the_store",
        flushing_10k_dirty_series_into_the_store,
    ),
];

mod common;

fn main() {
    common::run(&BENCHES);
}

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

fn flushing_10k_dirty_series() {
    let bench = bench_flush(10_000);
    println!("{bench}");
    // One flush makes three documents per series (the old unit test, kept as a check).
    assert_eq!(bench.docs, 3 * bench.series, "{bench}");
    println!(
        "BENCH metric_flush_10k_series_ms {:.2} ms",
        bench.existing.as_secs_f64() * 1e3
    );
}

fn flushing_10k_dirty_series_into_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    let took = bench_store_flush(&store, 10_000);
    println!("10000 series, 30000 docs folded, encoded and written: {took:?}");
    println!(
        "BENCH metric_store_flush_10k_series_ms {:.2} ms",
        took.as_secs_f64() * 1e3
    );
}

/// Thread CPU time to count `n` events on the calling thread, spread over 64 samples, with the system
/// clock.
fn bench_count(n: u64) -> Duration {
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
struct FlushBench {
    series: usize,
    docs: usize,
    /// A fold when no document exists yet (zero-filled creation).
    fresh: Duration,
    /// A fold when every document is in the [`DocCache`] already (the steady state).
    existing: Duration,
    /// `to_stored` of every document.
    encode: Duration,
    /// `decode_stored` of every document.
    decode: Duration,
    /// `to_json` of every document (what a read of the documents API renders).
    render: Duration,
}

impl fmt::Display for FlushBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} series, {} docs: flush fresh {:?}, flush existing {:?}, encode {:?}, decode {:?}, \
             render as JSON {:?}",
            self.series,
            self.docs,
            self.fresh,
            self.existing,
            self.encode,
            self.decode,
            self.render
        )
    }
}

/// Times (thread CPU time) one flush of `series` dirty series, counted within one minute.
/// Each figure is the best of [`ROUNDS`] runs.
fn bench_flush(series: usize) -> FlushBench {
    let at: DateTime<Utc> = DateTime::from_timestamp(1_715_350_920, 0).unwrap_or_default();
    let handle = MetricsHandle::with_clock(Arc::new(ManualClock::new(at)));
    for sample in samples(series) {
        handle.count_n(&sample, 3);
    }
    let counts = handle.drain();

    // The lookups never fail, so neither do the folds.
    let none = |_: &DocKey| Ok::<_, MetricsError>(None);
    let fold = |counts: &[MinuteCount], cache: &mut DocCache| cache.fold(counts, none).unwrap_or(0);
    let fresh = best_of_with(DocCache::new, |mut cache| {
        fold(&counts, &mut cache);
        cache
    });
    let warm = || {
        let mut cache = DocCache::new();
        fold(&counts, &mut cache);
        cache.written(at);
        cache
    };
    let existing = best_of_with(warm, |mut cache| {
        fold(&counts, &mut cache);
        cache
    });
    let docs: Vec<(DocKey, Document)> = {
        let mut cache = DocCache::new();
        fold(&counts, &mut cache);
        cache
            .changed()
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect()
    };
    let encode_all = || -> Vec<(Vec<u8>, Vec<u8>)> {
        docs.iter()
            .map(|(k, d)| (k.as_bytes().to_vec(), d.to_stored()))
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
    let render = best_of(|| docs.iter().map(|(_, d)| d.to_json().len()).sum::<usize>());

    FlushBench {
        series,
        docs: docs.len(),
        fresh,
        existing,
        encode,
        decode,
        render,
    }
}

/// Thread CPU time of the actor's whole flush of `series` dirty series into `store`: fold,
/// JSON encoding and one buffered RocksDB batch of 3 × `series` documents, with the documents
/// already stored and cached (the steady state). Best of [`ROUNDS`].
fn bench_store_flush(store: &Store, series: usize) -> Duration {
    let at: DateTime<Utc> = DateTime::from_timestamp(1_715_350_920, 0).unwrap_or_default();
    let handle = MetricsHandle::with_clock(Arc::new(ManualClock::new(at)));
    let samples = samples(series);
    let dirty = || {
        for sample in &samples {
            handle.count_n(sample, 3);
        }
        handle.drain()
    };
    let mut cache = DocCache::new();
    // The first flush creates the documents; the store cannot fail on a fresh temp dir.
    let _ = write_counts(store, &mut cache, &dirty(), at);
    best_of_with(dirty, |counts| {
        write_counts(store, &mut cache, &counts, at).is_ok()
    })
}

/// Runs per figure of [`bench_flush`].
const ROUNDS: usize = 5;

fn best_of<T>(mut run: impl FnMut() -> T) -> Duration {
    best_of_with(|| (), |()| run())
}

/// The shortest time of `run`, each time on fresh input from `setup`. Neither the setup nor
/// dropping the output is timed: the actor keeps what a flush returns in its cache.
fn best_of_with<I, T>(mut setup: impl FnMut() -> I, mut run: impl FnMut(I) -> T) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let input = setup();
            let began = thread_cpu_time();
            let output = std::hint::black_box(run(input));
            let took = thread_cpu_time().saturating_sub(began);
            drop(output);
            took
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
