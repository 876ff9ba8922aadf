//! A north's transformer routing (data-plane §5.3) and the native standard transformers.
//!
//! OIBus resolves the transformer of a south's content per item: the first entry (in list
//! order) naming the item, else the first naming the item's group, else the first entry of
//! the south with neither items nor group. A setpoint goes through the first
//! `oianalytics-setpoint` entry. No entry: the content is cached as is when the north accepts
//! its type, and silently dropped otherwise (`north-connector.ts` `handleNoTransformer`).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::json_path::{JsonPath, JsonPathError};
use crate::connectors::north_modbus::js_truthy;
use crate::connectors::south_modbus::js_number;
use crate::content::{Content, ContentType, TimeValue};
use crate::entities::transformers::{Transformer, TransformerDefinition};

/// What one transformer entry does, natively.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// `iso`: cached as is, whatever its type.
    Iso,
    /// `ignore`: dropped.
    Ignore,
    /// `time-values-to-oianalytics`: `{pointId, timestamp, data:{value}}`, the timestamp
    /// truncated to `precision`.
    TimeValuesToOianalytics { precision: Precision },
    /// `json-to-oianalytics`: one `{pointId, timestamp, data:{value}}` per row of a JSON
    /// document (an MQTT south's messages, or a JSON file).
    JsonToOianalytics(Box<JsonToOianalytics>),
    /// A standard transformer whose options cannot be used: its content is dropped with this
    /// error, counted.
    Misconfigured { error: String },
    /// `setpoint-to-modbus`: each setpoint whose `reference` is in `mapping` becomes
    /// `{address, value, modbusType}`; the others are dropped.
    SetpointToModbus { mapping: Vec<ModbusMapping> },
    /// `setpoint-to-mqtt`: each setpoint whose `reference` is in `mapping` becomes
    /// `{topic, payload}`; the others are dropped.
    SetpointToMqtt { mapping: Vec<MqttMapping> },
    /// `setpoint-to-opcua`: each setpoint whose `reference` is in `mapping` becomes
    /// `{nodeId, value}`; the others are dropped.
    SetpointToOpcua { mapping: Vec<OpcuaMapping> },
    /// A transformer this agent cannot run (a custom one, or a standard one not yet native):
    /// its content is dropped with an error, counted.
    Unsupported { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Ms,
    S,
    Min,
    Hr,
}

/// One row of `setpoint-to-modbus`'s `options.mapping`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModbusMapping {
    pub reference: String,
    pub address: String,
    /// `coil` or `register`.
    pub modbus_type: String,
}

/// One row of `setpoint-to-mqtt`'s `options.mapping`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MqttMapping {
    pub reference: String,
    pub topic: String,
}

/// One row of `setpoint-to-opcua`'s `options.mapping`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpcuaMapping {
    pub reference: String,
    pub node_id: String,
}

/// Where content comes from, as routing needs it: the south, and per value the item.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    South {
        south_id: &'a str,
        items: &'a ItemIndex,
    },
    Setpoint,
}

/// A south's items by name (the `pointId` of its values): id and group.
#[derive(Debug, Clone, Default)]
pub struct ItemIndex {
    by_name: HashMap<String, (String, Option<String>)>,
}

impl ItemIndex {
    pub fn new<'a>(items: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>) -> Self {
        let by_name = items
            .into_iter()
            .map(|(name, id, group)| (name.to_owned(), (id.to_owned(), group.map(str::to_owned))))
            .collect();
        ItemIndex { by_name }
    }

    pub fn get(&self, name: &str) -> Option<(&str, Option<&str>)> {
        self.by_name
            .get(name)
            .map(|(id, group)| (id.as_str(), group.as_deref()))
    }
}

/// One north's routing table, built when the north (re)starts.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    transforms: Vec<Transform>,
    /// (south id, item id) → entry index.
    item_level: HashMap<(String, String), usize>,
    /// (south id, group id) → entry index.
    group_level: HashMap<(String, String), usize>,
    south_level: HashMap<String, usize>,
    setpoint: Option<usize>,
}

/// A stored north transformer entry (`configure/transformer.rs` `NorthTransformerOut`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    transformer_id: String,
    #[serde(default)]
    options: Map<String, Value>,
    source: EntrySource,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum EntrySource {
    #[serde(rename = "south", rename_all = "camelCase")]
    South {
        south_id: String,
        #[serde(default)]
        group_id: Option<String>,
        #[serde(default)]
        items: Vec<EntryItem>,
    },
    #[serde(rename = "oibus-api")]
    OibusApi {},
    #[serde(rename = "oianalytics-setpoint")]
    OianalyticsSetpoint {},
}

#[derive(Debug, Deserialize)]
struct EntryItem {
    id: String,
}

