//! LogShipper: durable shipping of the agent's own logs to OIAnalytics (protocol §7, E8).
//!
//! OIBus clears its batch before the POST, so any failure loses logs. Here a record accepted by
//! the queue reaches OIAnalytics unless the configured cap forces the oldest out, and every drop
//! is counted:
//!
//! 1. [`OiaLogLayer`] (`layer.rs`), a `tracing` layer, renders each event at or above the OIA level
//!    into a §7 record and hands it to a bounded in-memory channel. It never blocks the logging
//!    thread: when the channel is full the record is dropped and counted.
//! 2. The [`LogShipper`] actor (`actor.rs`) drains the channel into the durable `logs` queue
//!    (RocksDB, capped by `actors.log_shipper.queue_max_bytes`, oldest dropped and counted), and
//!    while REGISTERED and the level is not `silent`, posts batches of up to `batch_max` every
//!    interval (at most 60 s, see [`cadence`]) or as soon as a full batch is queued. Only
//!    200/201/204 remove a batch from the queue; anything else is retried with the shared
//!    [`Backoff`], capped at the interval so that delivery resumes within one interval of
//!    OIAnalytics recovering.
//!
//! The interval is the YAML `actors.log_shipper.interval` until OIAnalytics sets the logger
//! (`update-engine-logger`); from then on its `logger.oia.interval` applies, live, as in OIBus.
//!
//! While not registered, or while the level is `silent`, records stay queued and are shipped
//! once registration completes (the layer accepts nothing new while `silent`). This differs from
//! OIBus, which has no transport then and loses them, but matches "nothing lost": what was logged
//! before the code was entered in OIAnalytics is often what an operator needs most.
//!
//! This module holds the pure parts: the wire record, the level handle, the flush and backoff
//! decisions and the shared statistics read by `/status` and `/metrics`.

mod config;
pub use config::LogShipperConfig;
pub mod actor;
pub mod layer;
pub mod record;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backoff::Backoff;
use crate::config::LogLevel;

pub use actor::{GetLogShipperStats, LogShipper, SetOiaLevel};
pub use layer::{LogIntake, OiaLogLayer};
pub use record::{LogRecord, ScopeType};

/// Records the in-memory channel holds between the layer and the actor (about 5 MiB at worst).
pub const CHANNEL_CAPACITY: usize = 16_384;
/// Most records moved from the channel to the queue in one store write.
pub const INTAKE_CHUNK: usize = 4_096;
/// OIBus never waits longer than this between two flushes (§7).
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// How long a graceful stop may spend on its final post.
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often drops are summarised in one warning (never one warning per drop).
pub const DROP_SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// Once the backoff is at its cap, one failed post in this many is logged.
pub const LOG_EVERY_AT_MAX: u32 = 10;
/// The span the shipper's own posts run in. Events inside it below WARN (the client's debug
/// lines about the post) are not shipped: each post would otherwise queue a record that needs
/// another post, forever. Warnings and errors still are.
pub const POST_SPAN: &str = "oia_log_post";
/// Name of the durable queue in the `logs` column family.
pub const QUEUE_NAME: &str = "logs";

/// A level as one byte, for the lock-free handle: 0 = silent … 5 = trace.
fn level_code(level: LogLevel) -> u8 {
    match level {
        LogLevel::Silent => 0,
        LogLevel::Error => 1,
        LogLevel::Warn => 2,
        LogLevel::Info => 3,
        LogLevel::Debug => 4,
        LogLevel::Trace => 5,
    }
}

fn level_of_code(code: u8) -> LogLevel {
    match code {
        0 => LogLevel::Silent,
        1 => LogLevel::Error,
        2 => LogLevel::Warn,
        3 => LogLevel::Info,
        4 => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}

/// The code of an event's level on the same scale as [`level_code`].
pub(crate) fn event_level_code(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 1,
        tracing::Level::WARN => 2,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 4,
        tracing::Level::TRACE => 5,
    }
}

/// Dependencies (awc, rustls, h2…) are shipped only at this level or above whatever the OIA
/// level: their debug chatter is not the agent's log, and the shipper's own HTTP calls would
/// otherwise feed the queue they drain.
const FOREIGN_MAX_CODE: u8 = 2;

/// Whether an event below WARN, which is not shipped from inside [`POST_SPAN`].
pub(crate) fn is_chatter(level: &tracing::Level) -> bool {
    event_level_code(level) > FOREIGN_MAX_CODE
}

/// Whether a record of `level` from `target` goes to OIAnalytics at OIA level `max_code`.
pub(crate) fn accepts(max_code: u8, level: &tracing::Level, target: &str) -> bool {
    let code = event_level_code(level);
    code <= max_code && (is_ours(target) || code <= FOREIGN_MAX_CODE)
}

