//! Transformer commands and the transformer lists of norths and history queries, as OIBus does
//! them (`transformer.service.ts` create/update/delete; `north.service.ts` and
//! `history-query.service.ts` when they store `transformers` / `northTransformers`).
//!
//! Texts are OIBus's: `Transformer name "x" already exists`, `Transformer "x" not found`,
//! `Cannot edit standard transformer "x"`, `Cannot delete standard transformer "x"`,
//! `Could not find OIBus transformer "x"`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    check_unique_name, derive_id, existing, invalid, target, typed, Applied, ApplyError, Env, Op,
};
use crate::entities::transformers::{CustomTransformer, Transformer, TransformerDefinition};
use crate::entities::{Audit, EntityKind, HistoryItem, SouthConnector, BY_OIANALYTICS};
use crate::store::Batch;

/// `commandContent` of create-/update-custom-transformer (OIBus's `transformerSchema`). `type`
/// (`'custom'`) is accepted and ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomTransformerCommand {
    name: String,
    /// Joi allows null and "".
    description: Option<String>,
    input_type: String,
    output_type: String,
    language: String,
    timeout: u64,
    custom_code: String,
    custom_manifest: Map<String, Value>,
}

impl CustomTransformerCommand {
    /// What Joi checks besides the types: non-empty strings, `timeout` ≥ 100 ms.
    fn check(&self, path: &str) -> Result<(), ApplyError> {
        for (key, value) in [
            ("name", &self.name),
            ("inputType", &self.input_type),
            ("outputType", &self.output_type),
            ("language", &self.language),
            ("customCode", &self.custom_code),
        ] {
            if value.is_empty() {
                return invalid(format!("{path}.{key} is not allowed to be empty"));
            }
        }
        if self.timeout < 100 {
            return invalid(format!(
                "{path}.timeout must be greater than or equal to 100"
            ));
        }
        Ok(())
    }
}

/// create-custom-transformer (`update_id` None) and update-custom-transformer. A create gets the
/// id derived from the command id, so a re-run rewrites the same transformer.
pub(super) fn put_custom(
    update_id: Option<String>,
    content: &Value,
    path: &str,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let command: CustomTransformerCommand = typed(content, path)?;
    command.check(path)?;
    let op = if update_id.is_some() {
        Op::Update
    } else {
        Op::Insert
    };
    let (id, previous) = target::<Transformer>(update_id, env)?;
    if op == Op::Update && previous.as_ref().is_some_and(Transformer::is_standard) {
        return invalid(format!("Cannot edit standard transformer \"{id}\""));
    }
    check_unique_name::<Transformer>(&command.name, &id, env)?;
    // OIBus's update writes neither input nor output type (`transformer.repository.ts` save):
    // a transformer keeps the types it was created with.
    let (input_type, output_type, audit) = match (&previous, op) {
        (Some(p), Op::Update) => (
            p.input_type.clone(),
            p.output_type.clone(),
            p.audit.touched(BY_OIANALYTICS, env.now),
        ),
        _ => (
            command.input_type,
            command.output_type,
            Audit::new(BY_OIANALYTICS, env.now),
        ),
    };
    let transformer = Transformer {
        id,
        input_type,
        output_type,
        definition: TransformerDefinition::Custom(CustomTransformer {
            name: command.name,
            description: command.description.unwrap_or_default(),
            language: command.language,
            timeout: command.timeout,
            custom_code: command.custom_code,
            custom_manifest: Value::Object(command.custom_manifest),
        }),
        audit,
    };
    env.entities
        .stage_put(batch, previous.as_ref(), &transformer)?;
    Ok(Applied::entity(EntityKind::Transformer, op))
}

/// delete-custom-transformer.
pub(super) fn delete_custom(
    id: &str,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let current = existing::<Transformer>(id, env)?;
    if current.is_standard() {
        return invalid(format!("Cannot delete standard transformer \"{id}\""));
    }
    env.entities.stage_delete(batch, &current);
    Ok(Applied::entity(EntityKind::Transformer, Op::Delete))
}

/// The id of the `index`-th transformer entry of `owner`: OIBus gives every entry of a create a
/// new id, and keeps the given one on an update unless it is empty or a UI `temp_` id. New ids
/// are derived from the command id, so a re-run makes the same.
fn entry_id(
    given: Option<&str>,
    is_update: bool,
    owner: &str,
    index: usize,
    env: &Env<'_>,
) -> String {
    match given {
        Some(id) if is_update && !id.is_empty() && !id.starts_with("temp_") => id.to_owned(),
        _ => derive_id(env.command_id, &format!("{owner}/transformer/{index}")),
    }
}

/// `transformerId` must name a stored transformer, standard or custom.
fn check_transformer(transformer_id: &str, env: &Env<'_>) -> Result<(), ApplyError> {
    match env.entities.get::<Transformer>(transformer_id)? {
        Some(_) => Ok(()),
        None => invalid(format!(
            "Could not find OIBus transformer \"{transformer_id}\""
        )),
    }
}

/// An item reference as commands send it; only `id` is trusted, `name` names it in errors.
#[derive(Debug, Deserialize)]
struct ItemRef {
    id: String,
    #[serde(default)]
    name: String,
}

