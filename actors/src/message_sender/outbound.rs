//! [`Outbound`]: the typed tree that connector settings are serialised from on their way to
//! OIAnalytics. A secret is a node of its own ([`Outbound::Secret`], holding a [`Secret`]), so
//! its value has no way into the output: `Secret` serialises as `""` whatever it holds.
//!
//! Stored settings (`serde_json::Value`) become an `Outbound` only through
//! [`Outbound::settings`], which takes the secret paths of the connector (spec
//! connector-secrets §1.1 notation, from [`crate::secrets_paths`] and the paths recorded with the
//! entity) and builds a `Secret` node wherever a path leads, during the conversion itself: a value
//! at a secret path never becomes a string node. As in OIBus, a secret leaf missing under an
//! existing parent object is created (as `""`), and a missing or `null` parent skips the subtree.
//! Subtrees that hold no secrets by protocol (caching, transformers, time ranges) go through
//! [`Outbound::plain`].

use crate::secrets_paths::{parse, Segment};
use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use serde_json::{Number, Value};

use crate::Secret;

/// A JSON value on its way out, in which a secret is a distinct node type.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Outbound>),
    Object(BTreeMap<String, Outbound>),
    /// Serialises as `""`: the stored (sealed) value it holds never leaves.
    Secret(Secret<String>),
}

/// A set of secret paths, parsed once.
#[derive(Debug, Clone, Default)]
pub struct SecretPaths<'p> {
    paths: Vec<Vec<Segment<'p>>>,
}

impl<'p> SecretPaths<'p> {
    /// Parses `paths`, dropping duplicates and empty paths (which name no field).
    pub fn new<I>(paths: I) -> SecretPaths<'p>
    where
        I: IntoIterator<Item = &'p str>,
    {
        let mut parsed: Vec<Vec<Segment<'p>>> = Vec::new();
        for path in paths {
            if path.is_empty() {
                continue;
            }
            let segments = parse(path);
            if !parsed.contains(&segments) {
                parsed.push(segments);
            }
        }
        SecretPaths { paths: parsed }
    }

    fn tails(&self) -> Vec<&[Segment<'p>]> {
        self.paths.iter().map(Vec::as_slice).collect()
    }
}

impl Outbound {
    /// A subtree that holds no secret by protocol, converted as is.
    pub fn plain(value: Value) -> Outbound {
        convert(value, &[])
    }

    /// Connector or item settings: every value that `secrets` reaches becomes a secret node.
    pub fn settings(value: Value, secrets: &SecretPaths<'_>) -> Outbound {
        convert(value, &secrets.tails())
    }

    /// A blank secret node (a secret leaf that was missing).
    fn blank_secret() -> Outbound {
        Outbound::Secret(Secret::default())
    }

    /// The value at a secret path, moved into a secret node without being looked at.
    fn secret(value: Value) -> Outbound {
        match value {
            Value::String(s) => Outbound::Secret(Secret::new(s)),
            _ => Outbound::blank_secret(),
        }
    }
}

