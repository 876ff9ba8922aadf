//! Crash tests (issues 5 and 10): SIGKILL the engine at random moments while commands flow,
//! restart it, and check exactly what DESIGN.md "What nothing lost means here" promises.
//!
//! One run: a simulator, one agent home, `trials` engine processes each killed with SIGKILL, then
//! a final process that drains everything and stops gracefully. Each trial queues `per_trial`
//! commands (scan mode and IP filter creates, updates and deletes, engine renames, and refused
//! ones), and kills the engine after a random number of them finished in that process (plus a
//! few milliseconds of jitter), or for some trials at a random delay after the start. Between
//! two processes the test opens the dead engine's store itself and records what survived: the
//! log records in the durable queue and the metric counts.
//!
//! Checked at the end, every failure a readable [`Violation`]:
//! - commands: each has exactly one kind of terminal status at the simulator, the expected one
//!   with the expected result, and finished at most once (one `command finished` log line);
//! - entities: every scan mode and IP filter the commands created exists exactly once, under the
//!   id derived from its command id, with the last name and cron; deleted ones are gone;
//! - messages: the last full-config the simulator received shows every change;
//! - logs: every record found in the durable queue after a SIGKILL reached the simulator; the
//!   only records lost are the last ones emitted before a SIGKILL (still in the in-memory
//!   channel), and none in the process stopped gracefully;
//! - metrics: a process killed lost at most the counts of its last flush interval, never counted
//!   more than it did, and the graceful stop kept every count;
//! - the simulator recorded no protocol violation.
//!
//! `commands_survive_sigkill_at_random_moments` runs it in CI; the `#[ignore]`d
//! `nothing_promised_is_lost_across_random_sigkills` takes its size from `CRASH_*` variables and
//! is what `scripts/crash-test.sh` runs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use oibus_actors::command_executor::configure::derive_id;
use oibus_actors::entities::EntityKind;
use oibus_actors::log_shipper::QUEUE_NAME;
use oibus_actors::metrics_aggregator::actor::read_documents;
use oibus_actors::metrics_aggregator::{Family, WindowType};
use oibus_actors::store::{Cf, Queue, Store};

use crate::commands::statuses;
use crate::kit::agent::{sim_section, Agent, AgentHome};
use crate::kit::load::is_terminal;
use crate::kit::sim::Sim;
use crate::kit::{command, plain, wait_until};

/// The OIBus version OIA is told and targets (not the agent's own).
const VERSION: &str = oibus_actors::COMPATIBLE_OIBUS_VERSION;
/// Names and addresses of what the commands create, to tell them from the seeded entities.
const PREFIX: &str = "crash-";
/// Scan modes kept alive at most: creates turn into deletes above it, so full-config stays small.
const LIVE_SCAN_MODES: usize = 150;
const LIVE_IP_FILTERS: usize = 30;
/// A trial waits at most this long (plus 100 ms per command awaited) for its kill point, then
/// kills anyway and records a violation.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the final process may take to run what is left (plus 50 ms per command), and then to
/// deliver the log records still owed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// The size and timing of a crash run.
#[derive(Debug, Clone)]
pub struct Options {
    pub trials: usize,
    pub per_trial: usize,
    /// Seeds the command mix and the kill points (printed, so a run can be replayed).
    pub seed: u64,
    /// `actors.metrics_aggregator.flush_interval` of the agent.
    pub flush_interval: Duration,
    /// What a flush may take beyond its interval (timer lateness, the write itself): counts made
    /// within `flush_interval + flush_slack` before a SIGKILL may be lost.
    pub flush_slack: Duration,
    /// Share of the trials killed at a random delay after the start (start-up, recovery, intake)
    /// instead of after a random number of finished commands.
    pub early_kills: f64,
}

impl Options {
    /// From `CRASH_TRIALS` (default 50), `CRASH_COMMANDS` (per trial, 200), `CRASH_SEED` (random),
    /// `CRASH_FLUSH_MS` (1000), `CRASH_FLUSH_SLACK_MS` (500), `CRASH_EARLY_KILLS` (0.1).
    pub fn from_env() -> Options {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(text) => text
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
                Err(_) => default,
            }
        }
        Options {
            trials: var("CRASH_TRIALS", 50),
            per_trial: var("CRASH_COMMANDS", 200),
            seed: var("CRASH_SEED", rand::random()),
            flush_interval: Duration::from_millis(var("CRASH_FLUSH_MS", 1000)),
            flush_slack: Duration::from_millis(var("CRASH_FLUSH_SLACK_MS", 500)),
            early_kills: var("CRASH_EARLY_KILLS", 0.1),
        }
    }
}

/// One broken promise: where (a trial, the final process, or the end state) and what.
#[derive(Debug, Clone)]
pub struct Violation {
    pub at: String,
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.what)
    }
}

/// What a crash run did and found.
#[derive(Debug, Default)]
pub struct Report {
    pub trials: usize,
    pub commands: usize,
    /// Configuration messages (full-config and history-queries) the simulator received.
    pub messages: usize,
    /// Distinct log records the simulator received.
    pub logs: usize,
    pub violations: Vec<Violation>,
    /// Figures worth printing that are not violations (losses the design allows, duplicates).
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "crash-test: {} trials, {} commands, {} messages, {} log records, {} violations",
            self.trials,
            self.commands,
            self.messages,
            self.logs,
            self.violations.len()
        )
    }

    fn violation(&mut self, at: &str, what: String) {
        self.violations.push(Violation {
            at: at.to_owned(),
            what,
        });
    }

    /// Violations, notes and the summary, one per line.
    pub fn print(&self) {
        for v in &self.violations {
            eprintln!("VIOLATION {v}");
        }
        for note in &self.notes {
            eprintln!("note: {note}");
        }
        eprintln!("crash-test: finished in {:.0?}", self.elapsed);
        eprintln!("{}", self.summary());
    }
}

// ---------------------------------------------------------------------------------------------
// The commands and what they must leave behind.

#[derive(Debug, Clone, PartialEq, Eq)]
struct ScanModeModel {
    name: String,
    cron: String,
    /// The command that created it (its id is derived from this command id).
    created_by: String,
}

