//! South OPC UA (OIBus `south-opcua.ts`): the nodes of one OPC UA server through one shared
//! session (`async-opcua`, pure Rust, no OpenSSL).
//!
//! - DA items of a polled scan mode: one Read of every due node; the value's timestamp follows
//!   the item's `timestampOrigin` (`oibus`: the read time, `point`: the source timestamp,
//!   `server`: the server timestamp), as OIBus.
//! - DA items of the `subscription` scan mode: monitored items of one subscription; the values
//!   pushed by the server are buffered up to `maxNumberOfMessages` or `flushMessageTimeout` ms,
//!   then committed.
//! - HA items: HistoryRead raw (or processed, for an aggregate) from the item's `trackedInstant`
//!   to now, split in intervals of at most `maxReadInterval` seconds with `readDelay` ms between
//!   them, as OIBus's `generateIntervals`. Each item's trackedInstant (the newest timestamp it
//!   gave) is kept in the store (`Cf::State`, `south/<id>/opcua/tracked/<item id>`) and written
//!   in the same synced batch as the values it covers, so a restart resumes exactly where the
//!   caches stop: no value is read twice (only values after the trackedInstant are kept) and
//!   none is skipped.
//!
//! The connection task owns the session: it connects, creates the subscription, and when the
//! server drops (or a connection fails) waits the agent's backoff (capped at `retryInterval`)
//! and connects again with a new session and a new subscription. Reads in the meantime fail at
//! once with the reason. A bad node id fails its item only, with the item and node id named.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Recipient;
use chrono::{DateTime as ChronoTime, Utc};
use futures_util::StreamExt;
use opcua::client::{
    ClientBuilder, DataChangeCallback, IdentityToken, MonitoredItem, Session, SessionPollResult,
};
use opcua::types::{
    AttributeId, DataValue, DateTime, EndpointDescription, ExtensionObject, HistoryData,
    HistoryReadValueId, MessageSecurityMode, MonitoredItemCreateRequest, MonitoringMode,
    MonitoringParameters, NodeId, ObjectId, ReadProcessedDetails, ReadRawModifiedDetails,
    ReadValueId, StatusCode, TimestampsToReturn, UserTokenPolicy, Variant,
};
use serde_json::{json, Value};

use super::{local_cipher, ConnectorError, Sealed, SettingsReader};
use crate::backoff::{Backoff, FIRST_RETRY};
use crate::content::{Content, ContentType, TimeValue};
use crate::data_flow::router::Router;
use crate::data_flow::transform::ItemIndex;
use crate::entities::{SouthConnector, SouthGroup, SouthItem, SUBSCRIPTION_SCAN_MODE_ID};
use crate::south_connector::driver::{commit_with, HistoryWindow, ReadSummary};
use crate::south_connector::{item_scan_mode, Received, SubscriptionFailed};
use crate::store::{Cf, Store};
use crate::supervision::Peers;

/// The subscription's publishing interval (OIBus's `requestedPublishingInterval`).
const PUBLISHING_INTERVAL_MS: u64 = 150;
/// The largest message the client takes (the library's default is 327 KB).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Notifications per publish response, so one response stays well within a message.
const MAX_NOTIFICATIONS_PER_PUBLISH: u32 = 10_000;
/// The longest array the client decodes (the library's default of 1,000 fails a publish
/// response of more notifications, or a Read of more nodes).
const MAX_ARRAY_LENGTH: usize = 1_000_000;
/// Values per node and HistoryRead round trip (OIBus's `NUM_VALUES_PER_NODE`).
const NUM_VALUES_PER_NODE: u32 = 1000;

#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic { username: String, password: Sealed },
    Cert { cert_file: String, key_file: String },
}

/// The connector's settings (OIBus `SouthOPCUASettings`).
#[derive(Debug, Clone)]
struct Settings {
    url: String,
    security_mode: MessageSecurityMode,
    security_policy: &'static str,
    auth: Auth,
    read_timeout: Duration,
    retry_interval: Duration,
    max_messages: usize,
    flush_timeout: Duration,
}

/// Where an item's value timestamp comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampOrigin {
    Oibus,
    Point,
    Server,
}

/// HA read kind: raw values, or one aggregate per resampling interval.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HaMode {
    pub aggregate: String,
    pub resampling: String,
}

/// One item, parsed.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub node_text: String,
    /// `Err` when the node id does not parse: the item fails alone.
    pub node_id: Result<NodeId, String>,
    pub ha: Option<HaMode>,
    pub timestamp_origin: TimestampOrigin,
    /// Seconds (0: one interval).
    pub max_read_interval: u64,
    /// Milliseconds between intervals.
    pub read_delay: u64,
}

impl Node {
    /// `groups`: the south's, for the history settings of an item synchronised with its group.
    pub fn parse(groups: &[SouthGroup], item: &SouthItem) -> Node {
        let s = &item.settings;
        let node_text = s["nodeId"].as_str().unwrap_or_default().to_owned();
        let node_id = NodeId::from_str(node_text.trim()).map_err(|_| {
            format!(
                "item '{}': settings.nodeId {node_text:?} is not an OPC UA node id (ns=<index>;i=<number> or ns=<index>;s=<name>); correct the item in OIAnalytics",
                item.name
            )
        });
        let ha = (s["mode"]
            .as_str()
            .unwrap_or("da")
            .eq_ignore_ascii_case("ha"))
        .then(|| HaMode {
            aggregate: s["haMode"]["aggregate"]
                .as_str()
                .unwrap_or("raw")
                .to_owned(),
            resampling: s["haMode"]["resampling"]
                .as_str()
                .unwrap_or("none")
                .to_owned(),
        });
        let timestamp_origin = match s["timestampOrigin"].as_str() {
            Some("point") => TimestampOrigin::Point,
            Some("server") => TimestampOrigin::Server,
            _ => TimestampOrigin::Oibus,
        };
        // OIBus: the group's history settings when the item is synchronised with its group.
        let synced = item.other.get("syncWithGroup").and_then(Value::as_bool) == Some(true);
        let group = item
            .group_id
            .as_deref()
            .and_then(|g| groups.iter().find(|group| group.id == g))
            .filter(|_| synced);
        let setting = |key: &str| -> Option<u64> {
            let from_group = group.and_then(|g| {
                g.other
                    .get("historySettings")
                    .and_then(|h| h.get(key))
                    .or_else(|| g.other.get(key))
                    .and_then(Value::as_f64)
            });
            from_group
                .or_else(|| item.other.get(key).and_then(Value::as_f64))
                .filter(|v| *v >= 0.0)
                .map(|v| v as u64)
        };
        Node {
            id: item.id.clone(),
            name: item.name.clone(),
            node_text,
            node_id,
            ha,
            timestamp_origin,
            max_read_interval: setting("maxReadInterval").unwrap_or(0),
            read_delay: setting("readDelay").unwrap_or(0),
        }
    }
}

