//! Soak (issue 10), run by `scripts/soak.sh MINUTES`: the launcher and its engine against the
//! simulator with everything at once for `SOAK_MINUTES`: bursts of commands (each a
//! configuration change, some cancelled), log records, the metrics API read, random faults on
//! the Bearer routes, and every 30 to 60 s one disturbance: SIGKILL or SIGTERM of the engine,
//! SIGUSR1 (engine restart) or SIGHUP (reload of an edited YAML) to the launcher, or SIGTERM
//! to the launcher. The test plays the service manager: a launcher that exits is started
//! again (it must have exited 0, which it does after a SIGTERM to itself or to its engine).
//!
//! Every `SOAK_SAMPLE_SECONDS` (60) and at the start, it writes a line to the CSV at
//! `SOAK_CSV`: RSS and descriptors of the engine and the launcher, disk use of the data
//! folder, commands queued and ended, log records at the simulator, restarts so far. After the
//! time is up, faults and disturbances stop and the run waits (up to `SOAK_RECOVERY_SECONDS`,
//! 300) for every command's terminal status, every change in the last configuration messages
//! and an empty log queue, then writes a last `end` line.
//!
//! Violations, collected and written to `SOAK_REPORT` with the summary line: a lost item (a
//! command without exactly one terminal status, a change missing from the last full-config or
//! history-queries, log records dropped by the engine, more "command finished" records missing
//! than [`MARKERS_LOST_PER_KILL`] per SIGKILL allows), an actor not running or restarted, a
//! launcher exit other than 0, the local API or the metrics API not answering a running engine,
//! a protocol violation recorded by the simulator, and growth beyond [`Growth`] between the
//! first and the last quarter of the samples.
//!
//! Environment: `SOAK_MINUTES` (required), `SOAK_CSV` (required), `SOAK_SAMPLE_SECONDS`,
//! `SOAK_RECOVERY_SECONDS`, `SOAK_SEED` (random, printed), `SOAK_EXEC_DELAY_MS` (100),
//! `SOAK_REPORT`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::kit::load::{
    actor_problems, distinct_log_records, fault_kinds, log_order_problems, FaultKind, Workload,
    BEARER_ROUTES,
};
use crate::kit::procfs::{self, Usage};
use crate::kit::service::Service;
use crate::kit::sim::array;
use crate::kit::{Sim, SimOpts};

const TICK: Duration = Duration::from_millis(500);
const BURST: usize = 6;
const BURST_EVERY: Duration = Duration::from_secs(3);
const CANCEL_EVERY: Duration = Duration::from_secs(11);
const FAULT_EVERY: Duration = Duration::from_secs(5);
const METRICS_EVERY: Duration = Duration::from_secs(30);
/// A `/status` slower than this means an actor's mailbox is stuck.
const STATUS_SLOW: Duration = Duration::from_secs(5);
/// How long a restarted engine may take to answer `/status` again (launcher backoff up to 2 s,
/// RocksDB open, actors start).
const ENGINE_BACK: Duration = Duration::from_secs(30);
const LOG_ORDER_TOLERANCE_MS: i64 = 1000;
/// A SIGKILL loses the log records still in the engine's in-memory channel (not yet in the
/// durable queue): at most the few rendered in the last moments, so at most this many
/// "command finished" records per kill.
const MARKERS_LOST_PER_KILL: usize = 3;

/// Growth allowed between the first and the last quarter of the samples (means), and why:
/// - RSS of engine + launcher: 24 MiB, what RocksDB's memtables may legitimately fill between
///   two moments (2 MiB for each of 7 column families + 8 MiB for `logs`, before a flush);
/// - descriptors of engine + launcher other than table files: 8 (a leaked connection per
///   fault or restart would exceed it within minutes); table files are bounded by RocksDB's
///   `max_open_files` (128) instead;
/// - disk use of the data folder: 64 MiB (RocksDB's `max_total_wal_size`: the WAL may hold
///   that much before a flush recycles it) + 16 KiB per command ended in between (the command
///   journal and the entities keep every command's outcome; the journal is never purged, a
///   known gap).
struct Growth;