/// The entities the commands queued so far leave once all have run, in queue order.
#[derive(Debug, Default)]
struct Model {
    scan_modes: BTreeMap<String, ScanModeModel>,
    /// id → (address, creating command).
    ip_filters: BTreeMap<String, (String, String)>,
    engine_name: Option<String>,
}

/// The terminal status a command must end with.
#[derive(Debug, Clone)]
struct Expected {
    status: &'static str,
    result: String,
    /// What the command does, for messages.
    what: String,
}

/// Generates the command flow and keeps the model of its outcome.
#[derive(Default)]
struct Plan {
    model: Model,
    expected: HashMap<String, Expected>,
    /// Command ids in queue order.
    order: Vec<String>,
    addresses: u32,
}

fn scan_mode_content(name: &str, cron: &str) -> Value {
    json!({"commandContent": {"name": name, "description": "crash test", "cron": cron}})
}

impl Plan {
    /// `n` more commands for `trial`, the model updated as if they all ran in order.
    fn batch(&mut self, rng: &mut StdRng, trial: usize, n: usize) -> Vec<Value> {
        (0..n).map(|i| self.next(rng, trial, i)).collect()
    }

    fn expect(&mut self, id: &str, status: &'static str, result: String, what: String) {
        self.order.push(id.to_owned());
        self.expected.insert(
            id.to_owned(),
            Expected {
                status,
                result,
                what,
            },
        );
    }

    fn pick<T: Clone>(rng: &mut StdRng, map: &BTreeMap<String, T>) -> Option<String> {
        if map.is_empty() {
            return None;
        }
        map.keys().nth(rng.gen_range(0..map.len())).cloned()
    }

    /// One command of the mix: 40 % scan mode creates, 15 % updates, 13 % deletes, 14 % IP
    /// filter creates or deletes, 3 % engine renames, 15 % refused. The live scan modes and IP
    /// filters stay bounded (creates turn into deletes), so full-config stays small.
    fn next(&mut self, rng: &mut StdRng, trial: usize, i: usize) -> Value {
        let id = format!("t{trial}-{i}");
        let name = format!("{PREFIX}{trial}-{i}");
        let live = self.model.scan_modes.len();
        let target = Self::pick(rng, &self.model.scan_modes);
        match (rng.gen_range(0..100), target) {
            (0..=39, Some(target)) if live >= LIVE_SCAN_MODES => {
                self.delete_scan_mode(&id, &target)
            }
            (0..=39, _) => self.create_scan_mode(&id, &name),
            (40..=54, Some(target)) => self.update_scan_mode(&id, &target, &name),
            (55..=67, Some(target)) => self.delete_scan_mode(&id, &target),
            (40..=67, None) => self.create_scan_mode(&id, &name),
            (roll @ 68..=81, _) => {
                let filters = self.model.ip_filters.len();
                let delete = filters >= LIVE_IP_FILTERS || (roll >= 76 && filters > 0);
                match Self::pick(rng, &self.model.ip_filters).filter(|_| delete) {
                    Some(target) => self.delete_ip_filter(&id, &target),
                    None => self.create_ip_filter(&id),
                }
            }
            (82..=84, _) => {
                let engine = format!("{PREFIX}engine-{trial}-{i}");
                self.model.engine_name = Some(engine.clone());
                self.expect(
                    &id,
                    "COMPLETED",
                    "Engine name updated successfully".into(),
                    format!("update-engine-general to {engine}"),
                );
                command(
                    &id,
                    "update-engine-general",
                    json!({"commandContent": {"name": engine}}),
                )
            }
            _ => self.refused(rng, &id, &name),
        }
    }

    fn update_scan_mode(&mut self, id: &str, target: &str, name: &str) -> Value {
        let name = format!("{name}-renamed");
        let cron = "*/5 * * * * *";
        let mut created_by = String::new();
        if let Some(mode) = self.model.scan_modes.get_mut(target) {
            mode.name = name.clone();
            mode.cron = cron.to_owned();
            created_by = mode.created_by.clone();
        }
        self.expect(
            id,
            "COMPLETED",
            "Scan mode updated successfully".into(),
            format!("update-scan-mode {target} (created by {created_by}) to {name}"),
        );
        let mut c = command(id, "update-scan-mode", scan_mode_content(&name, cron));
        c["scanModeId"] = json!(target);
        c
    }

    fn create_ip_filter(&mut self, id: &str) -> Value {
        self.addresses += 1;
        let n = self.addresses;
        let address = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
        let filter_id = derive_id(id, EntityKind::IpFilter.as_str());
        self.model
            .ip_filters
            .insert(filter_id.clone(), (address.clone(), id.to_owned()));
        self.expect(
            id,
            "COMPLETED",
            "IP Filter created successfully".into(),
            format!("create-ip-filter {address} (id {filter_id})"),
        );
        command(
            id,
            "create-ip-filter",
            json!({"commandContent": {"address": address, "description": "crash test"}}),
        )
    }

    fn delete_ip_filter(&mut self, id: &str, target: &str) -> Value {
        let (address, by) = self.model.ip_filters.remove(target).unwrap_or_default();
        self.expect(
            id,
            "COMPLETED",
            "IP Filter deleted successfully".into(),
            format!("delete-ip-filter {target} ({address}, created by {by})"),
        );
        command(id, "delete-ip-filter", json!({"ipFilterId": target}))
    }

    fn create_scan_mode(&mut self, id: &str, name: &str) -> Value {
        let mode_id = derive_id(id, EntityKind::ScanMode.as_str());
        let cron = "0 * * * * *";
        self.model.scan_modes.insert(
            mode_id.clone(),
            ScanModeModel {
                name: name.to_owned(),
                cron: cron.to_owned(),
                created_by: id.to_owned(),
            },
        );
        self.expect(
            id,
            "COMPLETED",
            "Scan mode created successfully".into(),
            format!("create-scan-mode {name} (id {mode_id})"),
        );
        command(id, "create-scan-mode", scan_mode_content(name, cron))
    }

