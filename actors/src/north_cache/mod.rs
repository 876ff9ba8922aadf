//! The per-north durable cache of the data plane (data-plane §3): what a north connector, or a
//! history query's own north, still has to send (`cache`), gave up on (`error`) and sent
//! (`archive`, when enabled). It owns the `north_cache` column family: entries live in RocksDB
//! only, as OIBus-shaped metadata and content under separate keys (`keys.rs`), in arrival order.
//! It also answers the three cache commands (`commands.rs`).
//!
//! Memory stays flat whatever the backlog: the in-memory state is counters, and every read is
//! bounded (`next_batch` merges queued JSON arrays byte-wise at read time, it never rewrites
//! entries). Delivery is at least once: a crash between `next_batch` and `sent` sends the batch
//! again.

mod commands;
mod keys;
mod settings;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::content::{Content, ContentType};
use crate::store::{Batch, Cf, Durability, Store, StoreError};

pub use commands::SearchQuery;
pub use settings::{ArchiveSettings, CachingSettings, ErrorSettings, Throttling, Trigger};

/// Whose cache: a north connector, or a history query's own north.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheOwner {
    North(String),
    History(String),
}

impl std::fmt::Display for CacheOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheOwner::North(id) => write!(f, "north {id}"),
            CacheOwner::History(id) => write!(f, "history query {id}"),
        }
    }
}

/// The three areas of a cache (OIBus's `cache/`, `error/` and `archive/` folders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Cache,
    Error,
    Archive,
}

impl Area {
    pub const ALL: [Area; 3] = [Area::Cache, Area::Error, Area::Archive];

    pub fn as_str(self) -> &'static str {
        match self {
            Area::Cache => "cache",
            Area::Error => "error",
            Area::Archive => "archive",
        }
    }
}

impl std::fmt::Display for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("north cache: {0}")]
    Store(#[from] StoreError),
    #[error(
        "invalid caching settings at `{field}`: {reason}. Fix the connector's `caching` section"
    )]
    Settings { field: String, reason: String },
    #[error("the cache of {owner} has no entry {filename:?} in its {area} area; search the cache for the current names")]
    NotFound {
        owner: CacheOwner,
        area: Area,
        filename: String,
    },
    #[error("invalid {command} command content at `{field}`: {reason}")]
    Command {
        command: &'static str,
        field: String,
        reason: String,
    },
    #[error("cache owner id {0:?} contains a NUL character, which the cache keys cannot hold")]
    BadOwner(String),
}

/// Counters of one cache, rebuilt from the metadata at open. `dropped*` count since the open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub cache_entries: u64,
    /// Queued `any` entries (OIBus's raw files, for `trigger.numberOfFiles`).
    pub cache_files: u64,
    pub cache_elements: u64,
    pub cache_bytes: u64,
    pub error_entries: u64,
    pub error_bytes: u64,
    pub archive_entries: u64,
    pub archive_bytes: u64,
    /// Contents discarded because the cache was full.
    pub dropped: u64,
    /// Elements of those contents.
    pub dropped_elements: u64,
}

impl CacheStats {
    fn count(&mut self, area: Area, meta: &Metadata, add: bool) {
        let apply = |v: &mut u64, by: u64| {
            *v = if add {
                v.saturating_add(by)
            } else {
                v.saturating_sub(by)
            }
        };
        match area {
            Area::Cache => {
                apply(&mut self.cache_entries, 1);
                apply(&mut self.cache_elements, meta.number_of_element);
                apply(&mut self.cache_bytes, meta.content_size);
                if meta.content_type == ContentType::Any {
                    apply(&mut self.cache_files, 1);
                }
            }
            Area::Error => {
                apply(&mut self.error_entries, 1);
                apply(&mut self.error_bytes, meta.content_size);
            }
            Area::Archive => {
                apply(&mut self.archive_entries, 1);
                apply(&mut self.archive_bytes, meta.content_size);
            }
        }
    }

    fn total_bytes(&self) -> u64 {
        self.cache_bytes + self.error_bytes + self.archive_bytes
    }
}