impl Growth {
    const RSS_KIB: f64 = 24.0 * 1024.0;
    const FDS: f64 = 8.0;
    const SST: u64 = 128;
    const DISK_KIB: f64 = 64.0 * 1024.0;
    const DISK_KIB_PER_COMMAND: f64 = 16.0;
}

struct Settings {
    minutes: u64,
    sample_every: Duration,
    recovery: Duration,
    seed: u64,
    exec_delay_ms: u64,
    csv: PathBuf,
    report: Option<String>,
}

fn env_u64(name: &str, default: Option<u64>) -> u64 {
    match (std::env::var(name), default) {
        (Ok(text), _) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        (Err(_), Some(default)) => default,
        (Err(_), None) => panic!("{name} is required (scripts/soak.sh sets it)"),
    }
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            minutes: env_u64("SOAK_MINUTES", None),
            sample_every: Duration::from_secs(env_u64("SOAK_SAMPLE_SECONDS", Some(60)).max(1)),
            recovery: Duration::from_secs(env_u64("SOAK_RECOVERY_SECONDS", Some(300))),
            seed: env_u64("SOAK_SEED", Some(rand::thread_rng().gen())),
            exec_delay_ms: env_u64("SOAK_EXEC_DELAY_MS", Some(100)),
            csv: std::env::var("SOAK_CSV")
                .map(PathBuf::from)
                .expect("SOAK_CSV is required (scripts/soak.sh sets it)"),
            report: std::env::var("SOAK_REPORT").ok(),
        }
    }
}

/// The disturbances, drawn at random.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Disturbance {
    KillEngine,
    TermEngine,
    RestartEngine,
    Reload,
    TermLauncher,
}

impl Disturbance {
    const ALL: [Disturbance; 5] = [
        Disturbance::KillEngine,
        Disturbance::TermEngine,
        Disturbance::RestartEngine,
        Disturbance::Reload,
        Disturbance::TermLauncher,
    ];

    fn name(self) -> &'static str {
        match self {
            Disturbance::KillEngine => "SIGKILL engine",
            Disturbance::TermEngine => "SIGTERM engine",
            Disturbance::RestartEngine => "SIGUSR1 launcher",
            Disturbance::Reload => "SIGHUP launcher",
            Disturbance::TermLauncher => "SIGTERM launcher",
        }
    }
}

/// One CSV line.
#[derive(Clone, Debug, Default)]
struct Sample {
    elapsed_s: u64,
    phase: &'static str,
    engine_pid: u32,
    engine: Usage,
    launcher_pid: u32,
    launcher: Usage,
    data_kib: u64,
    commands_queued: usize,
    commands_ended: usize,
    log_records: u64,
    restarts: usize,
}

const CSV_HEADER: &str = "elapsed_s,phase,engine_pid,engine_rss_kib,engine_fds,engine_sst,launcher_pid,launcher_rss_kib,launcher_fds,data_kib,commands_queued,commands_ended,log_records,restarts";

impl Sample {
    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.elapsed_s,
            self.phase,
            self.engine_pid,
            self.engine.rss_kib,
            self.engine.fds.total,
            self.engine.fds.sst,
            self.launcher_pid,
            self.launcher.rss_kib,
            self.launcher.fds.total,
            self.data_kib,
            self.commands_queued,
            self.commands_ended,
            self.log_records,
            self.restarts
        )
    }

    fn rss_kib(&self) -> f64 {
        (self.engine.rss_kib + self.launcher.rss_kib) as f64
    }

    fn fds_other_than_sst(&self) -> f64 {
        (self.engine.fds.other_than_sst() + self.launcher.fds.total) as f64
    }
}

