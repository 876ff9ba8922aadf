//! The agent's RocksDB store: one database, one column family per concern (DESIGN.md
//! "Storage"), typed JSON records under byte keys, a durable FIFO [`Queue`], atomic counters and
//! checkpoints. Opened by the engine only.
//!
//! Durability: writes that something upstream will rely on (a journaled command, a report, a
//! message) use [`Durability::Sync`], which fsyncs the WAL before returning. Everything else is
//! written to the WAL without fsync: it survives a process crash, not a power loss.
//!
//! A record that fails to decode is moved to the `quarantine` column family, counted and logged;
//! readers see it as absent. Nothing panics or crash-loops on a corrupt record.

mod queue;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rocksdb::{
    checkpoint::Checkpoint, BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction,
    IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use queue::{PushOutcome, Queue, QueueStats};

/// The column families, one per concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cf {
    /// Command journal, keyed by command id.
    Commands,
    /// Status reports waiting for OIA's ack, keyed by (id, status).
    Reports,
    /// Outbound configuration messages.
    Messages,
    /// Log records waiting to be shipped (a [`Queue`]).
    Logs,
    /// Time-series window documents.
    Metrics,
    /// Scan modes, connectors, IP filters, certificates, history queries, settings.
    Entities,
    /// Registration, engine id, counters, queue metadata.
    State,
    /// Records that failed to decode, keyed by `<cf>/<original key>`.
    Quarantine,
    /// The norths' data caches (`north_cache`): metadata and content per owner and area.
    NorthCache,
}

impl Cf {
    pub const ALL: [Cf; 9] = [
        Cf::Commands,
        Cf::Reports,
        Cf::Messages,
        Cf::Logs,
        Cf::Metrics,
        Cf::Entities,
        Cf::State,
        Cf::Quarantine,
        Cf::NorthCache,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Commands => "commands",
            Cf::Reports => "reports",
            Cf::Messages => "messages",
            Cf::Logs => "logs",
            Cf::Metrics => "metrics",
            Cf::Entities => "entities",
            Cf::State => "state",
            Cf::Quarantine => "quarantine",
            Cf::NorthCache => "north_cache",
        }
    }
}

/// Whether a write must reach the disk before the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the WAL: for anything acknowledged upstream.
    Sync,
    /// WAL without fsync: survives a process crash.
    Buffered,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}. If another oibus-agent engine is running on this data_dir, stop it first; if the disk is full, free space")]
    Open {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("store {op} failed in column family {cf}: {source}")]
    Db {
        op: &'static str,
        cf: &'static str,
        #[source]
        source: rocksdb::Error,
    },
    #[error("cannot encode a record for column family {cf}: {source}")]
    Encode {
        cf: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot create checkpoint at {path}: {source}")]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
}