/// OIBus's `parseOPCUAValue`: the value as text; `None` for what OIBus sends nothing for.
pub fn value_text(variant: &Variant) -> Option<String> {
    use super::south_modbus::js_number;
    let text = match variant {
        Variant::String(s) => s
            .value()
            .as_deref()
            .map(|s| s.split('\0').next().unwrap_or_default().to_owned())
            .unwrap_or_default(),
        Variant::Float(f) => js_number(f64::from(*f)),
        Variant::Double(f) => js_number(*f),
        Variant::SByte(v) => v.to_string(),
        Variant::Byte(v) => v.to_string(),
        Variant::Int16(v) => v.to_string(),
        Variant::UInt16(v) => v.to_string(),
        Variant::Int32(v) => v.to_string(),
        Variant::UInt32(v) => v.to_string(),
        Variant::Int64(v) => v.to_string(),
        Variant::UInt64(v) => v.to_string(),
        Variant::Boolean(b) => if *b { "1" } else { "0" }.to_owned(),
        Variant::ByteString(b) => b
            .value
            .as_deref()
            .map(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default(),
        Variant::DateTime(t) => crate::protocol::iso(t.as_chrono()),
        _ => String::new(),
    };
    (!text.is_empty()).then_some(text)
}

fn iso(t: &DateTime) -> String {
    crate::protocol::iso(t.as_chrono())
}

/// The timestamp of a DA value for `origin`; `read_time` when the server gave none.
fn da_timestamp(value: &DataValue, origin: TimestampOrigin, read_time: &str) -> String {
    let chosen = match origin {
        TimestampOrigin::Oibus => None,
        TimestampOrigin::Point => value.source_timestamp.as_ref(),
        TimestampOrigin::Server => value.server_timestamp.as_ref(),
    };
    chosen.map(iso).unwrap_or_else(|| read_time.to_owned())
}

fn status_text(status: Option<StatusCode>) -> String {
    status.unwrap_or(StatusCode::Good).to_string()
}

/// OIBus's `generateIntervals` (strategy `oldest`): `[start, end]` in pieces of at most
/// `max_seconds` (0: one piece).
pub fn intervals(
    start: ChronoTime<Utc>,
    end: ChronoTime<Utc>,
    max_seconds: u64,
) -> Vec<(ChronoTime<Utc>, ChronoTime<Utc>)> {
    let total = (end - start).num_milliseconds();
    if max_seconds == 0 || total <= 0 {
        return vec![(start, end)];
    }
    let step = max_seconds as i64 * 1000;
    let count = (total + step - 1) / step;
    (0..count)
        .map(|i| {
            let from = start + chrono::Duration::milliseconds(step * i);
            let to = (start + chrono::Duration::milliseconds(step * (i + 1))).min(end);
            (from, to)
        })
        .collect()
}

fn tracked_key(south_id: &str, item_id: &str) -> Vec<u8> {
    format!("south/{south_id}/opcua/tracked/{item_id}").into_bytes()
}

fn tracked_prefix(south_id: &str) -> Vec<u8> {
    format!("south/{south_id}/opcua/tracked/").into_bytes()
}

/// The session of the running connection, and why there is none.
#[derive(Default)]
struct Shared {
    session: Mutex<Option<Arc<Session>>>,
    last_error: Mutex<Option<String>>,
}

// Each lock guards one value that is replaced whole: a panicking holder cannot break it.
impl Shared {
    fn session(&self) -> std::sync::MutexGuard<'_, Option<Arc<Session>>> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn last_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How to reach the server (the opcua south's, and the opcua north's).
#[derive(Clone)]
pub(crate) struct Server {
    label: String,
    settings: Settings,
    peers: Peers,
    pki_dir: std::path::PathBuf,
}

pub struct OpcuaSouth {
    server: Server,
    south_id: String,
    store: Store,
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for OpcuaSouth {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        if let Some(session) = self.shared.session().take() {
            close_later(session);
        }
    }
}

/// Close `session` on the server (which ends its event loop) without waiting for it; nothing
/// when there is no runtime to do it on.
pub(crate) fn close_later(session: Arc<Session>) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), session.disconnect()).await;
        });
    }
}

/// An HA item, its parsed node id, and its trackedInstant.
type Tracked = (Node, NodeId, ChronoTime<Utc>);

/// A value pushed by the subscription: the monitored item's client handle and its value.
type Pushed = (u32, DataValue);

impl OpcuaSouth {
    pub fn new(
        south: &SouthConnector,
        store: &Store,
        peers: Peers,
        data_dir: &std::path::Path,
    ) -> Result<OpcuaSouth, ConnectorError> {
        let label = format!("south '{}'", south.name);
        Ok(OpcuaSouth {
            server: Server::new(&label, &south.settings, peers, data_dir)?,
            south_id: south.id.clone(),
            store: store.clone(),
            shared: Arc::default(),
            task: Mutex::default(),
        })
    }

    /// Forget the trackedInstants of a deleted south.
    pub fn forget(store: &Store, south_id: &str) -> crate::store::Result<()> {
        let prefix = tracked_prefix(south_id);
        let mut end = prefix.clone();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut batch = store.batch();
        batch.delete_range(Cf::State, &prefix, &end);
        store.write(batch, crate::store::Durability::Sync)
    }