/// The soak's state between ticks.
struct Soak {
    started: Instant,
    sim: Sim,
    service: Service,
    workload: Workload,
    rng: rand::rngs::StdRng,
    kinds: Vec<FaultKind>,
    faults: usize,
    disturbances: Vec<Disturbance>,
    /// A launcher exit is expected (0) after a SIGTERM to it or to its engine.
    launcher_exit_expected: bool,
    problems: Vec<String>,
    reported: std::collections::BTreeSet<String>,
    samples: Vec<Sample>,
    csv: std::fs::File,
    status_max: Duration,
    yaml_edited: bool,
}

impl Soak {
    fn problem(&mut self, key: String, text: String) {
        if self.reported.insert(key) {
            let at = self.started.elapsed().as_secs();
            eprintln!("soak: at {at} s: {text}");
            self.problems.push(format!("at {at} s: {text}"));
        }
    }

    /// Plays the service manager: a launcher that exited is started again.
    fn supervise(&mut self, env: &[(&str, &str)]) {
        if let Some(status) = self.service.launcher_exited() {
            if !(self.launcher_exit_expected && status.code() == Some(0)) {
                let count = self.service.launches;
                self.problem(
                    format!("launcher exit {count}"),
                    format!(
                        "the launcher exited with {status} (expected: {})",
                        if self.launcher_exit_expected {
                            "0"
                        } else {
                            "no exit"
                        }
                    ),
                );
            }
            self.launcher_exit_expected = false;
            self.service.launch(env);
        }
    }

    /// `/status` of the running engine, checked: actors running and never restarted, the
    /// registration kept. `None` while the engine is down or restarting.
    fn check_status(&mut self) -> Option<Value> {
        let pid = self.service.engine_pid()?;
        let asked = Instant::now();
        let status = self.service.status();
        let took = asked.elapsed();
        self.status_max = self.status_max.max(took);
        if took > STATUS_SLOW && procfs::alive(pid) {
            self.problem(
                format!("slow status {}", self.started.elapsed().as_secs() / 10),
                format!("/status of engine {pid} took {took:?}: an actor's mailbox is stuck"),
            );
        }
        let status = status?;
        let key = |text: &str| format!("{pid}: {text}");
        for problem in actor_problems(&status) {
            self.problem(key(&problem), format!("engine {pid}: {problem}"));
        }
        if status["registration"]["status"] != "REGISTERED" {
            self.problem(
                key("registration"),
                format!("engine {pid} is not REGISTERED: {}", status["registration"]),
            );
        }
        Some(status)
    }

    /// The metrics API answers a running engine (Prometheus text and the stored documents).
    fn check_metrics(&mut self) {
        let Some(pid) = self.service.engine_pid() else {
            return;
        };
        if self.service.status().is_none() {
            return;
        }
        let api = self.service.api;
        let text = crate::kit::agent::http(api, "GET", "/metrics", "");
        let documents = self.service.get_json("/api/metrics/documents?window=HOURS");
        let ok = text
            .as_ref()
            .is_some_and(|(code, body)| *code == 200 && body.contains("oibus_agent_"))
            && documents.is_some();
        // A disturbance may stop the engine between the calls: only a live engine counts.
        if !ok && procfs::alive(pid) && self.service.engine_pid() == Some(pid) {
            self.problem(
                format!("metrics {pid}"),
                format!(
                    "engine {pid}: the metrics API did not answer (/metrics: {:?}, documents: {})",
                    text.map(|(code, _)| code),
                    documents.is_some()
                ),
            );
        }
    }

    fn inject_fault(&mut self) {
        let queued: Vec<String> = array(&self.sim.admin_get("/admin/faults"), "faults")
            .iter()
            .filter_map(|fault| fault["route"].as_str().map(str::to_owned))
            .collect();
        let route = *BEARER_ROUTES.choose(&mut self.rng).expect("routes");
        if queued.iter().any(|queued| queued == route) {
            return;
        }
        // A 404 on commands/status acknowledges the reports (§4.5): they would be lost by design.
        let kinds: Vec<&FaultKind> = self
            .kinds
            .iter()
            .filter(|kind| !(route == "commands-status" && kind.label == "404"))
            .collect();
        let kind = *kinds.choose(&mut self.rng).expect("kinds");
        kind.inject(&self.sim, route);
        self.faults += 1;
    }