impl Routing {
    /// The table of a north's stored `transformers`, resolved against the known transformers.
    /// An entry that does not parse is an error naming it; its transformer unknown makes it
    /// [`Transform::Unsupported`].
    pub fn new(entries: &[Value], known: &[Transformer]) -> Result<Routing, String> {
        let mut routing = Routing::default();
        for (index, value) in entries.iter().enumerate() {
            let entry: Entry = serde_json::from_value(value.clone())
                .map_err(|e| format!("transformers[{index}]: {e}"))?;
            routing.transforms.push(native(&entry, known));
            match entry.source {
                EntrySource::South {
                    south_id,
                    group_id,
                    items,
                } => {
                    for item in &items {
                        routing
                            .item_level
                            .entry((south_id.clone(), item.id.clone()))
                            .or_insert(index);
                    }
                    match group_id.filter(|g| !g.is_empty()) {
                        Some(group) => {
                            routing
                                .group_level
                                .entry((south_id, group))
                                .or_insert(index);
                        }
                        None if items.is_empty() => {
                            routing.south_level.entry(south_id).or_insert(index);
                        }
                        None => {}
                    }
                }
                EntrySource::OibusApi {} => {}
                EntrySource::OianalyticsSetpoint {} => {
                    routing.setpoint.get_or_insert(index);
                }
            }
        }
        Ok(routing)
    }

    /// The entry for one item of a south, or for a setpoint.
    fn resolve(&self, south_id: &str, item: Option<(&str, Option<&str>)>) -> Option<usize> {
        if let Some((item_id, group)) = item {
            let key = (south_id.to_owned(), item_id.to_owned());
            if let Some(index) = self.item_level.get(&key) {
                return Some(*index);
            }
            if let Some(group) = group {
                if let Some(index) = self
                    .group_level
                    .get(&(south_id.to_owned(), group.to_owned()))
                {
                    return Some(*index);
                }
            }
        }
        self.south_level.get(south_id).copied()
    }

    /// Split `content` by the transformer each part resolves to. Only a south's time values are
    /// split per item (their `pointId` is the item name); anything else is one part.
    pub fn partition(
        &self,
        origin: Origin<'_>,
        content: Content,
    ) -> Vec<(Option<&Transform>, Content)> {
        let (south_id, items) = match origin {
            Origin::Setpoint => return vec![(self.setpoint.map(|i| &self.transforms[i]), content)],
            Origin::South { south_id, items } => (south_id, items),
        };
        let per_item = !self.item_level.is_empty() || !self.group_level.is_empty();
        let Content::Values {
            kind: ContentType::TimeValues,
            values,
        } = content
        else {
            // A file or a message belongs to the south as a whole.
            let index = self.resolve(south_id, None);
            return vec![(index.map(|i| &self.transforms[i]), content)];
        };
        if !per_item {
            // Only south-level entries: the whole read takes one transformer.
            let index = self.south_level.get(south_id).copied();
            let content = Content::Values {
                kind: ContentType::TimeValues,
                values,
            };
            return vec![(index.map(|i| &self.transforms[i]), content)];
        }
        let mut parts: Vec<(Option<usize>, Vec<TimeValue>)> = Vec::new();
        for value in values {
            let index = self.resolve(south_id, items.get(&value.point_id));
            match parts.iter_mut().find(|(i, _)| *i == index) {
                Some((_, part)) => part.push(value),
                None => parts.push((index, vec![value])),
            }
        }
        parts
            .into_iter()
            .map(|(index, values)| {
                let transform = index.map(|i| &self.transforms[i]);
                let content = Content::Values {
                    kind: ContentType::TimeValues,
                    values,
                };
                (transform, content)
            })
            .collect()
    }
}

/// The transformer `transformer_id` with `options` as one entry would run it (the
/// `testingSettings.transformer` of an item test).
pub fn for_test(
    transformer_id: &str,
    options: Map<String, Value>,
    known: &[Transformer],
) -> Transform {
    let entry = Entry {
        transformer_id: transformer_id.to_owned(),
        options,
        source: EntrySource::OianalyticsSetpoint {},
    };
    native(&entry, known)
}

fn native(entry: &Entry, known: &[Transformer]) -> Transform {
    let Some(transformer) = known.iter().find(|t| t.id == entry.transformer_id) else {
        return Transform::Unsupported {
            name: entry.transformer_id.clone(),
        };
    };
    match &transformer.definition {
        TransformerDefinition::Standard { function_name } => match function_name.as_str() {
            "iso" => Transform::Iso,
            "ignore" => Transform::Ignore,
            "time-values-to-oianalytics" => Transform::TimeValuesToOianalytics {
                precision: entry
                    .options
                    .get("precision")
                    .and_then(|p| Precision::deserialize(p).ok())
                    .unwrap_or_default(),
            },
            "json-to-oianalytics" => JsonToOianalytics::new(&entry.options)
                .map(|t| Transform::JsonToOianalytics(Box::new(t)))
                .unwrap_or_else(|error| Transform::Misconfigured { error }),
            name @ "setpoint-to-modbus" => with_mapping(name, &entry.options, |mapping| {
                Transform::SetpointToModbus { mapping }
            }),
            name @ "setpoint-to-mqtt" => with_mapping(name, &entry.options, |mapping| {
                Transform::SetpointToMqtt { mapping }
            }),
            name @ "setpoint-to-opcua" => with_mapping(name, &entry.options, |mapping| {
                Transform::SetpointToOpcua { mapping }
            }),
            other => Transform::Unsupported {
                name: other.to_owned(),
            },
        },
        TransformerDefinition::Custom(custom) => Transform::Unsupported {
            name: custom.name.clone(),
        },
    }
}