    /// Start the connection task: connect, subscribe the `subscription` items, hand what they
    /// push to `sink`, report failures to `errors`, and reconnect after any failure.
    pub fn subscribe(
        &self,
        south: &SouthConnector,
        sink: Recipient<Received>,
        errors: Recipient<SubscriptionFailed>,
    ) {
        let monitored: Vec<Node> = south
            .items
            .iter()
            .filter(|i| i.enabled && item_scan_mode(south, i) == Some(SUBSCRIPTION_SCAN_MODE_ID))
            .map(|i| Node::parse(&south.groups, i))
            .filter(|n| n.ha.is_none())
            .collect();
        let runner = Runner {
            server: self.server.clone(),
            shared: self.shared.clone(),
            monitored,
            sink,
            errors,
        };
        let task = actix_rt::spawn(runner.run());
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    fn session(&self) -> Result<Arc<Session>, String> {
        if let Some(session) = self.shared.session().clone() {
            return Ok(session);
        }
        let why = self
            .shared
            .last_error()
            .clone()
            .unwrap_or_else(|| "connecting".into());
        Err(format!(
            "{}: not connected to {} ({why}); the agent reconnects by itself",
            self.server.label, self.server.settings.url
        ))
    }

    /// Read the due `items` (DA by one Read, HA by HistoryRead from their trackedInstants),
    /// committing what they gave.
    pub async fn read(
        &self,
        south: &SouthConnector,
        items: &[&SouthItem],
        index: Arc<ItemIndex>,
        router: Router,
    ) -> Result<ReadSummary, String> {
        let nodes: Vec<Node> = items
            .iter()
            .filter(|i| item_scan_mode(south, i) != Some(SUBSCRIPTION_SCAN_MODE_ID))
            .map(|i| Node::parse(&south.groups, i))
            .collect();
        if nodes.is_empty() {
            return Ok(ReadSummary::default());
        }
        let session = self.session()?;
        let (da, ha): (Vec<Node>, Vec<Node>) = nodes.into_iter().partition(|n| n.ha.is_none());
        let mut summary = ReadSummary::default();
        if !da.is_empty() {
            let (values, errors) = self.read_da(&session, &da).await?;
            summary.errors.extend(errors);
            if !values.is_empty() {
                let done = commit(&router, &self.south_id, &index, values, Vec::new()).await?;
                summary.add(done);
            }
        }
        if !ha.is_empty() {
            summary.add(self.read_ha(&session, ha, &index, &router).await?);
        }
        Ok(summary)
    }

    async fn read_da(
        &self,
        session: &Session,
        nodes: &[Node],
    ) -> Result<(Vec<TimeValue>, Vec<String>), String> {
        let mut errors = Vec::new();
        let mut to_read = Vec::new();
        let mut read_nodes = Vec::new();
        for node in nodes {
            match &node.node_id {
                Ok(id) => {
                    to_read.push(ReadValueId::from(id.clone()));
                    read_nodes.push(node);
                }
                Err(e) => errors.push(format!("{}: {e}", self.server.label)),
            }
        }
        if to_read.is_empty() {
            return Ok((Vec::new(), errors));
        }
        let read_time = crate::protocol::iso_now();
        let timeout = self.server.settings.read_timeout;
        let results = tokio::time::timeout(
            timeout,
            session.read(&to_read, TimestampsToReturn::Both, 0.0),
        )
        .await
        .map_err(|_| {
            format!(
                "{}: reading {} nodes from {} timed out after {} ms",
                self.server.label,
                to_read.len(),
                self.server.settings.url,
                timeout.as_millis()
            )
        })?
        .map_err(|e| {
            format!(
                "{}: reading {} nodes from {} failed: {e}",
                self.server.label,
                to_read.len(),
                self.server.settings.url
            )
        })?;
        let mut values = Vec::new();
        for (node, value) in read_nodes.iter().zip(results.iter()) {
            let status = value.status.unwrap_or(StatusCode::Good);
            match value.value.as_ref().and_then(value_text) {
                Some(text) => values.push(TimeValue {
                    point_id: node.name.clone(),
                    timestamp: da_timestamp(value, node.timestamp_origin, &read_time),
                    data: json!({"value": text, "quality": status.to_string()}),
                }),
                None if status.is_bad() => errors.push(format!(
                    "{}: item '{}' (node id {}): the server answered {status}; check the node id in OIAnalytics",
                    self.server.label, node.name, node.node_text
                )),
                None => {}
            }
        }
        Ok((values, errors))
    }

    async fn read_ha(
        &self,
        session: &Session,
        nodes: Vec<Node>,
        index: &Arc<ItemIndex>,
        router: &Router,
    ) -> Result<ReadSummary, String> {
        let mut summary = ReadSummary::default();
        let now = Utc::now();
        // Per (aggregate, resampling), as OIBus groups its HistoryRead requests.
        let mut groups: Vec<(HaMode, Vec<Tracked>)> = Vec::new();
        for node in nodes {
            let id = match &node.node_id {
                Ok(id) => id.clone(),
                Err(e) => {
                    summary.errors.push(format!("{}: {e}", self.server.label));
                    continue;
                }
            };
            let tracked = self
                .store
                .get::<String>(Cf::State, &tracked_key(&self.south_id, &node.id))
                .map_err(|e| format!("{}: {e}", self.server.label))?
                .and_then(|t| ChronoTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| {
                    let back = if node.max_read_interval == 0 {
                        3600
                    } else {
                        node.max_read_interval
                    };
                    now - chrono::Duration::seconds(back as i64)
                });
            let mode = node.ha.clone().unwrap_or(HaMode {
                aggregate: "raw".into(),
                resampling: "none".into(),
            });
            match groups.iter_mut().find(|(m, _)| *m == mode) {
                Some((_, list)) => list.push((node, id, tracked)),
                None => groups.push((mode, vec![(node, id, tracked)])),
            }
        }
        for (mode, mut list) in groups {
            let start = list.iter().map(|(_, _, t)| *t).min().unwrap_or(now);
            let (max_interval, read_delay) = list
                .first()
                .map(|(n, _, _)| (n.max_read_interval, n.read_delay))
                .unwrap_or_default();
            let pieces = intervals(start, now, max_interval);
            let last = pieces.len().saturating_sub(1);
            for (i, (from, to)) in pieces.into_iter().enumerate() {
                let (values, moved, errors) = self
                    .history_interval(session, &mode, &mut list, from, to)
                    .await?;
                summary.errors.extend(errors);
                if !values.is_empty() || !moved.is_empty() {
                    let done = commit(router, &self.south_id, index, values, moved).await?;
                    summary.add(done);
                }
                if i != last && read_delay > 0 {
                    tokio::time::sleep(Duration::from_millis(read_delay)).await;
                }
            }
        }
        Ok(summary)
    }

    /// One interval of HistoryRead for `list`, following continuation points: the values after
    /// each item's trackedInstant, and the items whose trackedInstant moves (updated in `list`).
    #[allow(clippy::type_complexity)]
    async fn history_interval(
        &self,
        session: &Session,
        mode: &HaMode,
        list: &mut [Tracked],
        from: ChronoTime<Utc>,
        to: ChronoTime<Utc>,
    ) -> Result<(Vec<TimeValue>, Vec<(String, String)>, Vec<String>), String> {
        let details = history_details(mode, from, to, list.len())
            .map_err(|e| format!("{}: {e}", self.server.label))?;
        let mut pending: Vec<(usize, opcua::types::ByteString)> = (0..list.len())
            .map(|i| (i, opcua::types::ByteString::null()))
            .collect();
        let mut values = Vec::new();
        let mut errors = Vec::new();
        let mut newest: HashMap<usize, ChronoTime<Utc>> = HashMap::new();
        let timeout = self.server.settings.read_timeout;
        while !pending.is_empty() {
            let ids: Vec<HistoryReadValueId> = pending
                .iter()
                .map(|(i, cp)| HistoryReadValueId {
                    node_id: list[*i].1.clone(),
                    index_range: Default::default(),
                    data_encoding: Default::default(),
                    continuation_point: cp.clone(),
                })
                .collect();
            let results = tokio::time::timeout(
                timeout,
                session.history_read(details.clone(), TimestampsToReturn::Both, false, &ids),
            )
            .await
            .map_err(|_| {
                format!(
                    "{}: history read from {} timed out after {} ms",
                    self.server.label,
                    self.server.settings.url,
                    timeout.as_millis()
                )
            })?
            .map_err(|e| {
                format!(
                    "{}: history read of {} nodes from {} to {} failed: {e}",
                    self.server.label,
                    ids.len(),
                    crate::protocol::iso(from),
                    crate::protocol::iso(to)
                )
            })?;
            let mut next = Vec::new();
            for ((i, _), result) in pending.iter().zip(results) {
                let (node, _, tracked) = &list[*i];
                let status = result.status_code;
                if status.is_bad() {
                    errors.push(format!(
                        "{}: item '{}' (node id {}): the server answered {status} to the history read; check the node id and that the server historizes it",
                        self.server.label, node.name, node.node_text
                    ));
                    continue;
                }
                let data = result
                    .history_data
                    .into_inner_as::<HistoryData>()
                    .and_then(|h| h.data_values)
                    .unwrap_or_default();
                let had_data = !data.is_empty();
                for value in data {
                    let Some(text) = value.value.as_ref().and_then(value_text) else {
                        continue;
                    };
                    let Some(at) = value
                        .source_timestamp
                        .as_ref()
                        .or(value.server_timestamp.as_ref())
                        .map(DateTime::as_chrono)
                    else {
                        continue;
                    };
                    // Only what comes after the item's trackedInstant: the bound value was
                    // cached by the previous read.
                    if at <= *tracked {
                        continue;
                    }
                    let entry = newest.entry(*i).or_insert(at);
                    if at > *entry {
                        *entry = at;
                    }
                    values.push(TimeValue {
                        point_id: node.name.clone(),
                        timestamp: crate::protocol::iso(at),
                        data: json!({"value": text, "quality": status_text(value.status)}),
                    });
                }
                if had_data && !result.continuation_point.is_null_or_empty() {
                    next.push((*i, result.continuation_point));
                }
            }
            pending = next;
        }
        let mut moved = Vec::new();
        for (i, at) in newest {
            list[i].2 = at;
            moved.push((list[i].0.id.clone(), crate::protocol::iso(at)));
        }
        Ok((values, moved, errors))
    }

    /// `test-south-item` on a session of its own (the live south's is left alone): a DA item
    /// read once; an HA item's history over `history`, of which OIBus shows the last value. No
    /// trackedInstant moves. Returns the values and the connection and query durations (ms).
    pub async fn test_item(
        &self,
        item: &SouthItem,
        history: Option<HistoryWindow>,
    ) -> Result<(Vec<TimeValue>, u64, u64), String> {
        let node = Node::parse(&[], item);
        let label = &self.server.label;
        let window = match (&node.ha, history) {
            (Some(_), None) => {
                return Err(format!(
                    "{label}: item '{}' is an HA item: its test needs testingSettings.history (startTime, endTime)",
                    item.name
                ))
            }
            (Some(_), window) => window,
            (None, _) => None,
        };
        let id = node.node_id.clone().map_err(|e| format!("{label}: {e}"))?;
        let started = std::time::Instant::now();
        let (session, ended) = self.server.connect().await?;
        let connection_ms = started.elapsed().as_millis() as u64;
        let started = std::time::Instant::now();
        let read = match (window, node.ha.clone()) {
            (Some(w), Some(mode)) => {
                let mut list = [(node, id, w.start)];
                self.history_interval(&session, &mode, &mut list, w.start, w.end)
                    .await
                    .map(|(mut values, _, errors)| {
                        values.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
                        (values.pop().into_iter().collect(), errors)
                    })
            }
            _ => self.read_da(&session, std::slice::from_ref(&node)).await,
        };
        let query_ms = started.elapsed().as_millis() as u64;
        let _ = tokio::time::timeout(Duration::from_secs(2), session.disconnect()).await;
        drop(ended);
        let (values, errors) = read?;
        match errors.into_iter().next() {
            Some(error) => Err(error),
            None => Ok((values, connection_ms, query_ms)),
        }
    }

    /// `test-south-connection`: a session of its own, the server's state and build info, its
    /// endpoints' security modes and policies.
    pub async fn test_connection(&self) -> Result<Value, String> {
        let server = &self.server;
        let (session, ended) = server.connect().await?;
        let mut items = Vec::new();
        let nodes = [
            (2259u32, "State"),
            (2263, "ManufacturerName"),
            (2261, "ProductName"),
            (2264, "SoftwareVersion"),
            (2265, "BuildNumber"),
        ];
        let to_read: Vec<ReadValueId> = nodes
            .iter()
            .map(|(i, _)| ReadValueId::from(NodeId::new(0, *i)))
            .collect();
        if let Ok(Ok(values)) = tokio::time::timeout(
            server.settings.read_timeout,
            session.read(&to_read, TimestampsToReturn::Neither, 0.0),
        )
        .await
        {
            for ((_, key), value) in nodes.iter().zip(values.iter()) {
                let Some(v) = value.value.as_ref() else {
                    continue;
                };
                let text = if *key == "State" {
                    match v {
                        Variant::Int32(0) => "Running".to_owned(),
                        Variant::Int32(1) => "Failed".to_owned(),
                        Variant::Int32(2) => "No Configuration".to_owned(),
                        Variant::Int32(3) => "Suspended".to_owned(),
                        Variant::Int32(4) => "Shutdown".to_owned(),
                        Variant::Int32(5) => "Test".to_owned(),
                        Variant::Int32(6) => "Communication Fault".to_owned(),
                        other => value_text(other).unwrap_or_else(|| "Unknown".into()),
                    }
                } else {
                    match value_text(v) {
                        Some(t) => t,
                        None => continue,
                    }
                };
                items.push(json!({"key": key, "value": text}));
            }
        }
        let endpoint = session.endpoint_info();
        items.push(json!({"key": "SecurityMode", "value": format!("{:?}", endpoint.endpoint.security_mode)}));
        items.push(json!({"key": "SecurityPolicy", "value": endpoint.endpoint.security_policy_uri.as_ref().rsplit('#').next().unwrap_or_default()}));
        let _ = tokio::time::timeout(Duration::from_secs(2), session.disconnect()).await;
        drop(ended);
        Ok(json!({ "items": items }))
    }
}

/// The HistoryRead details of `mode` over `[from, to]` for `nodes` nodes.
fn history_details(
    mode: &HaMode,
    from: ChronoTime<Utc>,
    to: ChronoTime<Utc>,
    nodes: usize,
) -> Result<opcua::client::HistoryReadAction, String> {
    use opcua::client::HistoryReadAction;
    let aggregate = match mode.aggregate.as_str() {
        "raw" | "" => None,
        "average" => Some(ObjectId::AggregateFunction_Average),
        "minimum" => Some(ObjectId::AggregateFunction_Minimum),
        "maximum" => Some(ObjectId::AggregateFunction_Maximum),
        "count" => Some(ObjectId::AggregateFunction_Count),
        other => {
            return Err(format!(
                "settings.haMode.aggregate {other:?} is not raw, average, minimum, maximum or count"
            ))
        }
    };
    Ok(match aggregate {
        None => HistoryReadAction::ReadRawModifiedDetails(ReadRawModifiedDetails {
            is_read_modified: false,
            start_time: DateTime::from(from),
            end_time: DateTime::from(to),
            num_values_per_node: NUM_VALUES_PER_NODE,
            return_bounds: false,
        }),
        Some(function) => {
            let interval_ms = match mode.resampling.as_str() {
                "1s" => 1_000.0,
                "10s" => 10_000.0,
                "30s" => 30_000.0,
                "1min" => 60_000.0,
                "1h" => 3_600_000.0,
                "1d" => 86_400_000.0,
                _ => 0.0,
            };
            HistoryReadAction::ReadProcessedDetails(ReadProcessedDetails {
                start_time: DateTime::from(from),
                end_time: DateTime::from(to),
                processing_interval: interval_ms,
                aggregate_type: Some(vec![NodeId::from(function); nodes]),
                aggregate_configuration: Default::default(),
            })
        }
    })
}

/// Commit `values` and the trackedInstants `moved` (item id, instant) in one synced batch.
async fn commit(
    router: &Router,
    south_id: &str,
    items: &Arc<ItemIndex>,
    values: Vec<TimeValue>,
    moved: Vec<(String, String)>,
) -> Result<ReadSummary, String> {
    let content = Content::Values {
        kind: ContentType::TimeValues,
        values,
    };
    commit_with(
        router.clone(),
        south_id.to_owned(),
        items.clone(),
        content,
        move |batch, south_id| {
            for (item_id, instant) in &moved {
                batch.put(Cf::State, &tracked_key(south_id, item_id), instant)?;
            }
            Ok(())
        },
    )
    .await
}

impl Server {
    /// `settings` as OIBus's opcua connectors have them (`url`, `securityMode`,
    /// `securityPolicy`, `authentication`, `readTimeout`, `retryInterval`).
    pub(crate) fn new(
        label: &str,
        settings: &Value,
        peers: Peers,
        data_dir: &std::path::Path,
    ) -> Result<Server, ConnectorError> {
        Ok(Server {
            label: label.to_owned(),
            settings: Settings::read(label, settings)?,
            peers,
            pki_dir: data_dir.join("opcua-pki"),
        })
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn url(&self) -> &str {
        &self.settings.url
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        self.settings.read_timeout
    }

    /// A connected session and the task polling its event loop; the receiver resolves when the
    /// connection is lost.
    pub(crate) async fn connect(
        &self,
    ) -> Result<(Arc<Session>, tokio::sync::oneshot::Receiver<String>), String> {
        let s = &self.settings;
        let fail = |what: String| format!("{}: cannot connect to {}: {what}", self.label, s.url);
        let mut client = ClientBuilder::new()
            .application_name("OIBus")
            .application_uri("urn:oibus-agent")
            .product_uri("urn:oibus-agent")
            .pki_dir(&self.pki_dir)
            // The agent's own key pair, made once: needed by Sign modes, and without it the
            // library logs errors at every connection even in mode None.
            .create_sample_keypair(true)
            // As OIBus (`utils-opcua.ts`: `autoAcceptUnknown: true`): OPC UA servers on a plant
            // network present self-signed certificates that no CA vouches for.
            .trust_server_certs(true)
            .session_retry_limit(0)
            .session_retry_initial(Duration::from_millis(100))
            .request_timeout(s.read_timeout)
            .keep_alive_interval(Duration::from_secs(5))
            .max_failed_keep_alive_count(2)
            .session_timeout(60_000)
            // Large subscriptions: publish responses of thousands of notifications.
            .max_message_size(MAX_MESSAGE_BYTES)
            .max_chunk_count(MAX_MESSAGE_BYTES / 8192)
            .max_array_length(MAX_ARRAY_LENGTH)
            .client()
            .map_err(|e| fail(format!("invalid client configuration: {}", e.join("; "))))?;
        let identity = match &s.auth {
            Auth::None => IdentityToken::Anonymous,
            Auth::Basic { username, password } => {
                let cipher = match password.is_empty() {
                    true => None,
                    false => local_cipher(&self.peers).await,
                };
                let password = password
                    .open(&self.label, cipher.as_ref())
                    .map_err(|e| e.to_string())?;
                IdentityToken::UserName(username.clone(), password.expose().clone().into())
            }
            Auth::Cert {
                cert_file,
                key_file,
            } => {
                let cert = std::fs::read(cert_file)
                    .map_err(|e| fail(format!("cannot read the certificate {cert_file}: {e}")))?;
                let cert = opcua::crypto::X509::from_pem(&cert)
                    .or_else(|_| opcua::crypto::X509::from_der(&cert))
                    .map_err(|e| fail(format!("the certificate {cert_file} is not valid: {e}")))?;
                let key = std::fs::read(key_file)
                    .map_err(|e| fail(format!("cannot read the private key {key_file}: {e}")))?;
                let key = opcua::crypto::PrivateKey::from_pem(&key)
                    .map_err(|e| fail(format!("the private key {key_file} is not valid: {e}")))?;
                IdentityToken::X509(Box::new(cert), Box::new(key))
            }
        };
        let token_policy = match &s.auth {
            Auth::None => UserTokenPolicy::anonymous(),
            _ => UserTokenPolicy::anonymous(),
        };
        let endpoint: EndpointDescription = (
            s.url.as_str(),
            s.security_policy,
            s.security_mode,
            token_policy,
        )
            .into();
        let connecting = async {
            let (session, event_loop) = client
                .connect_to_matching_endpoint(endpoint, identity)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let mut stream = Box::pin(event_loop.enter());
            loop {
                match stream.next().await {
                    Some(Ok(SessionPollResult::Reconnected(_))) => break,
                    Some(Ok(_)) => {}
                    Some(Err(status)) => return Err(fail(explain(status))),
                    None => return Err(fail("the session closed".into())),
                }
            }
            Ok((session, stream))
        };
        let (session, mut stream) = tokio::time::timeout(s.read_timeout, connecting)
            .await
            .map_err(|_| {
                fail(format!(
                    "no session after {} ms",
                    s.read_timeout.as_millis()
                ))
            })??;
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel();
        let label = self.label.clone();
        actix_rt::spawn(async move {
            let why = loop {
                match stream.next().await {
                    Some(Ok(SessionPollResult::ConnectionLost(status))) => {
                        break format!("connection lost: {status}")
                    }
                    Some(Ok(_)) => {}
                    Some(Err(status)) => break format!("session failed: {status}"),
                    None => break "session closed".to_owned(),
                }
                if lost_tx.is_closed() {
                    return;
                }
            };
            tracing::debug!(south = %label, why = %why, "OPC UA session event loop ended");
            let _ = lost_tx.send(why);
        });
        Ok((session, lost_rx))
    }
}

/// A connection failure's status, with what to check when the cause is on our side.
pub(crate) fn explain(status: StatusCode) -> String {
    let hint = match status {
        StatusCode::BadIdentityTokenRejected
        | StatusCode::BadIdentityTokenInvalid
        | StatusCode::BadUserAccessDenied => {
            "; the server refused the credentials: check the username and password, or the certificate, in OIAnalytics"
        }
        StatusCode::BadCertificateInvalid
        | StatusCode::BadCertificateUntrusted
        | StatusCode::BadSecurityChecksFailed => {
            "; the server refused the agent's certificate: trust it on the server"
        }
        StatusCode::BadSecurityPolicyRejected | StatusCode::BadSecurityModeRejected => {
            "; the server offers no endpoint with this security mode and policy"
        }
        _ => "",
    };
    format!("{status}{hint}")
}

/// The connection task's state.
struct Runner {
    server: Server,
    shared: Arc<Shared>,
    monitored: Vec<Node>,
    sink: Recipient<Received>,
    errors: Recipient<SubscriptionFailed>,
}

impl Runner {
    fn failed(&self, error: String) {
        tracing::warn!(south = %self.server.label, error = %error, "OPC UA south");
        self.errors.do_send(SubscriptionFailed { error });
    }

