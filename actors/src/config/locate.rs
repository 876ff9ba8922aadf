//! Finds the `line:column` of a dotted key path in YAML text, so semantic problems (found after
//! deserialisation, where positions are gone) can point at the right place. Handles block
//! mappings and one-line flow mappings (`api: { listen: ... }`), which is what the agent's file
//! uses; anything else falls back to the nearest known parent.

use std::collections::HashMap;

pub struct KeyIndex {
    positions: HashMap<String, (usize, usize)>,
}

impl KeyIndex {
    pub fn new(text: &str) -> KeyIndex {
        let mut positions = HashMap::new();
        // (indent, key) of the enclosing block mappings.
        let mut stack: Vec<(usize, String)> = Vec::new();
        for (line_no, raw) in text.lines().enumerate() {
            let line = strip_comment(raw);
            let indent = line.len() - line.trim_start().len();
            let content = line.trim();
            if content.is_empty() || content.starts_with('-') || content.starts_with("---") {
                continue;
            }
            let Some(colon) = find_key_colon(content) else {
                continue;
            };
            let key = content[..colon]
                .trim()
                .trim_matches(['"', '\''])
                .to_string();
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let mut path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            path.push(&key);
            let full = path.join(".");
            let rest = &content[colon + 1..];
            let value_col = indent + colon + 1 + (rest.len() - rest.trim_start().len()) + 1;
            let has_value = !rest.trim().is_empty();
            positions.insert(
                full.clone(),
                (line_no + 1, if has_value { value_col } else { indent + 1 }),
            );
            if let Some(flow) = rest.trim().strip_prefix('{') {
                let flow_start = value_col; // column of '{'
                index_flow(&mut positions, &full, flow, line_no + 1, flow_start + 1);
            }
            stack.push((indent, key));
        }
        KeyIndex { positions }
    }

    /// The position of `path`, or of its nearest parent that is present.
    pub fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut candidate = path;
        loop {
            if let Some(p) = self.positions.get(candidate) {
                return Some(*p);
            }
            candidate = &candidate[..candidate.rfind('.')?];
        }
    }
}

/// Index `a: 1, b: { c: 2 }` inside a flow mapping whose text starts at `col` (1-based).
fn index_flow(
    positions: &mut HashMap<String, (usize, usize)>,
    parent: &str,
    text: &str,
    line: usize,
    col: usize,
) {
    let mut depth = 0usize;
    let mut prefix: Vec<String> = vec![parent.to_string()];
    let mut token_start = 0usize;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' => {
                depth += 1;
                token_start = i + 1;
            }
            b'}' => {
                if depth == 0 {
                    return;
                }
                depth -= 1;
                prefix.pop();
                token_start = i + 1;
            }
            b',' => token_start = i + 1,
            b':' => {
                let key = text[token_start..i].trim().trim_matches(['"', '\'']);
                if key.is_empty() {
                    continue;
                }
                let full = format!("{}.{}", prefix.join("."), key);
                let after = &text[i + 1..];
                let value_offset = i + 1 + (after.len() - after.trim_start().len());
                positions.insert(full.clone(), (line, col + value_offset));
                if after.trim_start().starts_with('{') {
                    prefix.push(key.to_string());
                }
            }
            _ => {}
        }
    }
}

fn strip_comment(line: &str) -> &str {
    let mut in_single = false;
    let mut in_double = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            '#' if !in_single && !in_double && (i == 0 || line[..i].ends_with(' ')) => {
                return &line[..i]
            }
            _ => {}
        }
    }
    line
}

/// The colon that ends a block-mapping key (followed by a space or the end of the line).
fn find_key_colon(content: &str) -> Option<usize> {
    let bytes = content.as_bytes();
    (0..bytes.len()).find(|&i| {
        bytes[i] == b':'
            && (i + 1 == bytes.len() || bytes[i + 1] == b' ')
            && !content[..i].contains(['{', '"', '\''])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_and_flow_keys_are_located() {
        let text = "engine:\n  name: x # comment\n  api: { listen: 127.0.0.1:1 }\noianalytics:\n  intervals:\n    command_refresh: 5 parsecs\n";
        let idx = KeyIndex::new(text);
        assert_eq!(idx.find("engine.name"), Some((2, 9)));
        assert_eq!(idx.find("engine.api.listen"), Some((3, 18)));
        assert_eq!(
            idx.find("oianalytics.intervals.command_refresh"),
            Some((6, 22))
        );
        assert_eq!(idx.find("oianalytics.intervals.nope"), Some((5, 3)));
    }
}