/// Events of the agent's own crates (`oibus_actors`, `oibus_agent`, tests named `oibus_*`).
fn is_ours(target: &str) -> bool {
    target.starts_with("oibus")
}

/// The OIA log level, shared by the layer (which filters with it), the actor (which does not
/// post while `silent`) and whoever changes it (`update-engine-logger`, SIGHUP). Cheap to clone
/// and to read: one atomic byte.
#[derive(Debug, Clone)]
pub struct OiaLevelHandle(Arc<Levels>);

#[derive(Debug)]
struct Levels {
    /// The level in force.
    current: AtomicU8,
    /// `engine.log.oia` of the configuration last applied: a reload changes the level only when
    /// this changes, so a level set remotely survives reloads that do not touch it.
    configured: AtomicU8,
}

impl OiaLevelHandle {
    pub fn new(level: LogLevel) -> Self {
        OiaLevelHandle(Arc::new(Levels {
            current: AtomicU8::new(level_code(level)),
            configured: AtomicU8::new(level_code(level)),
        }))
    }

    pub fn get(&self) -> LogLevel {
        level_of_code(self.code())
    }

    pub(crate) fn code(&self) -> u8 {
        self.0.current.load(Ordering::Relaxed)
    }

    /// Apply a new level at once. `tracing` caches which call sites are enabled, so the cache is
    /// rebuilt when the level really changes (rare; it walks every call site).
    pub fn set(&self, level: LogLevel) {
        let old = self.0.current.swap(level_code(level), Ordering::Relaxed);
        if old != level_code(level) {
            tracing::callsite::rebuild_interest_cache();
        }
    }

    /// Apply `engine.log.oia` from a (re)loaded configuration if it differs from the one applied
    /// before; whether it did.
    pub fn apply_configured(&self, level: LogLevel) -> bool {
        let old = self.0.configured.swap(level_code(level), Ordering::Relaxed);
        let changed = old != level_code(level);
        if changed {
            self.set(level);
        }
        changed
    }

    pub fn is_silent(&self) -> bool {
        self.code() == 0
    }
}

/// The interval between posts: `logger.oia.interval` once OIAnalytics has set the logger
/// (`remote_secs`), else the YAML `actors.log_shipper.interval`; [`effective_interval`] bounds
/// either. `second` is how long one second of the remote setting lasts (1 s; shorter only under
/// the test hook [`crate::test_hooks::log_second`]).
pub fn cadence(remote_secs: Option<u64>, yaml: Duration, second: Duration) -> Duration {
    effective_interval(match remote_secs {
        Some(secs) => second.saturating_mul(u32::try_from(secs).unwrap_or(u32::MAX)),
        None => yaml,
    })
}

/// Effective flush interval, as OIBus computes it: `min(interval, 60 s)`, 60 s for zero.
pub fn effective_interval(configured: Duration) -> Duration {
    if configured.is_zero() {
        MAX_INTERVAL
    } else {
        configured.min(MAX_INTERVAL)
    }
}

/// Only these statuses mean OIAnalytics took the batch (§7).
pub fn is_delivered(status: u16) -> bool {
    matches!(status, 200 | 201 | 204)
}

/// What the shipper should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Post a batch now.
    Post,
    /// Nothing to do before this instant.
    WaitUntil(Instant),
    /// Nothing to do until something changes (records arrive, registration, level).
    Idle,
}

/// The inputs of the flush decision.
#[derive(Debug, Clone, Copy)]
pub struct FlushState {
    /// REGISTERED and the level is not `silent`.
    pub active: bool,
    /// Records in the durable queue.
    pub queued: u64,
    /// A post is under way (one at a time, so batches arrive in order).
    pub in_flight: bool,
    /// Start of the current interval: the last post attempt, or the shipper's start.
    pub window_start: Instant,
    /// Set after a failed post: no post before this instant.
    pub retry_at: Option<Instant>,
}

/// Decide when to post: never while inactive, empty or busy; after a failure, not before the
/// backoff ends; a full batch at once; otherwise at the end of the interval.
pub fn next(state: &FlushState, batch_max: usize, interval: Duration, now: Instant) -> Next {
    if !state.active || state.in_flight || state.queued == 0 {
        return Next::Idle;
    }
    if let Some(retry_at) = state.retry_at {
        return if now >= retry_at {
            Next::Post
        } else {
            Next::WaitUntil(retry_at)
        };
    }
    if state.queued >= batch_max.max(1) as u64 {
        return Next::Post;
    }
    let due = state.window_start + effective_interval(interval);
    if now >= due {
        Next::Post
    } else {
        Next::WaitUntil(due)
    }
}