    fn set_error(&self, error: Option<String>) {
        *self.shared.last_error() = error;
    }

    async fn run(self) {
        let s = &self.server.settings;
        let cap = s.retry_interval.max(Duration::from_millis(100));
        let mut backoff = Backoff::new(FIRST_RETRY.min(cap), cap);
        let mut last_error: Option<String> = None;
        loop {
            match self.server.connect().await {
                Ok((session, lost)) => {
                    backoff.reset();
                    last_error = None;
                    self.set_error(None);
                    tracing::info!(south = %self.server.label, url = %s.url, "OPC UA south connected");
                    *self.shared.session() = Some(session.clone());
                    let why = self.connected(&session, lost).await;
                    *self.shared.session() = None;
                    let Some(why) = why else {
                        close_later(session);
                        return;
                    };
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), session.disconnect()).await;
                    let error = format!("{}: {} {why}; reconnecting", self.server.label, s.url);
                    self.set_error(Some(why));
                    self.failed(error);
                }
                Err(error) => {
                    self.set_error(Some(error.clone()));
                    if last_error.as_ref() != Some(&error) {
                        self.failed(error.clone());
                        last_error = Some(error);
                    }
                }
            }
            if !self.sink.connected() {
                return;
            }
            tokio::time::sleep(backoff.on_failure()).await;
        }
    }

