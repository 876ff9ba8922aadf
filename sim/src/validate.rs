//! Validation of the bodies agents send, per `spec/oianalytics-protocol.md`.
//!
//! Each check returns [`Problems`]: `hard` ones make the request a `400 Bad Request` (a body real
//! OIA could not read), `soft` ones are recorded as violations while the request is accepted
//! (deviations from what OIBus sends that OIA tolerates, e.g. the `ack: true` bug of §4.5).
use std::fmt::Display;

use oibus_actors::commands::catalogue::kind_of as type_name;
use oibus_actors::commands::{Command, CommandType};
use serde_json::{Map, Value};

pub const COMMAND_STATUSES: &[&str] =
    &["RETRIEVED", "RUNNING", "COMPLETED", "ERRORED", "CANCELLED"];
pub const LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];
pub const SCOPE_TYPES: &[&str] = &["SOUTH", "NORTH", "HISTORY_QUERY", "INTERNAL"];

/// At most this many problems are kept per body, so a batch of 500 bad logs stays readable.
const MAX_PROBLEMS: usize = 10;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Problems {
    pub hard: Vec<String>,
    pub soft: Vec<String>,
    /// Problems beyond [`MAX_PROBLEMS`], counted but not described.
    pub omitted: usize,
}

impl Problems {
    fn hard(&mut self, problem: String) {
        if self.hard.len() + self.soft.len() < MAX_PROBLEMS {
            self.hard.push(problem);
        } else {
            self.omitted += 1;
        }
    }

    fn soft(&mut self, problem: String) {
        if self.hard.len() + self.soft.len() < MAX_PROBLEMS {
            self.soft.push(problem);
        } else {
            self.omitted += 1;
        }
    }

    #[cfg(test)]
    pub fn is_clean(&self) -> bool {
        self.hard.is_empty() && self.soft.is_empty() && self.omitted == 0
    }
}

/// `[index]`, the path of an array element, formatted only when a problem is reported.
struct Indexed(usize);

impl Display for Indexed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "[{}]", self.0)
    }
}

/// The JSON type a field must have.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    NonEmptyStr,
    Bool,
    IsoDate,
    OneOf(&'static [&'static str]),
    Number,
    Object,
    Array,
}

/// A required key: `nullable` allows `null` as its value, never its absence.
#[derive(Clone, Copy)]
struct Field {
    key: &'static str,
    kind: Kind,
    nullable: bool,
}

const fn req(key: &'static str, kind: Kind) -> Field {
    Field {
        key,
        kind,
        nullable: false,
    }
}

const fn opt(key: &'static str, kind: Kind) -> Field {
    Field {
        key,
        kind,
        nullable: true,
    }
}

/// §3.1 item 4: all strings.
const REGISTRATION_FIELDS: &[Field] = &[
    req("activationCode", Kind::NonEmptyStr),
    req("oibusId", Kind::NonEmptyStr),
    req("oibusName", Kind::NonEmptyStr),
    req("oibusVersion", Kind::NonEmptyStr),
    req("oibusOs", Kind::NonEmptyStr),
    req("oibusArch", Kind::NonEmptyStr),
    req("publicKey", Kind::NonEmptyStr),
];

/// §4.5: the common part of a local command record.
const STATUS_FIELDS: &[Field] = &[
    req("id", Kind::NonEmptyStr),
    req("type", Kind::NonEmptyStr),
    req("status", Kind::OneOf(COMMAND_STATUSES)),
    req("ack", Kind::Bool),
    req("targetVersion", Kind::Str),
    req("retrievedDate", Kind::IsoDate),
    opt("completedDate", Kind::IsoDate),
    opt("result", Kind::Str),
    req("createdAt", Kind::IsoDate),
    req("updatedAt", Kind::IsoDate),
    opt("createdBy", Kind::Str),
    opt("updatedBy", Kind::Str),
];

/// §6.2: exactly these top-level keys.
const FULL_CONFIG_FIELDS: &[Field] = &[
    req("engine", Kind::Object),
    req("registration", Kind::Object),
    req("scanModes", Kind::Array),
    req("ipFilters", Kind::Array),
    req("certificates", Kind::Array),
    req("southConnectors", Kind::Array),
    req("northConnectors", Kind::Array),
    req("users", Kind::Array),
    req("transformers", Kind::Array),
];

