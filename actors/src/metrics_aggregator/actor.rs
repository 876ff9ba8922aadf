//! The MetricsAggregator actor: every `flush_interval` it drains the counting handle and folds
//! the counts into the stored window documents (`metrics` column family) in one write batch;
//! it enforces retention hourly and flushes once more on `Stop`. It also installs the
//! [`MetricsRecorder`] behind `crate::events`, so every actor's counts land here.
//!
//! Messages: `supervision::Stop` (final flush) and its own `Tick`. Reads do not go through the
//! actor: [`read_documents`] scans the store directly (at most one flush interval behind).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::{
    DocCache, DocKey, Document, Family, MetricsError, MetricsHandle, MinuteCount, Outcome, Sample,
    WindowType,
};
use crate::events::{Recorder, Source};
use crate::store::{Cf, Durability, Store, StoreError};
use crate::supervision::{ChildGuard, Stop};
use crate::AgentContext;

/// Retention is enforced this often (and at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Turns the `events` calls of every actor into samples on the handle. The `user` tag is the
/// engine id unless the caller names one.
pub struct MetricsRecorder {
    handle: MetricsHandle,
    user: String,
}

impl MetricsRecorder {
    pub fn new(handle: MetricsHandle, engine_id: &str) -> Self {
        MetricsRecorder {
            handle,
            user: engine_id.to_string(),
        }
    }

    fn count(&self, family: Family, tags: &[(&str, &str)]) {
        match Sample::from_tags(family, tags.iter().copied()) {
            Ok(sample) => self.handle.count(&sample),
            // A wrong tag set is a bug in the caller; counting must never fail it.
            Err(e) => tracing::debug!(error = %e, "metric sample rejected"),
        }
    }
}

fn ok(ok: bool) -> &'static str {
    Outcome::from(ok).as_str()
}

impl Recorder for MetricsRecorder {
    fn operation(&self, source: Source, operation: &str, success: bool) {
        self.handle.count(&Sample::operation(
            source,
            operation,
            Outcome::from(success),
            &self.user,
        ));
    }

    fn api(&self, route: &str, method: &str, result: &str) {
        self.handle
            .count(&Sample::api(route, method, result, &self.user));
    }

    fn ontology(&self, source: Source, ontology: &str, operation: &str, success: bool) {
        self.count(
            Family::Ontology,
            &[
                ("ontology", ontology),
                ("operationType", operation),
                ("result", ok(success)),
                ("user", &self.user),
                ("source", source.as_str()),
            ],
        );
    }

    fn control_panel(&self, operation: &str, success: bool, user: &str) {
        self.count(
            Family::ControlPanel,
            &[
                ("operationType", operation),
                ("result", ok(success)),
                ("user", user),
            ],
        );
    }

    fn query(&self, resource: &str, success: bool, user: &str) {
        self.count(
            Family::QueriesControlPanel,
            &[
                ("ontology", resource),
                ("result", ok(success)),
                ("user", user),
            ],
        );
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

pub struct MetricsAggregator {
    _guard: ChildGuard,
    ctx: AgentContext,
    handle: MetricsHandle,
    cache: DocCache,
    last_retention: Option<Instant>,
}

impl MetricsAggregator {
    pub fn new(guard: ChildGuard, ctx: AgentContext, handle: MetricsHandle) -> Self {
        MetricsAggregator {
            _guard: guard,
            ctx,
            handle,
            cache: DocCache::new(),
            last_retention: None,
        }
    }

    /// Drain the handle and write every touched document in one batch. On failure the counts
    /// go back to the handle, so the next flush retries them.
    pub fn flush_now(&mut self) -> Result<usize, FlushError> {
        let counts = self.handle.drain();
        if counts.is_empty() {
            return Ok(0);
        }
        match write_counts(&self.ctx.store, &mut self.cache, &counts, Utc::now()) {
            Ok(written) => Ok(written),
            Err(e) => {
                self.handle.restore(counts);
                Err(e)
            }
        }
    }

    fn enforce_retention(&mut self) {
        let retention = self.ctx.config().actors.metrics_aggregator.keep;
        let mut batch = self.ctx.store.batch();
        for range in retention.delete_ranges(Utc::now()) {
            batch.delete_range(Cf::Metrics, &range.from, &range.to);
        }
        match self.ctx.store.write(batch, Durability::Buffered) {
            Ok(()) => self.last_retention = Some(Instant::now()),
            Err(e) => tracing::warn!(error = %e, "metrics retention failed; retrying next flush"),
        }
    }

    fn tick(&mut self) {
        if let Err(e) = self.flush_now() {
            tracing::warn!(error = %e, "metrics flush failed; the counts are kept for the next one");
        }
        if self
            .last_retention
            .is_none_or(|t| t.elapsed() >= RETENTION_EVERY)
        {
            self.enforce_retention();
        }
    }
}

/// The stored document under `key`; a corrupt one is quarantined and treated as absent.
/// Fold `counts` into their documents (from `cache`, else the store) and write them in one
/// batch; once written, the documents of windows still open at `now` are cached. Returns how
/// many documents were written.
pub fn write_counts(
    store: &Store,
    cache: &mut DocCache,
    counts: &[MinuteCount],
    now: DateTime<Utc>,
) -> Result<usize, FlushError> {
    let n = cache.fold::<FlushError>(counts, |key| load(store, key))?;
    let mut batch = store.batch();
    let mut value = Vec::new();
    for (key, doc) in cache.changed() {
        doc.encode_stored(&mut value);
        batch.put_raw(Cf::Metrics, key.as_bytes(), &value);
    }
    if let Err(e) = store.write(batch, Durability::Buffered) {
        cache.forget();
        return Err(e.into());
    }
    cache.written(now);
    Ok(n)
}

fn load(store: &Store, key: &DocKey) -> Result<Option<Document>, FlushError> {
    let Some(bytes) = store.get_raw(Cf::Metrics, key.as_bytes())? else {
        return Ok(None);
    };
    match Document::decode_stored(key.as_bytes(), &bytes) {
        Ok((_, doc)) => Ok(Some(doc)),
        Err(e) => {
            store.quarantine(Cf::Metrics, key.as_bytes(), &bytes, &e.to_string())?;
            Ok(None)
        }
    }
}

/// Stored documents of one window type (all families, or one), whose window starts within
/// `[from, to]`, in key order. Corrupt records are quarantined and skipped.
pub fn read_documents(
    store: &Store,
    window: WindowType,
    family: Option<Family>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Document>, FlushError> {
    let families: Vec<Family> = match family {
        Some(f) => vec![f],
        None => Family::ALL.to_vec(),
    };
    let mut docs = Vec::new();
    for family in families {
        let prefix = DocKey::prefix(family, window);
        let start = DocKey::time_bound(family, window, window.start(from));
        for (key, bytes) in store.scan_from(Cf::Metrics, &prefix, &start, usize::MAX)? {
            match Document::decode_stored(&key, &bytes) {
                Ok((_, doc)) if doc.start() > to => break,
                Ok((_, doc)) => docs.push(doc),
                Err(e) => store.quarantine(Cf::Metrics, &key, &bytes, &e.to_string())?,
            }
        }
    }
    Ok(docs)
}

impl Actor for MetricsAggregator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Tick);
    }
}

