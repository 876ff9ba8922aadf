//! The `tracing` side of log shipping. [`OiaLogLayer`] renders each event at or above the OIA
//! level into a §7 record (JSON bytes) and hands it to a bounded channel; [`LogIntake`] is the
//! receiving side the LogShipper drains. The logging thread never waits: a full channel drops
//! the record and counts it.
//!
//! How an event becomes a record:
//! - `timestamp`: when the event was recorded, ISO-8601 UTC with milliseconds;
//! - `level`: the event's level in upper case;
//! - scope: fields `scope_type` (`south`, `north`, `history_query`, `internal`), `scope_id` and
//!   `scope_name` give a connector scope. Otherwise the scope is `INTERNAL`, as OIBus's internal
//!   loggers send it: `scopeId` is the `scope_id` field (OIBus uses `engine`, `web-server`) or
//!   `null`, and `scopeName` is always `null`. The `actor` and `scope` fields stay in the
//!   message like any other field;
//! - `itemId`, `itemName`, `groupId`, `groupName`: the fields `item_id`, `item_name`, `group_id`,
//!   `group_name`;
//! - an absent or empty scope, item or group field is `null` (OIBus sends `value || null`);
//! - `message`: the event's message followed by its other fields as `key=value` (values with
//!   spaces, quotes or `=` are quoted and escaped).
//!
//! Events from other crates (awc, rustls, h2…), and events below WARN emitted while the shipper
//! posts (inside [`POST_SPAN`]), are shipped only at WARN or above.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::SystemTime;

use futures_util::Stream;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};

use super::record::{iso_millis, LogRecord, ScopeType};
use super::{accepts, is_chatter, OiaLevelHandle, StatsHandle, POST_SPAN};
use crate::config::LogLevel;

/// The layer to install in the global subscriber. See the module doc for the record it makes.
pub struct OiaLogLayer {
    tx: mpsc::Sender<Vec<u8>>,
    level: OiaLevelHandle,
    stats: StatsHandle,
}

impl OiaLogLayer {
    /// The layer, the receiving side for the LogShipper, and the handle that changes the level
    /// at run time. At most `capacity` records wait in memory for the shipper.
    pub fn new(level: LogLevel, capacity: usize) -> (OiaLogLayer, LogIntake, OiaLevelHandle) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let level = OiaLevelHandle::new(level);
        let stats = StatsHandle::default();
        let layer = OiaLogLayer {
            tx,
            level: level.clone(),
            stats: stats.clone(),
        };
        let intake = LogIntake {
            rx: Arc::new(Mutex::new(rx)),
            stats,
        };
        (layer, intake, level)
    }
}

impl<S: Subscriber> Layer<S> for OiaLogLayer {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !accepts(self.level.code(), meta.level(), meta.target()) {
            return;
        }
        if is_chatter(meta.level())
            && ctx
                .current_span()
                .metadata()
                .is_some_and(|span| span.name() == POST_SPAN)
        {
            return;
        }
        // Reserve first, so a full channel costs no rendering.
        let Ok(permit) = self.tx.try_reserve() else {
            // Full, or the shipper is gone for good (process exit): either way the record is
            // lost, and counted. Never log here: it would come back into this layer.
            self.stats.record_channel_drop();
            return;
        };
        permit.send(render(event, SystemTime::now()));
        self.stats.record_accepted();
    }

    /// The global level `tracing` lets through is the most verbose of all layers' hints, so debug
    /// call sites cost nothing while neither the console nor OIA wants them.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(
            self.level
                .get()
                .max_tracing_level()
                .map_or(LevelFilter::OFF, LevelFilter::from_level),
        )
    }
}

/// Render an event recorded at `at` into the JSON bytes of its §7 record.
pub fn render(event: &Event<'_>, at: SystemTime) -> Vec<u8> {
    let mut fields = Fields::default();
    event.record(&mut fields);
    let meta = event.metadata();
    let connector = fields
        .scope_type
        .as_deref()
        .and_then(ScopeType::parse)
        .filter(|t| *t != ScopeType::Internal);
    let (scope_type, scope_name) = match connector {
        Some(t) => (t, non_empty(&fields.scope_name)),
        None => (ScopeType::Internal, None),
    };
    let message = match (fields.message.is_empty(), fields.extra.is_empty()) {
        (_, true) => fields.message,
        (true, false) => fields.extra,
        (false, false) => {
            let mut m = fields.message;
            m.push(' ');
            m.push_str(&fields.extra);
            m
        }
    };
    let record = LogRecord {
        timestamp: iso_millis(at).into(),
        level: meta.level().as_str().into(),
        scope_type,
        scope_id: non_empty(&fields.scope_id),
        scope_name,
        item_id: non_empty(&fields.item_id),
        item_name: non_empty(&fields.item_name),
        group_id: non_empty(&fields.group_id),
        group_name: non_empty(&fields.group_name),
        message: message.into(),
    };
    let mut json = Vec::with_capacity(256 + record.message.len());
    record.write_json(&mut json);
    json
}

