//! Where the secrets sit in each connector type's `settings`, and the three walks over them:
//! decrypt on the way in, "empty means keep" on save, blank on the way out.
//!
//! The table is `spec/connector-secrets.md` §2–§4 (OIBus 3.8.8 manifests). Paths are relative to
//! the settings object: `.` goes into an object, `name[]` means every element of the array
//! `name` (`headers[].value`). A leaf whose parent object exists is created when missing; a
//! missing or `null` parent (or array) skips the whole subtree, in every direction. Enabling
//! conditions are ignored, as in OIBus.
//!
//! An unknown connector type has no known secret paths: its settings go through unchanged.
//! [`ciphertext_paths`] implements the optional heuristic of spec §6 for callers that choose to
//! accept such a type.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which manifest list a connector type belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    South,
    North,
}

type Table = &'static [(&'static str, &'static [&'static str])];

const OIANALYTICS: &[&str] = &[
    "specificSettings.secretKey",
    "specificSettings.clientSecret",
    "specificSettings.proxyPassword",
];
const REST: &[&str] = &[
    "authentication.password",
    "authentication.token",
    "authentication.apiValue",
    "proxy.proxyPassword",
];
const SFTP: &[&str] = &["password", "passphrase"];
const PASSWORD: &[&str] = &["password"];
const AUTH_PASSWORD: &[&str] = &["authentication.password"];
const NONE: &[&str] = &[];

/// South connector types (spec §2).
const SOUTH: Table = &[
    ("ads", NONE),
    ("folder-scanner", PASSWORD),
    ("ftp", PASSWORD),
    ("influxdb", &["password", "token"]),
    ("modbus", NONE),
    ("mqtt", AUTH_PASSWORD),
    ("mssql", PASSWORD),
    ("mysql", PASSWORD),
    ("odbc", PASSWORD),
    ("oianalytics", OIANALYTICS),
    ("oledb", PASSWORD),
    ("opc", NONE),
    ("opcua", AUTH_PASSWORD),
    ("oracle", PASSWORD),
    ("osisoft-pi", NONE),
    ("postgresql", PASSWORD),
    ("rest", REST),
    ("sftp", SFTP),
    ("sqlite", NONE),
];

/// North connector types (spec §3).
const NORTH: Table = &[
    ("aws-s3", &["secretKey", "proxyPassword"]),
    (
        "azure-blob",
        &["accessKey", "sasToken", "clientSecret", "proxyPassword"],
    ),
    ("console", NONE),
    ("file-writer", PASSWORD),
    ("modbus", NONE),
    ("mqtt", AUTH_PASSWORD),
    ("oianalytics", OIANALYTICS),
    ("opcua", AUTH_PASSWORD),
    ("rest", REST),
    ("sftp", SFTP),
];

fn table(kind: ConnectorKind) -> Table {
    match kind {
        ConnectorKind::South => SOUTH,
        ConnectorKind::North => NORTH,
    }
}

/// Every connector type of `kind` that the table knows.
pub fn connector_types(kind: ConnectorKind) -> impl Iterator<Item = &'static str> {
    table(kind).iter().map(|(ty, _)| *ty)
}

/// Whether `connector_type` is one of the OIBus 3.8.8 types of `kind`.
pub fn is_known_type(kind: ConnectorKind, connector_type: &str) -> bool {
    table(kind).iter().any(|(ty, _)| *ty == connector_type)
}

/// Secret paths in a connector's `settings`. Empty for types without secrets and for unknown
/// types (check [`is_known_type`] to tell them apart).
pub fn secret_paths(kind: ConnectorKind, connector_type: &str) -> &'static [&'static str] {
    table(kind)
        .iter()
        .find(|(ty, _)| *ty == connector_type)
        .map_or(NONE, |(_, paths)| *paths)
}

/// Secret paths in the `settings` of one item of a connector. No manifest has any today
/// (spec §4); callers still run the item walks so a future entry takes effect everywhere.
pub fn item_secret_paths(_kind: ConnectorKind, _connector_type: &str) -> &'static [&'static str] {
    NONE
}