impl StoreError {
    /// The `map_err` of a RocksDB call: `op` on column family `cf` failed.
    fn db(op: &'static str, cf: &'static str) -> impl Fn(rocksdb::Error) -> StoreError + Copy {
        move |source| StoreError::Db { op, cf, source }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A cheap-to-clone handle on the database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: DB,
    path: PathBuf,
    quarantined: AtomicU64,
    /// Serialises read-modify-write of counters.
    counter_lock: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

const QUARANTINE_COUNTER: &str = "store.quarantined";

impl Store {
    /// Open (creating if needed) the store at `path`, tuned for a small appliance footprint.
    pub fn open(path: &Path) -> Result<Store> {
        let cache = Cache::new_lru_cache(8 << 20);
        let mut block = BlockBasedOptions::default();
        block.set_block_cache(&cache);
        block.set_cache_index_and_filter_blocks(true);
        // Most point reads ask for a key that is not there (a new command's id, an open-index
        // entry about to be written): without a filter each one searched every L0 file.
        block.set_bloom_filter(10.0, false);
        let cf_opts = |write_buffer: usize| {
            let mut o = Options::default();
            o.set_block_based_table_factory(&block);
            o.set_write_buffer_size(write_buffer);
            o.set_max_write_buffer_number(2);
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            o
        };
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(128);
        opts.set_keep_log_file_num(3);
        opts.set_max_background_jobs(2);
        opts.set_max_total_wal_size(64 << 20);
        // RocksDB preallocates each WAL at 1.1x the largest write buffer and the MANIFEST at
        // 4 MiB: on a gateway's small disk a fresh store would take 68 MiB for nothing.
        opts.set_manifest_preallocation_size(256 << 10);
        let cfs = Cf::ALL.iter().map(|cf| {
            let buffer = match cf {
                // The data plane's write rate: larger memtables, fewer flushes.
                Cf::Logs | Cf::NorthCache => 8 << 20,
                _ => 2 << 20,
            };
            ColumnFamilyDescriptor::new(cf.name(), cf_opts(buffer))
        });
        // Unused, but the crate would open it with a 64 MiB write buffer (see above).
        let cfs = cfs.chain(std::iter::once(ColumnFamilyDescriptor::new(
            rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
            cf_opts(1 << 20),
        )));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Store {
            inner: Arc::new(Inner {
                db,
                path: path.to_path_buf(),
                quarantined: AtomicU64::new(0),
                counter_lock: Mutex::new(()),
            }),
        };
        let q = store.counter(QUARANTINE_COUNTER)?;
        store.inner.quarantined.store(q, Ordering::Relaxed);
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        // Every Cf is created at open, so a missing handle is a bug in this module.
        self.inner
            .db
            .cf_handle(cf.name())
            .expect("all column families are opened in Store::open")
    }

    fn write_opts(durability: Durability) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(durability == Durability::Sync);
        w
    }

    /// Raw bytes under `key`.
    pub fn get_raw(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner
            .db
            .get_cf(self.cf(cf), key)
            .map_err(StoreError::db("get", cf.name()))
    }

    /// A JSON record under `key`; a record that does not decode is quarantined and reads as absent.
    pub fn get<T: DeserializeOwned>(&self, cf: Cf, key: &[u8]) -> Result<Option<T>> {
        match self.get_raw(cf, key)? {
            None => Ok(None),
            Some(bytes) => self.decode_or_quarantine(cf, key, &bytes),
        }
    }

    pub fn put<T: Serialize + ?Sized>(
        &self,
        cf: Cf,
        key: &[u8],
        value: &T,
        durability: Durability,
    ) -> Result<()> {
        let mut batch = self.batch();
        batch.put(cf, key, value)?;
        self.write(batch, durability)
    }

    pub fn delete(&self, cf: Cf, key: &[u8], durability: Durability) -> Result<()> {
        let mut batch = self.batch();
        batch.delete(cf, key);
        self.write(batch, durability)
    }

    /// Every decodable record whose key starts with `prefix`, in key order.
    pub fn scan<T: DeserializeOwned>(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>> {
        let mut out = Vec::new();
        for (key, bytes) in self.scan_raw(cf, prefix, usize::MAX)? {
            if let Some(v) = self.decode_or_quarantine(cf, &key, &bytes)? {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    /// Up to `limit` raw records whose key starts with `prefix`, in key order.
    pub fn scan_raw(&self, cf: Cf, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan_from(cf, prefix, prefix, limit)
    }

    /// Up to `limit` raw records with keys `>= start` that still start with `prefix`.
    pub fn scan_from(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let iter = self
            .inner
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(start, Direction::Forward));
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(StoreError::db("scan", cf.name()))?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    /// The last key starting with `prefix`, if any.
    pub fn last_key(&self, cf: Cf, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut upper = prefix.to_vec();
        upper.push(0xff);
        let mut iter = self
            .inner
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(&upper, Direction::Reverse));
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (k, _) = item.map_err(StoreError::db("scan", cf.name()))?;
                Ok(k.starts_with(prefix).then(|| k.into_vec()))
            }
        }
    }

    pub fn batch(&self) -> Batch {
        Batch {
            store: self.clone(),
            inner: WriteBatch::default(),
        }
    }

    /// Apply a batch atomically.
    pub fn write(&self, batch: Batch, durability: Durability) -> Result<()> {
        self.inner
            .db
            .write_opt(batch.inner, &Self::write_opts(durability))
            .map_err(StoreError::db("write", "batch"))
    }

    /// Current value of a named counter (0 when never set).
    pub fn counter(&self, name: &str) -> Result<u64> {
        Ok(self
            .get_raw(Cf::State, &counter_key(name))?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Add `by` to a named counter and return the new value.
    pub fn incr(&self, name: &str, by: u64, durability: Durability) -> Result<u64> {
        // A poisoned lock only means another thread panicked mid-increment; the counter in the
        // database is still consistent, so carry on.
        let _guard = self
            .inner
            .counter_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let value = self.counter(name)?.saturating_add(by);
        let mut batch = self.batch();
        batch.put_raw(Cf::State, &counter_key(name), &value.to_be_bytes());
        self.write(batch, durability)?;
        Ok(value)
    }

    /// Records moved to quarantine since the store was created.
    pub fn quarantined(&self) -> u64 {
        self.inner.quarantined.load(Ordering::Relaxed)
    }

    /// A consistent, openable copy of the database at `path` (hard links where possible).
    pub fn checkpoint(&self, path: &Path) -> Result<()> {
        let err = |source| StoreError::Checkpoint {
            path: path.to_path_buf(),
            source,
        };
        let cp = Checkpoint::new(&self.inner.db).map_err(err)?;
        cp.create_checkpoint(path).map_err(err)
    }

    /// Flush memtables and the WAL, for a clean shutdown.
    pub fn flush(&self) -> Result<()> {
        let db_err = StoreError::db("flush", "all");
        self.inner.db.flush_wal(true).map_err(db_err)?;
        for cf in Cf::ALL {
            self.inner.db.flush_cf(self.cf(cf)).map_err(db_err)?;
        }
        Ok(())
    }

    fn decode_or_quarantine<T: DeserializeOwned>(
        &self,
        cf: Cf,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<Option<T>> {
        match serde_json::from_slice(bytes) {
            Ok(v) => Ok(Some(v)),
            Err(error) => {
                self.quarantine(cf, key, bytes, &error.to_string())?;
                Ok(None)
            }
        }
    }

    /// Move a record that cannot be used to the quarantine column family and count it.
    pub fn quarantine(&self, cf: Cf, key: &[u8], bytes: &[u8], reason: &str) -> Result<()> {
        let mut qkey = cf.name().as_bytes().to_vec();
        qkey.push(b'/');
        qkey.extend_from_slice(key);
        let mut batch = self.batch();
        batch.put_raw(Cf::Quarantine, &qkey, bytes);
        batch.delete(cf, key);
        self.write(batch, Durability::Sync)?;
        let total = self.incr(QUARANTINE_COUNTER, 1, Durability::Sync)?;
        self.inner.quarantined.store(total, Ordering::Relaxed);
        tracing::warn!(
            cf = cf.name(),
            key = %String::from_utf8_lossy(key),
            reason,
            quarantined_total = total,
            "corrupt record moved to quarantine"
        );
        Ok(())
    }
}

fn counter_key(name: &str) -> Vec<u8> {
    let mut k = b"counter/".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// An atomic group of writes.
pub struct Batch {
    store: Store,
    inner: WriteBatch,
}

impl Batch {
    pub fn put<T: Serialize + ?Sized>(&mut self, cf: Cf, key: &[u8], value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Encode {
            cf: cf.name(),
            source,
        })?;
        self.put_raw(cf, key, &bytes);
        Ok(())
    }

    pub fn put_raw(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.inner.put_cf(self.store.cf(cf), key, value);
    }

    pub fn delete(&mut self, cf: Cf, key: &[u8]) {
        self.inner.delete_cf(self.store.cf(cf), key);
    }

    /// Delete keys in `[from, to)`.
    pub fn delete_range(&mut self, cf: Cf, from: &[u8], to: &[u8]) {
        self.inner.delete_range_cf(self.store.cf(cf), from, to);
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// A store in a fresh temporary folder, removed when the returned guard drops.
#[cfg(test)]
pub(crate) fn temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

#[cfg(test)]
mod tests;