/// `None` for an absent or empty field, as OIBus's `value || null`.
fn non_empty(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().filter(|v| !v.is_empty()).map(Cow::Borrowed)
}

/// The fields of one event, sorted into record slots and the `key=value` tail of the message.
#[derive(Default)]
struct Fields {
    message: String,
    extra: String,
    scope_type: Option<String>,
    scope_id: Option<String>,
    scope_name: Option<String>,
    item_id: Option<String>,
    item_name: Option<String>,
    group_id: Option<String>,
    group_name: Option<String>,
}

impl Fields {
    /// The record slot a field fills, if it is not part of the message.
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "scope_type" => &mut self.scope_type,
            "scope_id" => &mut self.scope_id,
            "scope_name" => &mut self.scope_name,
            "item_id" => &mut self.item_id,
            "item_name" => &mut self.item_name,
            "group_id" => &mut self.group_id,
            "group_name" => &mut self.group_name,
            _ => return None,
        })
    }

    fn start_extra(&mut self, name: &str) -> usize {
        if !self.extra.is_empty() {
            self.extra.push(' ');
        }
        self.extra.push_str(name);
        self.extra.push('=');
        self.extra.len()
    }

    /// Quote the value written since `start` if it would be ambiguous in `key=value` form.
    fn finish_extra(&mut self, start: usize) {
        let value = &self.extra[start..];
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        let ambiguous = value.is_empty()
            || value
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '=');
        if ambiguous && !quoted {
            let escaped = format!("{value:?}");
            self.extra.truncate(start);
            self.extra.push_str(&escaped);
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if name == "message" {
            self.message.push_str(value);
        } else if let Some(slot) = self.slot(name) {
            *slot = Some(value.to_owned());
        } else if !name.starts_with("log.") {
            let start = self.start_extra(name);
            self.extra.push_str(value);
            self.finish_extra(start);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if name == "message" {
            let _ = write!(self.message, "{value:?}");
        } else if let Some(slot) = self.slot(name) {
            *slot = Some(format!("{value:?}"));
        } else if !name.starts_with("log.") {
            let start = self.start_extra(name);
            let _ = write!(self.extra, "{value:?}");
            self.finish_extra(start);
        }
    }
}

/// The receiving side of the layer's channel. Cheap to clone: the LogShipper takes a clone at
/// each (re)start, so records keep waiting here while it restarts.
#[derive(Clone)]
pub struct LogIntake {
    rx: Arc<Mutex<mpsc::Receiver<Vec<u8>>>>,
    stats: StatsHandle,
}

impl std::fmt::Debug for LogIntake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogIntake")
            .field("pending", &self.pending())
            .finish()
    }
}

impl LogIntake {
    fn lock(&self) -> MutexGuard<'_, mpsc::Receiver<Vec<u8>>> {
        // The receiver holds no invariant of ours that a panicking holder could break.
        self.rx.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The statistics shared with the layer and the shipper.
    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// Records waiting in the channel.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Up to `max` waiting records, without waiting.
    pub fn try_take(&self, max: usize) -> Vec<Vec<u8>> {
        let mut rx = self.lock();
        let mut out = Vec::new();
        while out.len() < max {
            match rx.try_recv() {
                Ok(record) => out.push(record),
                Err(_) => break,
            }
        }
        out
    }

    /// A stream of the waiting records, in chunks of at most `max`. It ends only when the layer
    /// is gone.
    pub fn chunks(&self, max: usize) -> IntakeChunks {
        IntakeChunks {
            intake: self.clone(),
            max: max.max(1),
        }
    }
}

/// See [`LogIntake::chunks`].
pub struct IntakeChunks {
    intake: LogIntake,
    max: usize,
}