/// Why inbound settings could not be decrypted. `path` names the field, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretPathError<E> {
    #[error("secret field `{path}` holds a {found}; expected a string of base64 ciphertext")]
    NotAString { path: String, found: &'static str },
    #[error("secret field `{path}`: {source}")]
    Decrypt { path: String, source: E },
}

/// Decrypts every secret at `paths` of a connector's settings in place (spec §1.3, inbound): a
/// non-empty string becomes `decrypt(string)`; `""`, `null` or a missing key becomes `""`.
pub fn decrypt_paths<P: AsRef<str>, E>(
    paths: &[P],
    settings: &mut Value,
    mut decrypt: impl FnMut(&str) -> Result<String, E>,
) -> Result<(), SecretPathError<E>> {
    for path in paths {
        visit_secrets(settings, path.as_ref(), &mut |slot, at| {
            let plain = match slot {
                Value::String(s) if !s.is_empty() => {
                    decrypt(s).map_err(|source| SecretPathError::Decrypt {
                        path: render(at),
                        source,
                    })?
                }
                Value::String(_) | Value::Null => String::new(),
                other => {
                    return Err(SecretPathError::NotAString {
                        path: render(at),
                        found: json_type(other),
                    })
                }
            };
            *slot = Value::String(plain);
            Ok(())
        })?;
    }
    Ok(())
}

/// Applies "empty means keep": each secret that is `""` (or `null`/missing) in `new` takes the
/// string at the same path in `previous`, or becomes `""` when there is none. Array elements
/// are matched by index.
pub fn keep_previous_paths<P: AsRef<str>>(paths: &[P], new: &mut Value, previous: &Value) {
    for path in paths {
        visit_infallibly(new, path.as_ref(), |slot, at| {
            let is_blank = slot.is_null() || slot.as_str() == Some("");
            if is_blank {
                let kept = lookup(previous, at).and_then(Value::as_str).unwrap_or("");
                *slot = Value::String(kept.to_owned());
            }
        });
    }
}

/// Blanks every secret for an outbound message or a read API: each becomes `""`.
pub fn blank_paths<P: AsRef<str>>(paths: &[P], settings: &mut Value) {
    for path in paths {
        visit_infallibly(settings, path.as_ref(), |slot, _| {
            *slot = Value::String(String::new())
        });
    }
}

/// Spec §6 heuristic: `s` is standard base64 that decodes to exactly `modulus_bytes` bytes (684
/// characters ending in one `=` for RSA-4096).
pub fn looks_like_rsa_ciphertext(s: &str, modulus_bytes: usize) -> bool {
    s.len() == modulus_bytes.div_ceil(3) * 4
        && BASE64
            .decode(s)
            .is_ok_and(|bytes| bytes.len() == modulus_bytes)
}