    /// Subscribe the monitored items, then buffer and flush what they push until the
    /// connection is lost (its reason) or the south stopped (`None`).
    async fn connected(
        &self,
        session: &Arc<Session>,
        mut lost: tokio::sync::oneshot::Receiver<String>,
    ) -> Option<String> {
        let s = &self.server.settings;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Pushed>();
        if !self.monitored.is_empty() {
            if let Err(e) = self.create_subscription(session, tx).await {
                return Some(e);
            }
        }
        let mut buffer: Vec<TimeValue> = Vec::new();
        let mut flush = tokio::time::interval(s.flush_timeout.max(Duration::from_millis(10)));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let max = s.max_messages.max(1);
        loop {
            tokio::select! {
                why = &mut lost => {
                    self.flush(&mut buffer);
                    return Some(why.unwrap_or_else(|_| "session ended".into()));
                }
                pushed = rx.recv() => {
                    let Some((handle, value)) = pushed else { continue };
                    if let Some(node) = self.monitored.get(handle.wrapping_sub(1) as usize) {
                        if let Some(text) = value.value.as_ref().and_then(value_text) {
                            let now = crate::protocol::iso_now();
                            buffer.push(TimeValue {
                                point_id: node.name.clone(),
                                timestamp: da_timestamp(&value, node.timestamp_origin, &now),
                                data: json!({"value": text, "quality": status_text(value.status)}),
                            });
                        } else if value.status.is_some_and(|st| st.is_bad()) {
                            self.failed(format!(
                                "{}: item '{}' (node id {}): the server reported {}",
                                self.server.label, node.name, node.node_text, status_text(value.status)
                            ));
                        }
                    }
                    if buffer.len() >= max {
                        self.flush(&mut buffer);
                    }
                }
                _ = flush.tick() => {
                    self.flush(&mut buffer);
                    if !self.sink.connected() {
                        return None;
                    }
                }
            }
        }
    }