/// Whether the failure just recorded should be logged: each one while the backoff still grows
/// (up to the first at the cap), then one in [`LOG_EVERY_AT_MAX`], so a long outage logs now and
/// then rather than at every attempt (these warnings are shipped too).
pub fn should_log_failure(backoff: &Backoff) -> bool {
    backoff.failures_at_cap() <= 1 || backoff.failures() % LOG_EVERY_AT_MAX == 0
}

/// A batch ready to post: the queued records joined into a JSON array, as they were stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub json: Vec<u8>,
    /// Records in `json`.
    pub records: u64,
    /// Items left out (known invalid, or not a JSON object): removed with the batch.
    pub skipped: u64,
    /// Sequence number of the last item covered, acked when the batch is delivered.
    pub last_seq: u64,
}

/// Join queued items into a body. Items in `invalid` (found unacceptable after a rejection) or
/// that are not even a JSON object are left out. No parsing: records are queued as posted.
pub fn build_body(items: &[(u64, Vec<u8>)], invalid: &BTreeSet<u64>) -> Body {
    let size: usize = items.iter().map(|(_, b)| b.len() + 1).sum();
    let mut json = Vec::with_capacity(size + 2);
    json.push(b'[');
    let (mut records, mut skipped) = (0, 0);
    for (seq, bytes) in items {
        let object = bytes.first() == Some(&b'{')
            && bytes.last() == Some(&b'}')
            && std::str::from_utf8(bytes).is_ok();
        if !object || invalid.contains(seq) {
            skipped += 1;
            continue;
        }
        if records > 0 {
            json.push(b',');
        }
        json.extend_from_slice(bytes);
        records += 1;
    }
    json.push(b']');
    Body {
        json,
        records,
        skipped,
        last_seq: items.last().map_or(0, |(seq, _)| *seq),
    }
}

/// After OIAnalytics rejected a batch as malformed (400): the items that are not acceptable E8
/// records. Empty when every item is fine; the rejection is then retried like any failure.
pub fn invalid_items(items: &[(u64, Vec<u8>)]) -> Vec<u64> {
    items
        .iter()
        .filter(|(_, bytes)| {
            serde_json::from_slice::<LogRecord<'_>>(bytes).map_or(true, |r| !r.is_acceptable())
        })
        .map(|(seq, _)| *seq)
        .collect()
}

/// Counters shared by the layer, the actor (across its restarts) and the local API.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    dropped_channel: AtomicU64,
    dropped_cap: AtomicU64,
    dropped_store: AtomicU64,
    skipped_corrupt: AtomicU64,
    queue_len: AtomicU64,
    queue_bytes: AtomicU64,
    delivered: AtomicU64,
    posts_ok: AtomicU64,
    posts_failed: AtomicU64,
    shipping: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// Shared, lock-free (but for the last error) view of the shipper, for `/status` and
/// `/metrics`. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StatsHandle(Arc<Counters>);

/// A snapshot of [`StatsHandle`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogShipperStats {
    /// Records the layer put into the channel since the process started.
    pub accepted: u64,
    /// Records lost because the channel was full (since the process started).
    pub dropped_channel: u64,
    /// Records dropped from the queue by `queue_max_bytes` (since the queue was created).
    pub dropped_cap: u64,
    /// Records lost because the store refused the write (disk full, I/O error).
    pub dropped_store: u64,
    /// Queued records that did not decode and were removed (since the process started).
    pub skipped_corrupt: u64,
    /// Records waiting in the durable queue.
    pub queue_len: u64,
    pub queue_bytes: u64,
    /// Records OIAnalytics accepted (since the process started).
    pub delivered: u64,
    pub posts_ok: u64,
    pub posts_failed: u64,
    /// REGISTERED and level not silent.
    pub shipping: bool,
    /// The last post failure, cleared by a delivery.
    pub last_error: Option<String>,
}