/// §6.2: what OIA needs from the engine and registration blocks (target version, public key).
const ENGINE_FIELDS: &[Field] = &[
    req("oIBusInternalId", Kind::NonEmptyStr),
    req("softwareVersion", Kind::NonEmptyStr),
    req("settings", Kind::Object),
];
const CONFIG_REGISTRATION_FIELDS: &[Field] =
    &[req("publicKey", Kind::Str), req("settings", Kind::Object)];

/// The 15 standard transformers OIBus seeds and always lists in E6 (data-plane §5.1).
pub const STANDARD_TRANSFORMERS: &[&str] = &[
    "csv-to-mqtt",
    "csv-to-time-values",
    "ignore",
    "iso",
    "json-to-csv",
    "json-to-oianalytics",
    "time-values-to-csv",
    "time-values-to-json",
    "time-values-to-modbus",
    "time-values-to-mqtt",
    "time-values-to-oianalytics",
    "time-values-to-opcua",
    "setpoint-to-modbus",
    "setpoint-to-mqtt",
    "setpoint-to-opcua",
];
const TRANSFORMER_TYPES: &[&str] = &["standard", "custom"];
const INPUT_TYPES: &[&str] = &["any", "time-values", "setpoint"];
const OUTPUT_TYPES: &[&str] = &[
    "any",
    "time-values",
    "opcua",
    "mqtt",
    "modbus",
    "oianalytics",
];

/// E6 `transformers[]`: standard `{oIBusInternalId, type, settings, manifest}`, custom with the
/// audit fields too (`oianalytics-message.service.ts` `createTransformersCommand`).
const STANDARD_TRANSFORMER_FIELDS: &[Field] = &[
    req("oIBusInternalId", Kind::NonEmptyStr),
    req("type", Kind::OneOf(TRANSFORMER_TYPES)),
    req("settings", Kind::Object),
    req("manifest", Kind::Object),
];
const STANDARD_TRANSFORMER_SETTINGS: &[Field] = &[
    req("functionName", Kind::OneOf(STANDARD_TRANSFORMERS)),
    req("inputType", Kind::OneOf(INPUT_TYPES)),
    req("outputType", Kind::OneOf(OUTPUT_TYPES)),
];
const CUSTOM_TRANSFORMER_FIELDS: &[Field] = &[
    req("oIBusInternalId", Kind::NonEmptyStr),
    req("oIBusCreatedBy", Kind::Str),
    req("oIBusUpdatedBy", Kind::Str),
    req("oIBusCreatedAt", Kind::IsoDate),
    req("oIBusUpdatedAt", Kind::IsoDate),
    req("type", Kind::OneOf(TRANSFORMER_TYPES)),
    req("settings", Kind::Object),
    opt("manifest", Kind::Object),
];
const CUSTOM_TRANSFORMER_SETTINGS: &[Field] = &[
    req("name", Kind::NonEmptyStr),
    opt("description", Kind::Str),
    req("inputType", Kind::Str),
    req("language", Kind::Str),
    req("timeout", Kind::Number),
    req("outputType", Kind::Str),
    req("customCode", Kind::Str),
];

/// §7: exactly these 10 keys.
const LOG_FIELDS: &[Field] = &[
    req("timestamp", Kind::IsoDate),
    req("level", Kind::OneOf(LOG_LEVELS)),
    req("scopeType", Kind::OneOf(SCOPE_TYPES)),
    opt("scopeId", Kind::Str),
    opt("scopeName", Kind::Str),
    opt("itemId", Kind::Str),
    opt("itemName", Kind::Str),
    opt("groupId", Kind::Str),
    opt("groupName", Kind::Str),
    req("message", Kind::Str),
];

/// What follows `OIBus/` in the User-Agent OIBus sends.
const USER_AGENT_SUFFIX: &str = " (https://oibus.optimistik.com/)";

/// The OIBus version of a User-Agent of exactly the form `OIBus/X.Y.Z (https://oibus.optimistik.com/)`.
pub fn user_agent_version(user_agent: &str) -> Option<&str> {
    let version = user_agent
        .strip_prefix("OIBus/")?
        .strip_suffix(USER_AGENT_SUFFIX)?;
    oibus_actors::is_release_version(version.as_bytes()).then_some(version)
}

