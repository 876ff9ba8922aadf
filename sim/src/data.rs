//! The north OIAnalytics data routes (data-plane §2): reading values (plain or gzip) and
//! multipart uploads as OIBus sends them, and what arrived, for `GET /admin/data`.
//!
//! Kept in memory only: the data is what a test sends, not the agent's protocol state.
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Read;

use chrono::{DateTime, Utc};
use oibus_actors::protocol::iso;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Values and files remembered for `recentValues` and `recentFiles`.
const RECENT_VALUES: usize = 100;
const RECENT_FILES: usize = 20;
/// (pointId, timestamp) pairs remembered to count duplicates; the oldest are forgotten past it.
const SEEN_LIMIT: usize = 1_000_000;
/// Largest decompressed body: a gzip bomb must not take the simulator down.
const MAX_INFLATED: u64 = 256 * 1024 * 1024;
/// File names remembered with their copies (for loss and duplicate checks).
const FILE_NAMES_LIMIT: usize = 100_000;
/// Latencies kept for the percentiles (the most recent ones).
const LATENCIES: usize = 100_000;
/// Problems listed in one 400 answer.
const MAX_PROBLEMS: usize = 5;

#[derive(Default)]
pub struct Data {
    values: u64,
    files: u64,
    duplicates: u64,
    requests: u64,
    /// dataSourceId → (values, files).
    by_source: BTreeMap<String, (u64, u64)>,
    seen: HashSet<u64>,
    seen_order: VecDeque<u64>,
    recent_values: VecDeque<Value>,
    recent_files: VecDeque<Value>,
    /// File name → (copies, sha256 of the first copy).
    file_names: BTreeMap<String, (u64, String)>,
    /// Receipt time minus value timestamp, in ms, of the latest values.
    latencies: VecDeque<f64>,
}

impl Data {
    pub fn record_values(&mut self, source: &str, values: Vec<Value>, at: DateTime<Utc>) {
        self.requests += 1;
        self.values += values.len() as u64;
        self.by_source.entry(source.to_owned()).or_default().0 += values.len() as u64;
        let recent_from = values.len().saturating_sub(RECENT_VALUES);
        for (index, value) in values.into_iter().enumerate() {
            if let Some(ts) = value["timestamp"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            {
                let ms = (at - ts.with_timezone(&Utc))
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1000.0;
                if self.latencies.len() == LATENCIES {
                    self.latencies.pop_front();
                }
                self.latencies.push_back(ms);
            }
            let mut hasher = DefaultHasher::new();
            (value["pointId"].as_str(), value["timestamp"].as_str()).hash(&mut hasher);
            let key = hasher.finish();
            if !self.seen.insert(key) {
                self.duplicates += 1;
            } else {
                self.seen_order.push_back(key);
                if self.seen_order.len() > SEEN_LIMIT {
                    if let Some(oldest) = self.seen_order.pop_front() {
                        self.seen.remove(&oldest);
                    }
                }
            }
            // Only the tail of a batch can be among the last RECENT_VALUES.
            if index >= recent_from {
                push_bounded(
                    &mut self.recent_values,
                    json!({"dataSourceId": source, "at": iso(at), "value": value}),
                    RECENT_VALUES,
                );
            }
        }
    }

    pub fn record_file(&mut self, source: &str, name: &str, bytes: &[u8], at: DateTime<Utc>) {
        self.requests += 1;
        self.files += 1;
        self.by_source.entry(source.to_owned()).or_default().1 += 1;
        let sha256: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if self.file_names.len() < FILE_NAMES_LIMIT || self.file_names.contains_key(name) {
            self.file_names
                .entry(name.to_owned())
                .or_insert_with(|| (0, sha256.clone()))
                .0 += 1;
        }
        push_bounded(
            &mut self.recent_files,
            json!({"dataSourceId": source, "at": iso(at), "name": name, "size": bytes.len(), "sha256": sha256}),
            RECENT_FILES,
        );
    }

    pub fn view(&self) -> Value {
        let by_source: serde_json::Map<String, Value> = self
            .by_source
            .iter()
            .map(|(id, (values, files))| (id.clone(), json!({"values": values, "files": files})))
            .collect();
        json!({
            "values": self.values,
            "files": self.files,
            "duplicates": self.duplicates,
            "requests": self.requests,
            "bySource": by_source,
            "recentValues": self.recent_values,
            "recentFiles": self.recent_files,
            "latencyMs": self.latency_percentiles(),
        })
    }

    /// Every file name received, with its copies and the sha256 of its first copy.
    pub fn files_view(&self) -> Value {
        let files: Vec<Value> = self
            .file_names
            .iter()
            .map(|(name, (copies, sha256))| json!({"name": name, "copies": copies, "sha256": sha256}))
            .collect();
        json!({ "files": files })
    }

    fn latency_percentiles(&self) -> Value {
        if self.latencies.is_empty() {
            return Value::Null;
        }
        let mut sorted: Vec<f64> = self.latencies.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        json!({"count": sorted.len(), "p50": at(0.5), "p99": at(0.99), "max": at(1.0)})
    }

    pub fn reset(&mut self) {
        *self = Data::default();
    }
}

fn push_bounded(list: &mut VecDeque<Value>, value: Value, limit: usize) {
    if list.len() == limit {
        list.pop_front();
    }
    list.push_back(value);
}

/// A values body: a JSON array of `{pointId, timestamp, data: {value, …}}`, gunzipped first
/// when `compressed`. `Err` lists the problems.
pub fn parse_values(body: &[u8], compressed: bool) -> Result<Vec<Value>, String> {
    let inflated;
    let body = if compressed {
        inflated = gunzip(body).map_err(|e| format!("body is not a gzip stream: {e}"))?;
        &inflated[..]
    } else {
        body
    };
    let values = match serde_json::from_slice(body) {
        Ok(Value::Array(values)) => values,
        Ok(_) => return Err("body: expected a JSON array of values".to_owned()),
        Err(e) => return Err(format!("body is not JSON: {e}")),
    };
    let problems: Vec<String> = values
        .iter()
        .enumerate()
        .filter_map(|(i, value)| value_problem(value).map(|p| format!("body[{i}]{p}")))
        .take(MAX_PROBLEMS)
        .collect();
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems.join("; "))
    }
}