    fn delete_scan_mode(&mut self, id: &str, target: &str) -> Value {
        let gone = self.model.scan_modes.remove(target);
        let (name, by) = gone.map(|m| (m.name, m.created_by)).unwrap_or_default();
        self.expect(
            id,
            "COMPLETED",
            "Scan mode deleted successfully".into(),
            format!("delete-scan-mode {target} ({name}, created by {by})"),
        );
        command(id, "delete-scan-mode", json!({"scanModeId": target}))
    }

    /// A command that must end ERRORED without touching anything.
    fn refused(&mut self, rng: &mut StdRng, id: &str, name: &str) -> Value {
        match rng.gen_range(0..4) {
            0 => {
                self.expect(
                    id,
                    "ERRORED",
                    format!("Wrong target version: 0.0.1 for OIBus version {VERSION}"),
                    format!("create-scan-mode {name} for version 0.0.1"),
                );
                let mut c = command(
                    id,
                    "create-scan-mode",
                    scan_mode_content(name, "0 * * * * *"),
                );
                c["targetVersion"] = json!("0.0.1");
                c
            }
            1 => {
                self.expect(
                    id,
                    "ERRORED",
                    format!("Command {id} of type create-certificate is not authorized"),
                    "create-certificate (denied by the YAML permissions)".into(),
                );
                command(
                    id,
                    "create-certificate",
                    json!({"commandContent": {"name": name, "description": "", "regenerateCertificate": false, "options": null}}),
                )
            }
            2 => {
                self.expect(
                    id,
                    "ERRORED",
                    "test-history-query-north-connection is not supported by oibus-agent".into(),
                    "test-history-query-north-connection (unsupported)".into(),
                );
                command(
                    id,
                    "test-history-query-north-connection",
                    json!({"historyId": "none", "northConnectorId": "none", "commandContent": {}}),
                )
            }
            _ => {
                let target = format!("nosuch-{id}");
                self.expect(
                    id,
                    "ERRORED",
                    format!("Scan mode \"{target}\" not found"),
                    format!("update-scan-mode of the unknown {target}"),
                );
                let mut c = command(
                    id,
                    "update-scan-mode",
                    scan_mode_content(name, "0 * * * * *"),
                );
                c["scanModeId"] = json!(target);
                c
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the engine logged: its console (the truth of what ran) and its OIA records.

/// One `command finished` event.
#[derive(Debug, Clone)]
struct Finished {
    at: DateTime<Utc>,
    id: String,
    command_type: String,
    status: String,
}

/// `id`, `type` and `status` of a `command finished` message (console line or OIA record):
/// `command finished id=.. type=.. status=.. result="..." elapsed_ms=..`.
fn finished_fields(text: &str) -> Option<(String, String, String)> {
    let rest = text.split_once("command finished ")?.1;
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for token in rest.split_whitespace() {
        if token.starts_with("result=") {
            break; // free text follows
        }
        if let Some((key, value)) = token.split_once('=') {
            fields.insert(key, value);
        }
    }
    let get = |key: &str| fields.get(key).map(|v| v.trim_matches('"').to_owned());
    Some((get("id")?, get("type")?, get("status")?))
}

fn parse_console_line(line: &str) -> Option<Finished> {
    let line = plain(line);
    let (id, command_type, status) = finished_fields(&line)?;
    let at = DateTime::parse_from_rfc3339(line.split_whitespace().next()?)
        .ok()?
        .with_timezone(&Utc);
    Some(Finished {
        at,
        id,
        command_type,
        status,
    })
}

/// Follows one engine process's console output (its log file) for `command finished` lines.
struct Console {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    finished: Vec<Finished>,
}

impl Console {
    fn new(path: &Path) -> Console {
        Console {
            path: path.to_owned(),
            offset: 0,
            partial: Vec::new(),
            finished: Vec::new(),
        }
    }

    /// Read what was appended since the last call; only complete lines count.
    fn poll(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = Vec::new();
        let Ok(read) = file.read_to_end(&mut fresh) else {
            return;
        };
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        for line in String::from_utf8_lossy(&complete).lines() {
            if let Some(finished) = parse_console_line(line) {
                self.finished.push(finished);
            }
        }
    }
}

/// Every log record the simulator received, read incrementally.
#[derive(Default)]
struct SimLogs {
    next: u64,
    /// Canonical JSON of each distinct record → times received.
    seen: HashMap<String, u32>,
    /// Command id of each `command finished` record received.
    finished: HashSet<String>,
}

impl SimLogs {
    fn refresh(&mut self, sim: &Sim) {
        self.next = sim.read_since("logs", self.next, 20_000, |r| {
            let record = &r["record"];
            *self.seen.entry(record.to_string()).or_default() += 1;
            if let Some((id, _, _)) =
                finished_fields(record["message"].as_str().unwrap_or_default())
            {
                self.finished.insert(id);
            }
        });
    }
}

/// The last full-config the simulator received, and how many messages it received.
#[derive(Default)]
struct SimMessages {
    next: u64,
    count: usize,
    last_full_config: Option<Value>,
}

impl SimMessages {
    fn refresh(&mut self, sim: &Sim) {
        self.next = sim.read_since("messages", self.next, 500, |message| {
            self.count += 1;
            if message["kind"] == "full-config" {
                self.last_full_config = Some(message["body"].clone());
            }
        });
    }
}

/// Every status record the simulator received, grouped by command id, in arrival order.
fn sim_statuses(sim: &Sim) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    sim.read_since("statuses", 0, 50_000, |r| {
        let id = r["record"]["id"].as_str().unwrap_or_default().to_owned();
        out.entry(id).or_default().push(r["record"].clone());
    });
    out
}

// ---------------------------------------------------------------------------------------------
// What survived in the store of a dead engine.

/// Metric counts of the CommandExecutor by (operation type, result).
type Counts = BTreeMap<(String, String), u64>;

#[derive(Debug, Default)]
struct Snapshot {
    counts: Counts,
    /// The log records in the durable queue, canonical JSON.
    queued: Vec<String>,
    /// Records the queue's cap dropped since it was created.
    dropped: u64,
}

/// Open the store of a stopped engine and read what it kept.
fn snapshot(data_dir: &Path, since: DateTime<Utc>) -> Result<Snapshot, String> {
    let path = data_dir.join("store");
    let store = Store::open(&path).map_err(|e| e.to_string())?;
    let queue = Queue::open(&store, Cf::Logs, QUEUE_NAME, u64::MAX).map_err(|e| e.to_string())?;
    let mut queued = Vec::new();
    for (seq, bytes) in queue.peek(usize::MAX).map_err(|e| e.to_string())? {
        let record: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("queued log record {seq} is not JSON: {e}"))?;
        queued.push(record.to_string());
    }
    let from = since - TimeDelta::days(1);
    let to = Utc::now() + TimeDelta::days(1);
    let docs = read_documents(
        &store,
        WindowType::Months,
        Some(Family::Operation),
        from,
        to,
    )
    .map_err(|e| e.to_string())?;
    let mut counts = Counts::new();
    for doc in docs {
        let sample = doc.sample();
        if sample.tag("source") != Some("COMMANDEXECUTOR") {
            continue;
        }
        let key = (
            sample.tag("operationType").unwrap_or_default().to_owned(),
            sample.tag("result").unwrap_or_default().to_owned(),
        );
        *counts.entry(key).or_default() += doc.total();
    }
    Ok(Snapshot {
        counts,
        queued,
        dropped: queue.stats().dropped,
    })
}

/// The metric key a finished command is counted under.
fn count_key(f: &Finished) -> (String, String) {
    let result = if f.status == "COMPLETED" { "OK" } else { "KO" };
    (f.command_type.clone(), result.to_owned())
}

// ---------------------------------------------------------------------------------------------
// The run.

/// One engine process: what it logged, when it was killed, what its store kept.
struct Run {
    at: String,
    finished: Vec<Finished>,
    /// `None` for the final, graceful stop.
    killed_at: Option<DateTime<Utc>>,
    snapshot: Snapshot,
}

fn write_config(home: &AgentHome, sim: &Sim, opts: &Options) {
    let yaml = format!(
        "engine:\n  name: crash-agent\n  data_dir: {}\n  api: {{ listen: {} }}\n  log: {{ console: info, oia: info }}\n{}actors:\n  log_shipper: {{ interval: 1s }}\n  metrics_aggregator: {{ flush_interval: {}ms }}\n",
        home.data_dir().display(),
        home.api,
        sim_section(sim, "  permissions: { createCertificate: false }\n"),
        opts.flush_interval.as_millis(),
    );
    std::fs::write(home.config_path(), yaml).expect("write the agent configuration");
}

fn start(home: &AgentHome) -> Agent {
    // Plain console lines: they are parsed.
    home.start_with_env(&[("NO_COLOR", "1")])
}

/// When a trial kills the engine.
enum KillPoint {
    /// This long after the trial started.
    Delay(Duration),
    /// Once this many commands finished in this process, then `jitter` later.
    Commands { count: usize, jitter: Duration },
}

impl fmt::Display for KillPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KillPoint::Delay(delay) => write!(f, "{delay:?} after the start"),
            KillPoint::Commands { count, jitter } => {
                write!(f, "{jitter:?} after command {count} finished")
            }
        }
    }
}

