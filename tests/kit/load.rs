//! A workload for the proof runs (`tests/faults.rs`, `tests/soak.rs`): commands queued in the
//! simulator, each one a configuration change, and the checks that everything reached the
//! simulator in the end: one terminal status per command, every change in the last full-config
//! and history-queries messages, the log records in order.
//!
//! Checks return problems as readable sentences instead of panicking, so that a run reports
//! every violation at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::sim::{array, Sim};

/// What one queued command changes once COMPLETED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `create-scan-mode` with this name.
    ScanMode(String),
    /// `create-ip-filter` with this address.
    IpFilter(String),
    /// `create-history-query` with this name.
    HistoryQuery(String),
    /// `update-engine-general` to this name.
    EngineName(String),
}

/// The OIA routes the agent calls with its Bearer token once registered (the simulator's route
/// names, spec §2 E3–E8). E9 (upgrade-asset) is only called by `update-version` and E10 never.
pub const BEARER_ROUTES: [&str; 6] = [
    "commands-pending",
    "commands-list-by-ids",
    "commands-status",
    "configuration",
    "history-query",
    "logs",
];

/// The routes of a registration (E1, E2).
pub const REGISTRATION_ROUTES: [&str; 2] = ["registration", "check-registration"];

/// One fault behaviour of the simulator, as the runs inject it.
#[derive(Clone, Debug)]
pub struct FaultKind {
    /// Short name used in reports: `500`, `503`, `401`, `404`, `close`, `delay`, `slow`.
    pub label: &'static str,
    /// The `kind` of `POST /admin/faults`.
    pub kind: Value,
    /// How many consecutive requests of the route get it.
    pub count: u32,
}

impl FaultKind {
    /// Injects it on `route`.
    pub fn inject(&self, sim: &Sim, route: &str) {
        sim.fault(route, self.count, self.kind.clone());
    }

    /// The label of a fault as `GET /admin/faults` lists it.
    pub fn label_of(kind: &Value) -> &'static str {
        match kind["status"].as_u64() {
            Some(500) => "500",
            Some(503) => "503",
            Some(401) => "401",
            Some(404) => "404",
            Some(_) => "other status",
            None if kind.get("delay_ms").is_some() => "delay",
            None if kind.get("close").is_some() => "close",
            None if kind.get("slow_body_ms").is_some() => "slow",
            None => "unknown",
        }
    }
}

/// Every kind the simulator supports, as the agent meets them in the field: a short 500
/// outage (two answers in a row), a 503 from a proxy (HTML body), a 401 (token refused), a 404,
/// a connection dropped before the answer, an answer later than the agent's HTTP timeout
/// (served normally afterwards: the simulator stores what the agent gave up on), and a body
/// trickled in 128-byte pieces every 400 ms.
pub fn fault_kinds() -> Vec<FaultKind> {
    // Beyond the agent's per-call deadline, so the agent gives up before the answer comes.
    let delay_ms = oibus_actors::client::DEFAULT_TIMEOUT.as_millis() as u64 + 1000;
    vec![
        FaultKind {
            label: "500",
            kind: json!({"status": 500, "body": "injected server error"}),
            count: 2,
        },
        FaultKind {
            label: "503",
            kind: json!({"status": 503, "body": "<html><body>503 Service Unavailable</body></html>"}),
            count: 1,
        },
        FaultKind {
            label: "401",
            kind: json!({"status": 401, "body": {"error": "Unauthorized", "status": 401}}),
            count: 1,
        },
        FaultKind {
            label: "404",
            kind: json!({"status": 404, "body": "Not Found"}),
            count: 1,
        },
        FaultKind {
            label: "close",
            kind: json!({"close": true}),
            count: 1,
        },
        FaultKind {
            label: "delay",
            kind: json!({"delay_ms": delay_ms}),
            count: 1,
        },
        FaultKind {
            label: "slow",
            kind: json!({"slow_body_ms": 400, "chunk_bytes": 128}),
            count: 1,
        },
    ]
}

