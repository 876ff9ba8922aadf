//! A durable FIFO queue in one column family: items under `<name>\0<seq BE>`, with its metadata
//! (head, tail, length, bytes, drops) in the `state` column family, updated in the same atomic
//! batch as the items. Capped in bytes: pushing past the cap drops the oldest items and reports
//! how many.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::{Cf, Durability, Result, Store};

/// Persisted queue metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Sequence number of the oldest item (if any).
    pub head: u64,
    /// Sequence number the next item will get.
    pub tail: u64,
    pub len: u64,
    pub bytes: u64,
    /// Items dropped by the cap since the queue was created.
    pub dropped: u64,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    /// Sequence number of the last item pushed.
    pub last_seq: u64,
    /// Oldest items dropped to stay under the cap.
    pub dropped: u64,
}

#[derive(Clone)]
pub struct Queue {
    store: Store,
    cf: Cf,
    name: Arc<str>,
    state: Arc<Mutex<State>>,
}

struct State {
    stats: QueueStats,
    cap_bytes: u64,
}

impl Queue {
    /// Open the queue `name` in `cf`, capped at `cap_bytes`.
    pub fn open(store: &Store, cf: Cf, name: &str, cap_bytes: u64) -> Result<Queue> {
        let stats = store
            .get::<QueueStats>(Cf::State, &meta_key(name))?
            .unwrap_or_default();
        Ok(Queue {
            store: store.clone(),
            cf,
            name: name.into(),
            state: Arc::new(Mutex::new(State { stats, cap_bytes })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only mutated after a successful write, so it stays consistent even if a
        // holder panicked.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> QueueStats {
        self.lock().stats
    }

    /// Change the cap; drops the oldest items at once if the queue is over it.
    pub fn set_cap(&self, cap_bytes: u64) -> Result<u64> {
        let mut st = self.lock();
        st.cap_bytes = cap_bytes;
        let mut batch = self.store.batch();
        let mut stats = st.stats;
        let dropped = self.drop_oldest(&mut batch, &mut stats, cap_bytes, &[])?;
        if dropped > 0 {
            batch.put(Cf::State, &meta_key(&self.name), &stats)?;
            self.store.write(batch, Durability::Buffered)?;
            st.stats = stats;
        }
        Ok(dropped)
    }

    /// Append items in one atomic write. When the cap is exceeded the oldest items go first, the
    /// new ones included if they alone exceed it; every drop is counted. A push never fails for
    /// size.
    pub fn push_batch<I, B>(&self, items: I, durability: Durability) -> Result<PushOutcome>
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let mut st = self.lock();
        let mut stats = st.stats;
        let mut batch = self.store.batch();
        let mut pending = Vec::new();
        for item in items {
            let item = item.as_ref();
            batch.put_raw(self.cf, &item_key(&self.name, stats.tail), item);
            pending.push((stats.tail, item.len() as u64));
            stats.tail += 1;
            stats.len += 1;
            stats.bytes += item.len() as u64;
        }
        if pending.is_empty() {
            return Ok(PushOutcome {
                last_seq: stats.tail.saturating_sub(1),
                dropped: 0,
            });
        }
        let dropped = self.drop_oldest(&mut batch, &mut stats, st.cap_bytes, &pending)?;
        batch.put(Cf::State, &meta_key(&self.name), &stats)?;
        self.store.write(batch, durability)?;
        st.stats = stats;
        Ok(PushOutcome {
            last_seq: stats.tail - 1,
            dropped,
        })
    }

    pub fn push(&self, item: &[u8], durability: Durability) -> Result<PushOutcome> {
        self.push_batch([item], durability)
    }

    /// Up to `max` items from the head, oldest first, with their sequence numbers.
    pub fn peek(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let head = self.lock().stats.head;
        let prefix = item_prefix(&self.name);
        let rows = self
            .store
            .scan_from(self.cf, &prefix, &item_key(&self.name, head), max)?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| seq_of(&k).map(|s| (s, v)))
            .collect())
    }

    /// Remove every item up to and including `seq` (delivered upstream).
    pub fn ack_through(&self, seq: u64) -> Result<u64> {
        let mut st = self.lock();
        let mut stats = st.stats;
        if seq < stats.head || stats.len == 0 {
            return Ok(0);
        }
        let end = seq.min(stats.tail - 1) + 1;
        let removed = self.store.scan_from(
            self.cf,
            &item_prefix(&self.name),
            &item_key(&self.name, stats.head),
            (end - stats.head) as usize,
        )?;
        let count = removed.len() as u64;
        let bytes: u64 = removed.iter().map(|(_, v)| v.len() as u64).sum();
        let mut batch = self.store.batch();
        batch.delete_range(
            self.cf,
            &item_key(&self.name, stats.head),
            &item_key(&self.name, end),
        );
        stats.head = end;
        stats.len -= count;
        stats.bytes -= bytes;
        batch.put(Cf::State, &meta_key(&self.name), &stats)?;
        self.store.write(batch, Durability::Sync)?;
        st.stats = stats;
        Ok(count)
    }

    /// Drop items from the head until `stats.bytes <= cap`. `pending` lists (seq, size) of the
    /// items being pushed in `batch` (not yet in the database); they are the newest, so they go
    /// last. The delete range is added after their puts, so it removes them too.
    fn drop_oldest(
        &self,
        batch: &mut super::Batch,
        stats: &mut QueueStats,
        cap: u64,
        pending: &[(u64, u64)],
    ) -> Result<u64> {
        if stats.bytes <= cap {
            return Ok(0);
        }
        let first_pending = pending.first().map_or(stats.tail, |(s, _)| *s);
        let mut dropped = 0u64;
        let mut new_head = stats.head;
        let mut drop_one = |seq: u64, size: u64, stats: &mut QueueStats| {
            stats.bytes -= size;
            stats.len -= 1;
            dropped += 1;
            new_head = seq + 1;
        };
        let mut cursor = stats.head;
        'stored: while stats.bytes > cap && cursor < first_pending {
            let rows = self.store.scan_from(
                self.cf,
                &item_prefix(&self.name),
                &item_key(&self.name, cursor),
                1024,
            )?;
            if rows.is_empty() {
                break;
            }
            for (k, v) in &rows {
                let Some(seq) = seq_of(k) else { continue };
                if stats.bytes <= cap || seq >= first_pending {
                    break 'stored;
                }
                drop_one(seq, v.len() as u64, stats);
                cursor = seq + 1;
            }
        }
        for &(seq, size) in pending {
            if stats.bytes <= cap {
                break;
            }
            drop_one(seq, size, stats);
        }
        if new_head > stats.head {
            batch.delete_range(
                self.cf,
                &item_key(&self.name, stats.head),
                &item_key(&self.name, new_head),
            );
            stats.head = new_head;
        }
        stats.dropped += dropped;
        Ok(dropped)
    }
}

fn meta_key(name: &str) -> Vec<u8> {
    format!("queue/{name}").into_bytes()
}

fn item_prefix(name: &str) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k
}

fn item_key(name: &str, seq: u64) -> Vec<u8> {
    let mut k = item_prefix(name);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}