    fn disturb(&mut self) {
        let disturbance = *Disturbance::ALL.choose(&mut self.rng).expect("kinds");
        let done = match disturbance {
            Disturbance::KillEngine => self.service.signal_engine(Signal::SIGKILL),
            Disturbance::TermEngine => {
                self.launcher_exit_expected = true;
                self.service.signal_engine(Signal::SIGTERM)
            }
            Disturbance::RestartEngine => self.service.signal_launcher(Signal::SIGUSR1),
            Disturbance::Reload => {
                self.edit_yaml();
                self.service.signal_launcher(Signal::SIGHUP)
            }
            Disturbance::TermLauncher => {
                self.launcher_exit_expected = true;
                self.service.signal_launcher(Signal::SIGTERM)
            }
        };
        if done {
            eprintln!(
                "soak: {:>5} s {}",
                self.started.elapsed().as_secs(),
                disturbance.name()
            );
            self.disturbances.push(disturbance);
        }
    }

    /// A real change for SIGHUP to apply: the log batch size, alternately 50 and 40.
    fn edit_yaml(&mut self) {
        let path = self.service.config_path();
        let yaml = std::fs::read_to_string(&path).expect("read agent.yaml");
        let (from, to) = if self.yaml_edited {
            ("batch_max: 40", "batch_max: 50")
        } else {
            ("batch_max: 50", "batch_max: 40")
        };
        std::fs::write(&path, yaml.replace(from, to)).expect("write agent.yaml");
        self.yaml_edited = !self.yaml_edited;
    }

    /// One CSV line; waits (bounded) for a restarting engine so the line has both processes.
    fn sample(&mut self, phase: &'static str) {
        crate::kit::wait_until(ENGINE_BACK, || {
            self.service.engine_pid().is_some() && self.service.status().is_some()
        });
        let engine_pid = self.service.engine_pid().unwrap_or(0);
        let launcher_pid = self.service.launcher_pid().unwrap_or(0);
        let sample = Sample {
            elapsed_s: self.started.elapsed().as_secs(),
            phase,
            engine_pid,
            engine: procfs::usage(engine_pid).unwrap_or_default(),
            launcher_pid,
            launcher: procfs::usage(launcher_pid).unwrap_or_default(),
            data_kib: procfs::disk_kib(&self.service.data_dir()),
            commands_queued: self.workload.len(),
            commands_ended: self.workload.terminal_count(&self.sim),
            log_records: self.sim.admin_get("/admin/logs?limit=0")["count"]
                .as_u64()
                .unwrap_or(0),
            restarts: self.disturbances.len(),
        };
        if engine_pid == 0 || launcher_pid == 0 {
            self.problem(
                format!("sample without process {}", sample.elapsed_s),
                format!(
                    "no running engine or launcher to sample after {ENGINE_BACK:?} (engine {engine_pid}, launcher {launcher_pid})"
                ),
            );
        }
        writeln!(self.csv, "{}", sample.csv()).expect("write the CSV");
        self.csv.flush().expect("flush the CSV");
        eprintln!(
            "soak: {:>5} s sample: engine {} MiB {} fds, launcher {} MiB {} fds, data {} MiB, {}/{} commands ended, {} log records, {} disturbances, {} faults",
            sample.elapsed_s,
            sample.engine.rss_kib / 1024,
            sample.engine.fds.total,
            sample.launcher.rss_kib / 1024,
            sample.launcher.fds.total,
            sample.data_kib / 1024,
            sample.commands_ended,
            sample.commands_queued,
            sample.log_records,
            self.disturbances.len(),
            self.faults
        );
        if sample.engine.fds.sst > Growth::SST {
            self.problem(
                format!("sst {}", sample.elapsed_s),
                format!(
                    "the engine holds {} table files open, above RocksDB's max_open_files ({})",
                    sample.engine.fds.sst,
                    Growth::SST
                ),
            );
        }
        self.samples.push(sample);
    }
}

