//! The sources a south can read: one variant per south type this agent runs. Any other type
//! keeps its configuration but never runs, and says so in its status and `test-*` results.

use std::sync::Arc;

use actix::Recipient;
use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use crate::connectors::south_folder_scanner::FolderScanner;
use crate::connectors::south_modbus::ModbusSouth;
use crate::connectors::south_mqtt::MqttSouth;
use crate::connectors::south_opcua::OpcuaSouth;
use crate::content::{Content, ContentType, TimeValue};
use crate::context::AgentContext;
use crate::data_flow::router::Router;
use crate::data_flow::transform::{ItemIndex, Origin};
use crate::entities::{SouthConnector, SouthItem};
use crate::store::{Batch, Store};

use super::actor::{Received, SubscriptionFailed};

/// What a south of `south_type` that this agent cannot run says.
pub fn unsupported(south_type: &str) -> String {
    format!("South type '{south_type}' is not supported by this agent")
}

#[derive(Clone)]
pub enum SouthDriver {
    FolderScanner(Arc<FolderScanner>),
    Modbus(Arc<ModbusSouth>),
    Mqtt(Arc<MqttSouth>),
    Opcua(Arc<OpcuaSouth>),
}

/// Commit what an async driver read (values, messages) to the caches in one synced batch, on a
/// blocking thread. `read` is how many values or messages that is.
pub async fn commit(
    router: Router,
    south_id: String,
    items: Arc<ItemIndex>,
    content: Content,
) -> Result<ReadSummary, String> {
    commit_with(router, south_id, items, content, |_, _| Ok(())).await
}

/// [`commit`], with `extra` writes of the south's own (given its id) in the same batch.
pub async fn commit_with(
    router: Router,
    south_id: String,
    items: Arc<ItemIndex>,
    content: Content,
    extra: impl FnOnce(&mut Batch, &str) -> crate::store::Result<()> + Send + 'static,
) -> Result<ReadSummary, String> {
    let read = content.elements();
    let done = actix_rt::task::spawn_blocking(move || {
        let origin = Origin::South {
            south_id: &south_id,
            items: &items,
        };
        router.dispatch_with(origin, &content, |batch| extra(batch, &south_id))
    })
    .await
    .map_err(|e| format!("the cache commit panicked: {e}"))?
    .map_err(|e| format!("cannot cache what was read: {e}"))?;
    Ok(ReadSummary {
        read,
        cached: done.cached,
        dropped_full: done.dropped_full,
        // What a north's transformer could not take (a malformed message): counted by the
        // south too, as OIBus's logs show it against the connector.
        errors: done.untransformed,
    })
}

/// The window `test-south-item` reads an HA item's history over (`testingSettings.history`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryWindow {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

/// What `test-south-item` got: the content, and the milliseconds the connection and the query
/// took (OIBus's `connectionDuration`, `queryDuration`).
#[derive(Debug, Clone)]
pub struct ItemTest {
    pub content: Content,
    pub connection_ms: u64,
    pub query_ms: u64,
}

impl ItemTest {
    /// Time values, with the connection and query durations (ms).
    fn values((values, connection_ms, query_ms): (Vec<TimeValue>, u64, u64)) -> ItemTest {
        ItemTest {
            content: Content::Values {
                kind: ContentType::TimeValues,
                values,
            },
            connection_ms,
            query_ms,
        }
    }
}

/// What one read of one item gave.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReadSummary {
    /// Files or values handed to the fan-out and committed.
    pub read: usize,
    /// Elements or files now in north caches (summed over the norths).
    pub cached: usize,
    pub dropped_full: usize,
    /// Items that could not be read while the others were (each error names its items), and
    /// elements a north's transformer dropped.
    pub errors: Vec<String>,
}

impl ReadSummary {
    /// Count `one` in this total.
    pub(crate) fn add(&mut self, one: ReadSummary) {
        self.read += one.read;
        self.cached += one.cached;
        self.dropped_full += one.dropped_full;
        self.errors.extend(one.errors);
    }
}

