//! What moves through the data plane: the content a south emits, a transformer rewrites and a
//! north's cache holds (data-plane §3, OIBus `OIBusContent`). The JSON shapes are OIBus's, so a
//! cache entry reads the same in `get-north-cache-file-content` as in OIBus.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `contentType` of a cache entry (OIBus `transformer.model.ts` input and output types, plus
/// `any-content`, the raw messages MQTT emits since 3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentType {
    TimeValues,
    Any,
    AnyContent,
    Setpoint,
    Oianalytics,
    Opcua,
    Mqtt,
    Modbus,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::TimeValues => "time-values",
            ContentType::Any => "any",
            ContentType::AnyContent => "any-content",
            ContentType::Setpoint => "setpoint",
            ContentType::Oianalytics => "oianalytics",
            ContentType::Opcua => "opcua",
            ContentType::Mqtt => "mqtt",
            ContentType::Modbus => "modbus",
        }
    }

    /// Entries of these types are JSON arrays that compaction may concatenate.
    pub fn is_array(self) -> bool {
        !matches!(self, ContentType::Any)
    }
}

impl std::fmt::Display for ContentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value: `{pointId, timestamp, data:{value, …}}` (OIBus `OIBusTimeValue`). `data` keeps
/// whatever the south gave besides `value` (a quality, for example).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeValue {
    pub point_id: String,
    pub timestamp: String,
    pub data: Value,
}

/// A unit of content. Arrays (`time-values`, `oianalytics`, `setpoint`, the device outputs)
/// are held as their JSON elements; a file (`any`) as its name and bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// `time-values` (from a south) or `oianalytics` (after `time-values-to-oianalytics`).
    Values {
        kind: ContentType,
        values: Vec<TimeValue>,
    },
    /// `setpoint`, `any-content`, `opcua`, `mqtt`, `modbus`: a JSON array of elements.
    Elements {
        kind: ContentType,
        elements: Vec<Value>,
    },
    /// `any`: a file, by its name (no folder) and bytes.
    File { filename: String, bytes: Bytes },
}

impl Content {
    pub fn content_type(&self) -> ContentType {
        match self {
            Content::Values { kind, .. } | Content::Elements { kind, .. } => *kind,
            Content::File { .. } => ContentType::Any,
        }
    }

    /// `numberOfElement` in OIBus's cache metadata: values or elements; 0 for a file.
    pub fn elements(&self) -> usize {
        match self {
            Content::Values { values, .. } => values.len(),
            Content::Elements { elements, .. } => elements.len(),
            Content::File { .. } => 0,
        }
    }

    /// The bytes a cache entry holds: a JSON array, or the file as is.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            // Serialising plain values and maps cannot fail.
            Content::Values { values, .. } => {
                Bytes::from(serde_json::to_vec(values).unwrap_or_default())
            }
            Content::Elements { elements, .. } => {
                Bytes::from(serde_json::to_vec(elements).unwrap_or_default())
            }
            Content::File { bytes, .. } => bytes.clone(),
        }
    }
}

/// Where content came from, for transformer routing (data-plane §5.3: item, then group, then
/// south) and for the cache's `source` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A south connector; `item_id` when the content is one item's (a file, a message).
    South {
        south_id: String,
        item_id: Option<String>,
    },
    /// A history query's own south.
    History { history_id: String },
    /// A `setpoint` command (`oianalytics-setpoint` transformer source).
    Setpoint,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_values_serialise_as_oibus_does() {
        let content = Content::Values {
            kind: ContentType::TimeValues,
            values: vec![TimeValue {
                point_id: "p1".into(),
                timestamp: "2026-01-01T00:00:00.000Z".into(),
                data: serde_json::json!({"value": "1.5", "quality": "Good"}),
            }],
        };
        assert_eq!(
            std::str::from_utf8(&content.to_bytes()).unwrap(),
            r#"[{"pointId":"p1","timestamp":"2026-01-01T00:00:00.000Z","data":{"quality":"Good","value":"1.5"}}]"#
        );
        assert_eq!(content.content_type().as_str(), "time-values");
        assert_eq!(content.elements(), 1);
    }

    #[test]
    fn content_types_read_from_their_wire_names() {
        let kind: ContentType = serde_json::from_str("\"any-content\"").unwrap();
        assert_eq!(kind, ContentType::AnyContent);
        assert!(!ContentType::Any.is_array());
    }
}
