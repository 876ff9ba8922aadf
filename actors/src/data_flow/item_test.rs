//! `test-south-item`, `test-history-query-south-item` and `test-history-query-south-connection`
//! (OIBus `south.service.ts` `testItem`/`testSouth`, `history-query.service.ts`,
//! `oianalytics-command.service.ts` `completeDualResultTestCommand`).
//!
//! The connector is built from the settings the command carries (secrets sent blank keep the
//! stored connector's or history query's; new ones are decrypted with the RSA key and sealed as
//! stored ones are), with its own connection: a test never touches the running connector. The
//! item result is `{raw, transformed, connectionDuration, queryDuration}`, `raw` and
//! `transformed` being OIBus content plus `{truncated, totalSize}`: at most 1,000 elements,
//! 500 KiB of a file. The executor caps every data command at 300 s, as OIBus caps tests.
//!
//! A history test runs the same test on the history query's south settings, as OIBus does; an
//! opcua HA item is read over `testingSettings.history` (`startTime`, `endTime`).

use serde_json::{json, Map, Value};

use super::transform::{apply, for_test};
use crate::commands::CommandType;
use crate::content::{Content, ContentType};
use crate::entities::transformers::Transformer;
use crate::entities::{Audit, EntityStore, HistoryQuery, SouthConnector, SouthItem};
use crate::key_vault::{DecryptSettings, KeyVault};
use crate::secrets_paths::{self, ConnectorKind};
use crate::south_connector::driver::{HistoryWindow, ItemTest};
use crate::south_connector::SouthDriver;
use crate::AgentContext;

/// Elements of an array content kept in a result.
pub const MAX_ELEMENTS: usize = 1000;
/// Bytes of a file content kept in a result.
pub const MAX_FILE_BYTES: usize = 500 * 1024;
/// OIBus's `TEST_COMMAND_TIMEOUT_MS`.
pub const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// What a test needs, read from the command and the stores (synchronously, in the actor).
struct Plan {
    south_type: String,
    settings: Value,
    /// The stored settings whose secrets a blank one keeps.
    previous: Option<Value>,
    /// `None` for a connection test.
    item: Option<SouthItem>,
    /// `testingSettings.transformer`.
    transformer: Option<(String, Map<String, Value>)>,
    /// `testingSettings.history`: the window an HA item is read over.
    history: Option<HistoryWindow>,
    known: Vec<Transformer>,
}