/// Run a crash test with `opts`. Panics only when the harness itself cannot work (the simulator
/// or the store cannot be read); everything the agent does wrong is a violation in the report.
pub fn run(opts: &Options) -> Report {
    eprintln!(
        "crash-test: seed {} ({} trials of {} commands; replay with CRASH_SEED={})",
        opts.seed, opts.trials, opts.per_trial, opts.seed
    );
    let mut harness = Harness::new(opts);
    let mut agent = Some(harness.register());
    for trial in 1..=opts.trials {
        harness.trial(trial, agent.take());
    }
    harness.final_run();
    harness.check()
}

/// One crash run: the simulator, the agent home, the plan, and what each process left.
struct Harness<'a> {
    opts: &'a Options,
    started: Instant,
    since: DateTime<Utc>,
    rng: StdRng,
    sim: Sim,
    home: AgentHome,
    plan: Plan,
    runs: Vec<Run>,
    /// Commands whose `command finished` line was seen.
    finished_ids: HashSet<String>,
    messages: SimMessages,
    logs: SimLogs,
    /// Read at the end of the final run.
    statuses: HashMap<String, Vec<Value>>,
    entities: Value,
    report: Report,
}

impl Harness<'_> {
    fn new(opts: &Options) -> Harness<'_> {
        let sim = Sim::auto_completing("10ms");
        let home = AgentHome::with_sim(&sim, "");
        write_config(&home, &sim, opts);
        Harness {
            opts,
            started: Instant::now(),
            since: Utc::now(),
            rng: StdRng::seed_from_u64(opts.seed),
            sim,
            home,
            plan: Plan::default(),
            runs: Vec::new(),
            finished_ids: HashSet::new(),
            messages: SimMessages::default(),
            logs: SimLogs::default(),
            statuses: HashMap::new(),
            entities: Value::Null,
            report: Report {
                trials: opts.trials,
                ..Report::default()
            },
        }
    }

    /// The first process, registered; trial 1 goes on with it.
    fn register(&self) -> Agent {
        let agent = start(&self.home);
        let registered = wait_until(Duration::from_secs(60), || {
            agent.get("/status").is_some_and(|(_, body)| {
                serde_json::from_str::<Value>(&body)
                    .is_ok_and(|s| s["registration"]["status"] == "REGISTERED")
            })
        });
        assert!(registered, "the agent did not register: {}", agent.logs());
        agent
    }

    /// Queue a batch, run the engine (`agent`, or a new process) to a random kill point, SIGKILL
    /// it, and record what its store kept.
    fn trial(&mut self, trial: usize, agent: Option<Agent>) {
        let at = format!("trial {trial}");
        let batch = self.plan.batch(&mut self.rng, trial, self.opts.per_trial);
        self.sim.queue(&Value::Array(batch));
        let outstanding = self
            .plan
            .order
            .len()
            .saturating_sub(self.finished_ids.len());
        let kill = if self.rng.gen_bool(self.opts.early_kills) {
            KillPoint::Delay(Duration::from_millis(self.rng.gen_range(0..1500)))
        } else {
            KillPoint::Commands {
                count: self.rng.gen_range(1..=outstanding.max(1)),
                jitter: Duration::from_millis(self.rng.gen_range(0..20)),
            }
        };
        let trial_start = Instant::now();
        let mut agent = agent.unwrap_or_else(|| start(&self.home));
        let mut console = Console::new(&agent.log);
        let (sim, plan, known) = (&self.sim, &self.plan, &self.finished_ids);
        let waited = wait_for_kill_point(&mut agent, &mut console, &kill, trial_start, &mut |c| {
            unfinished(sim, plan, known, c)
        });
        let exited = waited.unwrap_or_else(|(what, exited)| {
            self.report.violation(&at, what);
            exited
        });
        let killed_at = Utc::now();
        if exited.is_none() {
            agent.signal(Signal::SIGKILL);
            if agent.wait_exit(Duration::from_secs(10)).is_none() {
                panic!("{at}: the engine survived SIGKILL for 10 s");
            }
        }
        console.poll();
        self.finished_ids
            .extend(console.finished.iter().map(|f| f.id.clone()));
        let snapshot = snapshot(&self.home.data_dir(), self.since)
            .unwrap_or_else(|e| panic!("{at}: cannot read the store of the killed engine: {e}"));
        eprintln!(
            "{at}/{}: {} commands finished, then SIGKILL ({kill}); {} queued log records and {} counts survived; {:.0?}",
            self.opts.trials,
            console.finished.len(),
            snapshot.queued.len(),
            snapshot.counts.values().sum::<u64>(),
            self.started.elapsed()
        );
        self.runs.push(Run {
            at,
            finished: console.finished,
            killed_at: Some(killed_at),
            snapshot,
        });
        self.messages.refresh(&self.sim);
    }

    /// The final process: runs what is left, delivers what is owed, then stops gracefully.
    fn final_run(&mut self) {
        let at = "final run".to_owned();
        let mut agent = start(&self.home);
        let mut console = Console::new(&agent.log);
        let phase = Instant::now();
        self.statuses = drain_commands(&self.sim, &self.plan, &self.finished_ids, &mut console);
        eprintln!(
            "{at}: {} commands run, every status read in {:.0?}",
            console.finished.len(),
            phase.elapsed()
        );
        let phase = Instant::now();
        let owed: HashSet<&String> = self
            .runs
            .iter()
            .flat_map(|r| r.snapshot.queued.iter())
            .collect();
        let (sim, logs) = (&self.sim, &mut self.logs);
        let delivered = wait_until(DRAIN_TIMEOUT, || {
            console.poll();
            logs.refresh(sim);
            owed.iter().all(|r| logs.seen.contains_key(*r))
                && console
                    .finished
                    .iter()
                    .all(|f| logs.finished.contains(&f.id))
        });
        if !delivered {
            self.report.notes.push(format!(
                "the final run did not deliver every owed log record within {DRAIN_TIMEOUT:?} (see the violations)"
            ));
        }
        eprintln!(
            "{at}: owed log records delivered in {:.0?}",
            phase.elapsed()
        );
        let phase = Instant::now();
        // Differences left after this wait are reported by `check_messages`.
        let (messages, model) = (&mut self.messages, &self.plan.model);
        wait_until(Duration::from_secs(30), || {
            messages.refresh(sim);
            messages
                .last_full_config
                .as_ref()
                .is_some_and(|body| model_differences(body, model, true).is_empty())
        });
        eprintln!("{at}: last full-config checked in {:.0?}", phase.elapsed());
        self.entities = agent
            .get("/api/entities")
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .unwrap_or(Value::Null);
        agent.signal(Signal::SIGTERM);
        match agent.wait_exit(Duration::from_secs(30)) {
            Some(0) => {}
            other => self.report.violation(
                &at,
                format!("SIGTERM ended the engine with {other:?}, expected exit code 0"),
            ),
        }
        console.poll();
        self.logs.refresh(&self.sim);
        self.messages.refresh(&self.sim);
        let snapshot = snapshot(&self.home.data_dir(), self.since)
            .unwrap_or_else(|e| panic!("{at}: cannot read the store after the graceful stop: {e}"));
        self.runs.push(Run {
            at,
            finished: console.finished,
            killed_at: None,
            snapshot,
        });
    }

    /// Every check, then the figures.
    fn check(mut self) -> Report {
        let report = &mut self.report;
        check_commands(&self.plan, &self.statuses, &self.runs, report);
        check_entities(&self.plan.model, &self.entities, report);
        check_messages(&self.messages, &self.plan.model, report);
        check_logs(&self.runs, &self.logs, report);
        check_metrics(&self.runs, self.opts, report);
        for v in self.sim.violations() {
            report.violation("simulator", format!("protocol violation recorded: {v}"));
        }
        report.commands = self.plan.order.len();
        report.messages = self.messages.count;
        report.logs = self.logs.seen.len();
        report.elapsed = self.started.elapsed();
        if !report.violations.is_empty() {
            // Keep the agent's store and console logs for the investigation.
            let kept = self.home.dir.keep();
            report
                .notes
                .push(format!("agent home kept in {}", kept.display()));
        }
        self.report
    }
}