impl Stream for IntakeChunks {
    type Item = Vec<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let mut buf = Vec::new();
        let max = self.max;
        match self.intake.lock().poll_recv_many(cx, &mut buf, max) {
            Poll::Ready(0) => Poll::Ready(None),
            Poll::Ready(_) => Poll::Ready(Some(buf)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn with_layer(
        level: LogLevel,
        capacity: usize,
        f: impl FnOnce(),
    ) -> (LogIntake, OiaLevelHandle) {
        let (layer, intake, handle) = OiaLogLayer::new(level, capacity);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        (intake, handle)
    }

    fn records(intake: &LogIntake) -> Vec<serde_json::Value> {
        intake
            .try_take(usize::MAX)
            .iter()
            .map(|b| serde_json::from_slice(b).expect("the layer writes JSON"))
            .collect()
    }

    /// The keys of an E8 record, in the order OIBus writes them.
    const E8_KEYS: [&str; 10] = [
        "timestamp",
        "level",
        "scopeType",
        "scopeId",
        "scopeName",
        "itemId",
        "itemName",
        "groupId",
        "groupName",
        "message",
    ];

    /// Real OIBus 3.8.8 log records.
    const E8: &str = include_str!("../../../sim/wire-samples/e8-logs.json");

    #[test]
    fn a_connector_event_renders_like_the_e8_wire_sample() {
        let (intake, _) = with_layer(LogLevel::Info, 8, || {
            tracing::info!(
                target: "oibus_actors::south",
                scope_type = "north",
                scope_id = "2Xc2mr",
                scope_name = "wire-sample-north",
                "\"wire-sample-north\" (2Xc2mr) disconnected"
            );
        });
        let bytes = intake.try_take(1).pop().expect("one record");
        let mut ours: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let samples: serde_json::Value = serde_json::from_str(E8).expect("the sample is JSON");
        let mut sample = samples[1].clone();
        let timestamp = ours["timestamp"].take();
        sample["timestamp"] = serde_json::Value::Null;
        assert_eq!(ours, sample);
        // The keys in the order OIBus writes them, in the sample and in ours.
        let in_order = |text: &str| {
            let at: Vec<usize> = E8_KEYS
                .iter()
                .map(|k| text.find(&format!("\"{k}\":")).expect("key present"))
                .collect();
            at.windows(2).all(|w| w[0] < w[1])
        };
        assert!(in_order(E8), "the key list matches the sample");
        let text = String::from_utf8(bytes).expect("UTF-8");
        assert!(in_order(&text), "{text}");
        let ts = timestamp.as_str().expect("a string");
        let sample_ts = samples[1]["timestamp"].as_str().expect("a string");
        assert_eq!(ts.len(), sample_ts.len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    }

    #[test]
    fn an_internal_event_has_null_scope_fields_as_oibus_and_renders_other_fields_as_key_value() {
        let (intake, _) = with_layer(LogLevel::Info, 8, || {
            tracing::warn!(
                target: "oibus_actors::command_poller::actor",
                id = "c1",
                attempt = 3,
                error = %"503 - busy now",
                "command refresh failed"
            );
            tracing::info!(target: "oibus_agent::engine", actor = "registration", "registered");
            tracing::info!(target: "oibus_agent", item_id = "i1", item_name = "temp", empty = "", "item read");
        });
        let got = records(&intake);
        assert_eq!(got.len(), 3);
        let null = serde_json::Value::Null;
        for r in &got {
            assert_eq!(r["scopeType"], "INTERNAL");
            assert_eq!(r["scopeId"], null, "{r}");
            assert_eq!(
                r["scopeName"], null,
                "OIBus's internal loggers name no scope: {r}"
            );
        }
        assert_eq!(got[0]["level"], "WARN");
        assert_eq!(
            got[0]["message"],
            "command refresh failed id=c1 attempt=3 error=\"503 - busy now\""
        );
        assert_eq!(got[1]["message"], "registered actor=registration");
        assert_eq!(got[2]["itemId"], "i1");
        assert_eq!(got[2]["itemName"], "temp");
        assert_eq!(got[2]["message"], "item read empty=\"\"");
    }

    #[test]
    fn empty_scope_item_and_group_fields_are_null_and_an_internal_scope_id_is_kept() {
        let (intake, _) = with_layer(LogLevel::Info, 8, || {
            tracing::info!(
                target: "oibus_actors::south",
                scope_type = "south",
                scope_id = "",
                scope_name = "",
                item_id = "",
                item_name = "",
                group_id = "",
                group_name = "",
                "all empty"
            );
            tracing::info!(
                target: "oibus_agent::engine",
                scope_type = "internal",
                scope_id = "engine",
                scope_name = "ignored",
                "engine started"
            );
        });
        let got = records(&intake);
        let null = serde_json::Value::Null;
        assert_eq!(got[0]["scopeType"], "SOUTH");
        for key in [
            "scopeId",
            "scopeName",
            "itemId",
            "itemName",
            "groupId",
            "groupName",
        ] {
            assert_eq!(got[0][key], null, "{key}: an empty string becomes null");
        }
        assert_eq!(got[1]["scopeType"], "INTERNAL");
        assert_eq!(got[1]["scopeId"], "engine", "as OIBus's engine logger");
        assert_eq!(got[1]["scopeName"], null);
        assert_eq!(got[1]["message"], "engine started");
    }

    #[test]
    fn events_below_the_oia_level_are_not_shipped_and_the_level_changes_at_once() {
        let (layer, intake, handle) = OiaLogLayer::new(LogLevel::Info, 64);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "oibus_x", "hidden debug");
            tracing::info!(target: "oibus_x", "info 1");
            handle.set(LogLevel::Debug);
            tracing::debug!(target: "oibus_x", "debug 1");
            tracing::trace!(target: "oibus_x", "hidden trace");
            handle.set(LogLevel::Error);
            tracing::warn!(target: "oibus_x", "hidden warn");
            tracing::error!(target: "oibus_x", "error 1");
            handle.set(LogLevel::Silent);
            tracing::error!(target: "oibus_x", "hidden error");
        });
        let messages: Vec<_> = records(&intake)
            .into_iter()
            .map(|r| r["message"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(messages, ["info 1", "debug 1", "error 1"]);
        assert_eq!(handle.get(), LogLevel::Silent);
    }

    #[test]
    fn other_crates_are_shipped_only_from_warn_up() {
        let (intake, _) = with_layer(LogLevel::Trace, 64, || {
            tracing::debug!(target: "awc::client", "connection reused");
            tracing::info!(target: "rustls::conn", "handshake");
            tracing::warn!(target: "rustls::conn", "bad certificate");
            tracing::debug!(target: "oibus_actors::log_shipper", "ours");
        });
        let got = records(&intake);
        let messages: Vec<_> = got.iter().map(|r| r["message"].clone()).collect();
        assert_eq!(messages, ["bad certificate", "ours"]);
        assert_eq!(got[0]["scopeName"], serde_json::Value::Null);
    }

    #[test]
    fn the_shippers_own_post_chatter_is_not_shipped_but_its_warnings_are() {
        let (intake, _) = with_layer(LogLevel::Trace, 64, || {
            tracing::info_span!(POST_SPAN).in_scope(|| {
                tracing::debug!(target: "oibus_actors::client", "OIAnalytics call");
                tracing::warn!(target: "oibus_actors::client", "slow answer");
            });
            tracing::debug!(target: "oibus_actors::client", "another call");
        });
        let messages: Vec<_> = records(&intake)
            .into_iter()
            .map(|r| r["message"].clone())
            .collect();
        assert_eq!(messages, ["slow answer", "another call"]);
    }

    #[test]
    fn a_full_channel_drops_and_counts_instead_of_blocking() {
        let (intake, _) = with_layer(LogLevel::Info, 2, || {
            for i in 0..5 {
                tracing::info!(target: "oibus_x", i, "record");
            }
        });
        let stats = intake.stats().snapshot();
        assert_eq!(stats.accepted, 2);
        assert_eq!(stats.dropped_channel, 3);
        let got = records(&intake);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0]["message"], "record i=0",
            "the oldest are kept, the overflow dropped"
        );
    }

    #[test]
    fn the_intake_stream_yields_chunks_in_order() {
        let (intake, _) = with_layer(LogLevel::Info, 16, || {
            for i in 0..5 {
                tracing::info!(target: "oibus_x", i, "r");
            }
        });
        let mut chunks = intake.chunks(3);
        let waker = futures_util::task::noop_waker();
        let mut cx = TaskContext::from_waker(&waker);
        let mut sizes = Vec::new();
        while let Poll::Ready(Some(chunk)) = Pin::new(&mut chunks).poll_next(&mut cx) {
            sizes.push(chunk.len());
        }
        assert_eq!(sizes, [3, 2]);
        assert_eq!(intake.pending(), 0);
    }
}