/// What `/status` says is wrong with the engine's actors: one not running, or restarted (an
/// HTTP failure must never make an actor fail).
pub fn actor_problems(status: &Value) -> Vec<String> {
    let Some(actors) = status["actors"].as_array() else {
        return vec![format!("/status lists no actors: {status}")];
    };
    let mut problems = Vec::new();
    for actor in actors {
        let name = actor["name"].as_str().unwrap_or("?");
        if actor["state"] != "running" {
            problems.push(format!("actor {name} is {}", actor["state"]));
        }
        let restarts = actor["restarts"].as_u64().unwrap_or(0);
        if restarts > 0 {
            problems.push(format!(
                "actor {name} restarted {restarts} times (last failure: {})",
                actor["last_failure"]
            ));
        }
    }
    problems
}

/// The YAML sections after `engine:` and `launcher:` for an agent of `sim`: fast intervals,
/// 2048-bit keys, and `actors` (one `name: { ... }` entry per item) under `actors:`.
pub fn agent_sections(sim: &Sim, actors: &[&str]) -> String {
    let mut yaml = super::agent::sim_section(sim, "");
    if !actors.is_empty() {
        yaml.push_str("actors:\n");
        for actor in actors {
            yaml.push_str("  ");
            yaml.push_str(actor);
            yaml.push('\n');
        }
    }
    yaml
}

/// A whole number from the environment, or `default`; panics with the variable's name when it
/// is not a number, or absent without a default.
pub fn env_number(name: &str, default: Option<u64>) -> u64 {
    match (std::env::var(name), default) {
        (Ok(text), _) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        (Err(_), Some(default)) => default,
        (Err(_), None) => panic!("{name} is required"),
    }
}

/// Every protocol violation the simulator recorded, one readable line each.
pub fn protocol_violations(sim: &Sim) -> Vec<String> {
    sim.violations()
        .iter()
        .map(|violation| {
            format!(
                "protocol violation recorded by the simulator on {} {} ({}): {}",
                violation["method"].as_str().unwrap_or("?"),
                violation["path"].as_str().unwrap_or("?"),
                violation["route"].as_str().unwrap_or("?"),
                violation["reason"].as_str().unwrap_or("?"),
            )
        })
        .collect()
}

/// The report line for commands whose end left no log record at the simulator.
pub fn missing_markers(missing: &[String]) -> String {
    const SHOWN: usize = 12;
    let shown: Vec<&str> = missing.iter().take(SHOWN).map(String::as_str).collect();
    let more = missing.len().saturating_sub(SHOWN);
    format!(
        "{} commands have no \"command finished\"/\"command cancelled\" log record at the simulator: {}{}",
        missing.len(),
        shown.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    )
}

pub fn is_terminal(status: &str) -> bool {
    matches!(status, "COMPLETED" | "ERRORED" | "CANCELLED")
}

/// The commands queued so far, in queue order, and which of them the test asked to cancel.
pub struct Workload {
    prefix: String,
    rng: StdRng,
    next: u64,
    queued: Vec<(String, Change)>,
    index: HashMap<String, usize>,
    cancel_requested: BTreeSet<String>,
}

