//! From YAML text to a [`Config`] and its problems. serde_norway reads the text into a YAML
//! value (its messages and YAML rules stay those ops know); each section is then deserialised
//! from that value, and a value of the wrong type is reported and left out so that the rest of
//! the file is still read and validated. marked-yaml gives every key and value its `line:column`.

use marked_yaml::{Marker, Node};
use serde_norway::{Mapping, Value};

use super::{Config, Problem};

/// Bad values reported and removed before giving up on the file: each round removes one.
const MAX_TYPE_ERRORS: usize = 64;

/// Parse and validate YAML text; every type error and semantic problem at once.
pub(super) fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let mut value: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_norway::from_str(text).map_err(|e| vec![syntax_problem(&e)])?
    };
    if value.is_null() {
        value = Value::Mapping(Mapping::new());
    }
    let spans = Spans::new(text);
    let mut problems = Vec::new();
    let config = loop {
        let error = match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
            Ok(config) => break Some(config),
            Err(e) => e,
        };
        let path: Vec<String> = error.path().iter().map(|s| s.to_string()).collect();
        let message = error.into_inner().to_string();
        // The path ends at the bad value, or at the unknown key; removing it lets the rest of
        // the file be read.
        let dotted = path.join(".");
        let problem = if message.starts_with("unknown field") {
            Problem {
                location: spans.key(&dotted),
                path: path[..path.len().saturating_sub(1)].join("."),
                message,
            }
        } else {
            Problem {
                location: spans.value(&dotted),
                path: dotted,
                message,
            }
        };
        problems.push(problem);
        if problems.len() >= MAX_TYPE_ERRORS || !remove(&mut value, &path) {
            break None;
        }
    };
    if let Some(config) = &config {
        problems.extend(
            config
                .validate()
                .into_iter()
                .map(|(path, message)| Problem {
                    location: spans.value(&path),
                    path,
                    message,
                }),
        );
    }
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(problems),
    }
}

/// Remove the value at `path` from its mapping; false when there is nothing to remove.
fn remove(value: &mut Value, path: &[String]) -> bool {
    let Some((key, parent)) = path.split_last() else {
        return false;
    };
    let mut at = value;
    for segment in parent {
        match at.get_mut(segment.as_str()) {
            Some(next) => at = next,
            None => return false,
        }
    }
    at.as_mapping_mut()
        .is_some_and(|m| m.remove(key.as_str()).is_some())
}

fn syntax_problem(e: &serde_norway::Error) -> Problem {
    let text = e.to_string();
    // serde_norway renders "message at line L column C"; the location is re-rendered as L:C.
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    Problem {
        path: String::new(),
        message,
        location: e.location().map(|l| (l.line(), l.column())),
    }
}

/// Where each key and value is written, by dotted path.
struct Spans {
    root: Option<Node>,
}

impl Spans {
    /// A text marked-yaml refuses (anchors, tags) leaves problems without a location.
    fn new(text: &str) -> Spans {
        Spans {
            root: marked_yaml::parse_yaml(0, text).ok(),
        }
    }

    /// Where the value at `path` is written, or its key when the value starts on a later line
    /// (a block mapping); falls back to the nearest parent present in the text.
    fn value(&self, path: &str) -> Option<(usize, usize)> {
        self.find(path, |key, value| match value {
            Some(v) if v.line() == key.line() => v,
            _ => key,
        })
    }

    /// Where the key at `path` is written (or its nearest parent's).
    fn key(&self, path: &str) -> Option<(usize, usize)> {
        self.find(path, |key, _| key)
    }

    fn find(
        &self,
        path: &str,
        pick: impl for<'a> Fn(&'a Marker, Option<&'a Marker>) -> &'a Marker,
    ) -> Option<(usize, usize)> {
        let mut node = self.root.as_ref()?;
        let mut found = None;
        for segment in path.split('.').filter(|s| !s.is_empty()) {
            let Some((key, value)) = node
                .as_mapping()
                .and_then(|m| m.iter().find(|(k, _)| k.as_str() == segment))
            else {
                break;
            };
            let key_mark = key.span().start()?;
            let mark = pick(key_mark, value.span().start());
            found = Some((mark.line(), mark.column()));
            node = value;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_and_flow_keys_are_located() {
        let text = "engine:\n  name: x # comment\n  api: { listen: 127.0.0.1:1 }\noianalytics:\n  intervals:\n    command_refresh: 5 parsecs\n";
        let spans = Spans::new(text);
        assert_eq!(spans.value("engine.name"), Some((2, 9)));
        assert_eq!(spans.value("engine.api.listen"), Some((3, 18)));
        assert_eq!(
            spans.value("oianalytics.intervals.command_refresh"),
            Some((6, 22))
        );
        assert_eq!(spans.value("oianalytics.intervals.nope"), Some((5, 3)));
    }
}