/// Poll until the kill point. `Some(code)` if the engine exited by itself first; `Err` with the
/// violation (and that exit) when something went wrong.
/// `unfinished` counts the queued commands without a terminal status at the simulator: the
/// count awaited may be out of reach, since a command that finished right at a SIGKILL, before
/// its log line, is not known to the harness as finished.
fn wait_for_kill_point(
    agent: &mut Agent,
    console: &mut Console,
    kill: &KillPoint,
    trial_start: Instant,
    unfinished: &mut dyn FnMut(&Console) -> usize,
) -> Result<Option<i32>, (String, Option<i32>)> {
    const IDLE: Duration = Duration::from_secs(3);
    let (deadline, count, jitter) = match kill {
        KillPoint::Delay(delay) => (trial_start + *delay, usize::MAX, Duration::ZERO),
        KillPoint::Commands { count, jitter } => (
            trial_start + PROGRESS_TIMEOUT + Duration::from_millis(100) * (*count as u32),
            *count,
            *jitter,
        ),
    };
    let mut progress = (0, Instant::now());
    loop {
        // Also the poll period: `wait_exit` sleeps about 20 ms when the engine still runs.
        if let Some(code) = agent.wait_exit(Duration::from_millis(1)) {
            let what = format!(
                "the engine exited by itself with code {code}; log:\n{}",
                agent.logs()
            );
            return Err((what, Some(code)));
        }
        console.poll();
        if console.finished.len() >= count {
            std::thread::sleep(jitter);
            return Ok(None);
        }
        if console.finished.len() != progress.0 {
            progress = (console.finished.len(), Instant::now());
        } else if count != usize::MAX && progress.1.elapsed() >= IDLE {
            if unfinished(console) == 0 {
                return Ok(None); // all done: kill the idle engine
            }
            progress.1 = Instant::now();
        }
        if Instant::now() >= deadline {
            if count == usize::MAX {
                return Ok(None);
            }
            let what = format!(
                "only {} of the {count} commands awaited finished before the deadline, and {} queued commands have no terminal status at the simulator",
                console.finished.len(),
                unfinished(console)
            );
            return Err((what, None));
        }
    }
}

