//! North console (OIBus `north-console.ts`): with `verbose` (the default) a table of the values,
//! setpoints or file, otherwise a one-line summary, on the agent's stdout.

use std::io::Write as _;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{ConnectorError, Delivery, SettingsReader};
use crate::content::ContentType;

pub struct ConsoleNorth {
    verbose: bool,
}

impl ConsoleNorth {
    /// `settings`: `{verbose}` (default true).
    pub fn new(name: &str, settings: &Value) -> Result<ConsoleNorth, ConnectorError> {
        let label = format!("north '{name}'");
        Ok(ConsoleNorth {
            verbose: SettingsReader::new(&label, settings).bool_or("verbose", true)?,
        })
    }

    /// Prints the entry; time-values, setpoint and any only, as OIBus's console.
    pub async fn send(&self, content_type: ContentType, filename: &str, body: Bytes) -> Delivery {
        let text = match self.render(content_type, filename, &body) {
            Ok(text) => text,
            Err(reason) => return Delivery::Failed(reason),
        };
        match std::io::stdout().lock().write_all(text.as_bytes()) {
            Ok(()) => Delivery::Sent,
            Err(e) => Delivery::Retry(format!("The agent is unable to write to STDOUT. {e}")),
        }
    }

    /// Writes a test line and table to stdout, as OIBus does; `{"items": []}`.
    pub async fn test_connection(&self) -> Result<Value, String> {
        let text = format!(
            "North Console output test.\r\n{}",
            table(
                &["data"],
                &[vec!["'foo'".to_owned()], vec!["'bar'".to_owned()]]
            )
        );
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| format!("The agent is unable to write to STDOUT. {e}"))?;
        Ok(json!({"items": []}))
    }

    /// What [`ConsoleNorth::send`] prints.
    fn render(
        &self,
        content_type: ContentType,
        filename: &str,
        body: &[u8],
    ) -> Result<String, String> {
        let (columns, noun): (&[&str], &str) = match content_type {
            ContentType::Any if self.verbose => {
                let row = vec![quoted(filename), body.len().to_string()];
                return Ok(table(&["filename", "fileSize"], &[row]));
            }
            ContentType::Any => return Ok("North Console sent 1 file.\r\n".to_owned()),
            ContentType::TimeValues => (&["pointId", "timestamp", "data"], "values"),
            ContentType::Setpoint => (&["reference", "value"], "setpoint"),
            other => {
                return Err(format!(
                    "Content type {other} is not supported by north console"
                ))
            }
        };
        let elements: Vec<Value> = serde_json::from_slice(body)
            .map_err(|e| format!("The {content_type} content is not a JSON array: {e}"))?;
        if !self.verbose {
            return Ok(format!("North Console sent {} {noun}.\r\n", elements.len()));
        }
        let rows: Vec<Vec<String>> = elements
            .iter()
            .map(|element| {
                columns
                    .iter()
                    .map(|column| element.get(column).map(cell).unwrap_or_default())
                    .collect()
            })
            .collect();
        Ok(table(columns, &rows))
    }
}

fn quoted(text: &str) -> String {
    format!("'{text}'")
}

/// A cell as Node's `console.table` shows it: strings quoted, the rest as JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => quoted(text),
        other => other.to_string(),
    }
}

/// A box-drawn table with an `(index)` column, like Node's `console.table`.
fn table(columns: &[&str], rows: &[Vec<String>]) -> String {
    let mut header = vec!["(index)".to_owned()];
    header.extend(columns.iter().map(|c| (*c).to_owned()));
    let indexed: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            std::iter::once(i.to_string())
                .chain(row.iter().cloned())
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            std::iter::once(&header)
                .chain(&indexed)
                .map(|row| row.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    let rule = |left: &str, mid: &str, right: &str| {
        let bars: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
        format!("{left}{}{right}\r\n", bars.join(mid))
    };
    let line = |row: &Vec<String>| {
        let cells: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let text = row.get(i).map_or("", String::as_str);
                format!(" {text}{} ", " ".repeat(w - 2 - text.chars().count()))
            })
            .collect();
        format!("│{}│\r\n", cells.join("│"))
    };
    let mut out = rule("┌", "┬", "┐");
    out.push_str(&line(&header));
    out.push_str(&rule("├", "┼", "┤"));
    for row in &indexed {
        out.push_str(&line(row));
    }
    out.push_str(&rule("└", "┴", "┘"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &[u8] = br#"[{"pointId":"p1","timestamp":"t1","data":{"value":"1"}},{"pointId":"p2","timestamp":"t2","data":{"value":"2"}}]"#;

    fn console(verbose: bool) -> ConsoleNorth {
        ConsoleNorth::new("c", &json!({ "verbose": verbose })).unwrap()
    }

    #[test]
    fn without_verbose_a_summary_line_is_printed() {
        let quiet = console(false);
        assert_eq!(
            quiet.render(ContentType::TimeValues, "v.json", VALUES),
            Ok("North Console sent 2 values.\r\n".to_owned())
        );
        assert_eq!(
            quiet.render(
                ContentType::Setpoint,
                "s.json",
                br#"[{"reference":"r","value":1}]"#
            ),
            Ok("North Console sent 1 setpoint.\r\n".to_owned())
        );
        assert_eq!(
            quiet.render(ContentType::Any, "f.csv", b"abc"),
            Ok("North Console sent 1 file.\r\n".to_owned())
        );
    }

    #[test]
    fn verbose_prints_a_table_of_the_values() {
        let text = console(true)
            .render(ContentType::TimeValues, "v.json", VALUES)
            .unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines[1],
            "│ (index) │ pointId │ timestamp │ data          │"
        );
        assert_eq!(
            lines[3],
            "│ 0       │ 'p1'    │ 't1'      │ {\"value\":\"1\"} │"
        );
        assert_eq!(lines.len(), 7, "{text}");
    }

    #[test]
    fn verbose_file_shows_its_name_and_size() {
        let text = console(true)
            .render(ContentType::Any, "f.csv", b"abc")
            .unwrap();
        assert!(text.contains("│ 0       │ 'f.csv'  │ 3        │"), "{text}");
    }

    #[test]
    fn unsupported_or_malformed_content_fails() {
        let north = console(true);
        assert!(north
            .render(ContentType::Modbus, "m.json", b"[]")
            .unwrap_err()
            .ends_with("not supported by north console"));
        assert!(north
            .render(ContentType::TimeValues, "v.json", b"{")
            .is_err());
    }
}
