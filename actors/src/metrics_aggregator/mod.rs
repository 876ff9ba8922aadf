//! MetricsAggregator: the agent audits its own operations as Onesait Platform time-series
//! documents (`spec/metrics-timeseries.md`).
//!
//! This module is the pure core; the actix shell (`actor.rs`) only does I/O around it:
//! - [`MetricsHandle`] is what every actor holds to count a [`Sample`]. Counting locks one shard
//!   of a map, with no mailbox round-trip; counts are kept per UTC [`Minute`]. The handle also
//!   keeps the cumulative total of each sample since process start.
//! - Every flush interval the shell calls [`MetricsHandle::drain`], then [`DocCache::fold`]
//!   with, for a miss, a lookup that reads (and [`Document::decode_stored`]s) the stored
//!   document. It writes the changed documents in one batch, then tells the cache they are
//!   [`written`](DocCache::written); on a failure it gives the counts back with
//!   [`MetricsHandle::restore`].
//! - [`Retention`] says which documents to delete ([`Retention::delete_ranges`] for RocksDB
//!   `delete_range`, or [`Retention::expired`] for a list of keys).
//! - [`series`] and [`count`] answer queries over decoded documents (spec §9).
//!
//! Documents are stored under [`DocKey`]s, `family/window/start/tags`, so one
//! (family, window) is a key prefix and keys under it sort by window start.

mod config;
pub use config::MetricsAggregatorConfig;
pub mod actor;
mod document;
mod flush;
mod handle;
mod json;
mod query;
mod retention;
mod sample;
mod window;

pub use document::{DocKey, Document};
pub use flush::DocCache;
pub use handle::{Clock, ManualClock, MetricsHandle, MinuteCount, SystemClock};
pub use query::{count, series, Point, MAX_SERIES_POINTS};
pub use retention::{KeyRange, Retention};
pub use sample::{Change, Entity, Family, Outcome, Sample, Source};
pub use window::{format_millis, Minute, UnknownWindow, WindowType};

/// What can go wrong in the pure metrics core. Messages say what and where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("unknown metrics family {0:?}: expected one of MetricsOperation, MetricsApi, MetricsOntology, MetricsControlPanel, MetricsQueriesControlPanel")]
    UnknownFamily(String),

    #[error("{family} samples take exactly the tags {expected:?}, got {got:?}")]
    TagSet {
        family: Family,
        expected: &'static [&'static str],
        got: Vec<String>,
    },

    #[error("slot {slot} is not a key of the {window} window starting {start} (keys {keys})")]
    SlotOutOfRange {
        window: WindowType,
        start: String,
        slot: u32,
        keys: String,
    },

    #[error(
        "metrics document key {key:?} is malformed: {reason}; quarantine or delete the record"
    )]
    BadKey { key: String, reason: String },

    #[error("stored {family} metrics document is corrupt: {reason}; quarantine it, its counts cannot be trusted")]
    CorruptDocument { family: Family, reason: String },

    #[error("metrics document stored under key {key:?} has the identity {found:?}; quarantine it")]
    KeyMismatch { key: String, found: String },

    #[error("query range is empty: from {from} is after to {to}")]
    EmptyRange { from: String, to: String },

    #[error("a {window} query from {from} to {to} would return {points} points, more than the {max} allowed; narrow the range")]
    RangeTooLarge {
        window: WindowType,
        from: String,
        to: String,
        points: u64,
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_can_be_shared_across_threads() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<MetricsHandle>();
        shareable::<Sample>();
    }
}
