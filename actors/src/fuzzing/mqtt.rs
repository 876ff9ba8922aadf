//! Target `mqtt`: the MQTT south's path from what a broker delivers to values: topic matching,
//! the any-content element of each message, and `json-to-oianalytics` over a batch of them as
//! the fan-out applies it (`router::apply_each`). The first byte of an input picks what the
//! rest is:
//!
//! - 0: `[filter] 0x00 [topic]`: MQTT filter matching and the item a topic resolves to;
//! - 1: `[options preset][messages separated by 0xFF]`: payloads (any bytes) of one item,
//!   turned into any-content and transformed with one of the presets' options;
//! - 2: `[options JSON] 0x00 [messages separated by 0xFF]`: the same with options from the input;
//! - 3: a broker URL given to the settings' `parse_url`.
//!
//! Invariants: no panic; a filter without wildcards matches exactly its own topic and `#` every
//! topic; a batch is cached whole when each message alone transforms, and otherwise each
//! message that transforms alone is still cached, each other dropped with an error naming the
//! item and topic when its payload is not JSON; every value has a point id and a timestamp.

use serde_json::{json, Map, Value};

use crate::connectors::south_mqtt::{any_content, matches, parse_url, TopicItem};
use crate::content::{Content, ContentType};
use crate::data_flow::router::apply_each;
use crate::data_flow::transform::{JsonToOianalytics, Transform};

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => topics(rest),
        1 => {
            let Some((&preset, messages)) = rest.split_first() else {
                return;
            };
            transform(&preset_options(preset), messages);
        }
        2 => {
            let (options, messages) = split_at_nul(rest);
            let Ok(Value::Object(options)) = serde_json::from_slice::<Value>(options) else {
                return;
            };
            transform(&options, messages);
        }
        _ => url(&String::from_utf8_lossy(rest)),
    }
}

fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

fn topics(data: &[u8]) {
    let (filter, topic) = split_at_nul(data);
    let (filter, topic) = (
        String::from_utf8_lossy(filter),
        String::from_utf8_lossy(topic),
    );
    let matched = matches(&filter, &topic);
    if !filter.contains(['+', '#']) {
        assert_eq!(matched, filter == topic, "{filter:?} vs {topic:?}");
    }
    if filter == "#" {
        assert!(matched);
    }
    if !topic.contains(['+', '#']) {
        assert!(matches(&topic, &topic));
    }
}

/// Options of the transformer as OIAnalytics users write them for MQTT payloads.
fn preset_options(preset: u8) -> Map<String, Value> {
    let options = match preset % 4 {
        // One value per message: `{"point": ..., "v": ...}`.
        0 => json!({"rowIteratorPath": "$[*]", "pointId": "$[*].message.point",
                    "value": "$[*].message.v", "timestamp": "$[*].timestamp"}),
        // Several metrics per message: `{"metrics": [{"name", "value", "ts"}]}`.
        1 => json!({"rowIteratorPath": "$[*].message.metrics[*]",
                    "pointId": "$[*].message.metrics[*].name",
                    "value": "$[*].message.metrics[*].value",
                    "timestamp": "$[*].message.metrics[*].ts",
                    "datetimeSettings": {"inputType": "unix-epoch-ms", "outputPrecision": "s"}}),
        // Timestamps written as text in a format.
        2 => json!({"rowIteratorPath": "$[*]", "pointId": "$[*].item.name",
                    "value": "$[*].message", "timestamp": "$[*].message.time",
                    "datetimeSettings": {"inputType": "string", "inputTimezone": "UTC",
                                         "inputFormat": "yyyy-MM-dd HH:mm:ss.SSS"}}),
        // Seconds since the epoch, possibly as text.
        _ => json!({"rowIteratorPath": "$[*]", "pointId": "$[*].message.id",
                    "value": "$[*].message.value", "timestamp": "$[*].message.t",
                    "datetimeSettings": {"inputType": "unix-epoch", "outputPrecision": "min"}}),
    };
    match options {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn transform(options: &Map<String, Value>, messages: &[u8]) {
    let item = TopicItem {
        id: "item-1".into(),
        name: "sensor".into(),
        topic: "plant/+/sensor".into(),
    };
    let elements: Vec<Value> = messages
        .split(|&b| b == 0xFF)
        .take(64)
        .map(|payload| any_content(&item, payload, "2026-12-07T22:00:00.000Z"))
        .collect();
    let transformer = match JsonToOianalytics::new(options) {
        Ok(t) => Transform::JsonToOianalytics(Box::new(t)),
        Err(e) => {
            assert!(e.starts_with("json-to-oianalytics options:"), "{e}");
            Transform::Misconfigured { error: e }
        }
    };
    let content = |elements: Vec<Value>| Content::Elements {
        kind: ContentType::AnyContent,
        elements,
    };
    let (parts, failures) = apply_each(Some(&transformer), content(elements.clone()), &[]);
    // Each message alone, as the reference.
    let mut alone_values = 0;
    let mut alone_failures = 0;
    for element in &elements {
        let (one, why) = apply_each(Some(&transformer), content(vec![element.clone()]), &[]);
        alone_values += one.iter().map(Content::elements).sum::<usize>();
        alone_failures += why.len();
        for why in &why {
            assert!(why.starts_with("json-to-oianalytics"), "{why}");
            if why.contains("is not JSON") {
                assert!(
                    why.contains("'sensor'") && why.contains("plant/+/sensor"),
                    "{why} does not name the item and topic"
                );
            }
        }
    }
    let values: usize = parts.iter().map(Content::elements).sum();
    if alone_failures == 0 {
        assert!(failures.is_empty(), "the batch failed: {failures:?}");
    }
    if !failures.is_empty() || elements.len() == 1 {
        assert_eq!(failures.len(), alone_failures);
        assert_eq!(values, alone_values);
    }
    for part in &parts {
        let Content::Values { values, .. } = part else {
            panic!("json-to-oianalytics gave {part:?}");
        };
        for v in values {
            assert!(!v.timestamp.is_empty(), "{v:?}");
        }
    }
}

fn url(text: &str) {
    if let Ok((host, port, tls)) = parse_url(text) {
        assert!(!host.is_empty());
        assert!(
            text.contains(&host) || text.contains(&format!("[{host}]")),
            "{text} -> {host}"
        );
        // A port written with leading zeros reads as its number, as in a URL.
        let explicit = text.split(':').skip(1).any(|after| {
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok() == Some(u32::from(port))
        });
        assert!(
            explicit || port == if tls { 8883 } else { 1883 },
            "{text} -> {port}"
        );
    }
}