fn value_problem(value: &Value) -> Option<String> {
    let Some(object) = value.as_object() else {
        return Some(": expected an object {pointId, timestamp, data}".to_owned());
    };
    for key in ["pointId", "timestamp"] {
        match object.get(key) {
            Some(Value::String(text)) if !text.is_empty() => {}
            _ => return Some(format!(".{key}: expected a non-empty string")),
        }
    }
    if let Some(Err(_)) = object["timestamp"]
        .as_str()
        .map(DateTime::parse_from_rfc3339)
    {
        return Some(".timestamp: expected an ISO 8601 date".to_owned());
    }
    match object.get("data") {
        Some(Value::Object(data)) if data.contains_key("value") => None,
        _ => Some(".data: expected an object with a value".to_owned()),
    }
}

/// The one `file` part of a `multipart/form-data` body: its filename and content, gunzipped
/// when the name ends `.gz`.
pub fn parse_upload(content_type: &str, body: &[u8]) -> Result<(String, Vec<u8>), String> {
    let boundary = boundary_of(content_type).ok_or_else(|| {
        format!("Content-Type must be multipart/form-data with a boundary, got {content_type:?}")
    })?;
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body
        .strip_prefix(delimiter.as_bytes())
        .ok_or("body does not start with the boundary")?;
    loop {
        if rest.starts_with(b"--") {
            break; // the closing delimiter
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("boundary not followed by CRLF")?;
        let end = find(rest, format!("\r\n{delimiter}").as_bytes())
            .ok_or("a part is not closed by the boundary")?;
        parts.push(&rest[..end]);
        rest = &rest[end + 2 + delimiter.len()..];
    }
    let files: Vec<(String, &[u8])> = parts
        .into_iter()
        .filter_map(|part| {
            let head_end = find(part, b"\r\n\r\n")?;
            let head = String::from_utf8_lossy(&part[..head_end]);
            let disposition = head.split("\r\n").find(|line| {
                line.to_ascii_lowercase()
                    .starts_with("content-disposition:")
            })?;
            disposition.contains("name=\"file\"").then(|| {
                let filename = disposition
                    .split("filename=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_default()
                    .to_owned();
                (filename, &part[head_end + 4..])
            })
        })
        .collect();
    let [(filename, content)] = files.as_slice() else {
        return Err(format!(
            "expected exactly one part named \"file\", got {}",
            files.len()
        ));
    };
    if filename.is_empty() {
        return Err("the file part has no filename".to_owned());
    }
    let content = if filename.ends_with(".gz") {
        gunzip(content).map_err(|e| format!("{filename} is not a gzip stream: {e}"))?
    } else {
        content.to_vec()
    };
    Ok((filename.clone(), content))
}

fn boundary_of(content_type: &str) -> Option<&str> {
    let mut fields = content_type.split(';');
    if !fields
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    fields
        .find_map(|field| field.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(std::io::Error::other("inflates past 256 MiB"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