impl SouthDriver {
    pub fn new(south: &SouthConnector, ctx: &AgentContext) -> Result<SouthDriver, String> {
        match south.connector_type.as_str() {
            "folder-scanner" => FolderScanner::new(&south.id, &south.settings, &ctx.store)
                .map(|s| SouthDriver::FolderScanner(Arc::new(s)))
                .map_err(|e| e.to_string()),
            "modbus" => ModbusSouth::new(&south.id, &south.settings)
                .map(|s| SouthDriver::Modbus(Arc::new(s)))
                .map_err(|e| e.to_string()),
            "mqtt" => MqttSouth::new(south, &ctx.engine_id, ctx.peers.clone())
                .map(|s| SouthDriver::Mqtt(Arc::new(s)))
                .map_err(|e| e.to_string()),
            "opcua" => OpcuaSouth::new(
                south,
                &ctx.store,
                ctx.peers.clone(),
                &ctx.config().engine.data_dir,
            )
            .map(|s| SouthDriver::Opcua(Arc::new(s)))
            .map_err(|e| e.to_string()),
            other => Err(unsupported(other)),
        }
    }

    pub fn supports(south_type: &str) -> bool {
        matches!(south_type, "folder-scanner" | "modbus" | "mqtt" | "opcua")
    }

    /// Whether each item is its own work unit (OIBus's `SOUTH_SINGLE_ITEMS`: files, queries),
    /// rather than every due item of a scan mode in one read (registers, nodes).
    pub fn reads_per_item(&self) -> bool {
        match self {
            SouthDriver::FolderScanner(_) | SouthDriver::Mqtt(_) => true,
            SouthDriver::Modbus(_) | SouthDriver::Opcua(_) => false,
        }
    }

    /// Start what a subscription driver receives on its own (none of the polling ones).
    pub fn subscribe(
        &self,
        south: &SouthConnector,
        sink: Recipient<Received>,
        errors: Recipient<SubscriptionFailed>,
    ) {
        match self {
            SouthDriver::FolderScanner(_) | SouthDriver::Modbus(_) => {}
            SouthDriver::Mqtt(mqtt) => mqtt.subscribe(south, sink, errors),
            SouthDriver::Opcua(opcua) => opcua.subscribe(south, sink, errors),
        }
    }