impl Workload {
    /// Ids and names start with `prefix`; `seed` makes the mix of commands reproducible.
    pub fn new(prefix: &str, seed: u64) -> Workload {
        Workload {
            prefix: prefix.to_owned(),
            rng: StdRng::seed_from_u64(seed),
            next: 0,
            queued: Vec::new(),
            index: HashMap::new(),
            cancel_requested: BTreeSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.queued.len()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.queued.iter().map(|(id, _)| id.as_str())
    }

    pub fn cancel_requested(&self) -> usize {
        self.cancel_requested.len()
    }

    /// Mostly scan modes (the cheapest change), with engine renames, IP filters and history
    /// queries mixed in so that both message kinds keep flowing.
    fn next_command(&mut self) -> (String, Change, Value) {
        self.next += 1;
        let n = self.next;
        let id = format!("{}{n:06}", self.prefix);
        let roll = self.rng.gen_range(0..20);
        let (change, command_type, fields) = match roll {
            0..=2 => {
                let name = format!("{}-engine-{n}", self.prefix);
                let fields = json!({"commandContent": {"name": name}});
                (Change::EngineName(name), "update-engine-general", fields)
            }
            3..=4 => {
                let address = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
                let fields = json!({"commandContent": {"address": address, "description": ""}});
                (Change::IpFilter(address), "create-ip-filter", fields)
            }
            5..=6 => {
                let name = format!("{}-history-{n}", self.prefix);
                let history = json!({"name": name, "description": "", "queryTimeRange": {},
                    "caching": null, "northTransformers": [], "southType": "mssql",
                    "southSettings": {"password": ""}, "items": [], "northType": "console",
                    "northSettings": {}});
                let fields = json!({"retrieveSecretsFromSouth": null, "retrieveSecretsFromNorth": null,
                    "retrieveSecretsFromHistoryQuery": null, "commandContent": history});
                (Change::HistoryQuery(name), "create-history-query", fields)
            }
            _ => {
                let name = format!("{}-mode-{n}", self.prefix);
                let fields = json!({"commandContent":
                    {"name": name, "description": "", "cron": "0 * * * * *"}});
                (Change::ScanMode(name), "create-scan-mode", fields)
            }
        };
        let mut command = json!({"id": id, "type": command_type, "targetVersion": oibus_actors::COMPATIBLE_OIBUS_VERSION});
        if let (Some(command), Value::Object(fields)) = (command.as_object_mut(), fields) {
            command.extend(fields);
        }
        (id, change, command)
    }

    /// Queues `count` commands in the simulator, in one admin call; returns their ids.
    pub fn burst(&mut self, sim: &Sim, count: usize) -> Vec<String> {
        let mut commands = Vec::with_capacity(count);
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            let (id, change, command) = self.next_command();
            self.index.insert(id.clone(), self.queued.len());
            self.queued.push((id.clone(), change));
            commands.push(command);
            ids.push(id);
        }
        sim.queue(&Value::Array(commands));
        ids
    }

    /// Asks the simulator to cancel the newest scan-mode command the agent reported RETRIEVED
    /// and nothing else yet: it ends CANCELLED if the agent had not started it, COMPLETED
    /// otherwise. (A command cancelled before the agent fetched it is never served, so it
    /// would never get a status at all.)
    pub fn cancel_retrieved(&mut self, sim: &Sim) -> Option<String> {
        let latest = sim.admin_get("/admin/statuses?limit=1")["latest"].clone();
        let id = self
            .queued
            .iter()
            .rev()
            .find(|(id, change)| {
                matches!(change, Change::ScanMode(_))
                    && !self.cancel_requested.contains(id)
                    && latest[id.as_str()]["status"] == "RETRIEVED"
            })
            .map(|(id, _)| id.clone())?;
        sim.admin_post(&format!("/admin/commands/{id}/cancel"), &json!({}));
        self.cancel_requested.insert(id.clone());
        Some(id)
    }

    /// How many queued commands have a terminal status as their latest one (a cheap read:
    /// the `latest` map only).
    pub fn terminal_count(&self, sim: &Sim) -> usize {
        self.latest_finals(sim)
            .values()
            .filter(|status| is_terminal(status))
            .count()
    }

    /// The latest status of every queued command as the simulator ranks them (a cheap read:
    /// the `latest` map only); `""` for a command without any.
    pub fn latest_finals(&self, sim: &Sim) -> BTreeMap<String, String> {
        let latest = sim.admin_get("/admin/statuses?limit=1")["latest"].clone();
        self.ids()
            .map(|id| {
                let status = latest[id]["status"].as_str().unwrap_or_default();
                (id.to_owned(), status.to_owned())
            })
            .collect()
    }

    /// Every status record received, per command id, in arrival order.
    fn statuses_by_id(sim: &Sim) -> BTreeMap<String, Vec<String>> {
        let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for received in array(&sim.admin_get("/admin/statuses"), "records") {
            let record = &received["record"];
            if let (Some(id), Some(status)) = (record["id"].as_str(), record["status"].as_str()) {
                by_id
                    .entry(id.to_owned())
                    .or_default()
                    .push(status.to_owned());
            }
        }
        by_id
    }