/// A north's transformer entry as commands send it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NorthTransformerCommand {
    #[serde(default)]
    id: Option<String>,
    transformer_id: String,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    source: SourceCommand,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum SourceCommand {
    #[serde(rename = "south", rename_all = "camelCase")]
    South {
        south_id: String,
        #[serde(default)]
        group_id: Option<String>,
        items: Vec<ItemRef>,
    },
    #[serde(rename = "oibus-api", rename_all = "camelCase")]
    OibusApi { data_source_id: String },
    #[serde(rename = "oianalytics-setpoint")]
    OiaSetpoint {},
}

/// A north's transformer entry as stored and sent in E6 (`oianalytics-message.service.ts`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NorthTransformerOut {
    id: String,
    transformer_id: String,
    source: SourceOut,
    options: Map<String, Value>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type")]
enum SourceOut {
    #[serde(rename = "south", rename_all = "camelCase")]
    South {
        south_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        group_id: Option<String>,
        items: Vec<ItemLight>,
    },
    #[serde(rename = "oibus-api", rename_all = "camelCase")]
    OibusApi { data_source_id: String },
    #[serde(rename = "oianalytics-setpoint")]
    OiaSetpoint {},
}

#[derive(Debug, Serialize)]
struct ItemLight {
    id: String,
    name: String,
    enabled: bool,
}

fn to_value<T: Serialize>(out: &T) -> Result<Value, ApplyError> {
    serde_json::to_value(out).map_err(|e| ApplyError::Invalid(e.to_string()))
}

/// A north's `transformers` normalised as OIBus stores them: transformer known, ids given, the
/// source re-read from the stored south (`{id, name, enabled}` of each item).
pub(super) fn north_transformers(
    values: &[Value],
    path: &str,
    is_update: bool,
    owner: &str,
    env: &Env<'_>,
) -> Result<Vec<Value>, ApplyError> {
    let mut out = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let command: NorthTransformerCommand = typed(value, &format!("{path}[{index}]"))?;
        check_transformer(&command.transformer_id, env)?;
        let source = match command.source {
            SourceCommand::South {
                south_id,
                group_id,
                items,
            } => south_source(&south_id, group_id, &items, env)?,
            SourceCommand::OibusApi { data_source_id } => SourceOut::OibusApi { data_source_id },
            SourceCommand::OiaSetpoint {} => SourceOut::OiaSetpoint {},
        };
        out.push(to_value(&NorthTransformerOut {
            id: entry_id(command.id.as_deref(), is_update, owner, index, env),
            transformer_id: command.transformer_id,
            source,
            options: command.options.unwrap_or_default(),
        })?);
    }
    Ok(out)
}

fn south_source(
    south_id: &str,
    group_id: Option<String>,
    items: &[ItemRef],
    env: &Env<'_>,
) -> Result<SourceOut, ApplyError> {
    let Some(south) = env.entities.get::<SouthConnector>(south_id)? else {
        return invalid(format!("Could not find South connector \"{south_id}\""));
    };
    // OIBus looks the group up by id alone (any south), and "" means none.
    let group_id = group_id.filter(|g| !g.is_empty());
    if let Some(group) = &group_id {
        let found = env
            .entities
            .list::<SouthConnector>()?
            .iter()
            .any(|s| s.groups.iter().any(|g| &g.id == group));
        if !found {
            return invalid(format!("Could not find Group \"{group}\""));
        }
    }
    let items = items
        .iter()
        .map(|r| match south.items.iter().find(|i| i.id == r.id) {
            Some(item) => Ok(ItemLight {
                id: item.id.clone(),
                name: item.name.clone(),
                enabled: item.enabled,
            }),
            None => invalid(format!(
                "Could not find South connector item \"{}\" ({})",
                r.name, r.id
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(SourceOut::South {
        south_id: south.id,
        group_id,
        items,
    })
}

/// A history query's transformer entry as commands send it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryTransformerCommand {
    #[serde(default)]
    id: Option<String>,
    transformer_id: String,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    items: Vec<ItemRef>,
}

/// As stored and sent in E7: items carry their audit, unprefixed, as OIBus's light item does.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryTransformerOut {
    id: String,
    transformer_id: String,
    options: Map<String, Value>,
    items: Vec<HistoryItemLight>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryItemLight {
    id: String,
    name: String,
    enabled: bool,
    #[serde(flatten)]
    audit: Audit,
}

/// A history query's `northTransformers` normalised as OIBus stores them; items are re-read
/// from the query's own items (`items`, as this command stores them).
pub(super) fn history_transformers(
    values: &[Value],
    path: &str,
    is_update: bool,
    owner: &str,
    items: &[HistoryItem],
    env: &Env<'_>,
) -> Result<Vec<Value>, ApplyError> {
    let mut out = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let command: HistoryTransformerCommand = typed(value, &format!("{path}[{index}]"))?;
        check_transformer(&command.transformer_id, env)?;
        let refs = command
            .items
            .iter()
            .map(|r| match items.iter().find(|i| i.id == r.id) {
                Some(item) => Ok(HistoryItemLight {
                    id: item.id.clone(),
                    name: item.name.clone(),
                    enabled: item.enabled,
                    audit: item.audit.clone(),
                }),
                None => invalid(format!(
                    "Could not find History item \"{}\" ({})",
                    r.name, r.id
                )),
            })
            .collect::<Result<_, _>>()?;
        out.push(to_value(&HistoryTransformerOut {
            id: entry_id(command.id.as_deref(), is_update, owner, index, env),
            transformer_id: command.transformer_id,
            options: command.options.unwrap_or_default(),
            items: refs,
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