    fn flush(&self, buffer: &mut Vec<TimeValue>) {
        if buffer.is_empty() {
            return;
        }
        self.sink.do_send(Received {
            content: Content::Values {
                kind: ContentType::TimeValues,
                values: std::mem::take(buffer),
            },
            ack: None,
        });
    }

    async fn create_subscription(
        &self,
        session: &Arc<Session>,
        tx: tokio::sync::mpsc::UnboundedSender<Pushed>,
    ) -> Result<(), String> {
        let label = &self.server.label;
        let callback = DataChangeCallback::new(move |value: DataValue, item: &MonitoredItem| {
            let _ = tx.send((item.client_handle(), value));
        });
        let subscription = session
            .create_subscription(
                Duration::from_millis(PUBLISHING_INTERVAL_MS),
                100,
                10,
                MAX_NOTIFICATIONS_PER_PUBLISH,
                10,
                true,
                callback,
            )
            .await
            .map_err(|e| format!("cannot create the subscription: {e}"))?;
        let mut requests = Vec::new();
        let mut handles = Vec::new();
        for (i, node) in self.monitored.iter().enumerate() {
            match &node.node_id {
                Ok(id) => {
                    let mut request = MonitoredItemCreateRequest::from(id.clone());
                    request.item_to_monitor.attribute_id = AttributeId::Value as u32;
                    request.monitoring_mode = MonitoringMode::Reporting;
                    request.requested_parameters = MonitoringParameters {
                        client_handle: i as u32 + 1,
                        // The publishing interval, as OIBus's -1 asks, but explicit: a server
                        // may rewrite the source timestamps of values sampled "at the
                        // subscription's rate" (async-opcua's does).
                        sampling_interval: PUBLISHING_INTERVAL_MS as f64,
                        filter: ExtensionObject::null(),
                        queue_size: 10,
                        discard_oldest: true,
                    };
                    requests.push(request);
                    handles.push(i);
                }
                Err(e) => self.failed(format!("{label}: {e}")),
            }
        }
        // In chunks, so tens of thousands of items fit the server's message limits.
        for (chunk, chunk_handles) in requests.chunks(1000).zip(handles.chunks(1000)) {
            let created = session
                .create_monitored_items(subscription, TimestampsToReturn::Both, chunk.to_vec())
                .await
                .map_err(|e| format!("cannot create the monitored items: {e}"))?;
            for (result, i) in created.iter().zip(chunk_handles) {
                if result.result.status_code.is_bad() {
                    let node = &self.monitored[*i];
                    self.failed(format!(
                        "{label}: item '{}' (node id {}): the server refused to monitor it: {}; check the node id in OIAnalytics",
                        node.name, node.node_text, result.result.status_code
                    ));
                }
            }
        }
        tracing::info!(south = %label, items = requests.len(), "OPC UA subscription created");
        Ok(())
    }
}

