//! The JSONPath subset OIBus's `json-to-oianalytics` options use (`$`, `.key`, `['key']`,
//! `[n]`, `[*]`, `.*`), with OIBus's one extension (`transformers/json-path.ts`): a string met
//! on the way down is parsed as JSON, so `$[*].message.temperature` reaches into an MQTT
//! message's payload. A string that must be descended into but is not JSON is an error that
//! says where, rather than OIBus's silent empty result.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
    All,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonPathError {
    #[error("{path:?} is not a JSONPath this agent reads ({problem})")]
    Syntax { path: String, problem: String },
    /// `at`: the array indices on the way to the string.
    #[error("the string at {at:?} is not JSON: {reason}")]
    NotJson { at: Vec<usize>, reason: String },
}

/// One match: the array indices taken to reach it, and the value.
pub type Match = (Vec<usize>, Value);

impl JsonPath {
    pub fn parse(path: &str) -> Result<JsonPath, JsonPathError> {
        let syntax = |problem: &str| JsonPathError::Syntax {
            path: path.to_owned(),
            problem: problem.to_owned(),
        };
        let mut rest = path
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| syntax("it must start with $"))?;
        let mut segments = Vec::new();
        while !rest.is_empty() {
            if rest.starts_with("..") {
                return Err(syntax("recursive descent (..) is not supported"));
            }
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let key = &after[..end];
                if key.is_empty() {
                    return Err(syntax("an empty key"));
                }
                segments.push(match key {
                    "*" => Segment::All,
                    key => Segment::Key(key.to_owned()),
                });
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| syntax("a [ without ]"))?;
                let inside = after[..end].trim();
                segments.push(if inside == "*" {
                    Segment::All
                } else if let Ok(index) = inside.parse() {
                    Segment::Index(index)
                } else if let Some(key) = inside
                    .strip_prefix('\'')
                    .and_then(|k| k.strip_suffix('\''))
                    .or_else(|| inside.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
                {
                    Segment::Key(key.to_owned())
                } else {
                    return Err(syntax(&format!(
                        "[{inside}] (filters and slices are not supported)"
                    )));
                });
                rest = &after[end + 1..];
            } else {
                return Err(syntax("expected . or ["));
            }
        }
        Ok(JsonPath { segments })
    }

    /// Every match, in document order.
    pub fn select(&self, root: &Value) -> Result<Vec<Match>, JsonPathError> {
        let mut out = Vec::new();
        walk(&self.segments, root, &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    /// The path with its `[*]` replaced, in order, by `indices` (OIBus `injectIndices`): a
    /// column's path resolved for one row.
    pub fn at(&self, indices: &[usize]) -> JsonPath {
        let mut taken = indices.iter();
        let segments = self
            .segments
            .iter()
            .map(|s| match (s, taken.clone().next()) {
                (Segment::All, Some(i)) => {
                    taken.next();
                    Segment::Index(*i)
                }
                (s, _) => s.clone(),
            })
            .collect();
        JsonPath { segments }
    }

    /// The one value of a resolved path: the match, or an array of them, or `None`.
    pub fn resolve(&self, root: &Value) -> Result<Option<Value>, JsonPathError> {
        let mut matches = self.select(root)?;
        Ok(match matches.len() {
            0 => None,
            1 => matches.pop().map(|(_, v)| v),
            _ => Some(Value::Array(matches.into_iter().map(|(_, v)| v).collect())),
        })
    }
}

fn walk(
    segments: &[Segment],
    value: &Value,
    indices: &mut Vec<usize>,
    out: &mut Vec<Match>,
) -> Result<(), JsonPathError> {
    let Some((segment, rest)) = segments.split_first() else {
        out.push((indices.clone(), value.clone()));
        return Ok(());
    };
    match (segment, value) {
        (_, Value::String(text)) => {
            let parsed: Value = serde_json::from_str(text).map_err(|e| JsonPathError::NotJson {
                at: indices.clone(),
                reason: e.to_string(),
            })?;
            if parsed.is_string() {
                return Ok(());
            }
            walk(segments, &parsed, indices, out)
        }
        (Segment::Key(key), Value::Object(map)) => match map.get(key) {
            Some(child) => walk(rest, child, indices, out),
            None => Ok(()),
        },
        (Segment::Index(i), Value::Array(items)) => match items.get(*i) {
            Some(child) => {
                indices.push(*i);
                let done = walk(rest, child, indices, out);
                indices.pop();
                done
            }
            None => Ok(()),
        },
        (Segment::All, Value::Array(items)) => {
            for (i, child) in items.iter().enumerate() {
                indices.push(i);
                walk(rest, child, indices, out)?;
                indices.pop();
            }
            Ok(())
        }
        (Segment::All, Value::Object(map)) => {
            for child in map.values() {
                walk(rest, child, indices, out)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_carry_their_indices_and_columns_resolve_per_row() {
        let doc = json!([{"id": "a", "v": 1}, {"id": "b", "v": 2}]);
        let rows = JsonPath::parse("$[*]").unwrap().select(&doc).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            vec![vec![0], vec![1]]
        );
        let value = JsonPath::parse("$[*].v").unwrap().at(&[1]);
        assert_eq!(value.resolve(&doc).unwrap(), Some(json!(2)));
        assert_eq!(
            JsonPath::parse("$[0]['id']")
                .unwrap()
                .resolve(&doc)
                .unwrap(),
            Some(json!("a"))
        );
    }

    #[test]
    fn a_json_string_on_the_way_down_is_parsed() {
        let doc =
            json!([{"message": "{\"metrics\":[{\"n\":\"x\",\"v\":3},{\"n\":\"y\",\"v\":4}]}"}]);
        let rows = JsonPath::parse("$[*].message.metrics[*]")
            .unwrap()
            .select(&doc)
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].0, vec![0, 1]);
        let name = JsonPath::parse("$[*].message.metrics[*].n")
            .unwrap()
            .at(&rows[1].0);
        assert_eq!(name.resolve(&doc).unwrap(), Some(json!("y")));
        // A leaf string stays a string.
        assert_eq!(
            JsonPath::parse("$[0].message")
                .unwrap()
                .resolve(&doc)
                .unwrap()
                .map(|v| v.is_string()),
            Some(true)
        );
    }

    #[test]
    fn a_string_that_is_not_json_says_where_it_is() {
        let doc = json!([{"message": "{}"}, {"message": "21,5 degrees"}]);
        let error = JsonPath::parse("$[*].message.t")
            .unwrap()
            .select(&doc)
            .unwrap_err();
        assert!(
            matches!(error, JsonPathError::NotJson { ref at, .. } if at == &vec![1]),
            "{error}"
        );
    }

    #[test]
    fn unsupported_syntax_is_refused_by_name() {
        for path in ["[0]", "$..a", "$[?(@.a)]", "$.a["] {
            let error = JsonPath::parse(path).unwrap_err().to_string();
            assert!(error.contains("not a JSONPath this agent reads"), "{error}");
        }
    }
}