impl StatsHandle {
    pub fn snapshot(&self) -> LogShipperStats {
        let c = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LogShipperStats {
            accepted: load(&c.accepted),
            dropped_channel: load(&c.dropped_channel),
            dropped_cap: load(&c.dropped_cap),
            dropped_store: load(&c.dropped_store),
            skipped_corrupt: load(&c.skipped_corrupt),
            queue_len: load(&c.queue_len),
            queue_bytes: load(&c.queue_bytes),
            delivered: load(&c.delivered),
            posts_ok: load(&c.posts_ok),
            posts_failed: load(&c.posts_failed),
            shipping: c.shipping.load(Ordering::Relaxed),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    pub(crate) fn record_accepted(&self) {
        self.0.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_channel_drop(&self) {
        self.0.dropped_channel.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_store_drops(&self, count: u64) {
        self.0.dropped_store.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn set_queue(&self, stats: &crate::store::QueueStats) {
        self.0.queue_len.store(stats.len, Ordering::Relaxed);
        self.0.queue_bytes.store(stats.bytes, Ordering::Relaxed);
        self.0.dropped_cap.store(stats.dropped, Ordering::Relaxed);
    }

    pub(crate) fn set_shipping(&self, shipping: bool) {
        self.0.shipping.store(shipping, Ordering::Relaxed);
    }

    pub(crate) fn record_post(&self, delivered: u64, corrupt: u64) {
        self.0.delivered.fetch_add(delivered, Ordering::Relaxed);
        self.0.skipped_corrupt.fetch_add(corrupt, Ordering::Relaxed);
        self.0.posts_ok.fetch_add(1, Ordering::Relaxed);
        *self.0.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub(crate) fn record_failure(&self, error: String) {
        self.0.posts_failed.fetch_add(1, Ordering::Relaxed);
        *self.0.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }
}

impl LogShipperStats {
    /// Every record lost so far, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_channel + self.dropped_cap + self.dropped_store + self.skipped_corrupt
    }
}

/// The shipper's figures on `/metrics`, read at every scrape.
impl Collector for StatsHandle {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        self.snapshot().encode(encoder)
    }
}

impl Collector for LogShipperStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        use MetricType::{Counter, Gauge};
        let mut metric = |name: &str, kind, help: &str, samples: &[(&[(&str, &str)], u64)]| {
            crate::events::encode_samples(&mut encoder, name, help, kind, samples)
        };
        let reason = |r| [("reason", r)];
        let (channel, cap, store, corrupt) = (
            reason("channel_full"),
            reason("queue_cap"),
            reason("store_error"),
            reason("corrupt"),
        );
        metric(
            "oibus_agent_log_records_accepted",
            Counter,
            "Log records accepted for OIAnalytics since the process started",
            &[(&[], self.accepted)],
        )?;
        metric(
            "oibus_agent_log_records_dropped",
            Counter,
            "Log records lost before delivery, by reason",
            &[
                (&channel, self.dropped_channel),
                (&cap, self.dropped_cap),
                (&store, self.dropped_store),
                (&corrupt, self.skipped_corrupt),
            ],
        )?;
        metric(
            "oibus_agent_log_records_delivered",
            Counter,
            "Log records OIAnalytics accepted since the process started",
            &[(&[], self.delivered)],
        )?;
        metric(
            "oibus_agent_log_posts",
            Counter,
            "Log batch posts to OIAnalytics, by outcome",
            &[
                (&[("outcome", "ok")], self.posts_ok),
                (&[("outcome", "failed")], self.posts_failed),
            ],
        )?;
        metric(
            "oibus_agent_log_queue_records",
            Gauge,
            "Log records waiting in the durable queue",
            &[(&[], self.queue_len)],
        )?;
        metric(
            "oibus_agent_log_queue_bytes",
            Gauge,
            "Bytes of log records waiting in the durable queue",
            &[(&[], self.queue_bytes)],
        )
    }
}

/// Turns drop counters into at most one warning per period, with the drops since the last one.
#[derive(Debug, Clone, Default)]
pub struct DropSummary {
    reported_channel: u64,
    reported_cap: u64,
    reported_store: u64,
}

impl DropSummary {
    /// Start from the current totals, so drops from before (an earlier run) are not reported as new.
    pub fn from(stats: &LogShipperStats) -> Self {
        DropSummary {
            reported_channel: stats.dropped_channel,
            reported_cap: stats.dropped_cap,
            reported_store: stats.dropped_store,
        }
    }

    /// New drops since the last call, or `None` if none.
    pub fn take(&mut self, stats: &LogShipperStats) -> Option<NewDrops> {
        let new = NewDrops {
            channel_full: stats.dropped_channel.saturating_sub(self.reported_channel),
            queue_cap: stats.dropped_cap.saturating_sub(self.reported_cap),
            store_error: stats.dropped_store.saturating_sub(self.reported_store),
        };
        *self = DropSummary::from(stats);
        (new != NewDrops::default()).then_some(new)
    }
}

/// Drops since the last summary, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewDrops {
    pub channel_full: u64,
    pub queue_cap: u64,
    pub store_error: u64,
}

#[cfg(test)]
mod tests;
