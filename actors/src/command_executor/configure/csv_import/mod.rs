//! `create-or-update-south-items-from-csv` and `create-or-update-history-query-south-items-from-csv`:
//! items read from a CSV file and merged into a south connector or a history query, as OIBus
//! 3.8.8 does it (`SouthService.checkImportItems`/`importItems`, their history-query twins, and
//! the OIAnalytics command executors for the result and error texts).
//!
//! Columns: `name`, `enabled` (`true`/`True`/`TRUE`/`1`, anything else is false), `scanMode` (a
//! scan mode name; south only), `group` (south only: a row with a group needs no scan mode, but
//! OIBus's command path drops the group, so the item is stored without one), and
//! `settings_<key>` typed by the south type's item manifest: `object`/`array` → parsed JSON,
//! `boolean` → as `enabled`, anything else → the text (numbers too: OIBus stores them as the
//! strings it read). On a south an empty text setting is left out; on a history query it is kept
//! as `""` (OIBus differs there too). Other columns are ignored.
//!
//! Every row is checked before anything is written; all row errors come back in one ERRORED
//! result. Merge: without `deleteItemsNotPresent` a name already used by an item is an error and
//! the rows are added; with it the rows replace all items. Where OIBus gives every imported item
//! a fresh random id, here an item that replaces one of the same name keeps its id, and a new one
//! gets an id derived from the command id and its name, so a re-run is idempotent.

mod joi;
mod papa;

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{existing, invalid, typed, Applied, ApplyError, Env, Op};
use crate::entities::manifests::{south_item_settings, Attribute};
use crate::entities::{
    Audit, Entity, HistoryItem, HistoryQuery, ScanMode, SouthConnector, SouthItem, BY_OIANALYTICS,
};
use crate::store::Batch;

/// The command's content (local record; the catalogue moved the wire's top-level fields here).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CsvContent {
    delete_items_not_present: bool,
    /// null is read as an empty file (OIBus would fail inside papaparse).
    csv_content: Option<String>,
    delimiter: String,
}

/// Which entity the rows go into; decides the columns read and how empty settings are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    South,
    History,
}

/// A row that passed the checks.
pub(super) struct Row {
    name: String,
    enabled: bool,
    scan_mode_id: Option<String>,
    settings: Map<String, Value>,
}

/// What an import merges rows into: a south connector or a history query.
pub(super) trait ItemOwner: Entity + Clone {
    type Item: Clone;
    const TARGET: Target;
    fn south_type(&self) -> &str;
    fn name(&self) -> &str;
    fn items(&self) -> &Vec<Self::Item>;
    fn items_mut(&mut self) -> &mut Vec<Self::Item>;
    fn item_name(item: &Self::Item) -> &str;
    fn item_identity(item: &Self::Item) -> (&String, &Audit);
    fn item(row: Row, id: String, audit: Audit) -> Self::Item;
}