impl Handler<Tick> for MetricsAggregator {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        self.tick();
        let every = self.ctx.config().actors.metrics_aggregator.flush_interval;
        ctx.notify_later(Tick, every);
    }
}

impl Handler<Stop> for MetricsAggregator {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        match self.flush_now() {
            Ok(n) => tracing::debug!(documents = n, "metrics flushed at shutdown"),
            Err(e) => {
                tracing::warn!(error = %e, "final metrics flush failed; counts since the last flush are lost")
            }
        }
        ctx.stop();
    }
}

/// Install the process-wide recorder for `handle`.
pub fn install_recorder(handle: &MetricsHandle, engine_id: &str) {
    crate::events::set_recorder(Arc::new(MetricsRecorder::new(handle.clone(), engine_id)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn aggregator(store: &Store, handle: MetricsHandle) -> MetricsAggregator {
        let ctx = AgentContext::for_tests(store.clone(), Config::default());
        MetricsAggregator::new(ChildGuard::unsupervised(), ctx, handle)
    }

    #[test]
    fn counts_are_flushed_into_the_three_windows_and_summed_across_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let handle = MetricsHandle::new();
        let recorder = MetricsRecorder::new(handle.clone(), "engine");
        let mut agg = aggregator(&store, handle);
        for _ in 0..3 {
            recorder.operation(Source::CommandPoller, "poll", true);
        }
        assert_eq!(agg.flush_now().unwrap(), 3, "one document per window");
        recorder.operation(Source::CommandPoller, "poll", true);
        agg.flush_now().unwrap();
        let now = Utc::now();
        for window in WindowType::ALL {
            let docs = read_documents(&store, window, Some(Family::Operation), now, now).unwrap();
            assert_eq!(docs.len(), 1, "{window:?}");
            assert_eq!(docs[0].total(), 4, "{window:?}");
        }
    }

    #[test]
    fn documents_survive_a_reopen_without_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let handle = MetricsHandle::new();
        let recorder = MetricsRecorder::new(handle.clone(), "engine");
        {
            let store = Store::open(dir.path()).unwrap();
            let mut agg = aggregator(&store, handle.clone());
            recorder.api("commands/pending", "GET", "200");
            agg.flush_now().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let mut agg = aggregator(&store, handle);
        recorder.api("commands/pending", "GET", "200");
        agg.flush_now().unwrap();
        let now = Utc::now();
        let docs = read_documents(&store, WindowType::Days, Some(Family::Api), now, now).unwrap();
        assert_eq!(docs[0].total(), 2);
    }

    #[test]
    fn a_corrupt_document_is_quarantined_and_counting_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let handle = MetricsHandle::new();
        let recorder = MetricsRecorder::new(handle.clone(), "engine");
        let mut agg = aggregator(&store, handle.clone());
        recorder.control_panel("register", true, "ops");
        agg.flush_now().unwrap();
        let now = Utc::now();
        let doc = &read_documents(&store, WindowType::Hours, None, now, now).unwrap()[0];
        store
            .put(
                Cf::Metrics,
                doc.key().as_bytes(),
                &"garbage",
                Durability::Sync,
            )
            .unwrap();
        // A fresh actor has no cache, so it must read (and quarantine) the corrupt record.
        let mut agg = aggregator(&store, handle);
        recorder.control_panel("register", true, "ops");
        agg.flush_now().unwrap();
        assert_eq!(store.quarantined(), 1);
        let doc = &read_documents(&store, WindowType::Hours, None, now, now).unwrap()[0];
        assert_eq!(doc.total(), 1, "a new zero-filled document took its place");
    }
}