/// A setpoint transformer built from its `options.mapping`, or why it cannot be.
fn with_mapping<M: serde::de::DeserializeOwned>(
    name: &str,
    options: &Map<String, Value>,
    build: impl FnOnce(Vec<M>) -> Transform,
) -> Transform {
    let mapping = options.get("mapping").cloned().unwrap_or_default();
    match Vec::<M>::deserialize(mapping) {
        Ok(mapping) => build(mapping),
        Err(e) => Transform::Misconfigured {
            error: format!("{name}: options.mapping: {e}"),
        },
    }
}

/// What to cache for one part: `Ok(None)` when it is dropped (ignored, or of a type the north
/// does not take without a transformer); `Err` when its transformer cannot run here.
pub fn apply(
    transform: Option<&Transform>,
    content: Content,
    accepts: &[ContentType],
) -> Result<Option<Content>, String> {
    match transform {
        None if accepts.contains(&content.content_type()) => Ok(Some(content)),
        None | Some(Transform::Ignore) => Ok(None),
        Some(Transform::Iso) => Ok(Some(content)),
        Some(Transform::TimeValuesToOianalytics { precision }) => match content {
            Content::Values {
                kind: ContentType::TimeValues,
                values,
            } => Ok(Some(Content::Values {
                kind: ContentType::Oianalytics,
                values: values
                    .into_iter()
                    .map(|v| to_oianalytics(v, *precision))
                    .collect(),
            })),
            other => Err(format!(
                "time-values-to-oianalytics takes time-values, not {}",
                other.content_type()
            )),
        },
        Some(Transform::JsonToOianalytics(t)) => t.apply(content).map(Some),
        Some(Transform::Misconfigured { error }) => Err(error.clone()),
        Some(Transform::SetpointToModbus { mapping }) => {
            from_setpoints(content, "setpoint-to-modbus", ContentType::Modbus, |s| {
                setpoint_to_modbus(mapping, s)
            })
        }
        Some(Transform::SetpointToMqtt { mapping }) => {
            from_setpoints(content, "setpoint-to-mqtt", ContentType::Mqtt, |s| {
                setpoint_to_mqtt(mapping, s)
            })
        }
        Some(Transform::SetpointToOpcua { mapping }) => {
            from_setpoints(content, "setpoint-to-opcua", ContentType::Opcua, |s| {
                setpoint_to_opcua(mapping, s)
            })
        }
        Some(Transform::Unsupported { name }) => Err(format!(
            "transformer '{name}' is not supported by this agent (no runtime for it)"
        )),
    }
}

/// A setpoint transformer: setpoint elements in, `kind` elements out.
fn from_setpoints(
    content: Content,
    name: &str,
    kind: ContentType,
    convert: impl FnOnce(&[Value]) -> Vec<Value>,
) -> Result<Option<Content>, String> {
    match content {
        Content::Elements {
            kind: ContentType::Setpoint,
            elements,
        } => Ok(Some(Content::Elements {
            kind,
            elements: convert(&elements),
        })),
        other => Err(format!(
            "{name} takes setpoint, not {}",
            other.content_type()
        )),
    }
}

/// OIBus's `setpoint-to-opcua`: `{nodeId, value}` with the setpoint's value as it is.
fn setpoint_to_opcua(mapping: &[OpcuaMapping], setpoints: &[Value]) -> Vec<Value> {
    setpoints
        .iter()
        .filter_map(|setpoint| {
            let reference = setpoint["reference"].as_str()?;
            let row = mapping.iter().find(|m| m.reference == reference)?;
            Some(serde_json::json!({"nodeId": row.node_id, "value": setpoint["value"]}))
        })
        .collect()
}

/// OIBus's `setpoint-to-modbus`: a coil's value is JavaScript's `Boolean(value)`, a
/// register's `parseInt(value)` (`null` where that is `NaN`).
fn setpoint_to_modbus(mapping: &[ModbusMapping], setpoints: &[Value]) -> Vec<Value> {
    setpoints
        .iter()
        .filter_map(|setpoint| {
            let reference = setpoint["reference"].as_str()?;
            let row = mapping.iter().find(|m| m.reference == reference)?;
            let value = &setpoint["value"];
            let value = if row.modbus_type == "coil" {
                Value::Bool(js_truthy(value))
            } else {
                js_parse_int(value).map_or(Value::Null, Value::from)
            };
            Some(serde_json::json!({
                "address": row.address, "value": value, "modbusType": row.modbus_type
            }))
        })
        .collect()
}