/// Every request must carry OIBus's User-Agent, byte for byte (`OIBus:
/// backend/src/service/http-request.utils.ts`).
pub fn user_agent(value: Option<&str>) -> Result<(), String> {
    match value {
        None => Err("missing User-Agent header".into()),
        Some(agent) if user_agent_version(agent).is_some() => Ok(()),
        Some(agent) => Err(format!(
            "User-Agent must be exactly \"OIBus/X.Y.Z{USER_AGENT_SUFFIX}\", got {agent:?}"
        )),
    }
}

/// E1 body (§3.1).
pub fn registration(body: &Value) -> Problems {
    let mut problems = Problems::default();
    let Some(object) = expect_object(body, &"body", &mut problems) else {
        return problems;
    };
    check_fields(object, &"body", REGISTRATION_FIELDS, &mut problems);
    extra_keys_are_soft(object, &"body", REGISTRATION_FIELDS, &mut problems);
    if let Some(Value::String(code)) = object.get("activationCode") {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            problems.hard(format!(
                "body.activationCode: expected 6 characters from [0-9A-Za-z], got {code:?}"
            ));
        }
    }
    if let Some(Value::String(key)) = object.get("publicKey") {
        if !key.starts_with("-----BEGIN PUBLIC KEY-----") {
            problems
                .hard("body.publicKey: expected an SPKI PEM (-----BEGIN PUBLIC KEY-----)".into());
        }
    }
    problems
}

/// E5 body (§4.5): an array of 1..n records.
pub fn status_records(body: &Value) -> Problems {
    let mut problems = Problems::default();
    let Some(records) = expect(body, Value::as_array, "an array", &"body", &mut problems) else {
        return problems;
    };
    if records.is_empty() {
        problems.hard("body: expected 1..n status records, got an empty array".into());
    }
    // OIBus lists a command once per PUT; a server that upserts by id fails on a repeat.
    let mut first_at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (index, record) in records.iter().enumerate() {
        let path = Indexed(index);
        let Some(object) = expect_object(record, &path, &mut problems) else {
            continue;
        };
        check_fields(object, &path, STATUS_FIELDS, &mut problems);
        check_type_fields(object, &path, &mut problems);
        if let Some(id) = object.get("id").and_then(Value::as_str) {
            if let Some(first) = first_at.insert(id, index) {
                problems.hard(format!(
                    "{path}.id: command {id:?} is listed twice in one PUT (first at [{first}]); \
                     send each command once, at its latest status"
                ));
            }
        }
        if let (Some(created), Some(updated)) = (object.get("createdAt"), object.get("updatedAt")) {
            if created != updated {
                problems.soft(format!(
                    "{path}.updatedAt: differs from createdAt (OIBus never changes it)"
                ));
            }
        }
        if object.get("ack") == Some(&Value::Bool(true)) {
            problems.soft(format!(
                "{path}.ack: OIBus sends false here (true is an OIBus bug)"
            ));
        }
        let completed = object.get("status").and_then(Value::as_str) == Some("COMPLETED");
        match (completed, object.get("completedDate")) {
            (true, Some(Value::Null)) => {
                problems.soft(format!("{path}.completedDate: null on a COMPLETED record"))
            }
            (false, Some(date)) if !date.is_null() => problems.soft(format!(
                "{path}.completedDate: set on a record that is not COMPLETED"
            )),
            _ => {}
        }
    }
    problems
}

/// The fields of the record's type, read with the agent's own record types, which follow OIBus's
/// command repository (e.g. `commandContent.historyQueryStatus`). A malformed command has none.
fn check_type_fields(object: &Map<String, Value>, path: &dyn Display, problems: &mut Problems) {
    let malformed = object
        .get("result")
        .and_then(Value::as_str)
        .is_some_and(|r| r.starts_with("Malformed command"));
    let command_type = object
        .get("type")
        .and_then(Value::as_str)
        .and_then(CommandType::parse);
    if let (Some(command_type), false) = (command_type, malformed) {
        if let Err(problem) = Command::from_record(command_type, object) {
            problems.hard(format!("{path}: {problem}"));
        }
    }
}