    /// Checks that every queued command has exactly one terminal status at the simulator:
    /// COMPLETED, or CANCELLED for a command the test cancelled. Returns the final status per
    /// command (for the other checks) and the problems.
    pub fn check_statuses(&self, sim: &Sim) -> (BTreeMap<String, String>, Vec<String>) {
        let by_id = Workload::statuses_by_id(sim);
        let mut finals = BTreeMap::new();
        let mut problems = Vec::new();
        for (id, _) in &self.queued {
            let received = by_id.get(id).map(Vec::as_slice).unwrap_or_default();
            let terminal: BTreeSet<&str> = received
                .iter()
                .map(String::as_str)
                .filter(|status| is_terminal(status))
                .collect();
            let allowed: &[&str] = if self.cancel_requested.contains(id) {
                &["COMPLETED", "CANCELLED"]
            } else {
                &["COMPLETED"]
            };
            match terminal.len() {
                0 => problems.push(format!(
                    "command {id}: no terminal status reached the simulator (received {received:?})"
                )),
                1 => {
                    let status = terminal.first().copied().unwrap_or_default();
                    if !allowed.contains(&status) {
                        problems.push(format!(
                            "command {id}: ended {status}, expected one of {allowed:?}"
                        ));
                    }
                    finals.insert(id.clone(), status.to_owned());
                }
                _ => problems.push(format!(
                    "command {id}: more than one terminal status {terminal:?} (received {received:?})"
                )),
            }
        }
        (finals, problems)
    }

    /// Checks the last full-config and history-queries messages against the COMPLETED
    /// commands in `finals`: every change present exactly once, no cancelled one present, the
    /// engine named after the last rename.
    pub fn check_config(&self, sim: &Sim, finals: &BTreeMap<String, String>) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(full) = last_message(sim, "full-config") else {
            return vec!["no full-config message reached the simulator".into()];
        };
        let history = last_message(sim, "history-queries");
        let names = |list: &Value, pointer: &str| -> Vec<String> {
            list.as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|entry| entry.pointer(pointer).and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let scan_modes = names(&full["scanModes"], "/settings/name");
        let ip_filters = names(&full["ipFilters"], "/settings/address");
        let histories = history
            .as_ref()
            .map(|body| names(&body["historyQueries"], "/settings/name"))
            .unwrap_or_default();
        let mut last_name = None;
        for (id, change) in &self.queued {
            let completed = finals.get(id).is_some_and(|status| status == "COMPLETED");
            let (list, wanted, what) = match change {
                Change::ScanMode(name) => (&scan_modes, name, "scan mode"),
                Change::IpFilter(address) => (&ip_filters, address, "IP filter"),
                Change::HistoryQuery(name) => (&histories, name, "history query"),
                Change::EngineName(name) => {
                    if completed {
                        last_name = Some(name.clone());
                    }
                    continue;
                }
            };
            let present = list.iter().filter(|entry| *entry == wanted).count();
            match (completed, present) {
                (true, 1) | (false, 0) => {}
                (true, 0) => problems.push(format!(
                    "{what} {wanted} (command {id}, COMPLETED) is missing from the last message"
                )),
                (false, _) => problems.push(format!(
                    "{what} {wanted} (command {id}, not COMPLETED) is in the last message"
                )),
                (true, n) => problems.push(format!(
                    "{what} {wanted} (command {id}) appears {n} times in the last message"
                )),
            }
        }
        if let Some(expected) = last_name {
            let reported = full["engine"]["settings"]["general"]["name"]
                .as_str()
                .unwrap_or_default();
            if reported != expected {
                problems.push(format!(
                    "the last full-config names the engine {reported:?}, the last rename was {expected:?}"
                ));
            }
        }
        problems
    }