    /// Read items `item_ids` of `south`, commit what they gave to the caches (one synced
    /// batch per read, on a blocking thread), then acknowledge the read.
    pub fn read(
        self,
        south: Arc<SouthConnector>,
        item_ids: Vec<String>,
        items: Arc<ItemIndex>,
        router: Router,
    ) -> LocalBoxFuture<'static, Result<ReadSummary, String>> {
        match self {
            SouthDriver::FolderScanner(scanner) => Box::pin(async move {
                let read = actix_rt::task::spawn_blocking(move || {
                    let mut total = ReadSummary::default();
                    for item in south.items.iter().filter(|i| item_ids.contains(&i.id)) {
                        total.add(read_files(&scanner, &south.id, item, &items, &router)?);
                    }
                    Ok(total)
                });
                read.await
                    .unwrap_or_else(|e| Err(format!("the read panicked: {e}")))
            }),
            SouthDriver::Modbus(modbus) => Box::pin(async move {
                let due: Vec<&SouthItem> = south
                    .items
                    .iter()
                    .filter(|i| item_ids.contains(&i.id))
                    .collect();
                let read = modbus.read(&due).await.map_err(|e| e.to_string())?;
                let errors: Vec<String> = read.errors.iter().map(ToString::to_string).collect();
                if read.values.is_empty() {
                    return match errors.is_empty() {
                        true => Ok(ReadSummary::default()),
                        false => Err(errors.join("; ")),
                    };
                }
                let content = Content::Values {
                    kind: ContentType::TimeValues,
                    values: read.values,
                };
                let mut summary = commit(router, south.id.clone(), items, content).await?;
                summary.errors.splice(0..0, errors);
                Ok(summary)
            }),
            SouthDriver::Opcua(opcua) => Box::pin(async move {
                let due: Vec<&SouthItem> = south
                    .items
                    .iter()
                    .filter(|i| item_ids.contains(&i.id))
                    .collect();
                opcua.read(&south, &due, items, router).await
            }),
            // Subscription items are never scanned.
            SouthDriver::Mqtt(_) => Box::pin(async { Ok(ReadSummary::default()) }),
        }
    }

    /// `test-south-connection`: `{items: [{key, value}]}`, as the connector's OIBus test gives.
    pub fn test_connection(self) -> LocalBoxFuture<'static, Result<Value, String>> {
        match self {
            SouthDriver::FolderScanner(scanner) => Box::pin(async move {
                actix_rt::task::spawn_blocking(move || scanner.test_connection())
                    .await
                    .unwrap_or_else(|e| Err(format!("the test panicked: {e}")))
            }),
            SouthDriver::Modbus(modbus) => {
                Box::pin(async move { modbus.test_connection().await.map_err(|e| e.to_string()) })
            }
            SouthDriver::Mqtt(mqtt) => Box::pin(async move { mqtt.test_connection().await }),
            SouthDriver::Opcua(opcua) => Box::pin(async move { opcua.test_connection().await }),
        }
    }

    /// `test-south-item`: what `item` gives now, without caching it, and how long the
    /// connection and the query took (ms).
    pub fn test_item(
        self,
        item: SouthItem,
        history: Option<HistoryWindow>,
    ) -> LocalBoxFuture<'static, Result<ItemTest, String>> {
        match self {
            SouthDriver::FolderScanner(scanner) => Box::pin(async move {
                let started = std::time::Instant::now();
                let values = actix_rt::task::spawn_blocking(move || scanner.test_item(&item))
                    .await
                    .unwrap_or_else(|e| Err(format!("the test panicked: {e}")))?;
                let query_ms = started.elapsed().as_millis() as u64;
                Ok(ItemTest::values((values, 0, query_ms)))
            }),
            SouthDriver::Modbus(modbus) => Box::pin(async move {
                let tested = modbus.test_item(&item).await.map_err(|e| e.to_string())?;
                Ok(ItemTest::values(tested))
            }),
            SouthDriver::Mqtt(mqtt) => Box::pin(async move {
                let topic = item.settings["topic"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let item = crate::connectors::south_mqtt::TopicItem {
                    id: item.id,
                    name: item.name,
                    topic,
                };
                let (element, connection_ms, query_ms) = mqtt.test_item(&item).await?;
                Ok(ItemTest {
                    content: Content::Elements {
                        kind: ContentType::AnyContent,
                        elements: vec![element],
                    },
                    connection_ms,
                    query_ms,
                })
            }),
            SouthDriver::Opcua(opcua) => {
                Box::pin(
                    async move { Ok(ItemTest::values(opcua.test_item(&item, history).await?)) },
                )
            }
        }
    }

    /// Forget what a deleted south remembered (a folder scanner's files; nothing for the
    /// others, so it is safe whatever the type was).
    pub fn forget(south_id: &str, store: &Store) {
        if let Err(e) = FolderScanner::forget(store, south_id) {
            tracing::warn!(south = %south_id, error = %e, "cannot forget the deleted south's file memory");
        }
        if let Err(e) = OpcuaSouth::forget(store, south_id) {
            tracing::warn!(south = %south_id, error = %e, "cannot forget the deleted south's history instants");
        }
    }
}

/// One folder-scanner item: each file committed to the caches, then acknowledged (deleted or
/// remembered) at once, so a crash re-reads at most the file in hand, not the whole scan.
fn read_files(
    scanner: &FolderScanner,
    south_id: &str,
    item: &SouthItem,
    items: &ItemIndex,
    router: &Router,
) -> Result<ReadSummary, String> {
    let files = scanner.scan(item).map_err(|e| e.to_string())?;
    let mut summary = ReadSummary::default();
    for file in files {
        let content = Content::File {
            filename: file.filename.clone(),
            bytes: file.bytes.clone(),
        };
        let origin = Origin::South { south_id, items };
        // Not committed: the file stays where it is and is read again.
        let done = router
            .dispatch(origin, &content)
            .map_err(|e| format!("cannot cache {}: {e}", file.filename))?;
        scanner
            .done(std::slice::from_ref(&file))
            .map_err(|e| e.to_string())?;
        summary.read += 1;
        summary.cached += done.cached;
        summary.dropped_full += done.dropped_full;
        summary.errors.extend(done.untransformed);
    }
    Ok(summary)
}