/// E6 body (§6.2).
pub fn full_config(body: &Value) -> Problems {
    let mut problems = Problems::default();
    let Some(object) = expect_object(body, &"body", &mut problems) else {
        return problems;
    };
    check_fields(object, &"body", FULL_CONFIG_FIELDS, &mut problems);
    for key in object.keys() {
        if !FULL_CONFIG_FIELDS.iter().any(|field| field.key == key) {
            problems.hard(format!("body.{key}: not a full-config key"));
        }
    }
    if let Some(Value::Object(engine)) = object.get("engine") {
        check_fields(engine, &"body.engine", ENGINE_FIELDS, &mut problems);
    }
    if let Some(Value::Object(registration)) = object.get("registration") {
        check_fields(
            registration,
            &"body.registration",
            CONFIG_REGISTRATION_FIELDS,
            &mut problems,
        );
    }
    if let Some(Value::Array(transformers)) = object.get("transformers") {
        check_transformers(transformers, &mut problems);
    }
    problems
}

/// Each entry in its shape, and the 15 standard functions each listed once: OIA learns the ids
/// north transformers reference from this list only.
fn check_transformers(transformers: &[Value], problems: &mut Problems) {
    let mut seen: Vec<&str> = Vec::new();
    for (index, entry) in transformers.iter().enumerate() {
        let path = format!("body.transformers[{index}]");
        let Some(entry) = expect_object(entry, &path, problems) else {
            continue;
        };
        let (fields, settings_fields) = match entry.get("type").and_then(Value::as_str) {
            Some("custom") => (CUSTOM_TRANSFORMER_FIELDS, CUSTOM_TRANSFORMER_SETTINGS),
            _ => (STANDARD_TRANSFORMER_FIELDS, STANDARD_TRANSFORMER_SETTINGS),
        };
        check_fields(entry, &path, fields, problems);
        extra_keys_are_soft(entry, &path, fields, problems);
        if let Some(Value::String(id)) = entry.get("oIBusInternalId") {
            if id.len() != 6 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                problems.soft(format!(
                    "{path}.oIBusInternalId: {id:?} is not 6 characters of [0-9A-Za-z] as OIBus makes"
                ));
            }
        }
        if let Some(Value::Object(settings)) = entry.get("settings") {
            let settings_path = format!("{path}.settings");
            check_fields(settings, &settings_path, settings_fields, problems);
            extra_keys_are_soft(settings, &settings_path, settings_fields, problems);
            if entry.get("type").and_then(Value::as_str) == Some("standard") {
                if let Some(Value::String(function)) = settings.get("functionName") {
                    if seen.contains(&function.as_str()) {
                        problems.hard(format!(
                            "{settings_path}.functionName: {function:?} is listed twice"
                        ));
                    }
                    seen.push(function);
                }
            }
        }
    }
    for function in STANDARD_TRANSFORMERS {
        if !seen.contains(function) {
            problems.hard(format!(
                "body.transformers: the standard transformer {function:?} is missing"
            ));
        }
    }
}

/// E7 body (§6.3): `{historyQueries: [object…]}`.
pub fn history_queries(body: &Value) -> Problems {
    let mut problems = Problems::default();
    let Some(object) = expect_object(body, &"body", &mut problems) else {
        return problems;
    };
    for key in object.keys() {
        if key != "historyQueries" {
            problems.hard(format!("body.{key}: not a history-queries key"));
        }
    }
    match object.get("historyQueries") {
        None => problems.hard("body.historyQueries: missing".into()),
        Some(Value::Array(queries)) => {
            for (index, query) in queries.iter().enumerate() {
                let path = format!("body.historyQueries[{index}]");
                let path = path.as_str();
                if let Some(query) = expect_object(query, &path, &mut problems) {
                    let fields = [
                        req("oIBusInternalId", Kind::NonEmptyStr),
                        req("settings", Kind::Object),
                    ];
                    check_fields(query, &path, &fields, &mut problems);
                }
            }
        }
        Some(other) => problems.hard(format!(
            "body.historyQueries: expected an array, got {}",
            type_name(other)
        )),
    }
    problems
}

