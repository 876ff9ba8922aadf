//! Throughput and memory figures for the per-north cache: `cargo bench -p oibus-actors --bench
//! north_cache` prints `BENCH <name> <value> <unit>` lines (a name filter works as in the
//! `metrics` bench). The store goes in `$TMPDIR` (or `OIBUS_BENCH_DIR`): put it on the disk you
//! want measured, since every append is an fsync. Nothing here asserts timings.

use std::time::{Duration, Instant};

use serde_json::json;

use oibus_actors::content::{Content, ContentType, TimeValue};
use oibus_actors::north_cache::{CacheOwner, CachingSettings, NorthCache};
use oibus_actors::store::Store;

const BENCHES: [(&str, fn()); 2] = [
    ("append_values_synced", append_values_synced),
    ("queue_1m_values_then_drain", queue_1m_values_then_drain),
];

mod common;

fn main() {
    common::run(&BENCHES);
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("OIBUS_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory for the bench store")
}

/// 1,000 time values shaped like an OPC UA south's (a quality besides the value).
fn thousand_values(round: usize) -> Content {
    Content::Values {
        kind: ContentType::TimeValues,
        values: (0..1000)
            .map(|i| TimeValue {
                point_id: format!("ns=3;s=Plant.Line1.Sensor{i:04}"),
                timestamp: format!("2026-01-01T00:{:02}:{:02}.000Z", round % 60, i % 60),
                data: json!({ "value": (round * 1000 + i) as f64 * 0.5, "quality": "Good" }),
            })
            .collect(),
    }
}

fn open_cache(store: &Store, max_elements: u64) -> NorthCache {
    let mut settings = CachingSettings::default();
    settings.throttling.max_number_of_elements = max_elements;
    NorthCache::open(store, CacheOwner::North("bench".into()), settings).expect("open the cache")
}

/// Appends `batches` contents of 1,000 values, one synced write each.
fn append(cache: &NorthCache, contents: &[Content], batches: usize) -> Duration {
    let start = Instant::now();
    for i in 0..batches {
        let staged = cache
            .append(&contents[i % contents.len()], "south bench")
            .expect("append");
        assert!(!staged.dropped);
    }
    start.elapsed()
}

fn append_values_synced() {
    let contents: Vec<Content> = (0..10).map(thousand_values).collect();
    let batches = 200;
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let dir = bench_dir();
            let store = Store::open(&dir.path().join("store")).expect("open the store");
            let cache = open_cache(&store, 10_000);
            let elapsed = append(&cache, &contents, batches);
            let rate = (batches * 1000) as f64 / elapsed.as_secs_f64();
            println!(
                "{} values in {batches} synced appends: {elapsed:?}, {rate:.0} values/s, {:.2} ms/append",
                batches * 1000,
                elapsed.as_secs_f64() * 1000.0 / batches as f64
            );
            rate
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "BENCH north_cache_append_values_per_s {:.0} values/s",
        rates[1]
    );
}

fn queue_1m_values_then_drain() {
    let contents: Vec<Content> = (0..10).map(thousand_values).collect();
    let dir = bench_dir();
    let store = Store::open(&dir.path().join("store")).expect("open the store");
    let cache = open_cache(&store, 10_000);
    let rss_before = rss_kib();
    // RSS a quarter of the way and at the end: flat means bounded by RocksDB's memtables and
    // block cache, not by the backlog.
    let mut elapsed = append(&cache, &contents, 250);
    println!(
        "BENCH north_cache_rss_after_queueing_250k_values {} KiB",
        rss_kib()
    );
    elapsed += append(&cache, &contents, 750);
    let queued = cache.stats();
    let rss_queued = rss_kib();
    println!(
        "queued {} values ({} entries, {:.1} MiB) in {elapsed:?}; RSS {rss_before} KiB before",
        queued.cache_elements,
        queued.cache_entries,
        queued.cache_bytes as f64 / (1u64 << 20) as f64
    );
    println!("BENCH north_cache_rss_after_queueing_1m_values {rss_queued} KiB");

    let start = Instant::now();
    let (mut values, mut batches) = (0, 0);
    while let Some(batch) = cache.next_batch().expect("next batch") {
        values += batch.elements;
        batches += 1;
        cache.sent(&batch).expect("sent");
    }
    let elapsed = start.elapsed();
    let rate = values as f64 / elapsed.as_secs_f64();
    println!("drained {values} values in {batches} batches of up to 10,000: {elapsed:?}");
    println!("BENCH north_cache_drain_values_per_s {rate:.0} values/s");
    println!(
        "BENCH north_cache_rss_after_draining_1m_values {} KiB",
        rss_kib()
    );
}

/// `VmRSS` of this process, in KiB (0 where /proc is not there).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