impl ItemOwner for SouthConnector {
    type Item = SouthItem;
    const TARGET: Target = Target::South;
    fn south_type(&self) -> &str {
        &self.connector_type
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn items(&self) -> &Vec<SouthItem> {
        &self.items
    }
    fn items_mut(&mut self) -> &mut Vec<SouthItem> {
        &mut self.items
    }
    fn item_name(item: &SouthItem) -> &str {
        &item.name
    }
    fn item_identity(item: &SouthItem) -> (&String, &Audit) {
        (&item.id, &item.audit)
    }
    fn item(row: Row, id: String, audit: Audit) -> SouthItem {
        SouthItem {
            id,
            name: row.name,
            enabled: row.enabled,
            settings: Value::Object(row.settings),
            scan_mode_id: row.scan_mode_id,
            group_id: None,
            other: oibus_item_defaults(),
            audit,
        }
    }
}

impl ItemOwner for HistoryQuery {
    type Item = HistoryItem;
    const TARGET: Target = Target::History;
    fn south_type(&self) -> &str {
        &self.south_type
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn items(&self) -> &Vec<HistoryItem> {
        &self.items
    }
    fn items_mut(&mut self) -> &mut Vec<HistoryItem> {
        &mut self.items
    }
    fn item_name(item: &HistoryItem) -> &str {
        &item.name
    }
    fn item_identity(item: &HistoryItem) -> (&String, &Audit) {
        (&item.id, &item.audit)
    }
    fn item(row: Row, id: String, audit: Audit) -> HistoryItem {
        HistoryItem {
            id,
            name: row.name,
            enabled: row.enabled,
            settings: Value::Object(row.settings),
            audit,
        }
    }
}

/// Check every row, then merge them into the owner's items in one write: a south connector's
/// (full config) or a history query's.
pub(super) fn import<O: ItemOwner>(
    owner_id: &str,
    content: &Value,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let cc: CsvContent = typed(content, "commandContent")?;
    let previous: O = existing(owner_id, env)?;
    let manifest = manifest_for(previous.south_type())?;
    let existing: Vec<&str> = if cc.delete_items_not_present {
        Vec::new()
    } else {
        previous.items().iter().map(O::item_name).collect()
    };
    let rows = check_rows(O::TARGET, &manifest, &cc, &existing, env)?;
    let count = rows.len();

    let mut owner = previous.clone();
    if cc.delete_items_not_present {
        owner.items_mut().clear();
    }
    for row in rows {
        let old = previous
            .items()
            .iter()
            .find(|i| O::item_name(i) == row.name)
            .map(O::item_identity);
        let (id, audit) = identity(old, owner_id, &row.name, env);
        owner.items_mut().push(O::item(row, id, audit));
    }
    env.entities.stage_put(batch, Some(&previous), &owner)?;
    Ok(Applied {
        result: format!(
            "{count} items imported on {} {}",
            O::KIND.label(),
            owner.name()
        ),
        // The message that tells OIAnalytics of the change.
        ..Applied::entity(O::KIND, Op::Update)
    })
}

/// OIBus's `getManifest` failure text for a type it does not know.
fn manifest_for(south_type: &str) -> Result<Attribute, ApplyError> {
    match south_item_settings(south_type) {
        Some(m) => Ok(m),
        None => invalid(format!("South manifest \"{south_type}\" not found")),
    }
}

/// The id and audit of an imported item: those of the item of the same name it replaces, else
/// an id derived from the command and the name (stable across re-runs of the command).
fn identity(
    old: Option<(&String, &Audit)>,
    owner_id: &str,
    name: &str,
    env: &Env<'_>,
) -> (String, Audit) {
    match old {
        Some((id, audit)) => (id.clone(), audit.touched(BY_OIANALYTICS, env.now)),
        None => (
            super::derive_id(env.command_id, &format!("{owner_id}/csv-item/{name}")),
            Audit::new(BY_OIANALYTICS, env.now),
        ),
    }
}

/// What OIBus's `copySouthItemCommandToSouthItemEntity` stores for the fields the CSV command
/// path does not pass on.
fn oibus_item_defaults() -> Map<String, Value> {
    let mut other = Map::new();
    other.insert("syncWithGroup".into(), Value::Bool(false));
    for key in [
        "maxReadInterval",
        "readDelay",
        "startTimeOffset",
        "endTimeOffset",
        "recoveryStrategy",
    ] {
        other.insert(key.into(), Value::Null);
    }
    other
}

/// OIBus's `stringToBoolean`.
fn string_to_boolean(value: &str) -> bool {
    matches!(value, "true" | "True" | "TRUE" | "1")
}

/// Parse the file and check every row; all row errors become one ERRORED result.
fn check_rows(
    target: Target,
    manifest: &Attribute,
    cc: &CsvContent,
    existing: &[&str],
    env: &Env<'_>,
) -> Result<Vec<Row>, ApplyError> {
    let parsed = papa::parse(cc.csv_content.as_deref().unwrap_or(""), &cc.delimiter);
    if parsed.delimiter != cc.delimiter {
        return invalid(format!(
            "The entered delimiter \"{}\" does not correspond to the file delimiter \"{}\"",
            cc.delimiter, parsed.delimiter
        ));
    }
    let mut taken: HashSet<&str> = existing.iter().copied().collect();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for data in &parsed.rows {
        let get = |key: &str| data.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        // OIBus prints a missing column as JavaScript does: `undefined`.
        let name = get("name");
        let shown = name.unwrap_or("undefined");
        let mut fail = |error: String| errors.push(format!("\n{shown}: {error}"));

        let mut scan_mode_id = None;
        if target == Target::South {
            match get("scanMode").filter(|s| !s.is_empty()) {
                Some(mode) => match env.entities.id_by_name::<ScanMode>(mode)? {
                    Some(id) => scan_mode_id = Some(id),
                    None => {
                        fail(format!(
                            "Scan mode \"{mode}\" not found for item \"{shown}\""
                        ));
                        continue;
                    }
                },
                None if get("group").is_some_and(|g| !g.is_empty()) => {}
                None => {
                    fail(format!("Scan mode not specified for item \"{shown}\""));
                    continue;
                }
            }
        }
        // A name repeated within the file is refused like one already stored (OIBus would fail
        // on its unique index with a database error instead).
        if name.is_some_and(|n| !taken.insert(n)) {
            fail(format!("Item name \"{shown}\" already used"));
            continue;
        }
        match row_settings(target, manifest, data, shown)? {
            Err(error) => fail(error),
            Ok(settings) => match joi::validate(manifest, &settings) {
                Err(error) => fail(error),
                Ok(()) => rows.push(Row {
                    name: name.unwrap_or_default().to_owned(),
                    enabled: string_to_boolean(get("enabled").unwrap_or("")),
                    scan_mode_id,
                    settings,
                }),
            },
        }
    }
    if !errors.is_empty() {
        return invalid(format!("Error when checking csv items:{}", errors.concat()));
    }
    Ok(rows)
}

/// The typed `settings_<key>` columns of a row. The inner error is the row's; the outer one
/// fails the whole command, as a JSON syntax error does in OIBus (there a JavaScript
/// `SyntaxError` text; here one that names the column and the item).
fn row_settings(
    target: Target,
    manifest: &Attribute,
    data: &[(String, String)],
    item: &str,
) -> Result<Result<Map<String, Value>, String>, ApplyError> {
    let mut settings = Map::new();
    for (column, value) in data {
        let Some(key) = column.strip_prefix("settings_") else {
            continue;
        };
        let Some(attribute) = manifest.attributes.iter().find(|a| a.key == key) else {
            return Ok(Err(format!("Settings \"{key}\" not accepted in manifest")));
        };
        let typed = match attribute.kind.as_str() {
            "array" | "object" if !value.is_empty() => match serde_json::from_str(value) {
                Ok(v) => v,
                Err(e) => {
                    return invalid(format!(
                        "Column \"{column}\" of item \"{item}\" is not valid JSON: {e}"
                    ))
                }
            },
            "boolean" => Value::Bool(string_to_boolean(value)),
            _ if value.is_empty() && target == Target::South => continue,
            _ => Value::String(value.clone()),
        };
        settings.insert(key.to_owned(), typed);
    }
    Ok(Ok(settings))
}

#[cfg(test)]
mod tests;