/// Spec §6 heuristic, for a connector of unknown type: the paths of every string in `settings`
/// that [`looks_like_rsa_ciphertext`], in the path grammar above (array indices become `[]`),
/// without duplicates. Decrypt them with [`decrypt_paths`] and record them with the entity.
///
/// Only what a path can name is searched: not under an empty key, a key with a `.` or ending in
/// `[]`, nor in an array directly inside an array. A path recorded for those would reach something else, so
/// the value would stay undecrypted while the entity claims it as a secret.
pub fn ciphertext_paths(settings: &Value, modulus_bytes: usize) -> Vec<String> {
    fn walk(value: &Value, prefix: &str, modulus_bytes: usize, found: &mut Vec<String>) {
        match value {
            Value::String(s)
                if looks_like_rsa_ciphertext(s, modulus_bytes)
                    && !found.iter().any(|p| p == prefix) =>
            {
                found.push(prefix.to_owned());
            }
            Value::Object(map) => {
                for (key, child) in map {
                    if key.is_empty() || key.contains('.') || key.ends_with("[]") {
                        continue;
                    }
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(child, &path, modulus_bytes, found);
                }
            }
            // Keys ending in `[]` are skipped, so such a prefix is an array's element.
            Value::Array(_) if prefix.ends_with("[]") => {}
            Value::Array(items) => {
                let path = format!("{prefix}[]");
                for item in items {
                    walk(item, &path, modulus_bytes, found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    // Only a string under a key can be addressed by a path; a bare top-level string cannot.
    if settings.is_object() {
        walk(settings, "", modulus_bytes, &mut found);
    }
    found
}

/// One step of the concrete location of a secret: an object key or an array index.
#[derive(Debug, Clone, Copy)]
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

/// One segment of a path: `key`, or `key[]` for every element of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment<'p> {
    pub(crate) key: &'p str,
    pub(crate) each: bool,
}

/// Split a path written in the notation of connector-secrets §1.1 into its segments.
pub(crate) fn parse(path: &str) -> Vec<Segment<'_>> {
    path.split('.')
        .map(|segment| match segment.strip_suffix("[]") {
            Some(key) => Segment { key, each: true },
            None => Segment {
                key: segment,
                each: false,
            },
        })
        .collect()
}

/// Calls `f` on every secret slot that `path` reaches in `root`, with its concrete location.
fn visit_secrets<'p, E>(
    root: &mut Value,
    path: &'p str,
    f: &mut impl FnMut(&mut Value, &[Step<'p>]) -> Result<(), E>,
) -> Result<(), E> {
    let segments = parse(path);
    let mut at = Vec::with_capacity(segments.len());
    visit(root, &segments, &mut at, f)
}

fn visit_infallibly<'p>(
    root: &mut Value,
    path: &'p str,
    mut f: impl FnMut(&mut Value, &[Step<'p>]),
) {
    let done: Result<(), std::convert::Infallible> = visit_secrets(root, path, &mut |slot, at| {
        f(slot, at);
        Ok(())
    });
    let Ok(()) = done;
}

fn visit<'p, E>(
    value: &mut Value,
    segments: &[Segment<'p>],
    at: &mut Vec<Step<'p>>,
    f: &mut impl FnMut(&mut Value, &[Step<'p>]) -> Result<(), E>,
) -> Result<(), E> {
    let Some((segment, rest)) = segments.split_first() else {
        return f(value, at);
    };
    // A parent that is null, absent (handled below) or not an object skips the subtree.
    let Value::Object(map) = value else {
        return Ok(());
    };
    at.push(Step::Key(segment.key));
    let result = visit_child(map, segment, rest, at, f);
    at.pop();
    result
}

fn visit_child<'p, E>(
    map: &mut Map<String, Value>,
    segment: &Segment<'p>,
    rest: &[Segment<'p>],
    at: &mut Vec<Step<'p>>,
    f: &mut impl FnMut(&mut Value, &[Step<'p>]) -> Result<(), E>,
) -> Result<(), E> {
    if segment.each {
        let Some(Value::Array(items)) = map.get_mut(segment.key) else {
            return Ok(());
        };
        for (index, item) in items.iter_mut().enumerate() {
            at.push(Step::Index(index));
            let result = visit(item, rest, at, f);
            at.pop();
            result?;
        }
        return Ok(());
    }
    if rest.is_empty() {
        // The leaf: created when its parent object exists.
        let slot = map.entry(segment.key).or_insert(Value::Null);
        return f(slot, at);
    }
    match map.get_mut(segment.key) {
        Some(child) => visit(child, rest, at, f),
        None => Ok(()),
    }
}

fn lookup<'v>(root: &'v Value, at: &[Step<'_>]) -> Option<&'v Value> {
    at.iter().try_fold(root, |value, step| match step {
        Step::Key(key) => value.as_object()?.get(*key),
        Step::Index(index) => value.as_array()?.get(*index),
    })
}

fn render(at: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in at {
        match step {
            Step::Key(key) if out.is_empty() => out.push_str(key),
            Step::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Step::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use ConnectorKind::{North, South};

    /// The `password` ciphertext of the create-south command in `wire-samples/e5`.
    const E5_MSSQL_PASSWORD: &str = "beKwCSnG+VtJEhyxz/kGr1WWnmTSv2pPofmDPmQVY/YIMySZrnpqh0DS87EC9xA3oYsdx0kL+Sy1ejwnIhgwcgqFzA7JUaiTaTapB/S5FZg8QmCDdZECw40WkuzTTms0GIn2bdbzGA/pfMJmorEgLqlZ6fjRCJSEJAm1QVzXdSvt3Gkz0BEbhKXmo0hCFj0pxd54smRtaUoWXZRxq8usmmb6Kzu9pK6QNShCqZgK0umh9OeMzN/p/+ILewyMXLRJIOI+7Eap4RQ+gSaWpO/sK/HghaONeBRcSIDY+8mBHrWsqTybCq6wpSh6nGGjjaBryCLZ2kTdirJ4qMwsiRSwxmPncfsofnsZtdpysAFFVsjiEKCRf9IuOp45dxzPQi55px8FmGu9AqEgn887uNdOe2L25Ff00xO2Cwlb4ffeJXmxCRfLX9XfnIg/OysuNGTWWul48yKxXzdmQvKP6KRQc/AH2GGwv2fo8+8/DuMW9h/bpS/ERP/9J9xFTnrQ8c064uyb/kPqRISkUJcc8HCnTR3wryCQrWy3XMLNARfTr5FL1pJJFJ6ZmV+B05oKZ7ayVPom1ZW/GkiSxt6G99mmarynfSCY1wjeZ2cCjIc22wV7armwxQ9MRWcj/tEgpoiQ0K4j0trIsMLsPlnwMBFPpAC6sHyfrIV7s5sb3OxqMJ8=";

    fn e5_mssql_settings() -> Value {
        json!({
            "host": "127.0.0.1",
            "port": 1433,
            "connectionTimeout": 5000,
            "database": "plant",
            "encryption": false,
            "trustServerCertificate": false,
            "username": "reader",
            "password": E5_MSSQL_PASSWORD,
            "domain": null,
            "requestTimeout": 15000
        })
    }

    /// A stand-in for RSA: "decrypts" by upper-casing, and rejects anything starting with `!`.
    fn fake_decrypt(s: &str) -> Result<String, String> {
        match s.strip_prefix('!') {
            Some(_) => Err("undecryptable".to_string()),
            None => Ok(s.to_uppercase()),
        }
    }

    #[test]
    fn tables_hold_21_south_secrets_in_14_types_and_18_north_in_8() {
        let count = |kind| {
            let types: Vec<_> = connector_types(kind).collect();
            let with_secrets = types
                .iter()
                .filter(|ty| !secret_paths(kind, ty).is_empty())
                .count();
            let secrets: usize = types.iter().map(|ty| secret_paths(kind, ty).len()).sum();
            (types.len(), with_secrets, secrets)
        };
        assert_eq!(count(South), (19, 14, 21));
        assert_eq!(count(North), (10, 8, 18));
    }

    #[test]
    fn types_have_the_paths_of_their_manifest() {
        assert_eq!(secret_paths(South, "mssql"), ["password"]);
        assert_eq!(secret_paths(South, "influxdb"), ["password", "token"]);
        assert_eq!(secret_paths(South, "mqtt"), ["authentication.password"]);
        assert_eq!(secret_paths(North, "opcua"), ["authentication.password"]);
        assert_eq!(secret_paths(South, "sftp"), ["password", "passphrase"]);
        assert_eq!(
            secret_paths(North, "aws-s3"),
            ["secretKey", "proxyPassword"]
        );
        assert_eq!(
            secret_paths(North, "azure-blob"),
            ["accessKey", "sasToken", "clientSecret", "proxyPassword"]
        );
        for kind in [South, North] {
            assert_eq!(secret_paths(kind, "oianalytics"), OIANALYTICS);
            assert_eq!(secret_paths(kind, "rest"), REST);
        }
        for ty in ["ads", "modbus", "opc", "osisoft-pi", "sqlite"] {
            assert!(
                is_known_type(South, ty) && secret_paths(South, ty).is_empty(),
                "{ty}"
            );
        }
        for ty in ["console", "modbus"] {
            assert!(
                is_known_type(North, ty) && secret_paths(North, ty).is_empty(),
                "{ty}"
            );
        }
        assert!(!is_known_type(South, "aws-s3") && !is_known_type(North, "mssql"));
    }

    #[test]
    fn no_item_has_secret_paths() {
        for kind in [South, North] {
            for ty in connector_types(kind) {
                assert!(item_secret_paths(kind, ty).is_empty(), "{ty}");
            }
        }
    }

    #[test]
    fn unknown_type_has_no_paths_and_is_left_unchanged() {
        let original = json!({"password": "abc", "token": null});
        let mut settings = original.clone();
        assert!(!is_known_type(South, "teleporter"));
        decrypt_paths(
            secret_paths(South, "teleporter"),
            &mut settings,
            fake_decrypt,
        )
        .unwrap();
        blank_paths(secret_paths(South, "teleporter"), &mut settings);
        assert_eq!(settings, original);
    }

    #[test]
    fn mssql_create_command_blanks_to_the_full_config_settings() {
        let mut settings = e5_mssql_settings();
        blank_paths(secret_paths(South, "mssql"), &mut settings);
        // `southConnectors[0].settings.settings` of wire-samples/e6: the same, password blank.
        let mut e6 = e5_mssql_settings();
        e6["password"] = json!("");
        assert_eq!(settings, e6);
    }

    #[test]
    fn file_writer_gains_a_blank_password_outbound() {
        let mut settings =
            json!({"outputFolder": "output-folder", "prefix": "prefix-", "suffix": "-suffix"});
        blank_paths(secret_paths(North, "file-writer"), &mut settings);
        assert_eq!(
            settings,
            json!({"outputFolder": "output-folder", "prefix": "prefix-", "suffix": "-suffix", "password": ""})
        );
    }

    #[test]
    fn azure_blob_creates_missing_secrets_as_blank() {
        let mut settings =
            json!({"authentication": "access-key", "accessKey": "Zm9v", "useProxy": false});
        blank_paths(secret_paths(North, "azure-blob"), &mut settings);
        assert_eq!(
            settings,
            json!({"authentication": "access-key", "accessKey": "", "useProxy": false,
                   "sasToken": "", "clientSecret": "", "proxyPassword": ""})
        );
    }

    #[test]
    fn oianalytics_with_null_specific_settings_is_untouched() {
        let original = json!({"useOiaModule": true, "timeout": 30, "specificSettings": null});
        for kind in [South, North] {
            let mut settings = original.clone();
            blank_paths(secret_paths(kind, "oianalytics"), &mut settings);
            decrypt_paths(
                secret_paths(kind, "oianalytics"),
                &mut settings,
                fake_decrypt,
            )
            .unwrap();
            keep_previous_paths(secret_paths(kind, "oianalytics"), &mut settings, &json!({}));
            assert_eq!(settings, original);
        }
        let mut absent = json!({"useOiaModule": true});
        blank_paths(secret_paths(South, "oianalytics"), &mut absent);
        assert_eq!(absent, json!({"useOiaModule": true}));
    }

    #[test]
    fn inbound_decrypts_strings_and_blanks_empty_null_and_missing() {
        let mut settings = json!({
            "authentication": {"type": "basic", "password": "pw", "token": null, "apiValue": ""},
            "proxy": null
        });
        decrypt_paths(secret_paths(South, "rest"), &mut settings, fake_decrypt).unwrap();
        assert_eq!(
            settings,
            json!({
                "authentication": {"type": "basic", "password": "PW", "token": "", "apiValue": ""},
                "proxy": null
            })
        );
    }

    #[test]
    fn inbound_failure_names_the_field_but_not_its_value() {
        let mut settings = json!({"authentication": {"password": "!secret-looking"}});
        let err =
            decrypt_paths(secret_paths(South, "mqtt"), &mut settings, fake_decrypt).unwrap_err();
        let message = err.to_string();
        assert_eq!(
            message,
            "secret field `authentication.password`: undecryptable"
        );
        let mut settings = json!({"password": 42});
        let err =
            decrypt_paths(secret_paths(South, "mssql"), &mut settings, fake_decrypt).unwrap_err();
        assert!(matches!(
            err,
            SecretPathError::NotAString {
                found: "number",
                ..
            }
        ));
    }

    #[test]
    fn keep_previous_fills_a_blank_nested_password() {
        let previous = json!({"authentication": {"type": "basic", "password": "old"}});
        let mut new = json!({"authentication": {"type": "basic", "password": ""}});
        keep_previous_paths(secret_paths(South, "opcua"), &mut new, &previous);
        assert_eq!(new["authentication"]["password"], "old");

        let mut changed = json!({"authentication": {"type": "basic", "password": "new"}});
        keep_previous_paths(secret_paths(South, "opcua"), &mut changed, &previous);
        assert_eq!(changed["authentication"]["password"], "new");

        let mut without_previous = json!({"authentication": {"password": ""}});
        keep_previous_paths(
            secret_paths(South, "opcua"),
            &mut without_previous,
            &json!({"authentication": null}),
        );
        assert_eq!(without_previous["authentication"]["password"], "");
    }

    #[test]
    fn array_paths_reach_every_element_and_keep_matches_by_index() {
        let paths = ["headers[].value"];
        let mut settings = json!({"headers": [{"key": "a", "value": "x"}, {"key": "b"}, null]});
        decrypt_paths(&paths, &mut settings, fake_decrypt).unwrap();
        assert_eq!(
            settings,
            json!({"headers": [{"key": "a", "value": "X"}, {"key": "b", "value": ""}, null]})
        );

        let previous = json!({"headers": [{"value": "p0"}, {"value": "p1"}]});
        keep_previous_paths(&paths, &mut settings, &previous);
        assert_eq!(settings["headers"][0]["value"], "X");
        assert_eq!(settings["headers"][1]["value"], "p1");

        blank_paths(&paths, &mut settings);
        assert_eq!(settings["headers"][0]["value"], "");
        let mut no_array = json!({"headers": null});
        blank_paths(&paths, &mut no_array);
        assert_eq!(no_array, json!({"headers": null}));

        let mut bad = json!({"headers": [{"value": "ok"}, {"value": "!bad"}]});
        let err = decrypt_paths(&paths, &mut bad, fake_decrypt).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret field `headers[1].value`: undecryptable"
        );
    }

    #[test]
    fn e5_ciphertext_looks_like_rsa_4096_and_plain_values_do_not() {
        assert!(looks_like_rsa_ciphertext(E5_MSSQL_PASSWORD, 512));
        assert!(!looks_like_rsa_ciphertext(E5_MSSQL_PASSWORD, 256));
        assert!(!looks_like_rsa_ciphertext("reader", 512));
        let bad_char = E5_MSSQL_PASSWORD.replacen('b', "*", 1);
        assert!(!looks_like_rsa_ciphertext(&bad_char, 512));
    }

    #[test]
    fn ciphertext_paths_finds_nested_and_array_secrets_once() {
        let settings = json!({
            "user": "reader",
            "password": E5_MSSQL_PASSWORD,
            "auth": {"token": E5_MSSQL_PASSWORD},
            "headers": [{"value": E5_MSSQL_PASSWORD}, {"value": E5_MSSQL_PASSWORD}, {"value": "plain"}]
        });
        let mut found = ciphertext_paths(&settings, 512);
        found.sort();
        assert_eq!(found, ["auth.token", "headers[].value", "password"]);
    }

    #[test]
    fn ciphertext_under_a_key_the_path_notation_cannot_name_is_not_recorded() {
        // Found by the `secrets` fuzz target (actors/tests-data/fuzz/secrets/): `va.lue` was
        // recorded as `headers[].va.lue`, a path to `headers[].va` → `lue`.
        let settings = json!({
            "headers": [{"va.lue": E5_MSSQL_PASSWORD, "value": E5_MSSQL_PASSWORD}],
            "list[]": E5_MSSQL_PASSWORD,
            "nested": [[E5_MSSQL_PASSWORD]],
            "": {"": E5_MSSQL_PASSWORD}
        });
        let found = ciphertext_paths(&settings, 512);
        assert_eq!(found, ["headers[].value"]);
        let mut blanked = settings.clone();
        blank_paths(&found, &mut blanked);
        assert_eq!(blanked["headers"][0]["value"], "");
        assert_eq!(blanked["headers"][0]["va.lue"], E5_MSSQL_PASSWORD);
    }
}