impl Settings {
    fn read(label: &str, settings: &Value) -> Result<Settings, ConnectorError> {
        let reader = SettingsReader::new(label, settings);
        let url = reader.required_string("url")?;
        if !url.starts_with("opc.tcp://") {
            return Err(ConnectorError::settings(
                label,
                "url",
                format!("{url:?} must start with opc.tcp://"),
            ));
        }
        let security_mode = match reader.string_or("securityMode", "none")?.as_str() {
            "none" | "None" => MessageSecurityMode::None,
            "sign" | "Sign" => MessageSecurityMode::Sign,
            "sign-and-encrypt" | "SignAndEncrypt" => MessageSecurityMode::SignAndEncrypt,
            other => {
                return Err(ConnectorError::settings(
                    label,
                    "securityMode",
                    format!("must be none, sign or sign-and-encrypt, not {other:?}"),
                ))
            }
        };
        let security_policy = if security_mode == MessageSecurityMode::None {
            "None"
        } else {
            match reader.string_or("securityPolicy", "none")?.as_str() {
                "none" | "None" => "None",
                "basic128-rsa15" | "Basic128Rsa15" => "Basic128Rsa15",
                "basic256" | "Basic256" => "Basic256",
                "basic256-sha256" | "Basic256Sha256" => "Basic256Sha256",
                "aes128-sha256-rsa-oaep" | "Aes128_Sha256_RsaOaep" => "Aes128-Sha256-RsaOaep",
                "aes256-sha256-rsa-pss" | "Aes256_Sha256_RsaPss" => "Aes256-Sha256-RsaPss",
                other => return Err(ConnectorError::Unsupported {
                    connector: label.to_owned(),
                    feature: format!("the OPC UA security policy {other:?}"),
                    advice:
                        "use basic128-rsa15, basic256, basic256-sha256 or aes128-sha256-rsa-oaep"
                            .into(),
                }),
            }
        };
        let auth = match reader.string_or("authentication.type", "none")?.as_str() {
            "none" => Auth::None,
            "basic" => Auth::Basic {
                username: reader.string_or("authentication.username", "")?,
                password: Sealed::read(&reader, "authentication.password")?,
            },
            "cert" => Auth::Cert {
                cert_file: reader.required_string("authentication.certFilePath")?,
                key_file: reader.required_string("authentication.keyFilePath")?,
            },
            other => {
                return Err(ConnectorError::settings(
                    label,
                    "authentication.type",
                    format!("must be none, basic or cert, not {other:?}"),
                ))
            }
        };
        let ms = |key: &str, default: u64| reader.u64_or(key, default).map(Duration::from_millis);
        Ok(Settings {
            url,
            security_mode,
            security_policy,
            auth,
            read_timeout: ms("readTimeout", 15_000)?.max(Duration::from_millis(100)),
            retry_interval: ms("retryInterval", 10_000)?,
            max_messages: reader.u64_or("maxNumberOfMessages", 1000)? as usize,
            flush_timeout: ms("flushMessageTimeout", 1000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> ChronoTime<Utc> {
        ChronoTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn intervals_split_as_oibus_generate_intervals() {
        let pieces = intervals(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:25Z"), 10);
        assert_eq!(
            pieces,
            vec![
                (t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:10Z")),
                (t("2026-01-01T00:00:10Z"), t("2026-01-01T00:00:20Z")),
                (t("2026-01-01T00:00:20Z"), t("2026-01-01T00:00:25Z")),
            ]
        );
        assert_eq!(
            intervals(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:25Z"), 0).len(),
            1
        );
    }

    #[test]
    fn items_take_their_group_history_settings_when_synchronised() {
        use crate::entities::{Audit, SouthGroup};
        let item = |synced: bool| SouthItem {
            id: "i".into(),
            name: "flow".into(),
            enabled: true,
            settings: json!({"nodeId": "ns=2;s=Flow", "mode": "ha",
                "haMode": {"aggregate": "average", "resampling": "10s"}, "timestampOrigin": "server"}),
            scan_mode_id: Some("s".into()),
            group_id: Some("g".into()),
            other: json!({"syncWithGroup": synced, "maxReadInterval": 60, "readDelay": 10})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            audit: Audit::new("", ""),
        };
        let south = SouthConnector {
            id: "s".into(),
            name: "s".into(),
            connector_type: "opcua".into(),
            description: String::new(),
            enabled: true,
            settings: json!({}),
            items: vec![],
            groups: vec![SouthGroup {
                id: "g".into(),
                other: json!({"historySettings": {"maxReadInterval": 600, "readDelay": 200}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            }],
            secret_paths: vec![],
            audit: Audit::new("", ""),
        };
        let own = Node::parse(&south.groups, &item(false));
        assert_eq!((own.max_read_interval, own.read_delay), (60, 10));
        assert_eq!(own.timestamp_origin, TimestampOrigin::Server);
        assert_eq!(
            own.ha,
            Some(HaMode {
                aggregate: "average".into(),
                resampling: "10s".into()
            })
        );
        assert_eq!(own.node_id, Ok(NodeId::new(2, "Flow")));
        let synced = Node::parse(&south.groups, &item(true));
        assert_eq!((synced.max_read_interval, synced.read_delay), (600, 200));
        let mut bad = item(false);
        bad.settings["nodeId"] = json!("ns=2;q=Flow");
        let err = Node::parse(&south.groups, &bad).node_id.unwrap_err();
        assert!(
            err.contains("'flow'") && err.contains("ns=2;q=Flow"),
            "{err}"
        );
    }

    #[test]
    fn values_are_text_as_oibus_parses_them() {
        assert_eq!(value_text(&Variant::Double(1.5)).as_deref(), Some("1.5"));
        assert_eq!(value_text(&Variant::Boolean(true)).as_deref(), Some("1"));
        assert_eq!(value_text(&Variant::Int32(-4)).as_deref(), Some("-4"));
        assert_eq!(
            value_text(&Variant::String("ab\0cd".into())).as_deref(),
            Some("ab")
        );
        assert_eq!(value_text(&Variant::Empty), None);
    }

    #[test]
    fn settings_name_what_is_wrong() {
        let err = Settings::read("south 's'", &json!({"url": "http://x"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("settings.url"), "{err}");
        let err = Settings::read(
            "south 's'",
            &json!({"url": "opc.tcp://x:4840", "securityMode": "sign", "securityPolicy": "basic192"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("basic192"), "{err}");
        let ok = Settings::read(
            "south 's'",
            &json!({"url": "opc.tcp://x:4840", "authentication": {"type": "basic", "username": "u"}}),
        )
        .unwrap();
        assert!(matches!(ok.auth, Auth::Basic { .. }));
    }
}