/// The string field `key` of a command (an id), empty when it is absent or not a string.
pub(super) fn str_field<'a>(fields: &'a Map<String, Value>, key: &str) -> &'a str {
    fields.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn plan(
    command_type: CommandType,
    fields: &Map<String, Value>,
    entities: &EntityStore,
) -> Result<Plan, String> {
    let cc = fields.get("commandContent").cloned().unwrap_or(Value::Null);
    let south_id = str_field(fields, "southConnectorId");
    let history_id = str_field(fields, "historyQueryId");
    let stored_south = match south_id {
        "" | "create" | "history" => None,
        id => entities
            .get::<SouthConnector>(id)
            .map_err(|e| e.to_string())?,
    };
    let stored_history = match history_id {
        "" | "create" => None,
        id => Some(
            entities
                .get::<HistoryQuery>(id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("History query \"{id}\" not found"))?,
        ),
    };
    // Where the south's type and settings are in the command.
    let (south, type_key, settings_key) = match command_type {
        CommandType::TestSouthItem => (&cc["southCommand"], "type", "settings"),
        CommandType::TestHistoryQuerySouthItem => {
            (&cc["historyCommand"], "southType", "southSettings")
        }
        _ => (&cc, "southType", "southSettings"),
    };
    let south_type = south[type_key]
        .as_str()
        .map(str::to_owned)
        .or_else(|| stored_history.as_ref().map(|h| h.south_type.clone()))
        .or_else(|| stored_south.as_ref().map(|s| s.connector_type.clone()))
        .ok_or_else(|| format!("commandContent: no south type ({type_key})"))?;
    let previous = match (&stored_history, &stored_south) {
        (Some(history), _) => Some(history.south_settings.clone()),
        (None, Some(south)) => Some(south.settings.clone()),
        _ => None,
    };
    let settings = match &south[settings_key] {
        Value::Object(_) => south[settings_key].clone(),
        _ => previous
            .clone()
            .ok_or_else(|| format!("commandContent: no south settings ({settings_key})"))?,
    };
    let item = match command_type {
        CommandType::TestSouthItem | CommandType::TestHistoryQuerySouthItem => {
            let item = &cc["itemCommand"];
            Some(SouthItem {
                id: "test".into(),
                name: item["name"].as_str().unwrap_or("test").to_owned(),
                enabled: true,
                settings: item["settings"].clone(),
                scan_mode_id: None,
                group_id: None,
                other: Default::default(),
                audit: Audit::new("", ""),
            })
        }
        _ => None,
    };
    let transformer = cc["testingSettings"]["transformer"]
        .as_object()
        .and_then(|t| {
            let id = t.get("transformerId")?.as_str()?.to_owned();
            let options = t.get("options").and_then(Value::as_object).cloned();
            Some((id, options.unwrap_or_default()))
        });
    let history = history_window(&cc["testingSettings"]["history"])?;
    let known = match transformer {
        Some(_) => entities.list::<Transformer>().map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    Ok(Plan {
        south_type,
        settings,
        previous,
        item,
        transformer,
        history,
        known,
    })
}

/// `testingSettings.history` (`startTime`, `endTime`, RFC 3339), when the command has one.
fn history_window(history: &Value) -> Result<Option<HistoryWindow>, String> {
    if history.is_null() {
        return Ok(None);
    }
    let at = |key: &str| {
        history[key]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or_else(|| {
                format!(
                    "commandContent.testingSettings.history.{key} is not an RFC 3339 date: {}",
                    history[key]
                )
            })
    };
    let (start, end) = (at("startTime")?, at("endTime")?);
    if start >= end {
        return Err(format!(
            "commandContent.testingSettings.history: startTime {start} is not before endTime {end}"
        ));
    }
    Ok(Some(HistoryWindow { start, end }))
}

/// `settings` as they are stored: new secrets decrypted with the RSA key and sealed, blank ones
/// the previous settings' (sealed already).
async fn at_rest(
    ctx: &AgentContext,
    south_type: &str,
    mut settings: Value,
    previous: Option<&Value>,
) -> Result<Value, String> {
    let paths = secrets_paths::secret_paths(ConnectorKind::South, south_type);
    let mut fresh = false;
    let mut probe = settings.clone();
    let _ = secrets_paths::decrypt_paths(paths, &mut probe, |s| {
        fresh = true;
        Ok::<_, ()>(s.to_owned())
    });
    if fresh {
        let vault = ctx
            .peers
            .get::<KeyVault>()
            .ok_or("The key vault is not running: secrets cannot be decrypted")?;
        let request = DecryptSettings {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            settings,
        };
        settings = match vault.send(request).await {
            Ok(Ok(plain)) => plain,
            Ok(Err(e)) => return Err(format!("Cannot decrypt secret in commandContent: {e}")),
            Err(_) => return Err("The key vault is not running".into()),
        };
        let cipher = crate::connectors::local_cipher(&ctx.peers)
            .await
            .ok_or("The key vault is not running: secrets cannot be sealed")?;
        secrets_paths::decrypt_paths(paths, &mut settings, |plain| {
            Ok::<_, ()>(cipher.seal(plain.as_bytes()))
        })
        .map_err(|_| "cannot seal a secret of the test settings".to_owned())?;
    }
    if let Some(previous) = previous {
        secrets_paths::keep_previous_paths(paths, &mut settings, previous);
    }
    Ok(settings)
}

/// Run one of the three tests; the result is the command's result text.
pub fn run(
    command_type: CommandType,
    fields: &Map<String, Value>,
    entities: &EntityStore,
    ctx: &AgentContext,
) -> futures_util::future::LocalBoxFuture<'static, Result<String, String>> {
    let plan = plan(command_type, fields, entities);
    let ctx = ctx.clone();
    let test = async move {
        let plan = plan?;
        if !SouthDriver::supports(&plan.south_type) {
            return Err(crate::south_connector::driver::unsupported(
                &plan.south_type,
            ));
        }
        let settings = at_rest(
            &ctx,
            &plan.south_type,
            plan.settings,
            plan.previous.as_ref(),
        )
        .await?;
        let south = SouthConnector {
            // Its own id: the test's client and connection never take the running one's.
            id: "test".into(),
            name: format!("{}:test-connection", plan.south_type),
            connector_type: plan.south_type.clone(),
            description: String::new(),
            enabled: false,
            settings,
            items: plan.item.iter().cloned().collect(),
            groups: Vec::new(),
            secret_paths: Vec::new(),
            audit: Audit::new("", ""),
        };
        let driver = SouthDriver::new(&south, &ctx)?;
        let Some(item) = plan.item else {
            return Ok(driver.test_connection().await?.to_string());
        };
        let tested: ItemTest = driver.test_item(item, plan.history).await?;
        let transformed = match &plan.transformer {
            None => Value::Null,
            Some((id, options)) => {
                let transform = for_test(id, options.clone(), &plan.known);
                match apply(Some(&transform), tested.content.clone(), &[])? {
                    Some(content) => result_content(&content),
                    None => Value::Null,
                }
            }
        };
        Ok(json!({
            "raw": result_content(&tested.content),
            "transformed": transformed,
            "connectionDuration": tested.connection_ms,
            "queryDuration": tested.query_ms,
        })
        .to_string())
    };
    // Here too, not only in the executor: a test that never ends (an MQTT topic nobody
    // publishes on) must not keep its connection in the DataFlow after the command gave up.
    Box::pin(async move {
        tokio::time::timeout(TEST_TIMEOUT, test)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{} timed out after {}s",
                    command_type.as_str(),
                    TEST_TIMEOUT.as_secs()
                ))
            })
    })
}