/// OIBus's `setpoint-to-mqtt`: the payload is a string value as is, anything else as
/// `JSON.stringify` writes it.
fn setpoint_to_mqtt(mapping: &[MqttMapping], setpoints: &[Value]) -> Vec<Value> {
    setpoints
        .iter()
        .filter_map(|setpoint| {
            let reference = setpoint["reference"].as_str()?;
            let row = mapping.iter().find(|m| m.reference == reference)?;
            let payload = match &setpoint["value"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), js_number),
                other => other.to_string(),
            };
            Some(serde_json::json!({ "topic": row.topic, "payload": payload }))
        })
        .collect()
}

/// JavaScript's `parseInt(String(value))`: leading blanks, a sign, `0x` hexadecimal or decimal
/// leading digits; `None` for `NaN`.
fn js_parse_int(value: &Value) -> Option<i64> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => js_number(n.as_f64()?),
        _ => return None,
    };
    let rest = text.trim_start();
    let (negative, rest) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let (radix, digits) = match rest.get(..2) {
        Some("0x" | "0X") => (16, &rest[2..]),
        _ => (10, rest),
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let magnitude = i64::from_str_radix(&digits[..end], radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn to_oianalytics(value: TimeValue, precision: Precision) -> TimeValue {
    let inner = match value.data {
        Value::Object(mut data) => data.remove("value").unwrap_or(Value::Null),
        other => other,
    };
    TimeValue {
        timestamp: truncate(&value.timestamp, precision),
        point_id: value.point_id,
        data: serde_json::json!({ "value": inner }),
    }
}

/// `json-to-oianalytics` (OIBus `json-to-oianalytics-transformer.ts`): the rows
/// `rowIteratorPath` matches; per row, the `pointId`, `value` and `timestamp` paths with their
/// `[*]` bound to the row's indices. A row without a timestamp is stamped now.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonToOianalytics {
    rows: JsonPath,
    point_id: JsonPath,
    value: JsonPath,
    timestamp: JsonPath,
    input: TimeInput,
    precision: Precision,
}

/// How a row's timestamp reads (`datetimeSettings.inputType`); none: ISO 8601.
#[derive(Debug, Clone, PartialEq)]
enum TimeInput {
    Iso,
    UnixSeconds,
    UnixMs,
    /// `inputFormat` as a chrono format, in UTC.
    Format(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonToOianalyticsOptions {
    #[serde(default = "all_rows")]
    row_iterator_path: String,
    point_id: String,
    value: String,
    timestamp: String,
    #[serde(default)]
    datetime_settings: Option<DatetimeSettings>,
}

fn all_rows() -> String {
    "$[*]".into()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DatetimeSettings {
    #[serde(default)]
    input_type: Option<String>,
    #[serde(default)]
    input_timezone: Option<String>,
    #[serde(default)]
    input_format: Option<String>,
    #[serde(default)]
    output_precision: Precision,
}

impl JsonToOianalytics {
    pub fn new(options: &Map<String, Value>) -> Result<JsonToOianalytics, String> {
        let named = |e: &dyn std::fmt::Display| format!("json-to-oianalytics options: {e}");
        let o: JsonToOianalyticsOptions =
            serde_json::from_value(Value::Object(options.clone())).map_err(|e| named(&e))?;
        let path = |p: &str| JsonPath::parse(p).map_err(|e| named(&e));
        let (input, precision) = match &o.datetime_settings {
            None => (TimeInput::Iso, Precision::Ms),
            Some(d) => {
                let input = match d.input_type.as_deref().unwrap_or("iso-string") {
                    "iso-string" => TimeInput::Iso,
                    "unix-epoch" => TimeInput::UnixSeconds,
                    "unix-epoch-ms" => TimeInput::UnixMs,
                    "string" => {
                        let zone = d.input_timezone.as_deref().unwrap_or("UTC");
                        if !matches!(zone, "UTC" | "Etc/UTC" | "GMT" | "Z") {
                            return Err(named(&format!(
                                "datetimeSettings.inputTimezone {zone:?}: only UTC is supported for string timestamps"
                            )));
                        }
                        let format = d.input_format.as_deref().unwrap_or("yyyy-MM-dd HH:mm:ss");
                        TimeInput::Format(luxon_to_chrono(format))
                    }
                    other => {
                        return Err(named(&format!(
                            "datetimeSettings.inputType {other:?} is not iso-string, unix-epoch, unix-epoch-ms or string"
                        )))
                    }
                };
                (input, d.output_precision)
            }
        };
        Ok(JsonToOianalytics {
            rows: path(&o.row_iterator_path)?,
            point_id: path(&o.point_id)?,
            value: path(&o.value)?,
            timestamp: path(&o.timestamp)?,
            input,
            precision,
        })
    }

    fn apply(&self, content: Content) -> Result<Content, String> {
        let (document, label) = match content {
            Content::Elements { elements, .. } => (Value::Array(elements), None),
            Content::File { filename, bytes } => (
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("json-to-oianalytics: {filename} is not JSON: {e}"))?,
                Some(filename),
            ),
            Content::Values { kind, .. } => {
                return Err(format!(
                    "json-to-oianalytics takes JSON content, not {kind}"
                ))
            }
        };
        let failed = |e: JsonPathError| match (&e, &label) {
            (_, Some(file)) => format!("json-to-oianalytics: {file}: {e}"),
            // Any-content: the element's item names the topic the message came from.
            (JsonPathError::NotJson { at, reason }, None) => {
                let item = at
                    .first()
                    .and_then(|i| document.get(*i))
                    .map(|m| &m["item"]);
                let topic = item.and_then(|i| i["topic"].as_str()).unwrap_or("?");
                let name = item.and_then(|i| i["name"].as_str()).unwrap_or("?");
                format!(
                    "json-to-oianalytics: a message of item '{name}' (topic {topic}) is not JSON: {reason}"
                )
            }
            (e, None) => format!("json-to-oianalytics: {e}"),
        };
        let mut values = Vec::new();
        for (indices, _) in self.rows.select(&document).map_err(failed)? {
            let column = |path: &JsonPath| path.at(&indices).resolve(&document).map_err(failed);
            let point_id = match column(&self.point_id)? {
                Some(Value::String(id)) => id,
                Some(other) => other.to_string(),
                None => {
                    return Err(format!(
                        "json-to-oianalytics: row {indices:?} has no pointId"
                    ))
                }
            };
            let timestamp = match column(&self.timestamp)? {
                None | Some(Value::Null) => crate::protocol::iso_now(),
                Some(raw) => self.instant(&raw).ok_or_else(|| {
                    format!("json-to-oianalytics: row {indices:?}: timestamp {raw} does not read")
                })?,
            };
            let data = match column(&self.value)? {
                // As JSON.stringify drops an undefined value.
                None => serde_json::json!({}),
                Some(value) => serde_json::json!({ "value": value }),
            };
            values.push(TimeValue {
                point_id,
                timestamp: truncate(&timestamp, self.precision),
                data,
            });
        }
        Ok(Content::Values {
            kind: ContentType::Oianalytics,
            values,
        })
    }

    fn instant(&self, raw: &Value) -> Option<String> {
        use chrono::{DateTime, NaiveDateTime, Utc};
        let number = || raw.as_f64().or_else(|| raw.as_str()?.trim().parse().ok());
        let t: DateTime<Utc> = match &self.input {
            TimeInput::Iso => {
                let text = raw.as_str()?;
                DateTime::parse_from_rfc3339(text)
                    .map(|t| t.with_timezone(&Utc))
                    .or_else(|_| {
                        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                            .map(|t| t.and_utc())
                    })
                    .ok()?
            }
            TimeInput::UnixSeconds => DateTime::from_timestamp_millis((number()? * 1000.0) as i64)?,
            TimeInput::UnixMs => DateTime::from_timestamp_millis(number()? as i64)?,
            TimeInput::Format(format) => NaiveDateTime::parse_from_str(raw.as_str()?, format)
                .ok()?
                .and_utc(),
        };
        Some(crate::protocol::iso(t))
    }
}

/// A luxon format (`yyyy-MM-dd HH:mm:ss.SSS`) as chrono's.
fn luxon_to_chrono(format: &str) -> String {
    [
        ("yyyy", "%Y"),
        ("MM", "%m"),
        ("dd", "%d"),
        ("HH", "%H"),
        ("mm", "%M"),
        ("ss", "%S"),
        ("SSS", "%3f"),
    ]
    .iter()
    .fold(format.to_owned(), |f, (luxon, chrono)| {
        f.replace(luxon, chrono)
    })
}

/// The timestamp at `precision`, in UTC with milliseconds as OIBus (luxon `toISO`) writes it;
/// one that does not parse is kept as is.
fn truncate(timestamp: &str, precision: Precision) -> String {
    use chrono::{DateTime, Timelike, Utc};
    let Ok(parsed) = DateTime::parse_from_rfc3339(timestamp) else {
        return timestamp.to_owned();
    };
    let t = parsed.with_timezone(&Utc);
    let t = match precision {
        Precision::Ms => Some(t),
        Precision::S => t.with_nanosecond(0),
        Precision::Min => t.with_nanosecond(0).and_then(|t| t.with_second(0)),
        Precision::Hr => t
            .with_nanosecond(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_minute(0)),
    };
    t.map_or_else(|| timestamp.to_owned(), crate::protocol::iso)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::{transformers::CustomTransformer, Audit};
    use serde_json::json;

    fn standard(id: &str, function_name: &str) -> Transformer {
        Transformer {
            id: id.into(),
            input_type: "time-values".into(),
            output_type: "any".into(),
            definition: TransformerDefinition::Standard {
                function_name: function_name.into(),
            },
            audit: Audit::new("", ""),
        }
    }

    fn values(points: &[&str]) -> Content {
        Content::Values {
            kind: ContentType::TimeValues,
            values: points
                .iter()
                .map(|p| TimeValue {
                    point_id: (*p).into(),
                    timestamp: "2026-03-04T05:06:07.891Z".into(),
                    data: json!({"value": 1, "quality": "good"}),
                })
                .collect(),
        }
    }

    fn known() -> Vec<Transformer> {
        vec![
            standard("iso", "iso"),
            standard("ign", "ignore"),
            standard("oia", "time-values-to-oianalytics"),
            standard("csv", "time-values-to-csv"),
        ]
    }

    fn items() -> ItemIndex {
        ItemIndex::new([
            ("a", "item-a", Some("g1")),
            ("b", "item-b", Some("g1")),
            ("c", "item-c", None),
        ])
    }

    /// The parts of `content` read by south `s1`, with their transformers.
    fn from_s1(routing: &Routing, content: Content) -> Vec<(Option<Transform>, Content)> {
        let items = items();
        let origin = Origin::South {
            south_id: "s1",
            items: &items,
        };
        routing
            .partition(origin, content)
            .into_iter()
            .map(|(t, c)| (t.cloned(), c))
            .collect()
    }

    #[test]
    fn item_level_wins_over_group_which_wins_over_south() {
        let routing = Routing::new(
            &[
                json!({"transformerId": "oia", "source": {"type": "south", "southId": "s1", "items": []}}),
                json!({"transformerId": "ign", "source": {"type": "south", "southId": "s1", "groupId": "g1", "items": []}}),
                json!({"transformerId": "iso", "source": {"type": "south", "southId": "s1", "items": [{"id": "item-a"}]}}),
            ],
            &known(),
        )
        .unwrap();
        let summary: Vec<(Option<Transform>, usize)> =
            from_s1(&routing, values(&["a", "b", "c", "unknown"]))
                .into_iter()
                .map(|(t, c)| (t, c.elements()))
                .collect();
        assert_eq!(
            summary,
            vec![
                (Some(Transform::Iso), 1),
                (Some(Transform::Ignore), 1),
                (
                    Some(Transform::TimeValuesToOianalytics {
                        precision: Precision::Ms
                    }),
                    2
                ),
            ]
        );
    }

    #[test]
    fn content_without_a_transformer_is_cached_only_when_the_north_takes_its_type() {
        let taken = apply(None, values(&["a"]), &[ContentType::TimeValues]).unwrap();
        assert!(taken.is_some());
        let dropped = apply(None, values(&["a"]), &[ContentType::Any]).unwrap();
        assert!(dropped.is_none());
    }

    #[test]
    fn time_values_to_oianalytics_keeps_only_the_value_at_the_precision() {
        let transform = Transform::TimeValuesToOianalytics {
            precision: Precision::Min,
        };
        let out = apply(Some(&transform), values(&["a"]), &[])
            .unwrap()
            .unwrap();
        assert_eq!(out.content_type(), ContentType::Oianalytics);
        assert_eq!(
            std::str::from_utf8(&out.to_bytes()).unwrap(),
            r#"[{"pointId":"a","timestamp":"2026-03-04T05:06:00.000Z","data":{"value":1}}]"#
        );
    }

    #[test]
    fn precision_comes_from_the_entry_options() {
        let routing = Routing::new(
            &[json!({"transformerId": "oia", "options": {"precision": "hr"}, "source": {"type": "south", "southId": "s1", "items": []}})],
            &known(),
        )
        .unwrap();
        let parts = from_s1(&routing, values(&["a"]));
        assert_eq!(
            parts[0].0,
            Some(Transform::TimeValuesToOianalytics {
                precision: Precision::Hr
            })
        );
    }

    #[test]
    fn a_transformer_without_a_native_runtime_is_an_error_not_a_silent_pass() {
        let mut known = known();
        known.push(Transformer {
            id: "custom".into(),
            input_type: "time-values".into(),
            output_type: "any".into(),
            definition: TransformerDefinition::Custom(CustomTransformer {
                name: "my js".into(),
                description: String::new(),
                language: "javascript".into(),
                timeout: 1000,
                custom_code: String::new(),
                custom_manifest: json!({}),
            }),
            audit: Audit::new("", ""),
        });
        let routing = Routing::new(
            &[
                json!({"transformerId": "custom", "source": {"type": "south", "southId": "s1", "items": []}}),
                json!({"transformerId": "csv", "source": {"type": "oianalytics-setpoint"}}),
            ],
            &known,
        )
        .unwrap();
        let (transform, content) = from_s1(&routing, values(&["a"])).remove(0);
        let error = apply(transform.as_ref(), content, &[ContentType::TimeValues]).unwrap_err();
        assert!(error.contains("'my js' is not supported"), "{error}");
        let (setpoint, _) = routing
            .partition(Origin::Setpoint, values(&["x"]))
            .remove(0);
        assert_eq!(
            setpoint,
            Some(&Transform::Unsupported {
                name: "time-values-to-csv".into()
            })
        );
    }

    fn json_to_oia(options: Value) -> Transform {
        let mut known = known();
        known.push(standard("j", "json-to-oianalytics"));
        let routing = Routing::new(
            &[json!({"transformerId": "j", "options": options, "source": {"type": "south", "southId": "s1", "items": []}})],
            &known,
        )
        .unwrap();
        routing.transforms[0].clone()
    }

    fn messages(payloads: &[&str]) -> Content {
        Content::Elements {
            kind: ContentType::AnyContent,
            elements: payloads
                .iter()
                .map(|m| {
                    json!({"message": m, "timestamp": "2026-01-01T00:00:00.000Z",
                                "item": {"id": "i1", "name": "temp", "topic": "plant/+/t"}})
                })
                .collect(),
        }
    }

    #[test]
    fn json_to_oianalytics_maps_mqtt_messages_to_values() {
        let t = json_to_oia(
            json!({"rowIteratorPath": "$[*]", "pointId": "$[*].message.id",
            "value": "$[*].message.v", "timestamp": "$[*].message.ts",
            "datetimeSettings": {"inputType": "unix-epoch-ms", "inputTimezone": "UTC", "outputPrecision": "s"}}),
        );
        let out = apply(
            Some(&t),
            messages(&[
                r#"{"id":"p1","v":21.5,"ts":1767225600123}"#,
                r#"{"id":"p2","v":"on","ts":1767225601000}"#,
            ]),
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(out.content_type(), ContentType::Oianalytics);
        assert_eq!(
            std::str::from_utf8(&out.to_bytes()).unwrap(),
            r#"[{"pointId":"p1","timestamp":"2026-01-01T00:00:00.000Z","data":{"value":21.5}},{"pointId":"p2","timestamp":"2026-01-01T00:00:01.000Z","data":{"value":"on"}}]"#
        );
    }

    #[test]
    fn json_to_oianalytics_splits_several_metrics_of_one_message() {
        let t = json_to_oia(json!({"rowIteratorPath": "$[*].message.metrics[*]",
            "pointId": "$[*].message.metrics[*].name", "value": "$[*].message.metrics[*].value",
            "timestamp": "$[*].timestamp"}));
        let out = apply(
            Some(&t),
            messages(&[r#"{"metrics":[{"name":"a","value":1},{"name":"b","value":2}]}"#]),
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&out.to_bytes()).unwrap(),
            r#"[{"pointId":"a","timestamp":"2026-01-01T00:00:00.000Z","data":{"value":1}},{"pointId":"b","timestamp":"2026-01-01T00:00:00.000Z","data":{"value":2}}]"#
        );
    }

    #[test]
    fn a_message_that_is_not_json_names_its_item_and_topic() {
        let t = json_to_oia(
            json!({"pointId": "$[*].item.name", "value": "$[*].message.v", "timestamp": "$[*].timestamp"}),
        );
        let error = apply(Some(&t), messages(&[r#"{"v":1}"#, "21,5"]), &[]).unwrap_err();
        assert!(
            error.contains("item 'temp' (topic plant/+/t) is not JSON"),
            "{error}"
        );
    }

    #[test]
    fn json_to_oianalytics_without_its_paths_is_misconfigured_not_a_panic() {
        let t = json_to_oia(json!({"pointId": "$[*].id"}));
        let error = apply(Some(&t), messages(&["{}"]), &[]).unwrap_err();
        assert!(
            error.starts_with("json-to-oianalytics options:") && error.contains("value"),
            "{error}"
        );
        let t = json_to_oia(json!({"pointId": "$..id", "value": "$.v", "timestamp": "$.t"}));
        assert!(matches!(t, Transform::Misconfigured { .. }));
    }

    #[test]
    fn json_to_oianalytics_reads_a_json_file_and_string_timestamps() {
        let t = json_to_oia(
            json!({"pointId": "$[*].id", "value": "$[*].v", "timestamp": "$[*].t",
            "datetimeSettings": {"inputType": "string", "inputTimezone": "UTC", "inputFormat": "yyyy-MM-dd HH:mm:ss", "outputPrecision": "ms"}}),
        );
        let file = Content::File {
            filename: "f.json".into(),
            bytes: bytes::Bytes::from_static(br#"[{"id":"x","v":3,"t":"2026-02-03 04:05:06"}]"#),
        };
        let out = apply(Some(&t), file, &[]).unwrap().unwrap();
        assert_eq!(
            std::str::from_utf8(&out.to_bytes()).unwrap(),
            r#"[{"pointId":"x","timestamp":"2026-02-03T04:05:06.000Z","data":{"value":3}}]"#
        );
        let bad = Content::File {
            filename: "g.json".into(),
            bytes: bytes::Bytes::from_static(b"nope"),
        };
        assert!(apply(Some(&t), bad, &[])
            .unwrap_err()
            .contains("g.json is not JSON"));
    }

    #[test]
    fn a_malformed_entry_is_named() {
        let error = Routing::new(&[json!({"source": {"type": "south"}})], &known()).unwrap_err();
        assert!(error.starts_with("transformers[0]:"), "{error}");
    }

    #[test]
    fn setpoint_to_mqtt_maps_references_to_topics_with_strings_as_is_and_the_rest_as_json() {
        let entry = json!({"transformerId": "sq", "options": {"mapping": [
            {"reference": "speed", "topic": "plant/speed/set"},
            {"reference": "mode", "topic": "plant/mode/set"}]},
            "source": {"type": "oianalytics-setpoint"}});
        let routing = Routing::new(&[entry], &[standard("sq", "setpoint-to-mqtt")]).unwrap();
        let setpoints = Content::Elements {
            kind: ContentType::Setpoint,
            elements: vec![
                json!({"reference": "speed", "value": 1500}),
                json!({"reference": "speed", "value": 1.5}),
                json!({"reference": "mode", "value": "auto"}),
                json!({"reference": "mode", "value": {"a": [1, true]}}),
                json!({"reference": "unknown", "value": 1}),
            ],
        };
        let (transform, content) = routing
            .partition(Origin::Setpoint, setpoints)
            .into_iter()
            .next()
            .unwrap();
        let out = apply(transform, content, &[ContentType::Mqtt]).unwrap();
        let m = |topic: &str, payload: &str| json!({"topic": topic, "payload": payload});
        assert_eq!(
            out,
            Some(Content::Elements {
                kind: ContentType::Mqtt,
                elements: vec![
                    m("plant/speed/set", "1500"),
                    m("plant/speed/set", "1.5"),
                    m("plant/mode/set", "auto"),
                    m("plant/mode/set", r#"{"a":[1,true]}"#),
                ],
            })
        );
        let bad = json!({"transformerId": "sq", "options": {"mapping": [{"reference": "x"}]},
            "source": {"type": "oianalytics-setpoint"}});
        let routing = Routing::new(&[bad], &[standard("sq", "setpoint-to-mqtt")]).unwrap();
        let (transform, _) = routing
            .partition(
                Origin::Setpoint,
                Content::Elements {
                    kind: ContentType::Setpoint,
                    elements: vec![],
                },
            )
            .into_iter()
            .next()
            .unwrap();
        assert!(matches!(transform, Some(Transform::Misconfigured { .. })));
    }

    #[test]
    fn setpoint_to_modbus_maps_references_as_oibus_coercing_values_as_javascript() {
        let entry = json!({"transformerId": "sm", "options": {"mapping": [
            {"reference": "speed", "address": "0x28", "modbusType": "register"},
            {"reference": "pump", "address": "3", "modbusType": "coil"}]},
            "source": {"type": "oianalytics-setpoint"}});
        let routing = Routing::new(&[entry], &[standard("sm", "setpoint-to-modbus")]).unwrap();
        let setpoints = Content::Elements {
            kind: ContentType::Setpoint,
            elements: vec![
                json!({"reference": "speed", "value": "12.9rpm"}),
                json!({"reference": "pump", "value": "0"}),
                json!({"reference": "unknown", "value": 1}),
                json!({"reference": "speed", "value": 0x10}),
                json!({"reference": "speed", "value": "0x10"}),
                json!({"reference": "speed", "value": "fast"}),
                json!({"reference": "pump", "value": 0}),
            ],
        };
        let parts = routing.partition(Origin::Setpoint, setpoints);
        let (transform, content) = parts.into_iter().next().unwrap();
        let out = apply(transform, content, &[ContentType::Modbus]).unwrap();
        let register = |v: Value| json!({"address": "0x28", "value": v, "modbusType": "register"});
        let coil = |v: bool| json!({"address": "3", "value": v, "modbusType": "coil"});
        assert_eq!(
            out,
            Some(Content::Elements {
                kind: ContentType::Modbus,
                elements: vec![
                    register(json!(12)),
                    coil(true),
                    register(json!(16)),
                    register(json!(16)),
                    register(Value::Null),
                    coil(false),
                ]
            })
        );
    }

    #[test]
    fn setpoint_to_opcua_maps_references_to_node_ids_keeping_values() {
        let entry = json!({"transformerId": "so", "options": {"mapping": [
            {"reference": "speed", "nodeId": "ns=2;s=Speed"}]},
            "source": {"type": "oianalytics-setpoint"}});
        let routing = Routing::new(&[entry], &[standard("so", "setpoint-to-opcua")]).unwrap();
        let setpoints = Content::Elements {
            kind: ContentType::Setpoint,
            elements: vec![
                json!({"reference": "speed", "value": "12.5"}),
                json!({"reference": "unknown", "value": 1}),
                json!({"reference": "speed", "value": 3}),
            ],
        };
        let parts = routing.partition(Origin::Setpoint, setpoints);
        let (transform, content) = parts.into_iter().next().unwrap();
        let out = apply(transform, content, &[ContentType::Opcua]).unwrap();
        assert_eq!(
            out,
            Some(Content::Elements {
                kind: ContentType::Opcua,
                elements: vec![
                    json!({"nodeId": "ns=2;s=Speed", "value": "12.5"}),
                    json!({"nodeId": "ns=2;s=Speed", "value": 3}),
                ]
            })
        );
    }
}
