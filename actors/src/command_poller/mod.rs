//! The CommandPoller: the intake of commands, the refresh cycle of protocol §4.1.
//!
//! While REGISTERED it runs cycles that never overlap: cancellation check (E4) of the RETRIEVED
//! commands, handed to the CommandExecutor; fetch (E3); journal (synced), which queues a
//! RETRIEVED report for the CommandReporter. The next cycle comes `command_refresh` after a good
//! cycle and `command_retry` after a failed one.
//!
//! This file holds the pure decisions: how an E3 answer becomes journal records, and how the E4
//! ids are split into queries.

pub mod actor;

use std::collections::HashSet;

use serde_json::Value;

use crate::commands::catalogue::kind_of;
use crate::commands::{Command, CommandRecord, CommandType, Transition};

pub use actor::{CommandPoller, PollNow};

/// Most elements of an E3 answer journaled in one synced batch.
pub const INTAKE_CHUNK: usize = 1_000;

/// Longest `ids=…&ids=…` query sent in one E4 call; more ids take more calls.
pub const MAX_CANCEL_QUERY: usize = 6_000;

/// Longest command id accepted; longer ones cannot be journaled or reported.
pub const MAX_ID_LEN: usize = 256;

/// The type reported for a malformed element that has no usable one.
pub const UNKNOWN_TYPE: &str = "unknown";

/// What one E3 answer yields.
#[derive(Debug, Default, PartialEq)]
pub struct Intake {
    /// To journal: RETRIEVED commands, and malformed ones already ERRORED.
    pub records: Vec<CommandRecord>,
    /// Ids already journaled (or repeated in the answer): ignored.
    pub duplicates: usize,
    /// Of `records`, how many were malformed.
    pub malformed: usize,
    /// Elements without a usable id, which cannot be journaled or reported: why, for the log.
    pub unusable: Vec<String>,
}

/// Turn the elements of an E3 answer into journal records numbered from `first_seq`.
/// `is_journaled` tells whether an id is already in the journal.
pub fn intake<E>(
    elements: &[Value],
    is_journaled: impl FnMut(&str) -> Result<bool, E>,
    first_seq: u64,
    now: &str,
) -> Result<Intake, E> {
    intake_from(elements.iter().enumerate(), is_journaled, first_seq, now)
}