/// `tails`: the rest of every secret path that goes through `value` (all non-empty).
fn convert(value: Value, tails: &[&[Segment<'_>]]) -> Outbound {
    match value {
        Value::Null => Outbound::Null,
        Value::Bool(b) => Outbound::Bool(b),
        Value::Number(n) => Outbound::Number(n),
        Value::String(s) => Outbound::String(s),
        Value::Array(items) => Outbound::Array(items.into_iter().map(Outbound::plain).collect()),
        Value::Object(map) => {
            let mut out = BTreeMap::new();
            for (key, child) in map {
                let converted = convert_child(child, &key, tails);
                out.insert(key, converted);
            }
            // A secret leaf is created under an existing parent object.
            for tail in tails {
                if let [Segment { key, each: false }] = tail {
                    out.entry((*key).to_owned())
                        .or_insert_with(Outbound::blank_secret);
                }
            }
            Outbound::Object(out)
        }
    }
}

fn convert_child(child: Value, key: &str, tails: &[&[Segment<'_>]]) -> Outbound {
    let mut leaf = false;
    let mut deeper = Vec::new();
    let mut each_deeper = Vec::new();
    let mut each_leaf = false;
    for tail in tails {
        let Some((first, rest)) = tail.split_first() else {
            continue;
        };
        if first.key != key {
            continue;
        }
        match (first.each, rest.is_empty()) {
            (false, true) => leaf = true,
            (false, false) => deeper.push(rest),
            (true, true) => each_leaf = true,
            (true, false) => each_deeper.push(rest),
        }
    }
    if leaf {
        return Outbound::secret(child);
    }
    match child {
        Value::Array(items) if each_leaf || !each_deeper.is_empty() => Outbound::Array(
            items
                .into_iter()
                .map(|item| {
                    if each_leaf {
                        Outbound::secret(item)
                    } else {
                        convert(item, &each_deeper)
                    }
                })
                .collect(),
        ),
        // A parent that is null or not an object skips the subtree (convert ignores the tails
        // of anything but an object).
        other => convert(other, &deeper),
    }
}

impl Serialize for Outbound {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Outbound::Null => serializer.serialize_unit(),
            Outbound::Bool(b) => serializer.serialize_bool(*b),
            Outbound::Number(n) => n.serialize(serializer),
            Outbound::String(s) => serializer.serialize_str(s),
            Outbound::Array(items) => serializer.collect_seq(items),
            Outbound::Object(map) => serializer.collect_map(map),
            Outbound::Secret(secret) => secret.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn out(value: Value, paths: &[&str]) -> Value {
        let paths = SecretPaths::new(paths.iter().copied());
        serde_json::to_value(Outbound::settings(value, &paths)).unwrap()
    }

    #[test]
    fn a_secret_at_a_path_is_a_secret_node_and_serialises_blank() {
        let tree = Outbound::settings(
            json!({"user": "reader", "password": "sealed-value"}),
            &SecretPaths::new(["password"]),
        );
        let Outbound::Object(map) = &tree else {
            panic!("an object stays an object")
        };
        assert!(matches!(map["password"], Outbound::Secret(_)));
        assert_eq!(map["user"], Outbound::String("reader".into()));
        let text = serde_json::to_string(&tree).unwrap();
        assert_eq!(text, r#"{"password":"","user":"reader"}"#);
    }

    #[test]
    fn nested_secrets_are_reached_and_missing_leaves_created() {
        let value = json!({"authentication": {"type": "basic", "password": "p"}, "proxy": {}});
        assert_eq!(
            out(
                value,
                &[
                    "authentication.password",
                    "authentication.token",
                    "proxy.proxyPassword"
                ]
            ),
            json!({"authentication": {"type": "basic", "password": "", "token": ""},
                   "proxy": {"proxyPassword": ""}})
        );
    }

    #[test]
    fn a_null_or_missing_parent_skips_the_subtree() {
        let value = json!({"useOiaModule": true, "specificSettings": null});
        assert_eq!(
            out(value.clone(), &["specificSettings.secretKey"]),
            value,
            "a null parent stays null"
        );
        assert_eq!(
            out(json!({"a": 1}), &["specificSettings.secretKey"]),
            json!({"a": 1})
        );
    }

    #[test]
    fn a_non_string_value_at_a_secret_path_is_blanked_too() {
        assert_eq!(
            out(
                json!({"password": {"nested": "x"}, "token": 42}),
                &["password", "token"]
            ),
            json!({"password": "", "token": ""})
        );
    }

    #[test]
    fn array_paths_reach_every_element() {
        let value = json!({"headers": [{"key": "a", "value": "x"}, {"key": "b"}, null],
                           "tokens": ["t1", "t2"]});
        assert_eq!(
            out(value, &["headers[].value", "tokens[]"]),
            json!({"headers": [{"key": "a", "value": ""}, {"key": "b", "value": ""}, null],
                   "tokens": ["", ""]})
        );
        assert_eq!(
            out(json!({"headers": null}), &["headers[].value"]),
            json!({"headers": null})
        );
    }

    #[test]
    fn plain_trees_round_trip_unchanged() {
        let value = json!({"a": [1, 2.5, "s", null, true], "b": {"c": {}}, "password": "kept"});
        assert_eq!(
            serde_json::to_value(Outbound::plain(value.clone())).unwrap(),
            value
        );
    }

    #[test]
    fn duplicate_and_empty_paths_are_ignored() {
        let paths = SecretPaths::new(["password", "", "password"]);
        assert_eq!(paths.paths.len(), 1);
    }
}