/// E8 body (§7): an array (possibly empty) of log records.
pub fn logs(body: &Value) -> Problems {
    let mut problems = Problems::default();
    let Some(records) = expect(body, Value::as_array, "an array", &"body", &mut problems) else {
        return problems;
    };
    for (index, record) in records.iter().enumerate() {
        let path = Indexed(index);
        if let Some(object) = expect_object(record, &path, &mut problems) {
            check_fields(object, &path, LOG_FIELDS, &mut problems);
            extra_keys_are_soft(object, &path, LOG_FIELDS, &mut problems);
            // OIBus sends `value || null`, and its internal loggers name no scope.
            for field in &LOG_FIELDS[3..9] {
                if object.get(field.key) == Some(&Value::String(String::new())) {
                    problems.soft(format!("{path}.{}: \"\" where OIBus sends null", field.key));
                }
            }
            let internal = object.get("scopeType").and_then(Value::as_str) == Some("INTERNAL");
            match object.get("scopeName") {
                Some(name) if internal && !name.is_null() => problems.soft(format!(
                    "{path}.scopeName: OIBus sends null on INTERNAL records, got {name}"
                )),
                _ => {}
            }
        }
    }
    problems
}

fn expect_object<'a>(
    value: &'a Value,
    path: &dyn Display,
    problems: &mut Problems,
) -> Option<&'a Map<String, Value>> {
    expect(value, Value::as_object, "an object", path, problems)
}

/// `value` as `get` reads it; otherwise a hard problem naming what was `expected`.
fn expect<'a, T: ?Sized>(
    value: &'a Value,
    get: fn(&Value) -> Option<&T>,
    expected: &str,
    path: &dyn Display,
    problems: &mut Problems,
) -> Option<&'a T> {
    let got = get(value);
    if got.is_none() {
        let got = type_name(value);
        problems.hard(format!("{path}: expected {expected}, got {got}"));
    }
    got
}

fn check_fields(
    object: &Map<String, Value>,
    path: &dyn Display,
    fields: &[Field],
    problems: &mut Problems,
) {
    for field in fields {
        match object.get(field.key) {
            None => problems.hard(format!("{path}.{}: missing", field.key)),
            Some(Value::Null) if field.nullable => {}
            Some(value) => {
                if let Some(expected) = mismatch(field.kind, value) {
                    problems.hard(format!(
                        "{path}.{}: expected {expected}, got {}",
                        field.key,
                        brief(value)
                    ));
                }
            }
        }
    }
}

fn extra_keys_are_soft(
    object: &Map<String, Value>,
    path: &dyn Display,
    fields: &[Field],
    problems: &mut Problems,
) {
    for key in object.keys() {
        if !fields.iter().any(|field| field.key == key) {
            problems.soft(format!("{path}.{key}: unexpected key"));
        }
    }
}

/// `None` when `value` fits `kind`, else what was expected.
fn mismatch(kind: Kind, value: &Value) -> Option<String> {
    let fits = match (kind, value) {
        (Kind::Str, Value::String(_)) => true,
        (Kind::NonEmptyStr, Value::String(text)) => !text.is_empty(),
        (Kind::Bool, Value::Bool(_)) => true,
        (Kind::IsoDate, Value::String(text)) => is_iso_date(text),
        (Kind::OneOf(allowed), Value::String(text)) => allowed.contains(&text.as_str()),
        (Kind::Number, Value::Number(_)) => true,
        (Kind::Object, Value::Object(_)) => true,
        (Kind::Array, Value::Array(_)) => true,
        _ => false,
    };
    if fits {
        return None;
    }
    Some(match kind {
        Kind::Str => "a string".into(),
        Kind::NonEmptyStr => "a non-empty string".into(),
        Kind::Bool => "a boolean".into(),
        Kind::IsoDate => "an ISO 8601 date string".into(),
        Kind::OneOf(allowed) => format!("one of {}", allowed.join("|")),
        Kind::Number => "a number".into(),
        Kind::Object => "an object".into(),
        Kind::Array => "an array".into(),
    })
}