/// How many queued commands have no terminal status at the simulator. Only those whose
/// `command finished` line was not seen (in `known` or this process's `console`) can be open;
/// once the engine is idle they are few, and asked one by one: reading every status is heavy for
/// a simulator holding tens of thousands.
fn unfinished(sim: &Sim, plan: &Plan, known: &HashSet<String>, console: &Console) -> usize {
    const MAX_ASKED: usize = 200;
    let here: HashSet<&str> = console.finished.iter().map(|f| f.id.as_str()).collect();
    let candidates: Vec<&String> = plan
        .order
        .iter()
        .filter(|id| !known.contains(*id) && !here.contains(id.as_str()))
        .collect();
    if candidates.len() > MAX_ASKED {
        return candidates.len();
    }
    let terminal = |id: &str| {
        statuses(sim, id)
            .iter()
            .any(|r| is_terminal(r["status"].as_str().unwrap_or_default()))
    };
    candidates.iter().filter(|id| !terminal(id)).count()
}

/// Wait until every queued command has a terminal status at the simulator; returns every status
/// received (the missing ones are reported by `check_commands`).
fn drain_commands(
    sim: &Sim,
    plan: &Plan,
    known: &HashSet<String>,
    console: &mut Console,
) -> HashMap<String, Vec<Value>> {
    let deadline =
        Instant::now() + DRAIN_TIMEOUT + Duration::from_millis(50) * plan.order.len() as u32;
    let mut last_progress = (0, Instant::now());
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        console.poll();
        if console.finished.len() != last_progress.0 {
            last_progress = (console.finished.len(), Instant::now());
        } else if last_progress.1.elapsed() >= Duration::from_secs(1) {
            if unfinished(sim, plan, known, console) == 0 {
                break;
            }
            last_progress.1 = Instant::now();
        }
    }
    sim_statuses(sim)
}

// ---------------------------------------------------------------------------------------------
// Checks.

