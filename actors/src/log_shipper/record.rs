//! The E8 wire record (`wire-samples/e8-logs.json`): its serde form, used to check queued
//! records and in tests, and a hand-written encoder for the logging hot path that writes the
//! same bytes as `serde_json` without its generic machinery.
//!
//! Records are queued as the exact JSON they are posted as, so a batch body is the queued bytes
//! joined with commas: nothing is parsed or re-encoded on the way out.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// `scopeType` of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScopeType {
    South,
    North,
    HistoryQuery,
    Internal,
}

impl ScopeType {
    /// Parse the `scope_type` field of an event: `south`, `NORTH`, `history-query`,
    /// `HISTORY_QUERY`, `internal`… (case and separator insensitive).
    pub fn parse(s: &str) -> Option<ScopeType> {
        let norm: String = s
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match norm.as_str() {
            "south" => Some(ScopeType::South),
            "north" => Some(ScopeType::North),
            "historyquery" | "history" => Some(ScopeType::HistoryQuery),
            "internal" => Some(ScopeType::Internal),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ScopeType::South => "SOUTH",
            ScopeType::North => "NORTH",
            ScopeType::HistoryQuery => "HISTORY_QUERY",
            ScopeType::Internal => "INTERNAL",
        }
    }
}

/// The levels OIAnalytics accepts in `level`.
pub const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// One E8 log record, field for field and in the order OIBus sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord<'a> {
    /// ISO-8601 UTC with milliseconds.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    /// One of [`LEVELS`].
    #[serde(borrow)]
    pub level: Cow<'a, str>,
    pub scope_type: ScopeType,
    pub scope_id: Option<Cow<'a, str>>,
    pub scope_name: Option<Cow<'a, str>>,
    pub item_id: Option<Cow<'a, str>>,
    pub item_name: Option<Cow<'a, str>>,
    pub group_id: Option<Cow<'a, str>>,
    pub group_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message: Cow<'a, str>,
}

impl LogRecord<'_> {
    /// Append this record's JSON to `out`: the bytes `serde_json::to_vec` would write.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":");
        write_json_str(out, &self.timestamp);
        out.extend_from_slice(b",\"level\":");
        write_json_str(out, &self.level);
        out.extend_from_slice(b",\"scopeType\":");
        write_json_str(out, self.scope_type.as_str());
        let optional = [
            ("scopeId", &self.scope_id),
            ("scopeName", &self.scope_name),
            ("itemId", &self.item_id),
            ("itemName", &self.item_name),
            ("groupId", &self.group_id),
            ("groupName", &self.group_name),
        ];
        for (key, value) in optional {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            match value {
                Some(v) => write_json_str(out, v),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b",\"message\":");
        write_json_str(out, &self.message);
        out.push(b'}');
    }

    /// Whether OIAnalytics can take it: a known level and an ISO timestamp.
    pub fn is_acceptable(&self) -> bool {
        LEVELS.contains(&self.level.as_ref())
            && chrono::DateTime::parse_from_rfc3339(&self.timestamp).is_ok()
    }
}

/// Append `s` as a JSON string, escaped exactly as `serde_json` does (`"`, `\`, and control
/// characters; everything else, non-ASCII included, as is).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), the form OIBus writes. Instants before 1970 are
/// written as the epoch (a clock that wrong has bigger problems).
pub fn iso_millis(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss, mmm) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1_000 % 60,
        ms_of_day % 1_000,
    );
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{mmm:03}Z")
}

/// Year, month, day of the proleptic Gregorian calendar for days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn record<'a>(message: &'a str, scope_name: Option<&'a str>) -> LogRecord<'a> {
        LogRecord {
            timestamp: "2026-11-23T19:10:44.382Z".into(),
            level: "INFO".into(),
            scope_type: ScopeType::North,
            scope_id: Some("2Xc2mr".into()),
            scope_name: scope_name.map(Into::into),
            item_id: None,
            item_name: None,
            group_id: None,
            group_name: Some("g".into()),
            message: message.into(),
        }
    }

    fn hand_written(r: &LogRecord<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        r.write_json(&mut out);
        out
    }

    #[test]
    fn the_encoder_writes_the_same_bytes_as_serde() {
        for (message, scope) in [
            (
                "\"wire-sample-north\" (2Xc2mr) disconnected",
                Some("wire-sample-north"),
            ),
            (
                "tab\there, newline\nthere, back\\slash, nul\0 and bell\x07",
                None,
            ),
            ("non-ASCII: é, ✓, 🚀 and DEL \x7f", Some("/slashes/ stay")),
            ("", Some("")),
        ] {
            let r = record(message, scope);
            let serde = serde_json::to_vec(&r).expect("serialises");
            assert_eq!(
                String::from_utf8(hand_written(&r)).expect("UTF-8"),
                String::from_utf8(serde).expect("UTF-8")
            );
        }
    }

    proptest! {
        #[test]
        fn any_message_encodes_like_serde(message in any::<String>(), scope in proptest::option::of(any::<String>())) {
            let r = record(&message, scope.as_deref());
            prop_assert_eq!(hand_written(&r), serde_json::to_vec(&r).expect("serialises"));
        }

        #[test]
        fn timestamps_match_chrono(ms in 0u64..8_000_000_000_000) {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            let chrono: chrono::DateTime<chrono::Utc> = t.into();
            prop_assert_eq!(iso_millis(t), crate::protocol::iso(chrono));
        }
    }

    #[test]
    fn timestamps_have_the_wire_form_at_the_edges() {
        let at = |ms: u64| iso_millis(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_795_461_044_382), "2026-11-23T19:10:44.382Z");
        assert_eq!(
            iso_millis(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn records_with_an_unknown_level_or_a_bad_timestamp_are_not_acceptable() {
        assert!(record("m", None).is_acceptable());
        let mut bad = record("m", None);
        bad.level = "NOTICE".into();
        assert!(!bad.is_acceptable());
        let mut bad = record("m", None);
        bad.timestamp = "yesterday".into();
        assert!(!bad.is_acceptable());
    }

    #[test]
    fn scope_types_parse_in_any_case_and_separator() {
        assert_eq!(ScopeType::parse("south"), Some(ScopeType::South));
        assert_eq!(ScopeType::parse("NORTH"), Some(ScopeType::North));
        assert_eq!(
            ScopeType::parse("history-query"),
            Some(ScopeType::HistoryQuery)
        );
        assert_eq!(
            ScopeType::parse("HISTORY_QUERY"),
            Some(ScopeType::HistoryQuery)
        );
        assert_eq!(ScopeType::parse("Internal"), Some(ScopeType::Internal));
        assert_eq!(ScopeType::parse("east"), None);
    }
}