/// An ISO 8601 / RFC 3339 date-time with an offset, as `Date.toISOString()` writes it.
pub fn is_iso_date(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

/// The value itself when short (so a bad enum shows), else its type.
fn brief(value: &Value) -> String {
    match value {
        Value::String(text) if text.len() <= 40 => format!("{text:?}"),
        Value::Bool(_) | Value::Number(_) | Value::Null => value.to_string(),
        other => type_name(other).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(name: &str) -> Value {
        let path = format!("{}/wire-samples/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
        serde_json::from_str(&text).expect("wire samples are valid JSON")
    }

    fn log(level: &str) -> Value {
        json!({"timestamp": "2026-11-23T19:10:44.382Z", "level": level, "scopeType": "INTERNAL",
               "scopeId": null, "scopeName": null, "itemId": null, "itemName": null,
               "groupId": null, "groupName": null, "message": "hello"})
    }

    #[test]
    fn wire_samples_from_real_oibus_are_clean() {
        assert_eq!(
            registration(&sample("e1-registration.json")),
            Problems::default()
        );
        assert_eq!(
            status_records(&sample("e5-command-status.json")),
            Problems::default()
        );
        assert_eq!(
            full_config(&sample("e6-full-config.json")),
            Problems::default()
        );
        assert_eq!(
            history_queries(&sample("e7-history-queries.json")),
            Problems::default()
        );
        assert_eq!(logs(&sample("e8-logs.json")), Problems::default());
    }

    #[test]
    fn log_missing_a_key_or_with_an_extra_one_is_reported() {
        let mut record = log("WARN");
        let object = record.as_object_mut().expect("log() builds an object");
        object.remove("groupName");
        object.insert("extra".into(), json!(1));
        let problems = logs(&Value::Array(vec![record]));
        assert_eq!(problems.hard, vec!["[0].groupName: missing".to_string()]);
        assert_eq!(problems.soft, vec!["[0].extra: unexpected key".to_string()]);
    }

    #[test]
    fn status_record_with_wrong_types_is_a_bad_request_and_ack_true_is_soft() {
        let mut records = sample("e5-command-status.json");
        let first = &mut records[0];
        first["ack"] = json!(true);
        first["status"] = json!("DONE");
        first["retrievedDate"] = json!("yesterday");
        first["result"] = json!(3);
        let problems = status_records(&records);
        assert_eq!(
            problems.hard,
            vec![
                "[0].status: expected one of RETRIEVED|RUNNING|COMPLETED|ERRORED|CANCELLED, got \"DONE\"",
                "[0].retrievedDate: expected an ISO 8601 date string, got \"yesterday\"",
                "[0].result: expected a string, got 3",
            ]
        );
        assert_eq!(
            problems.soft.len(),
            2,
            "ack true and completedDate on a non-COMPLETED record"
        );
    }

    #[test]
    fn a_put_listing_a_command_id_twice_is_a_bad_request() {
        let mut records = sample("e5-command-status.json");
        let mut again = records[0].clone();
        again["status"] = json!("RUNNING");
        again["completedDate"] = Value::Null;
        records.as_array_mut().expect("an array").push(again);
        let problems = status_records(&records);
        assert_eq!(
            problems.hard,
            vec![
                "[3].id: command \"wire-1\" is listed twice in one PUT (first at [0]); send each \
                 command once, at its latest status"
            ]
        );
    }

    #[test]
    fn a_moved_updated_at_is_recorded_but_accepted() {
        let mut records = sample("e5-command-status.json");
        records[1]["updatedAt"] = json!("2026-11-23T19:10:27.000Z");
        let problems = status_records(&records);
        assert!(problems.hard.is_empty(), "{problems:?}");
        assert_eq!(
            problems.soft,
            vec!["[1].updatedAt: differs from createdAt (OIBus never changes it)"]
        );
    }

    #[test]
    fn only_the_oibus_user_agent_is_accepted() {
        let oibus = "OIBus/3.8.8 (https://oibus.optimistik.com/)";
        assert_eq!(user_agent(Some(oibus)), Ok(()));
        assert_eq!(user_agent_version(oibus), Some("3.8.8"));
        for wrong in [
            "oibus-agent/0.1.0 (https://oibus.optimistik.com/)",
            "OIBus/3.8.8",
            "OIBus/v3.8.8 (https://oibus.optimistik.com/)",
            "OIBus/3.8.8 (https://oibus.optimistik.com)",
            "OIBus/3.8 (https://oibus.optimistik.com/)",
            "",
        ] {
            assert!(user_agent(Some(wrong)).is_err(), "{wrong:?}");
        }
        assert_eq!(
            user_agent(None),
            Err("missing User-Agent header".to_owned())
        );
    }

    #[test]
    fn empty_strings_and_an_internal_scope_name_in_logs_are_recorded() {
        let mut record = log("INFO");
        record["scopeName"] = json!("command_poller");
        record["itemId"] = json!("");
        let problems = logs(&Value::Array(vec![record]));
        assert!(problems.hard.is_empty(), "{problems:?}");
        assert_eq!(
            problems.soft,
            vec![
                "[0].itemId: \"\" where OIBus sends null",
                "[0].scopeName: OIBus sends null on INTERNAL records, got \"command_poller\""
            ]
        );
    }

    #[test]
    fn registration_needs_a_six_character_code_and_a_pem_key() {
        let mut body = sample("e1-registration.json");
        body["activationCode"] = json!("abc-12");
        body["publicKey"] = json!("ssh-rsa AAAA");
        let problems = registration(&body);
        assert_eq!(problems.hard.len(), 2, "{problems:?}");
        body["oibusArch"] = json!(64);
        assert_eq!(registration(&body).hard.len(), 3);
    }

    #[test]
    fn full_config_with_an_unknown_or_missing_key_is_a_bad_request() {
        let mut body = sample("e6-full-config.json");
        let object = body.as_object_mut().expect("the sample is an object");
        object.remove("users");
        object.insert("secrets".into(), json!([]));
        assert_eq!(
            full_config(&body).hard,
            vec![
                "body.users: missing".to_string(),
                "body.secrets: not a full-config key".to_string()
            ]
        );
    }

    #[test]
    fn full_config_without_the_15_standard_transformers_is_a_bad_request() {
        let mut body = sample("e6-full-config.json");
        body["transformers"] = json!([]);
        let problems = full_config(&body);
        assert_eq!(problems.hard.len() + problems.omitted, 15, "{problems:?}");
        assert!(problems.hard[0].starts_with("body.transformers: the standard transformer"));
    }

    #[test]
    fn a_transformer_entry_in_the_wrong_shape_is_a_bad_request() {
        let mut body = sample("e6-full-config.json");
        let first = &mut body["transformers"][0];
        first.as_object_mut().expect("an entry").remove("manifest");
        first["settings"]["functionName"] = json!("csv-to-time-values");
        let problems = full_config(&body);
        assert_eq!(
            problems.hard,
            vec![
                "body.transformers[0].manifest: missing".to_string(),
                "body.transformers[1].settings.functionName: \"csv-to-time-values\" is listed twice"
                    .to_string(),
                "body.transformers: the standard transformer \"csv-to-mqtt\" is missing".to_string(),
            ]
        );
    }

    #[test]
    fn a_custom_transformer_entry_needs_its_audit_and_settings() {
        let mut body = sample("e6-full-config.json");
        let custom = json!({
            "oIBusInternalId": "Cust01", "oIBusCreatedBy": "oianalytics",
            "oIBusUpdatedBy": "oianalytics", "oIBusCreatedAt": "2026-01-01T00:00:00Z",
            "oIBusUpdatedAt": "2026-01-01T00:00:00Z", "type": "custom",
            "settings": {"name": "c", "description": "", "inputType": "any", "language": "javascript",
                         "timeout": 1000, "outputType": "any", "customCode": "x"},
            "manifest": {"type": "object"}});
        body["transformers"]
            .as_array_mut()
            .expect("a list")
            .push(custom);
        assert!(full_config(&body).is_clean());
        body["transformers"][15]["settings"]
            .as_object_mut()
            .expect("settings")
            .remove("timeout");
        assert_eq!(
            full_config(&body).hard,
            vec!["body.transformers[15].settings.timeout: missing".to_string()]
        );
    }

    #[test]
    fn history_queries_must_be_wrapped_in_an_object() {
        assert_eq!(history_queries(&json!([])).hard.len(), 1);
        assert!(history_queries(&json!({"historyQueries": []})).is_clean());
    }

    #[test]
    fn problems_are_capped_and_the_rest_counted() {
        let batch: Vec<Value> = (0..30).map(|_| log("LOUD")).collect();
        let problems = logs(&Value::Array(batch));
        assert_eq!(problems.hard.len(), MAX_PROBLEMS);
        assert_eq!(problems.omitted, 20);
    }
}