fn check_commands(
    plan: &Plan,
    statuses: &HashMap<String, Vec<Value>>,
    runs: &[Run],
    report: &mut Report,
) {
    for id in &plan.order {
        let expected = &plan.expected[id];
        let records = statuses.get(id).map(Vec::as_slice).unwrap_or_default();
        let terminals: BTreeSet<(String, String)> = records
            .iter()
            .filter(|r| is_terminal(r["status"].as_str().unwrap_or_default()))
            .map(|r| {
                (
                    r["status"].as_str().unwrap_or_default().to_owned(),
                    r["result"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let want = BTreeSet::from([(expected.status.to_owned(), expected.result.clone())]);
        if terminals != want {
            let seen: Vec<String> = records
                .iter()
                .map(|r| format!("{} {}", r["status"], r["result"]))
                .collect();
            report.violation(
                "end",
                format!(
                    "command {id} ({}): expected exactly one terminal status, {} {:?}; OIAnalytics received [{}]",
                    expected.what,
                    expected.status,
                    expected.result,
                    seen.join(", ")
                ),
            );
        }
    }
    let queued: HashSet<&String> = plan.order.iter().collect();
    for id in statuses.keys().filter(|id| !queued.contains(id)) {
        report.violation(
            "end",
            format!("OIAnalytics received statuses for {id:?}, a command it never sent"),
        );
    }
    // "It runs at most once to completion": one `command finished` per command over all runs.
    let mut finishes: HashMap<&str, Vec<&str>> = HashMap::new();
    for run in runs {
        for f in &run.finished {
            finishes.entry(&f.id).or_default().push(&run.at);
        }
    }
    // A command without its log line finished right at a SIGKILL: at most one per kill, since
    // commands run one at a time.
    let kills = runs.iter().filter(|r| r.killed_at.is_some()).count();
    let silent: Vec<&String> = plan
        .order
        .iter()
        .filter(|id| !finishes.contains_key(id.as_str()))
        .collect();
    if silent.len() > kills {
        report.violation(
            "end",
            format!(
                "{} commands ended without their \"command finished\" log line, more than the {kills} SIGKILLs explain: {:?}",
                silent.len(),
                silent.iter().take(10).collect::<Vec<_>>()
            ),
        );
    }
    report.notes.push(format!(
        "commands: {} finished at a SIGKILL, before their log line was written",
        silent.len()
    ));
    for (id, at) in finishes.iter().filter(|(_, at)| at.len() > 1) {
        report.violation(
            "end",
            format!(
                "command {id} finished {} times (in {})",
                at.len(),
                at.join(", ")
            ),
        );
    }
}

/// Differences between the entities listed (`/api/entities` rows or full-config entries, as
/// (id, name, detail) triples) and the model; `what` names the listing in messages.
fn entity_differences(
    what: &str,
    kind: &str,
    rows: Vec<(String, String, String)>,
    expected: &BTreeMap<String, (String, String, String)>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_id: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, name, detail) in &rows {
        by_id.entry(id).or_default().push((name, detail));
        *by_name.entry(name).or_default() += 1;
    }
    for (name, n) in by_name.iter().filter(|(_, n)| **n > 1) {
        out.push(format!("{what}: {kind} {name:?} appears {n} times"));
    }
    for (id, (name, detail, by)) in expected {
        match by_id.get(id.as_str()).map(Vec::as_slice) {
            None | Some([]) => out.push(format!(
                "{what}: {kind} {id} ({name:?}, created by command {by}) is missing"
            )),
            Some([(got_name, got_detail)]) if got_name == name && got_detail == detail => {}
            Some(found) => out.push(format!(
                "{what}: {kind} {id} (created by command {by}) should be exactly one ({name:?}, {detail:?}), found {found:?}"
            )),
        }
    }
    for (id, found) in by_id.iter().filter(|(id, _)| !expected.contains_key(**id)) {
        out.push(format!(
            "{what}: unexpected {kind} {id} {found:?} (deleted, or never created by a command)"
        ));
    }
    out
}

fn expected_scan_modes(model: &Model) -> BTreeMap<String, (String, String, String)> {
    model
        .scan_modes
        .iter()
        .map(|(id, m)| {
            (
                id.clone(),
                (m.name.clone(), m.cron.clone(), m.created_by.clone()),
            )
        })
        .collect()
}

fn expected_ip_filters(model: &Model) -> BTreeMap<String, (String, String, String)> {
    model
        .ip_filters
        .iter()
        .map(|(id, (address, by))| (id.clone(), (address.clone(), String::new(), by.clone())))
        .collect()
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// How a listing differs from the model (empty when it reflects every change): `/api/entities`
/// (flat rows) or, with `full_config`, a full-config body (`oIBusInternalId` and `settings`).
fn model_differences(body: &Value, model: &Model, full_config: bool) -> Vec<String> {
    let (what, id_key) = match full_config {
        true => ("last full-config", "oIBusInternalId"),
        false => ("/api/entities", "id"),
    };
    let field = |row: &Value, key: &str| match full_config {
        true => str_of(&row["settings"][key]),
        false => str_of(&row[key]),
    };
    let rows = |key: &str| body[key].as_array().cloned().unwrap_or_default();
    let modes = rows("scanModes")
        .iter()
        .filter(|row| field(row, "name").starts_with(PREFIX))
        .map(|row| (str_of(&row[id_key]), field(row, "name"), field(row, "cron")))
        .collect();
    // An IP filter has no name: its address stands for it.
    let filters = rows("ipFilters")
        .iter()
        .filter(|row| field(row, "address").starts_with("10."))
        .map(|row| (str_of(&row[id_key]), field(row, "address"), String::new()))
        .collect();
    let mut out = entity_differences(what, "scan mode", modes, &expected_scan_modes(model));
    out.extend(entity_differences(
        what,
        "IP filter",
        filters,
        &expected_ip_filters(model),
    ));
    if let Some(name) = &model.engine_name {
        let got = match full_config {
            true => str_of(&body["engine"]["name"]),
            false => str_of(&body["engine"]["general"]["name"]),
        };
        if &got != name {
            out.push(format!(
                "{what}: engine name is {got:?}, the last update-engine-general set {name:?}"
            ));
        }
    }
    out
}

fn check_entities(model: &Model, entities: &Value, report: &mut Report) {
    if entities.is_null() {
        report.violation("end", "GET /api/entities did not answer with JSON".into());
        return;
    }
    for what in model_differences(entities, model, false) {
        report.violation("end", what);
    }
}

fn check_messages(messages: &SimMessages, model: &Model, report: &mut Report) {
    match &messages.last_full_config {
        None => report.violation("end", "the simulator received no full-config at all".into()),
        Some(body) => {
            for what in model_differences(body, model, true) {
                report.violation("end", what);
            }
        }
    }
}

/// `timestamp level [scope] message` of a record given as canonical JSON.
fn readable(record: &str) -> String {
    let Ok(r) = serde_json::from_str::<Value>(record) else {
        return record.to_owned();
    };
    format!(
        "{} {} [{}] {}",
        str_of(&r["timestamp"]),
        str_of(&r["level"]),
        str_of(&r["scopeName"]),
        str_of(&r["message"])
    )
}

fn check_logs(runs: &[Run], logs: &SimLogs, report: &mut Report) {
    let mut reported: HashSet<&str> = HashSet::new();
    let mut lost_total = 0;
    let mut lost_runs = 0;
    let mut oldest_lost = Duration::ZERO;
    for run in runs {
        if run.snapshot.dropped > 0 {
            report.violation(
                &run.at,
                format!(
                    "the log queue cap dropped {} records (the cap is never reached in this test)",
                    run.snapshot.dropped
                ),
            );
        }
        // The promise: a record accepted by the durable queue reaches OIAnalytics.
        for record in &run.snapshot.queued {
            if !logs.seen.contains_key(record) && reported.insert(record) {
                report.violation(
                    &run.at,
                    format!(
                        "a log record in the durable queue after this stop never reached OIAnalytics: {}",
                        readable(record)
                    ),
                );
            }
        }
        // What the engine emitted but neither the queue nor OIAnalytics has was still in the
        // in-memory channel (FIFO): only the last records before a SIGKILL may be lost.
        let queued: HashSet<String> = run
            .snapshot
            .queued
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(r).ok())
            .filter_map(|r| finished_fields(r["message"].as_str().unwrap_or_default()).map(|f| f.0))
            .collect();
        let kept = |f: &Finished| logs.finished.contains(&f.id) || queued.contains(&f.id);
        let lost: Vec<&Finished> = run.finished.iter().filter(|f| !kept(f)).collect();
        let Some(first) = lost.first() else {
            continue;
        };
        let ids = |list: &[&Finished]| {
            let shown: Vec<&str> = list.iter().take(5).map(|f| f.id.as_str()).collect();
            format!(
                "{}{}",
                shown.join(", "),
                if list.len() > 5 { ", ..." } else { "" }
            )
        };
        let Some(killed_at) = run.killed_at else {
            report.violation(
                &run.at,
                format!(
                    "{} \"command finished\" records never reached OIAnalytics although the engine stopped gracefully: id={}",
                    lost.len(),
                    ids(&lost)
                ),
            );
            continue;
        };
        if let Some(last_kept) = run.finished.iter().rposition(kept) {
            let early: Vec<&Finished> = run.finished[..last_kept]
                .iter()
                .filter(|f| !kept(f))
                .collect();
            if !early.is_empty() {
                report.violation(
                    &run.at,
                    format!(
                        "{} \"command finished\" records were lost although the later id={} was accepted (only the last records before the SIGKILL may be lost): id={}",
                        early.len(),
                        run.finished[last_kept].id,
                        ids(&early)
                    ),
                );
            }
        }
        lost_total += lost.len();
        lost_runs += 1;
        let age = (killed_at - first.at).to_std().unwrap_or_default();
        oldest_lost = oldest_lost.max(age);
    }
    let duplicates: u32 = logs.seen.values().map(|n| n - 1).sum();
    report.notes.push(format!(
        "logs: {lost_total} `command finished` records lost in the in-memory channel at {lost_runs} SIGKILLs (emitted at most {oldest_lost:.0?} before the kill); {duplicates} records delivered twice (a batch acknowledged by OIAnalytics just before a SIGKILL is sent again)"
    ));
}

fn check_metrics(runs: &[Run], opts: &Options, report: &mut Report) {
    let window = opts.flush_interval + opts.flush_slack;
    let mut before = Counts::new();
    let mut lost_total = 0u64;
    for run in runs {
        let mut truth = Counts::new();
        for f in &run.finished {
            *truth.entry(count_key(f)).or_default() += 1;
        }
        let keys: BTreeSet<&(String, String)> =
            truth.keys().chain(run.snapshot.counts.keys()).collect();
        let mut lost = 0u64;
        for key in keys {
            let was = before.get(key).copied().unwrap_or(0);
            let now = run.snapshot.counts.get(key).copied().unwrap_or(0);
            let ran = truth.get(key).copied().unwrap_or(0);
            let Some(added) = now.checked_sub(was) else {
                report.violation(
                    &run.at,
                    format!(
                        "metric {key:?} went down from {was} to {now}: flushed counts were lost"
                    ),
                );
                continue;
            };
            if added > ran {
                report.violation(&run.at, format!("metric {key:?} grew by {added} while {ran} such commands finished: counted twice"));
            }
            lost += ran.saturating_sub(added);
        }
        match run.killed_at {
            None if lost > 0 => report.violation(
                &run.at,
                format!("{lost} command counts missing after the graceful stop (it must flush them all)"),
            ),
            None => {}
            Some(killed_at) => {
                let recent = run
                    .finished
                    .iter()
                    .filter(|f| (killed_at - f.at).to_std().unwrap_or_default() <= window)
                    .count() as u64;
                if lost > recent {
                    report.violation(
                        &run.at,
                        format!(
                            "the SIGKILL lost {lost} command counts, but only {recent} commands finished in the last flush interval before it ({:?} + {:?} slack)",
                            opts.flush_interval, opts.flush_slack
                        ),
                    );
                }
                lost_total += lost;
            }
        }
        before = run.snapshot.counts.clone();
    }
    report.notes.push(format!(
        "metrics: {lost_total} command counts lost at SIGKILLs, each within one flush interval ({:?}) of its kill",
        opts.flush_interval
    ));
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn console_and_record_messages_give_the_command_fields() {
    let line = "2026-01-02T03:04:05.678901Z  INFO command finished id=t1-2 type=create-scan-mode status=COMPLETED result=\"Scan mode id=x created\" elapsed_ms=3";
    let f = parse_console_line(line).expect("a command finished line");
    assert_eq!(
        (f.id.as_str(), f.command_type.as_str(), f.status.as_str()),
        ("t1-2", "create-scan-mode", "COMPLETED")
    );
    assert_eq!(f.at.to_rfc3339(), "2026-01-02T03:04:05.678901+00:00");
    let coloured = "\u{1b}[2m2026-01-02T03:04:05.678901Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m command finished \u{1b}[3mid\u{1b}[0m\u{1b}[2m=\u{1b}[0mt9 \u{1b}[3mtype\u{1b}[0m\u{1b}[2m=\u{1b}[0mx \u{1b}[3mstatus\u{1b}[0m\u{1b}[2m=\u{1b}[0mERRORED";
    assert_eq!(
        parse_console_line(coloured).map(|f| f.id),
        Some("t9".to_owned())
    );
    assert!(parse_console_line("2026-01-02T03:04:05Z INFO command running id=t1").is_none());
}

/// The test: SIGKILL the engine at random moments while 200 commands flow, 20 times,
/// restart, and check every promise (see the module doc).
#[test]
fn commands_survive_sigkill_at_random_moments() {
    let opts = Options {
        trials: 20,
        per_trial: 200,
        seed: rand::random(),
        flush_interval: Duration::from_secs(1),
        flush_slack: Duration::from_millis(500),
        early_kills: 0.1,
    };
    let report = run(&opts);
    report.print();
    assert!(
        report.violations.is_empty(),
        "{} violations (listed above; replay with CRASH_SEED={} and the ignored test)",
        report.violations.len(),
        opts.seed
    );
}

/// `scripts/crash-test.sh`: the same run, sized by the `CRASH_*` variables ([`Options::from_env`]).
#[test]
#[ignore = "long: run through scripts/crash-test.sh"]
fn nothing_promised_is_lost_across_random_sigkills() {
    let opts = Options::from_env();
    let report = run(&opts);
    report.print();
    assert!(
        report.violations.is_empty(),
        "{} violations (listed above; replay with CRASH_SEED={})",
        report.violations.len(),
        opts.seed
    );
}