/// OIBus content with `{truncated, totalSize}`: arrays cut to 1,000 elements, files to 500 KiB
/// (OIBus `truncateContentForResult`); any-content is, as in OIBus, the JSON text of its
/// messages, cut to 1,000 messages.
pub fn result_content(content: &Content) -> Value {
    fn cut<T: Clone>(all: &[T]) -> (Vec<T>, bool, usize) {
        let kept = all.iter().take(MAX_ELEMENTS).cloned().collect();
        (kept, all.len() > MAX_ELEMENTS, all.len())
    }
    match content {
        Content::Values { kind, values } => {
            let (kept, truncated, total) = cut(values);
            json!({"type": kind.as_str(), "content": kept, "truncated": truncated, "totalSize": total})
        }
        Content::Elements {
            kind: ContentType::AnyContent,
            elements,
        } => {
            let (kept, truncated, total) = cut(elements);
            json!({"type": "any-content", "content": Value::Array(kept).to_string(),
                   "truncated": truncated, "totalSize": total})
        }
        Content::Elements { kind, elements } => {
            let (kept, truncated, total) = cut(elements);
            json!({"type": kind.as_str(), "content": kept, "truncated": truncated, "totalSize": total})
        }
        Content::File { filename, bytes } => {
            let total = bytes.len();
            let mut end = total.min(MAX_FILE_BYTES);
            let text = loop {
                // Cut on a character boundary.
                match std::str::from_utf8(&bytes[..end]) {
                    Ok(text) => break text.to_owned(),
                    Err(e) if e.error_len().is_none() => end = e.valid_up_to(),
                    Err(_) => break String::from_utf8_lossy(&bytes[..end]).into_owned(),
                }
            };
            json!({"type": "any", "filePath": filename, "content": text,
                   "truncated": total > MAX_FILE_BYTES, "totalSize": total})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::TimeValue;

    #[test]
    fn results_are_cut_to_a_thousand_elements_or_500_kib() {
        let values = (0..1500)
            .map(|i| TimeValue {
                point_id: "p".into(),
                timestamp: "2026-12-07T00:00:00.000Z".into(),
                data: json!({"value": i}),
            })
            .collect();
        let r = result_content(&Content::Values {
            kind: ContentType::TimeValues,
            values,
        });
        assert_eq!(r["content"].as_array().map(Vec::len), Some(1000));
        assert_eq!(
            (r["truncated"].clone(), r["totalSize"].clone()),
            (json!(true), json!(1500))
        );
        assert_eq!(r["content"][0]["pointId"], "p");
        let file = Content::File {
            filename: "f.csv".into(),
            bytes: vec![b'x'; 600 * 1024].into(),
        };
        let r = result_content(&file);
        assert_eq!(r["content"].as_str().map(str::len), Some(500 * 1024));
        assert_eq!(r["truncated"], true);
        let small = result_content(&Content::Elements {
            kind: ContentType::AnyContent,
            elements: vec![json!({"message": "m"})],
        });
        assert_eq!(small["content"], r#"[{"message":"m"}]"#);
        assert_eq!(small["truncated"], false);
    }
}