fn agent_sections(sim: &Sim) -> String {
    format!(
        "oianalytics:\n  host: {}\n  key_size: 2048\n  intervals: {{ command_refresh: 1s, command_retry: 1s, message_retry: 1s, registration_check: 1s }}\n\
         actors:\n  log_shipper: {{ batch_max: 50, interval: 1s }}\n  metrics_aggregator: {{ flush_interval: 5s }}\n",
        sim.url
    )
}

/// Mean of `value` over the first and the last quarter of `samples` (at least one sample each).
fn quarters(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> (f64, f64) {
    let quarter = (samples.len() / 4).max(1);
    let mean = |part: &[Sample]| part.iter().map(&value).sum::<f64>() / part.len().max(1) as f64;
    (
        mean(&samples[..quarter.min(samples.len())]),
        mean(&samples[samples.len().saturating_sub(quarter)..]),
    )
}

#[test]
#[ignore = "proof run of SOAK_MINUTES: scripts/soak.sh"]
fn the_agent_under_load_faults_and_restarts_loses_nothing_and_does_not_grow() {
    let settings = Settings::from_env();
    eprintln!(
        "soak: seed {} (SOAK_SEED), {} min, a sample every {:?} into {}",
        settings.seed,
        settings.minutes,
        settings.sample_every,
        settings.csv.display()
    );
    if let Some(parent) = settings.csv.parent() {
        std::fs::create_dir_all(parent).expect("create the CSV folder");
    }
    let mut csv = std::fs::File::create(&settings.csv).expect("create the CSV");
    writeln!(csv, "{CSV_HEADER}").expect("write the CSV");
    let sim = Sim::start(SimOpts::default());
    // SIGKILLs count against the launcher's restart budget: a generous one, short backoffs.
    let service = Service::new(
        "info",
        "{ max_restarts: 1000, within: 10m, backoff_initial: 200ms, backoff_max: 2s, reset_after: 1m }",
        &agent_sections(&sim),
    );
    let delay_ms = oibus_actors::client::DEFAULT_TIMEOUT.as_millis() as u64 + 1000;
    let mut soak = Soak {
        started: Instant::now(),
        sim,
        service,
        workload: Workload::new("s", settings.seed),
        rng: rand::rngs::StdRng::seed_from_u64(settings.seed),
        kinds: fault_kinds(delay_ms),
        faults: 0,
        disturbances: Vec::new(),
        launcher_exit_expected: false,
        problems: Vec::new(),
        reported: Default::default(),
        samples: Vec::new(),
        csv,
        status_max: Duration::ZERO,
        yaml_edited: false,
    };
    let exec_delay = settings.exec_delay_ms.to_string();
    let env = [("OIBUS_AGENT_TEST_EXEC_DELAY_MS", exec_delay.as_str())];
    soak.service.launch(&env);
    let Soak { service, sim, .. } = &mut soak;
    let registered = service.register_by_hand(sim, Duration::from_secs(120), |_, _| {});
    assert!(
        registered,
        "the agent did not register within 120 s; log tail:\n{}",
        soak.service.log_tail(60)
    );
    soak.started = Instant::now();
    soak.sample("start");

    let duration = Duration::from_secs(settings.minutes * 60);
    let mut next_burst = Instant::now();
    let mut next_cancel = Instant::now() + CANCEL_EVERY;
    let mut next_fault = Instant::now() + FAULT_EVERY;
    let mut next_metrics = Instant::now() + METRICS_EVERY;
    let mut next_sample = Instant::now() + settings.sample_every;
    let mut next_disturbance = Instant::now() + Duration::from_secs(soak.rng.gen_range(30..60));
    while soak.started.elapsed() < duration {
        let now = Instant::now();
        soak.supervise(&env);
        if now >= next_burst {
            soak.workload.burst(&soak.sim, BURST);
            next_burst += BURST_EVERY;
        }
        if now >= next_cancel {
            soak.workload.cancel_retrieved(&soak.sim);
            next_cancel += CANCEL_EVERY;
        }
        if now >= next_fault {
            soak.inject_fault();
            next_fault += FAULT_EVERY;
        }
        let running = soak.check_status().is_some();
        if now >= next_metrics && running {
            soak.check_metrics();
            next_metrics += METRICS_EVERY;
        }
        // Disturb only a running engine, so that each disturbance meets one.
        if now >= next_disturbance && running && !soak.launcher_exit_expected {
            soak.disturb();
            next_disturbance = now + Duration::from_secs(soak.rng.gen_range(30..60));
        }
        if now >= next_sample {
            soak.sample("run");
            next_sample += settings.sample_every;
        }
        std::thread::sleep(TICK);
    }
    // The last minute's sample, if the loop ended just before it.
    if soak.samples.last().is_some_and(|last| {
        soak.started.elapsed().as_secs() >= last.elapsed_s + settings.sample_every.as_secs() / 2
    }) {
        soak.sample("run");
    }
    let run_samples = soak.samples.clone();

    // Recovery: no more faults or disturbances.
    soak.sim.admin_delete("/admin/faults");
    let recovery_start = Instant::now();
    let mut recovered = false;
    while recovery_start.elapsed() < settings.recovery {
        soak.supervise(&env);
        soak.check_status();
        let queue_empty = soak
            .service
            .status()
            .is_some_and(|status| status["logs"]["queue_len"] == 0);
        if queue_empty && soak.workload.terminal_count(&soak.sim) == soak.workload.len() {
            let latest = soak.sim.admin_get("/admin/statuses?limit=1")["latest"].clone();
            let finals = soak
                .workload
                .ids()
                .map(|id| {
                    let status = latest[id]["status"].as_str().unwrap_or_default();
                    (id.to_owned(), status.to_owned())
                })
                .collect();
            if soak.workload.check_config(&soak.sim, &finals).is_empty() {
                recovered = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let recovery = recovery_start.elapsed();
    if !recovered {
        soak.problems.push(format!(
            "not recovered {:?} after the disturbances stopped (details below)",
            settings.recovery
        ));
    }
    std::thread::sleep(Duration::from_secs(2));
    soak.sample("end");

    // Lost items.
    let (finals, status_problems) = soak.workload.check_statuses(&soak.sim);
    soak.problems.extend(status_problems);
    let config_problems = soak.workload.check_config(&soak.sim, &finals);
    soak.problems.extend(config_problems);
    let (records, repeats) = distinct_log_records(&soak.sim);
    let (missing, order) = soak.workload.check_log_markers(&records, &finals);
    let kills = soak
        .disturbances
        .iter()
        .filter(|d| **d == Disturbance::KillEngine)
        .count();
    if missing.len() > MARKERS_LOST_PER_KILL * kills {
        soak.problems.push(format!(
            "{} commands have no \"command finished\"/\"command cancelled\" log record at the simulator, more than {MARKERS_LOST_PER_KILL} per SIGKILL ({kills}): {}",
            missing.len(),
            missing.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    soak.problems.extend(order);
    soak.problems
        .extend(log_order_problems(&records, LOG_ORDER_TOLERANCE_MS));
    let logs = soak
        .service
        .status()
        .map(|status| status["logs"].clone())
        .unwrap_or_default();
    for key in ["dropped_cap", "dropped_store", "skipped_corrupt"] {
        let count = logs[key].as_u64().unwrap_or(0);
        if count > 0 {
            soak.problems
                .push(format!("the engine lost {count} log records ({key})"));
        }
    }
    for violation in soak.sim.violations() {
        soak.problems.push(format!(
            "protocol violation recorded by the simulator on {} {} ({}): {}",
            violation["method"].as_str().unwrap_or("?"),
            violation["path"].as_str().unwrap_or("?"),
            violation["route"].as_str().unwrap_or("?"),
            violation["reason"].as_str().unwrap_or("?"),
        ));
    }

    // Growth between the first and the last quarter.
    let (rss_first, rss_last) = quarters(&run_samples, Sample::rss_kib);
    let (fds_first, fds_last) = quarters(&run_samples, Sample::fds_other_than_sst);
    let (disk_first, disk_last) = quarters(&run_samples, |s| s.data_kib as f64);
    let (ended_first, ended_last) = quarters(&run_samples, |s| s.commands_ended as f64);
    let rss_growth = rss_last - rss_first;
    let fds_growth = fds_last - fds_first;
    let disk_growth = disk_last - disk_first;
    let disk_allowance =
        Growth::DISK_KIB + Growth::DISK_KIB_PER_COMMAND * (ended_last - ended_first).max(0.0);
    if rss_growth > Growth::RSS_KIB {
        soak.problems.push(format!(
            "RSS of engine + launcher grew {:.1} MiB from the first to the last quarter (allowed {:.0} MiB)",
            rss_growth / 1024.0,
            Growth::RSS_KIB / 1024.0
        ));
    }
    if fds_growth > Growth::FDS {
        soak.problems.push(format!(
            "descriptors of engine + launcher (table files aside) grew {fds_growth:.1} from the first to the last quarter (allowed {})",
            Growth::FDS
        ));
    }
    if disk_growth > disk_allowance {
        soak.problems.push(format!(
            "the data folder grew {:.1} MiB from the first to the last quarter (allowed {:.1} MiB for {:.0} commands)",
            disk_growth / 1024.0,
            disk_allowance / 1024.0,
            ended_last - ended_first
        ));
    }

    let count = |kind: Disturbance| soak.disturbances.iter().filter(|d| **d == kind).count();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "{} commands ({} cancel requests), {} terminal statuses, {} log records ({} repeats), {} launches of the launcher; recovered in {:.1} s; slowest /status {:?}; csv {}",
        soak.workload.len(),
        soak.workload.cancel_requested(),
        finals.len(),
        records.len(),
        repeats,
        soak.service.launches,
        recovery.as_secs_f64(),
        soak.status_max,
        settings.csv.display()
    );
    for problem in &soak.problems {
        let _ = writeln!(report, "VIOLATION: {problem}");
    }
    let _ = writeln!(
        report,
        "soak: {} min, {} commands, {} restarts ({} SIGKILL engine, {} SIGTERM engine, {} SIGUSR1, {} SIGHUP, {} SIGTERM launcher), {} faults; growth first->last quarter: RSS {:+.1} MiB, fds {:+.1}, disk {:+.1} MiB; {} violations",
        settings.minutes,
        soak.workload.len(),
        soak.disturbances.len(),
        kills,
        count(Disturbance::TermEngine),
        count(Disturbance::RestartEngine),
        count(Disturbance::Reload),
        count(Disturbance::TermLauncher),
        soak.faults,
        rss_growth / 1024.0,
        fds_growth,
        disk_growth / 1024.0,
        soak.problems.len()
    );
    eprint!("{report}");
    if let Some(path) = &settings.report {
        std::fs::write(path, &report).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
    assert!(
        soak.problems.is_empty(),
        "{} violations (see above); service log tail:\n{}",
        soak.problems.len(),
        soak.service.log_tail(60)
    );
}

#[test]
fn quarters_compare_the_means_of_the_first_and_last_quarter() {
    let samples: Vec<Sample> = (0..8u64)
        .map(|i| Sample {
            data_kib: i * 10,
            ..Sample::default()
        })
        .collect();
    assert_eq!(quarters(&samples, |s| s.data_kib as f64), (5.0, 65.0));
    let one = vec![Sample::default()];
    assert_eq!(quarters(&one, |s| s.data_kib as f64), (0.0, 0.0));
}