/// [`intake`] of some elements of an E3 answer, each with its place in the whole answer (for
/// the messages). An id repeated across calls is caught by `is_journaled`, as the earlier part
/// is journaled first.
pub fn intake_from<'a, E>(
    elements: impl IntoIterator<Item = (usize, &'a Value)>,
    mut is_journaled: impl FnMut(&str) -> Result<bool, E>,
    first_seq: u64,
    now: &str,
) -> Result<Intake, E> {
    let mut out = Intake::default();
    let mut seen = HashSet::new();
    let mut seq = first_seq;
    for (index, element) in elements {
        let Some(object) = element.as_object() else {
            out.unusable.push(format!(
                "element {index} is {}, not a command object",
                kind_of(element)
            ));
            continue;
        };
        let id = match object.get("id") {
            Some(Value::String(id)) => match unusable_id(id) {
                Some(problem) => {
                    out.unusable.push(format!("element {index}: {problem}"));
                    continue;
                }
                None => id.clone(),
            },
            other => {
                out.unusable.push(format!(
                    "element {index} has no string 'id' (found {})",
                    other.map_or("nothing", kind_of)
                ));
                continue;
            }
        };
        if !seen.insert(id.clone()) || is_journaled(&id)? {
            out.duplicates += 1;
            continue;
        }
        let type_name = object
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // OIAnalytics refuses a status record without a type: a malformed element whose type
        // is missing, empty or not a string is reported as `unknown`.
        let reported_type = if type_name.is_empty() {
            UNKNOWN_TYPE
        } else {
            type_name
        };
        let target_version = object
            .get("targetVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let checked = check(object, type_name);
        let (fields, problem) = match checked {
            Ok(fields) => (fields, None),
            Err(problem) => (Default::default(), Some(problem)),
        };
        let record = CommandRecord::retrieved(
            seq,
            id,
            reported_type.to_owned(),
            target_version.to_owned(),
            fields,
            now,
        );
        seq += 1;
        let record = match problem {
            None => record,
            Some(problem) => {
                out.malformed += 1;
                // A RETRIEVED record can always be finished.
                record
                    .transition(
                        Transition::Finish(Err(format!("Malformed command: {problem}"))),
                        now,
                    )
                    .unwrap_or_else(|| unreachable!("RETRIEVED → ERRORED is allowed"))
            }
        };
        out.records.push(record);
    }
    Ok(out)
}

/// The type, target version and fields of an element whose id is fine.
fn check(
    object: &serde_json::Map<String, Value>,
    type_name: &str,
) -> Result<serde_json::Map<String, Value>, String> {
    let command_type = match object.get("type") {
        Some(Value::String(_)) => CommandType::parse(type_name)
            .ok_or_else(|| format!("unknown command type '{type_name}'"))?,
        other => {
            return Err(format!(
                "field 'type' must be a string, found {}",
                other.map_or("nothing", kind_of)
            ))
        }
    };
    match object.get("targetVersion") {
        Some(Value::String(_)) => {}
        other => {
            return Err(format!(
                "field 'targetVersion' must be a string, found {}",
                other.map_or("nothing", kind_of)
            ))
        }
    }
    Command::from_element(command_type, object).map(|command| command.local_fields())
}

/// Why an id cannot be journaled, if it cannot.
fn unusable_id(id: &str) -> Option<String> {
    if id.is_empty() {
        Some("has an empty 'id'".into())
    } else if id.len() > MAX_ID_LEN {
        Some(format!(
            "has an 'id' of {} bytes (at most {MAX_ID_LEN})",
            id.len()
        ))
    } else if id.chars().any(char::is_control) {
        Some("has an 'id' with control characters".into())
    } else {
        None
    }
}

/// Split ids into groups whose E4 query (`ids=<id>&…`, percent-encoded) stays under
/// `max_query` bytes; an id longer than that goes alone.
pub fn cancel_chunks(ids: &[String], max_query: usize) -> Vec<&[String]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut len = 0;
    for (i, id) in ids.iter().enumerate() {
        let cost = 5 + crate::client::query_encoded(id)
            .map(str::len)
            .sum::<usize>();
        if i > start && len + cost > max_query {
            chunks.push(&ids[start..i]);
            start = i;
            len = 0;
        }
        len += cost;
    }
    if start < ids.len() {
        chunks.push(&ids[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::commands::Status;

    fn run(elements: Value, journaled: &[&str]) -> Intake {
        let elements = elements.as_array().unwrap().clone();
        intake::<()>(&elements, |id| Ok(journaled.contains(&id)), 10, "now").unwrap()
    }

    #[test]
    fn a_part_of_an_answer_names_its_elements_by_their_place_in_the_whole_answer() {
        let elements = [json!("not a command"), json!({"type": "restart-engine"})];
        let placed = (1000..).zip(&elements);
        let out = intake_from::<()>(placed, |_| Ok(false), 0, "now").unwrap();
        assert_eq!(out.unusable.len(), 2);
        assert!(
            out.unusable[0].starts_with("element 1000 "),
            "{:?}",
            out.unusable
        );
        assert!(
            out.unusable[1].starts_with("element 1001 "),
            "{:?}",
            out.unusable
        );
    }

    #[test]
    fn good_commands_are_numbered_in_the_order_received() {
        let out = run(
            json!([
                {"id": "a", "type": "restart-engine", "targetVersion": "1"},
                {"id": "b", "type": "create-scan-mode", "targetVersion": "1",
                 "commandContent": {"name": "n", "description": "", "cron": "* * * * * *"}}
            ]),
            &[],
        );
        assert_eq!(out.records.len(), 2);
        assert_eq!((out.records[0].seq, out.records[1].seq), (10, 11));
        assert!(out.records.iter().all(|r| r.status == Status::Retrieved));
        assert_eq!(out.records[1].fields["commandContent"]["name"], "n");
    }

    #[test]
    fn a_journaled_or_repeated_id_is_ignored_without_stopping_the_rest() {
        let out = run(
            json!([
                {"id": "old", "type": "restart-engine", "targetVersion": "1"},
                {"id": "new", "type": "restart-engine", "targetVersion": "1"},
                {"id": "new", "type": "restart-engine", "targetVersion": "1"},
                {"id": "last", "type": "restart-engine", "targetVersion": "1"}
            ]),
            &["old"],
        );
        let ids: Vec<_> = out.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["new", "last"]);
        assert_eq!(out.duplicates, 2);
    }

    #[test]
    fn malformed_elements_are_journaled_errored_with_the_problem() {
        let out = run(
            json!([
                {"id": "t", "type": "make-coffee", "targetVersion": "1"},
                {"id": "u", "type": 5, "targetVersion": "1"},
                {"id": "v", "type": "update-scan-mode", "targetVersion": "1", "scanModeId": 1, "commandContent": {}},
                {"id": "w", "type": "restart-engine"},
                {"id": "ok", "type": "restart-engine", "targetVersion": "1"}
            ]),
            &[],
        );
        let results: Vec<_> = out
            .records
            .iter()
            .map(|r| (r.id.as_str(), r.status, r.result.as_deref()))
            .collect();
        assert_eq!(
            results,
            [
                (
                    "t",
                    Status::Errored,
                    Some("Malformed command: unknown command type 'make-coffee'")
                ),
                (
                    "u",
                    Status::Errored,
                    Some("Malformed command: field 'type' must be a string, found a number")
                ),
                (
                    "v",
                    Status::Errored,
                    Some("Malformed command: field 'scanModeId': invalid type: integer `1`, expected a string")
                ),
                (
                    "w",
                    Status::Errored,
                    Some(
                        "Malformed command: field 'targetVersion' must be a string, found nothing"
                    )
                ),
                ("ok", Status::Retrieved, None),
            ]
        );
        assert_eq!(out.malformed, 4);
        assert_eq!(out.records[0].command_type, "make-coffee");
        assert_eq!(out.records[1].command_type, UNKNOWN_TYPE);
    }

    #[test]
    fn elements_without_a_usable_id_are_counted_and_skipped() {
        let out = run(
            json!([
                "not an object",
                {"type": "restart-engine"},
                {"id": 42},
                {"id": ""},
                {"id": "bad\u{0}id"},
                {"id": "x".repeat(300)},
                {"id": "fine", "type": "restart-engine", "targetVersion": "1"}
            ]),
            &[],
        );
        assert_eq!(out.unusable.len(), 6, "{:?}", out.unusable);
        assert_eq!(
            out.unusable[0],
            "element 0 is a string, not a command object"
        );
        assert_eq!(
            out.unusable[2],
            "element 2 has no string 'id' (found a number)"
        );
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].seq, 10);
    }

    #[test]
    fn cancellation_ids_are_split_to_keep_queries_short() {
        let ids: Vec<String> = (0..100).map(|i| format!("command-{i:04}")).collect();
        let chunks = cancel_chunks(&ids, 100);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 100);
        for chunk in &chunks {
            let cost: usize = chunk.iter().map(|id| 5 + id.len()).sum();
            assert!(cost <= 100, "{cost}");
        }
        let huge = vec!["y".repeat(500)];
        assert_eq!(cancel_chunks(&huge, 100), vec![&huge[..]]);
        assert!(cancel_chunks(&[], 100).is_empty());
    }
}
