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
    actor_problems, agent_sections, distinct_log_records, env_number, fault_kinds,
    log_order_problems, missing_markers, protocol_violations, FaultKind, Workload, BEARER_ROUTES,
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

impl Settings {
    fn from_env() -> Settings {
        Settings {
            minutes: env_number("SOAK_MINUTES", None),
            sample_every: Duration::from_secs(env_number("SOAK_SAMPLE_SECONDS", Some(60)).max(1)),
            recovery: Duration::from_secs(env_number("SOAK_RECOVERY_SECONDS", Some(300))),
            seed: env_number("SOAK_SEED", Some(rand::thread_rng().gen())),
            exec_delay_ms: env_number("SOAK_EXEC_DELAY_MS", Some(100)),
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
    settings: Settings,
    started: Instant,
    sim: Sim,
    service: Service,
    /// The launcher's environment (the engine's test hook).
    env: Vec<(&'static str, String)>,
    workload: Workload,
    rng: rand::rngs::StdRng,
    kinds: Vec<FaultKind>,
    faults: usize,
    disturbances: Vec<Disturbance>,
    last_disturbance: Option<Instant>,
    /// A launcher exit is expected (0) after a SIGTERM to it or to its engine.
    launcher_exit_expected: bool,
    problems: Vec<String>,
    reported: std::collections::BTreeSet<String>,
    samples: Vec<Sample>,
    csv: std::fs::File,
    status_max: Duration,
    yaml_edited: bool,
}

/// After a disturbance, actors stop and start: their states are only checked once the engine
/// had this long to settle.
const SETTLE: Duration = Duration::from_secs(20);

impl Soak {
    fn new(settings: Settings) -> Soak {
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
            &agent_sections(
                &sim,
                &[
                    "log_shipper: { batch_max: 50, interval: 1s }",
                    "metrics_aggregator: { flush_interval: 5s }",
                ],
            ),
        );
        Soak {
            started: Instant::now(),
            sim,
            service,
            env: vec![(
                "OIBUS_AGENT_TEST_EXEC_DELAY_MS",
                settings.exec_delay_ms.to_string(),
            )],
            workload: Workload::new("s", settings.seed),
            rng: rand::rngs::StdRng::seed_from_u64(settings.seed),
            kinds: fault_kinds(),
            faults: 0,
            disturbances: Vec::new(),
            last_disturbance: None,
            launcher_exit_expected: false,
            problems: Vec::new(),
            reported: Default::default(),
            samples: Vec::new(),
            csv,
            status_max: Duration::ZERO,
            yaml_edited: false,
            settings,
        }
    }

    fn problem(&mut self, key: String, text: String) {
        if self.reported.insert(key) {
            let at = self.started.elapsed().as_secs();
            eprintln!("soak: at {at} s: {text}");
            self.problems.push(format!("at {at} s: {text}"));
        }
    }

    fn launch(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        self.service.launch(&env);
    }

    /// Plays the service manager: a launcher that exited is started again.
    fn supervise(&mut self) {
        let Some(status) = self.service.launcher_exited() else {
            return;
        };
        if !(self.launcher_exit_expected && status.code() == Some(0)) {
            let expected = if self.launcher_exit_expected {
                "0"
            } else {
                "no exit"
            };
            self.problem(
                format!("launcher exit {}", self.service.launches),
                format!("the launcher exited with {status} (expected: {expected})"),
            );
        }
        self.launcher_exit_expected = false;
        self.launch();
    }

    fn settled(&self) -> bool {
        self.last_disturbance
            .is_none_or(|at| at.elapsed() >= SETTLE)
    }

    /// `/status` of the running engine, checked: never slow, no actor restarted, and once
    /// settled every actor running and the registration kept. `None` while the engine is down
    /// or restarting.
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
        let settled = self.settled();
        for problem in actor_problems(&status) {
            // A stopping or starting engine shows actors that are not running yet; a restart
            // count is a failure whenever it shows.
            if settled || problem.contains("restarted") {
                self.problem(
                    format!("{pid}: {problem}"),
                    format!("engine {pid}: {problem}"),
                );
            }
        }
        if settled && status["registration"]["status"] != "REGISTERED" {
            self.problem(
                format!("{pid}: registration"),
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
        let text = crate::kit::agent::http(self.service.api, "GET", "/metrics", "");
        let documents = self.service.get_json("/api/metrics/documents?window=HOURS");
        let ok = text
            .as_ref()
            .is_some_and(|(code, body)| *code == 200 && body.contains("oibus_agent_"))
            && documents.is_some();
        // A disturbance may stop the engine between the calls: only a live, settled one counts.
        if !ok && self.settled() && self.service.engine_pid() == Some(pid) {
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

    /// A random fault on a random Bearer route that has none queued.
    fn inject_fault(&mut self) {
        let queued: Vec<String> = array(&self.sim.admin_get("/admin/faults"), "faults")
            .iter()
            .filter_map(|fault| fault["route"].as_str().map(str::to_owned))
            .collect();
        let Some(route) = BEARER_ROUTES.choose(&mut self.rng).copied() else {
            return;
        };
        if queued.iter().any(|queued| queued == route) {
            return;
        }
        // A 404 on commands/status acknowledges the reports (§4.5): they would be lost by design.
        let kinds: Vec<&FaultKind> = self
            .kinds
            .iter()
            .filter(|kind| !(route == "commands-status" && kind.label == "404"))
            .collect();
        if let Some(kind) = kinds.choose(&mut self.rng) {
            kind.inject(&self.sim, route);
            self.faults += 1;
        }
    }

    fn disturb(&mut self) {
        let Some(disturbance) = Disturbance::ALL.choose(&mut self.rng).copied() else {
            return;
        };
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
            self.last_disturbance = Some(Instant::now());
        } else {
            self.launcher_exit_expected = false;
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

    /// One CSV line; waits (bounded, starting a new launcher if one exited) for a restarting
    /// engine so that the line has both processes.
    fn sample(&mut self, phase: &'static str) {
        let deadline = Instant::now() + ENGINE_BACK;
        while Instant::now() < deadline
            && (self.service.engine_pid().is_none() || self.service.status().is_none())
        {
            self.supervise();
            std::thread::sleep(Duration::from_millis(200));
        }
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

    /// Everything at once for `SOAK_MINUTES`, sampling as it goes.
    fn drive(&mut self) {
        let duration = Duration::from_secs(self.settings.minutes * 60);
        let sample_every = self.settings.sample_every;
        let now = Instant::now();
        let mut next_burst = now;
        let mut next_cancel = now + CANCEL_EVERY;
        let mut next_fault = now + FAULT_EVERY;
        let mut next_metrics = now + METRICS_EVERY;
        let mut next_sample = now + sample_every;
        let mut next_disturbance = now + Duration::from_secs(self.rng.gen_range(30..60));
        while self.started.elapsed() < duration {
            let now = Instant::now();
            self.supervise();
            if now >= next_burst {
                self.workload.burst(&self.sim, BURST);
                next_burst += BURST_EVERY;
            }
            if now >= next_cancel {
                self.workload.cancel_retrieved(&self.sim);
                next_cancel += CANCEL_EVERY;
            }
            if now >= next_fault {
                self.inject_fault();
                next_fault += FAULT_EVERY;
            }
            let running = self.check_status().is_some();
            if now >= next_metrics && running {
                self.check_metrics();
                next_metrics += METRICS_EVERY;
            }
            // Disturb only a running engine, so that each disturbance meets one.
            if now >= next_disturbance && running && !self.launcher_exit_expected {
                self.disturb();
                next_disturbance = now + Duration::from_secs(self.rng.gen_range(30..60));
            }
            if now >= next_sample {
                self.sample("run");
                next_sample += sample_every;
            }
            std::thread::sleep(TICK);
        }
    }

    /// No more faults or disturbances: waits for every terminal status, the last messages
    /// complete and an empty log queue. Returns how long it took.
    fn recover(&mut self) -> Duration {
        self.sim.admin_delete("/admin/faults");
        let started = Instant::now();
        while started.elapsed() < self.settings.recovery {
            self.supervise();
            self.check_status();
            let queue_empty = self
                .service
                .status()
                .is_some_and(|status| status["logs"]["queue_len"] == 0);
            if queue_empty && self.workload.terminal_count(&self.sim) == self.workload.len() {
                let finals = self.workload.latest_finals(&self.sim);
                if self.workload.check_config(&self.sim, &finals).is_empty() {
                    return started.elapsed();
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        self.problems.push(format!(
            "not recovered {:?} after the disturbances stopped (details below)",
            self.settings.recovery
        ));
        started.elapsed()
    }

    fn count(&self, kind: Disturbance) -> usize {
        self.disturbances.iter().filter(|d| **d == kind).count()
    }

    /// Lost items: statuses, configuration, log records, protocol violations. Returns the
    /// number of terminal statuses, distinct log records and repeats.
    fn check_lost(&mut self) -> (usize, usize, usize) {
        let (finals, status_problems) = self.workload.check_statuses(&self.sim);
        self.problems.extend(status_problems);
        let config_problems = self.workload.check_config(&self.sim, &finals);
        self.problems.extend(config_problems);
        let (records, repeats) = distinct_log_records(&self.sim);
        let (missing, order) = self.workload.check_log_markers(&records, &finals);
        let kills = self.count(Disturbance::KillEngine);
        if missing.len() > MARKERS_LOST_PER_KILL * kills {
            self.problems.push(format!(
                "{} (allowed: {MARKERS_LOST_PER_KILL} per SIGKILL, {kills} SIGKILLs)",
                missing_markers(&missing)
            ));
        }
        self.problems.extend(order);
        self.problems
            .extend(log_order_problems(&records, LOG_ORDER_TOLERANCE_MS));
        let logs = self.service.status_of("logs");
        for key in ["dropped_cap", "dropped_store", "skipped_corrupt"] {
            let count = logs[key].as_u64().unwrap_or(0);
            if count > 0 {
                self.problems
                    .push(format!("the engine lost {count} log records ({key})"));
            }
        }
        self.problems.extend(protocol_violations(&self.sim));
        (finals.len(), records.len(), repeats)
    }

    /// Growth between the first and the last quarter of `samples` (RSS KiB, descriptors, disk
    /// KiB), each checked against [`Growth`].
    fn check_growth(&mut self, samples: &[Sample]) -> (f64, f64, f64) {
        let growth = |value: fn(&Sample) -> f64| {
            let (first, last) = quarters(samples, value);
            last - first
        };
        let rss = growth(Sample::rss_kib);
        let fds = growth(Sample::fds_other_than_sst);
        let disk = growth(|s| s.data_kib as f64);
        let commands = growth(|s| s.commands_ended as f64).max(0.0);
        let disk_allowance = Growth::DISK_KIB + Growth::DISK_KIB_PER_COMMAND * commands;
        if rss > Growth::RSS_KIB {
            self.problems.push(format!(
                "RSS of engine + launcher grew {:.1} MiB from the first to the last quarter (allowed {:.0} MiB)",
                rss / 1024.0,
                Growth::RSS_KIB / 1024.0
            ));
        }
        if fds > Growth::FDS {
            self.problems.push(format!(
                "descriptors of engine + launcher (table files aside) grew {fds:.1} from the first to the last quarter (allowed {})",
                Growth::FDS
            ));
        }
        if disk > disk_allowance {
            self.problems.push(format!(
                "the data folder grew {:.1} MiB from the first to the last quarter (allowed {:.1} MiB for {commands:.0} commands)",
                disk / 1024.0,
                disk_allowance / 1024.0,
            ));
        }
        (rss, fds, disk)
    }
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
    let mut soak = Soak::new(settings);
    soak.launch();
    let Soak { service, sim, .. } = &mut soak;
    let registered = service.register_by_hand(sim, Duration::from_secs(120), |_, _| {});
    assert!(
        registered,
        "the agent did not register within 120 s; log tail:\n{}",
        soak.service.log_tail(60)
    );
    soak.started = Instant::now();
    soak.sample("start");
    soak.drive();
    // The last minute's sample, when the loop ended just before it.
    let sample_every = soak.settings.sample_every.as_secs();
    if soak
        .samples
        .last()
        .is_some_and(|last| soak.started.elapsed().as_secs() >= last.elapsed_s + sample_every / 2)
    {
        soak.sample("run");
    }
    let run_samples = soak.samples.clone();
    let recovery = soak.recover();
    std::thread::sleep(Duration::from_secs(2));
    soak.sample("end");
    let (terminal, records, repeats) = soak.check_lost();
    let (rss, fds, disk) = soak.check_growth(&run_samples);

    let mut report = String::new();
    let _ = writeln!(
        report,
        "{} commands ({} cancel requests), {terminal} terminal statuses, {records} log records ({repeats} repeats), {} launches of the launcher; recovered in {:.1} s; slowest /status {:?}; csv {}",
        soak.workload.len(),
        soak.workload.cancel_requested(),
        soak.service.launches,
        recovery.as_secs_f64(),
        soak.status_max,
        soak.settings.csv.display()
    );
    for problem in &soak.problems {
        let _ = writeln!(report, "VIOLATION: {problem}");
    }
    let _ = writeln!(
        report,
        "soak: {} min, {} commands, {} restarts ({} SIGKILL engine, {} SIGTERM engine, {} SIGUSR1, {} SIGHUP, {} SIGTERM launcher), {} faults; growth first->last quarter: RSS {:+.1} MiB, fds {:+.1}, disk {:+.1} MiB; {} violations",
        soak.settings.minutes,
        soak.workload.len(),
        soak.disturbances.len(),
        soak.count(Disturbance::KillEngine),
        soak.count(Disturbance::TermEngine),
        soak.count(Disturbance::RestartEngine),
        soak.count(Disturbance::Reload),
        soak.count(Disturbance::TermLauncher),
        soak.faults,
        rss / 1024.0,
        fds,
        disk / 1024.0,
        soak.problems.len()
    );
    eprint!("{report}");
    if let Some(path) = &soak.settings.report {
        std::fs::write(path, &report).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
    assert!(
        soak.problems.is_empty(),
        "{} violations (see above); service log tail:\n{}",
        soak.problems.len(),
        soak.service.log_tail(60)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