/// An entry's metadata as OIBus writes it (`CacheMetadata`), plus where the content came from and,
/// in the error area, why it was given up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    content_file: String,
    content_size: u64,
    number_of_element: u64,
    created_at: String,
    content_type: ContentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What `stage` put into a batch (nothing when `dropped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub entries: usize,
    pub elements: usize,
    pub bytes: u64,
    /// The cache was full: nothing was staged, the content is counted in `stats().dropped`.
    pub dropped: bool,
    files: usize,
    first_seq: u64,
}

/// The head of the queue, ready to send: one JSON array merged from consecutive entries of one
/// type, or one `any` file.
#[derive(Debug, Clone)]
pub struct SendBatch {
    pub content_type: ContentType,
    pub body: Bytes,
    /// The head entry's `contentFile` (the name a file upload carries).
    pub filename: String,
    pub elements: usize,
    seqs: Vec<u64>,
    epoch: u64,
}

impl SendBatch {
    /// How many cache entries the batch covers.
    pub fn entries(&self) -> usize {
        self.seqs.len()
    }
}

/// Entries read per store call while iterating, so a long queue is never read whole.
const SCAN_CHUNK: usize = 256;
/// A merged batch stops growing past this many bytes (a single entry may be larger).
const MAX_BATCH_BYTES: u64 = 32 << 20;
/// OIBus's `DEBOUNCED_SIZE_WARNING_S`.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// A cheap handle (an `Arc`) on one owner's cache.
#[derive(Clone)]
pub struct NorthCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NorthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NorthCache")
            .field("owner", &self.inner.owner)
            .finish()
    }
}

struct Inner {
    store: Store,
    owner: CacheOwner,
    prefix: Vec<u8>,
    next_seq: AtomicU64,
    state: Mutex<State>,
    /// Serialises the changes to existing entries (sent, failed, update, cleanup), so that each
    /// reads what the previous one wrote and the counters follow.
    ops: Mutex<()>,
}

struct State {
    settings: CachingSettings,
    stats: CacheStats,
    /// No cache entry has a lower sequence: iteration starts here rather than scanning the
    /// deleted keys of everything already sent.
    head: u64,
    /// Bumped whenever `head` moves back, so that a batch read before does not move it forward.
    epoch: u64,
    last_full_warning: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere leaves plain counters behind, still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl NorthCache {
    /// Opens an owner's cache, rebuilding the counters from the metadata (content is not read).
    pub fn open(
        store: &Store,
        owner: CacheOwner,
        settings: CachingSettings,
    ) -> Result<NorthCache, CacheError> {
        let id = match &owner {
            CacheOwner::North(id) | CacheOwner::History(id) => id,
        };
        if id.contains('\0') {
            return Err(CacheError::BadOwner(id.clone()));
        }
        let prefix = keys::owner_prefix(&owner);
        let cache = NorthCache {
            inner: Arc::new(Inner {
                store: store.clone(),
                owner,
                prefix,
                next_seq: AtomicU64::new(0),
                state: Mutex::new(State {
                    settings,
                    stats: CacheStats::default(),
                    head: 0,
                    epoch: 0,
                    last_full_warning: None,
                }),
                ops: Mutex::new(()),
            }),
        };
        let mut stats = CacheStats::default();
        let mut head = None;
        for area in Area::ALL {
            cache.for_each_meta(area, 0, |seq, meta| {
                stats.count(area, &meta, true);
                if area == Area::Cache {
                    head.get_or_insert(seq);
                }
                Ok(true)
            })?;
        }
        // Content keys exist for every live sequence, whatever its area. The clock (µs) is a
        // floor so that an emptied cache does not hand out the names of entries OIAnalytics
        // may still show from an earlier search.
        let mut content_prefix = cache.inner.prefix.clone();
        content_prefix.push(b'd');
        let last = store
            .last_key(Cf::NorthCache, &content_prefix)?
            .and_then(|k| keys::seq_of(&k));
        let clock = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0);
        let next = last.map_or(0, |s| s.saturating_add(1)).max(clock);
        cache.inner.next_seq.store(next, Ordering::Relaxed);
        {
            let mut st = lock(&cache.inner.state);
            st.stats = stats;
            st.head = head.unwrap_or(next);
        }
        Ok(cache)
    }

    pub fn owner(&self) -> &CacheOwner {
        &self.inner.owner
    }

    pub fn settings(&self) -> CachingSettings {
        lock(&self.inner.state).settings.clone()
    }

    pub fn set_settings(&self, settings: CachingSettings) {
        lock(&self.inner.state).settings = settings;
    }

    pub fn stats(&self) -> CacheStats {
        lock(&self.inner.state).stats
    }

    /// Stages `content` into `batch` (so one fsync covers several norths' caches); does not
    /// write. Arrays longer than `maxNumberOfElements` become several entries, as OIBus chunks
    /// them. When the cache is full the content is dropped and counted (warning at most once a
    /// minute).
    pub fn stage(
        &self,
        batch: &mut Batch,
        content: &Content,
        source: &str,
    ) -> Result<Staged, CacheError> {
        let max_elements = {
            let mut st = lock(&self.inner.state);
            if let Some(max) = st.settings.max_size_bytes() {
                let total = st.stats.total_bytes();
                if total >= max {
                    st.stats.dropped += 1;
                    st.stats.dropped_elements += content.elements() as u64;
                    let warn = st
                        .last_full_warning
                        .is_none_or(|at| at.elapsed() >= FULL_WARNING_EVERY);
                    if warn {
                        st.last_full_warning = Some(Instant::now());
                        tracing::warn!(
                            owner = %self.inner.owner,
                            size_mb = total as f64 / (1u64 << 20) as f64,
                            max_size_mb = st.settings.throttling.max_size,
                            dropped_total = st.stats.dropped,
                            "North cache is exceeding the maximum allowed size. Values will be discarded until cache is emptied."
                        );
                    }
                    return Ok(Staged {
                        entries: 0,
                        elements: content.elements(),
                        bytes: 0,
                        dropped: true,
                        files: 0,
                        first_seq: 0,
                    });
                }
            }
            st.settings.max_elements().unwrap_or(usize::MAX)
        };
        let pieces = split(content, max_elements);
        let first_seq = self
            .inner
            .next_seq
            .fetch_add(pieces.len() as u64, Ordering::Relaxed);
        let created_at = crate::protocol::iso_now();
        let mut staged = Staged {
            entries: pieces.len(),
            elements: 0,
            bytes: 0,
            dropped: false,
            files: 0,
            first_seq,
        };
        for (seq, (bytes, elements)) in (first_seq..).zip(pieces) {
            let content_file = match content {
                Content::File { filename, .. } => {
                    staged.files += 1;
                    filename.clone()
                }
                _ => format!("{}.json", keys::name_of(seq)),
            };
            let meta = Metadata {
                content_file,
                content_size: bytes.len() as u64,
                number_of_element: elements as u64,
                created_at: created_at.clone(),
                content_type: content.content_type(),
                source: Some(source.to_owned()),
                error: None,
            };
            batch.put(
                Cf::NorthCache,
                &keys::meta_key(&self.inner.prefix, Area::Cache, seq),
                &meta,
            )?;
            batch.put_raw(
                Cf::NorthCache,
                &keys::content_key(&self.inner.prefix, seq),
                &bytes,
            );
            staged.elements += elements;
            staged.bytes += bytes.len() as u64;
        }
        Ok(staged)
    }

    /// Call after the batch `stage` filled was written (synced): counts the new entries.
    pub fn committed(&self, staged: &Staged) {
        if staged.dropped || staged.entries == 0 {
            return;
        }
        let mut st = lock(&self.inner.state);
        let s = &mut st.stats;
        s.cache_entries += staged.entries as u64;
        s.cache_files += staged.files as u64;
        s.cache_elements += staged.elements as u64;
        s.cache_bytes += staged.bytes;
        // Another writer may have committed later sequences first and had them sent.
        if staged.first_seq < st.head {
            st.head = staged.first_seq;
            st.epoch += 1;
        }
    }

    /// `stage`, a synced write and `committed`, for one content.
    pub fn append(&self, content: &Content, source: &str) -> Result<Staged, CacheError> {
        let mut batch = self.inner.store.batch();
        let staged = self.stage(&mut batch, content, source)?;
        if staged.entries > 0 {
            self.inner.store.write(batch, Durability::Sync)?;
            self.committed(&staged);
        }
        Ok(staged)
    }

    /// The head of the queue to send: consecutive entries of the head's array type merged into
    /// one JSON array of at most `maxNumberOfElements` elements (an entry is never split; the
    /// first is always taken), or one `any` file. `None` when the queue is empty. Entries that
    /// cannot be read are quarantined and skipped.
    pub fn next_batch(&self) -> Result<Option<SendBatch>, CacheError> {
        loop {
            if let Some(found) = self.try_next_batch()? {
                return Ok(found);
            }
        }
    }

    /// `Some(result)`, or `None` when an unreadable entry was quarantined and the head must be
    /// read again.
    fn try_next_batch(&self) -> Result<Option<Option<SendBatch>>, CacheError> {
        let (head, epoch, max_elements) = {
            let st = lock(&self.inner.state);
            let max = st.settings.max_elements().unwrap_or(usize::MAX) as u64;
            (st.head, st.epoch, max)
        };
        let mut picked: Vec<(u64, Metadata)> = Vec::new();
        let (mut elements, mut bytes) = (0u64, 0u64);
        self.for_each_meta(Area::Cache, head, |seq, meta| {
            if let Some((_, first)) = picked.first() {
                if first.content_type == ContentType::Any
                    || meta.content_type != first.content_type
                    || elements.saturating_add(meta.number_of_element) > max_elements
                    || bytes.saturating_add(meta.content_size) > MAX_BATCH_BYTES
                {
                    return Ok(false);
                }
            }
            elements += meta.number_of_element;
            bytes += meta.content_size;
            picked.push((seq, meta));
            Ok(true)
        })?;
        let Some((_, first)) = picked.first() else {
            return Ok(Some(None));
        };
        let content_type = first.content_type;
        let filename = first.content_file.clone();
        let mut parts = Vec::with_capacity(picked.len());
        for (seq, meta) in &picked {
            let key = keys::content_key(&self.inner.prefix, *seq);
            let body = self.inner.store.get_raw(Cf::NorthCache, &key)?;
            let problem = match &body {
                None => Some("content missing"),
                Some(b) if content_type.is_array() && array_inner(b).is_none() => {
                    Some("content is not a JSON array")
                }
                _ => None,
            };
            if let Some(reason) = problem {
                self.quarantine_entry(Area::Cache, *seq, Some(meta), reason)?;
                return Ok(None);
            }
            parts.extend(body);
        }
        let body = if parts.len() == 1 {
            Bytes::from(parts.pop().unwrap_or_default())
        } else {
            merge_arrays(&parts)
        };
        Ok(Some(Some(SendBatch {
            content_type,
            body,
            filename,
            elements: elements as usize,
            seqs: picked.into_iter().map(|(seq, _)| seq).collect(),
            epoch,
        })))
    }

    /// A 2xx answer: the batch's entries leave the cache, to the archive when it is enabled.
    pub fn sent(&self, batch: &SendBatch) -> Result<(), CacheError> {
        let archive = lock(&self.inner.state).settings.archive.enabled;
        self.settle(batch, archive.then_some(Area::Archive), None)
    }

    /// Given up (retries exhausted, or content the north cannot send): the batch's entries move
    /// to the error area with `error`.
    pub fn failed(&self, batch: &SendBatch, error: &str) -> Result<(), CacheError> {
        self.settle(batch, Some(Area::Error), Some(error))
    }

    fn settle(
        &self,
        batch: &SendBatch,
        to: Option<Area>,
        error: Option<&str>,
    ) -> Result<(), CacheError> {
        let _ops = lock(&self.inner.ops);
        let mut plan = Plan::new(self);
        for &seq in &batch.seqs {
            // Gone already when an update removed or moved it while it was in flight.
            let Some(mut meta) = plan.get(Area::Cache, seq)? else {
                continue;
            };
            match to {
                None => plan.remove(Area::Cache, seq, meta),
                Some(to) => {
                    meta.error = error.map(str::to_owned);
                    plan.relocate(Area::Cache, to, seq, meta)?;
                }
            }
        }
        plan.commit()?;
        let mut st = lock(&self.inner.state);
        if st.epoch == batch.epoch {
            if let Some(last) = batch.seqs.last() {
                st.head = st.head.max(last + 1);
            }
        }
        Ok(())
    }

    /// Applies the retention of the error and archive areas (hours, 0 = forever) against
    /// `createdAt`; returns how many entries were removed.
    pub fn cleanup(&self, now: DateTime<Utc>) -> Result<usize, CacheError> {
        let (error_hours, archive_hours) = {
            let st = lock(&self.inner.state);
            (
                st.settings.error.retention_duration,
                st.settings.archive.retention_duration,
            )
        };
        let _ops = lock(&self.inner.ops);
        let mut removed = 0;
        for (area, hours) in [(Area::Error, error_hours), (Area::Archive, archive_hours)] {
            if hours == 0 {
                continue;
            }
            let cutoff = now - chrono::Duration::hours(i64::try_from(hours).unwrap_or(i64::MAX));
            let mut expired = Vec::new();
            self.for_each_meta(area, 0, |seq, meta| {
                // A date that does not parse is kept: deleting on a guess is worse.
                if DateTime::parse_from_rfc3339(&meta.created_at).is_ok_and(|at| at < cutoff) {
                    expired.push((seq, meta));
                }
                Ok(true)
            })?;
            // Committed in slices so that a large expiry stays a bounded write.
            for slice in expired.chunks(SCAN_CHUNK * 4) {
                let mut plan = Plan::new(self);
                for (seq, meta) in slice {
                    plan.remove(area, *seq, meta.clone());
                }
                plan.commit()?;
                removed += slice.len();
            }
        }
        Ok(removed)
    }

    /// Removes every entry of `owner` (its north or history query was deleted). A `NorthCache`
    /// still open on it keeps stale counters: drop it first.
    pub fn destroy(store: &Store, owner: &CacheOwner) -> Result<(), CacheError> {
        let prefix = keys::owner_prefix(owner);
        let mut batch = store.batch();
        batch.delete_range(Cf::NorthCache, &prefix, &keys::prefix_end(&prefix));
        store.write(batch, Durability::Sync)?;
        Ok(())
    }

    /// Calls `f` on each decodable metadata of `area` from sequence `from`, in order, reading
    /// `SCAN_CHUNK` at a time, until `f` returns false. Undecodable records are quarantined.
    fn for_each_meta(
        &self,
        area: Area,
        from: u64,
        mut f: impl FnMut(u64, Metadata) -> Result<bool, CacheError>,
    ) -> Result<(), CacheError> {
        let prefix = keys::meta_prefix(&self.inner.prefix, area);
        let mut start = keys::meta_key(&self.inner.prefix, area, from);
        loop {
            let chunk = self
                .inner
                .store
                .scan_from(Cf::NorthCache, &prefix, &start, SCAN_CHUNK)?;
            let full = chunk.len() == SCAN_CHUNK;
            for (key, raw) in chunk {
                let Some(seq) = keys::seq_of(&key).filter(|_| key.len() == start.len()) else {
                    self.inner.store.quarantine(
                        Cf::NorthCache,
                        &key,
                        &raw,
                        "not a cache metadata key",
                    )?;
                    continue;
                };
                match serde_json::from_slice::<Metadata>(&raw) {
                    Ok(meta) => {
                        if !f(seq, meta)? {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        self.quarantine_raw(area, seq, &raw, &e.to_string())?;
                    }
                }
                match seq.checked_add(1) {
                    Some(next) => start = keys::meta_key(&self.inner.prefix, area, next),
                    None => return Ok(()),
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Moves an unusable entry (metadata and content) to the quarantine; `counted` is its
    /// metadata when the counters include it.
    fn quarantine_entry(
        &self,
        area: Area,
        seq: u64,
        counted: Option<&Metadata>,
        reason: &str,
    ) -> Result<(), CacheError> {
        let key = keys::meta_key(&self.inner.prefix, area, seq);
        let raw = match counted {
            Some(meta) => serde_json::to_vec(meta).unwrap_or_default(),
            None => self
                .inner
                .store
                .get_raw(Cf::NorthCache, &key)?
                .unwrap_or_default(),
        };
        self.quarantine_raw(area, seq, &raw, reason)?;
        if let Some(meta) = counted {
            lock(&self.inner.state).stats.count(area, meta, false);
        }
        Ok(())
    }

    fn quarantine_raw(
        &self,
        area: Area,
        seq: u64,
        raw: &[u8],
        reason: &str,
    ) -> Result<(), CacheError> {
        let store = &self.inner.store;
        let key = keys::meta_key(&self.inner.prefix, area, seq);
        store.quarantine(Cf::NorthCache, &key, raw, reason)?;
        let content = keys::content_key(&self.inner.prefix, seq);
        if let Some(bytes) = store.get_raw(Cf::NorthCache, &content)? {
            store.quarantine(Cf::NorthCache, &content, &bytes, reason)?;
        }
        Ok(())
    }
}

/// The writes of one change to existing entries, applied as one synced batch; the counters
/// follow only once it is written.
struct Plan<'a> {
    cache: &'a NorthCache,
    batch: Batch,
    /// What this plan already changed: `None` = removed.
    overlay: HashMap<(Area, u64), Option<Metadata>>,
    counts: Vec<(Area, Metadata, bool)>,
    lowest_into_cache: Option<u64>,
}

impl<'a> Plan<'a> {
    fn new(cache: &'a NorthCache) -> Plan<'a> {
        Plan {
            cache,
            batch: cache.inner.store.batch(),
            overlay: HashMap::new(),
            counts: Vec::new(),
            lowest_into_cache: None,
        }
    }

    fn get(&mut self, area: Area, seq: u64) -> Result<Option<Metadata>, CacheError> {
        if let Some(planned) = self.overlay.get(&(area, seq)) {
            return Ok(planned.clone());
        }
        let inner = &self.cache.inner;
        let key = keys::meta_key(&inner.prefix, area, seq);
        let Some(raw) = inner.store.get_raw(Cf::NorthCache, &key)? else {
            return Ok(None);
        };
        match serde_json::from_slice(&raw) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) => {
                self.cache.quarantine_raw(area, seq, &raw, &e.to_string())?;
                Ok(None)
            }
        }
    }

    fn remove(&mut self, area: Area, seq: u64, meta: Metadata) {
        let prefix = &self.cache.inner.prefix;
        self.batch
            .delete(Cf::NorthCache, &keys::meta_key(prefix, area, seq));
        self.batch
            .delete(Cf::NorthCache, &keys::content_key(prefix, seq));
        self.overlay.insert((area, seq), None);
        self.counts.push((area, meta, false));
    }

    fn relocate(
        &mut self,
        from: Area,
        to: Area,
        seq: u64,
        meta: Metadata,
    ) -> Result<(), CacheError> {
        let prefix = &self.cache.inner.prefix;
        self.batch
            .delete(Cf::NorthCache, &keys::meta_key(prefix, from, seq));
        self.batch
            .put(Cf::NorthCache, &keys::meta_key(prefix, to, seq), &meta)?;
        if to == Area::Cache {
            self.lowest_into_cache = Some(self.lowest_into_cache.map_or(seq, |s| s.min(seq)));
        }
        self.overlay.insert((from, seq), None);
        self.overlay.insert((to, seq), Some(meta.clone()));
        self.counts.push((from, meta.clone(), false));
        self.counts.push((to, meta, true));
        Ok(())
    }

    fn commit(self) -> Result<(), CacheError> {
        if self.counts.is_empty() {
            return Ok(());
        }
        let inner = &self.cache.inner;
        inner.store.write(self.batch, Durability::Sync)?;
        let mut st = lock(&inner.state);
        for (area, meta, add) in &self.counts {
            st.stats.count(*area, meta, *add);
        }
        if let Some(seq) = self.lowest_into_cache {
            if seq < st.head {
                st.head = seq;
                st.epoch += 1;
            }
        }
        Ok(())
    }
}

/// A content as cache entries: (bytes, elements), arrays cut into pieces of `max` elements.
fn split(content: &Content, max: usize) -> Vec<(Vec<u8>, usize)> {
    fn pieces<T: Serialize>(items: &[T], max: usize) -> Vec<(Vec<u8>, usize)> {
        // Serialising plain values and maps cannot fail.
        items
            .chunks(max.max(1))
            .map(|c| (serde_json::to_vec(c).unwrap_or_default(), c.len()))
            .collect()
    }
    match content {
        Content::Values { values, .. } => pieces(values, max),
        Content::Elements { elements, .. } => pieces(elements, max),
        Content::File { bytes, .. } => vec![(bytes.to_vec(), 0)],
    }
}

/// What lies between the brackets of a JSON array's bytes (trimmed); `None` when the bytes are
/// not bracketed.
fn array_inner(bytes: &[u8]) -> Option<&[u8]> {
    let inner = bytes.trim_ascii().strip_prefix(b"[")?.strip_suffix(b"]")?;
    Some(inner.trim_ascii())
}

/// Concatenates JSON arrays without parsing them: brackets stripped, joined with commas.
fn merge_arrays(parts: &[Vec<u8>]) -> Bytes {
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + 2);
    out.push(b'[');
    for inner in parts.iter().filter_map(|p| array_inner(p)) {
        if inner.is_empty() {
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(inner);
    }
    out.push(b']');
    Bytes::from(out)
}