    /// Checks the agent's "command finished" and "command cancelled" log records: one per
    /// command that ended locally, and the "command finished" ones in queue order (commands run
    /// oldest first, and the log queue is FIFO). `records` are distinct, in first-arrival order.
    /// Returns the commands in `finals` without such a record (the caller decides whether that
    /// is allowed: a SIGKILL loses the records still in the in-memory channel) and the order
    /// problems.
    pub fn check_log_markers(
        &self,
        records: &[Value],
        finals: &BTreeMap<String, String>,
    ) -> (Vec<String>, Vec<String>) {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut problems = Vec::new();
        let mut last: Option<(usize, &str)> = None;
        for record in records {
            let message = record["message"].as_str().unwrap_or_default();
            let finished = message.starts_with("command finished");
            if !finished && !message.starts_with("command cancelled by OIAnalytics") {
                continue;
            }
            let Some(id) = field(message, "id") else {
                continue;
            };
            let Some(&position) = self.index.get(id) else {
                continue;
            };
            if !seen.insert(id.to_owned()) || !finished {
                continue;
            }
            if let Some((previous, previous_id)) = last {
                if position < previous {
                    problems.push(format!(
                        "log record \"command finished\" of {id} (queued #{position}) arrived after the one of {previous_id} (queued #{previous})"
                    ));
                }
            }
            last = Some((position, self.queued[position].0.as_str()));
        }
        let missing = finals
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        (missing, problems)
    }
}

/// The value of `key=` in a rendered log message (`command finished id=x type=y ...`).
fn field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .split_whitespace()
        .find_map(|token| token.strip_prefix(key)?.strip_prefix('='))
        .map(|value| value.trim_matches('"'))
}

/// The body of the newest message of `kind` the simulator received, reading only the end of
/// the listing (bodies are large: a full-config carries every entity).
pub fn last_message(sim: &Sim, kind: &str) -> Option<Value> {
    let total = sim.admin_get("/admin/messages?limit=0")["count"]
        .as_u64()
        .unwrap_or(0);
    let mut window = 8u64;
    loop {
        let since = total.saturating_sub(window);
        let page = sim.admin_get(&format!("/admin/messages?kind={kind}&since={since}"));
        if let Some(last) = array(&page, "messages").last() {
            return Some(last["body"].clone());
        }
        if since == 0 {
            return None;
        }
        window = window.saturating_mul(4);
    }
}

/// Every log record the simulator received, in arrival order, without repeats (a batch the
/// agent posted again after a timeout arrives twice), and how many repeats there were.
pub fn distinct_log_records(sim: &Sim) -> (Vec<Value>, usize) {
    let mut seen = BTreeSet::new();
    let mut distinct = Vec::new();
    let mut repeats = 0;
    for received in array(&sim.admin_get("/admin/logs"), "records") {
        let record = received["record"].clone();
        if seen.insert(record.to_string()) {
            distinct.push(record);
        } else {
            repeats += 1;
        }
    }
    (distinct, repeats)
}

/// Log records whose timestamp is more than `tolerance_ms` older than one that arrived before
/// it: the queue is FIFO, so only records rendered on different threads at nearly the same
/// moment may swap.
pub fn log_order_problems(records: &[Value], tolerance_ms: i64) -> Vec<String> {
    let mut newest: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut problems = Vec::new();
    for (position, record) in records.iter().enumerate() {
        let Some(at) = record["timestamp"]
            .as_str()
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            .map(|at| at.with_timezone(&chrono::Utc))
        else {
            problems.push(format!(
                "log record #{position} has no readable timestamp: {record}"
            ));
            continue;
        };
        if let Some(newest) = newest {
            let behind = (newest - at).num_milliseconds();
            if behind > tolerance_ms {
                problems.push(format!(
                    "log record #{position} ({at}, {:?}) arrived after one of {newest}: {behind} ms out of order",
                    record["message"].as_str().unwrap_or_default()
                ));
            }
        }
        newest = Some(newest.map_or(at, |newest| newest.max(at)));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_field_is_read_with_or_without_quotes() {
        let message = "command finished id=f000012 type=create-scan-mode result=\"a b\"";
        assert_eq!(field(message, "id"), Some("f000012"));
        assert_eq!(field(message, "type"), Some("create-scan-mode"));
        assert_eq!(field("x id=\"q\"", "id"), Some("q"));
        assert_eq!(field(message, "status"), None);
    }

    #[test]
    fn records_older_than_the_tolerance_are_out_of_order() {
        let record = |at: &str| json!({"timestamp": at, "message": "m"});
        let records = [
            record("2024-01-01T00:00:01.000Z"),
            record("2024-01-01T00:00:00.900Z"),
            record("2024-01-01T00:00:00.500Z"),
        ];
        let problems = log_order_problems(&records, 250);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("#2"), "{problems:?}");
    }
}
