//! Fault injection under load (issue 10), run by `scripts/fault-test.sh`: the launcher and its
//! engine against the simulator, every fault kind the simulator supports on every route the
//! agent calls, while commands, configuration changes and log records flow; then the faults
//! are cleared and the run checks that nothing was lost and nothing is stuck.
//!
//! Phases:
//! 1. **Registration under faults**: every kind queued on E1 and on E2 before the launcher
//!    starts (the trickled body last, as the answer then gets through); the test completes the
//!    registration with the code the agent shows in `/status`, as a person would (an
//!    auto-completing simulator would also complete the registrations the agent gave up on
//!    after a timeout, and the last completion revokes the others' tokens).
//! 2. **Work under faults** for `FAULT_SECONDS`: bursts of commands (each a configuration
//!    change: scan modes, IP filters, history queries, engine renames), some cancelled once
//!    RETRIEVED, and on each Bearer route one fault at a time, every kind in a shuffled round,
//!    the next one 1 to 5 s after the agent met the previous one (see [`Rotation`]). A 404 on
//!    `commands/status` is left out here: the protocol (§4.1, §4.5) makes it an
//!    acknowledgement, so what it answers is dropped by design; phase 4 checks that instead.
//! 3. **Recovery**: the remaining faults are cleared; within `FAULT_RECOVERY_SECONDS` every
//!    command must have its terminal status, the last full-config and history-queries must show
//!    every change, and the log queue must be empty with every record delivered.
//! 4. **404 on `commands/status`**: one command whose first report gets a 404; that report
//!    must not be sent again.
//!
//! A 401 is not a state change in the protocol: OIBus retries a 401 like any other failure
//! (§4.1 failed cycle, §6.1 "network, 401, 5xx ... retried forever"), it never unregisters.
//! The run checks exactly that: the agent stays REGISTERED through every 401 and recovers.
//!
//! Checked throughout: the engine's and the launcher's RSS and open descriptors (max and
//! bounds, see [`Bounds`]), `/status` answering with every actor running and never restarted,
//! the same engine pid (no crash), REGISTERED. At the end: the simulator's protocol
//! violations. Every problem is collected, written to `FAULT_REPORT` with the summary line, and
//! fails the test at the end.
//!
//! Environment: `FAULT_SECONDS` (120; prolonged by up to `FAULT_EXTEND_SECONDS`, 120, until
//! every (route, kind) pair was met), `FAULT_RECOVERY_SECONDS` (300), `FAULT_SEED` (random,
//! printed), `FAULT_EXEC_DELAY_MS` (300: keeps commands RETRIEVED long enough for the
//! cancellation check, E4, to be called), `FAULT_REPORT` (a file for the report).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::kit::load::{
    actor_problems, agent_sections, distinct_log_records, env_number, fault_kinds,
    log_order_problems, missing_markers, protocol_violations, FaultKind, Workload, BEARER_ROUTES,
    REGISTRATION_ROUTES,
};
use crate::kit::procfs::{self, Usage};
use crate::kit::service::Service;
use crate::kit::sim::array;
use crate::kit::{Sim, SimOpts};

const TICK: Duration = Duration::from_millis(500);
/// Commands per burst, one burst every [`BURST_EVERY`]: an engine running each command for
/// `FAULT_EXEC_DELAY_MS` (300) is busy most of the time, so the commands of a burst wait
/// RETRIEVED across command cycles and the cancellation check (E4) is called.
const BURST: usize = 8;
const BURST_EVERY: Duration = Duration::from_secs(3);
const CANCEL_EVERY: Duration = Duration::from_secs(7);
/// A `/status` slower than this means an actor's mailbox is stuck (it asks three actors).
const STATUS_SLOW: Duration = Duration::from_secs(5);
/// Log records rendered on two threads at nearly the same moment may enter the queue swapped;
/// a batch re-sent out of order would be seconds behind.
const LOG_ORDER_TOLERANCE_MS: i64 = 1000;

struct Settings {
    seconds: u64,
    /// How much longer the faults may go on until every (route, kind) pair was met.
    extend: u64,
    recovery: Duration,
    seed: u64,
    exec_delay_ms: u64,
    report: Option<String>,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            seconds: env_number("FAULT_SECONDS", Some(120)),
            extend: env_number("FAULT_EXTEND_SECONDS", Some(120)),
            recovery: Duration::from_secs(env_number("FAULT_RECOVERY_SECONDS", Some(300))),
            seed: env_number("FAULT_SEED", Some(rand::thread_rng().gen())),
            exec_delay_ms: env_number("FAULT_EXEC_DELAY_MS", Some(300)),
            report: std::env::var("FAULT_REPORT").ok(),
        }
    }
}

/// How far memory and descriptors may rise above the baseline taken right after the
/// registration, and why:
/// - engine RSS: + 84 MiB = RocksDB's own ceilings (memtables: 2 x 8 MiB for `logs`, 2 x 2 MiB
///   for each of the 7 other column families; 8 MiB block cache: 52 MiB in all) + 32 MiB for
///   request bodies in flight and allocator slack;
/// - engine descriptors other than table files: + 32 (each of the 4 actors calling OIA holds at
///   most one call and one pooled connection, the local API a few, RocksDB a new WAL or
///   manifest now and then: about 16, doubled);
/// - engine table files (`*.sst`): at most 128, RocksDB's `max_open_files`;
/// - after recovery, engine descriptors other than table files: + 8 (no connection of a faulted
///   call may stay open);
/// - launcher: + 8 MiB and + 4 descriptors (it takes no part in the HTTP traffic).
struct Bounds;

impl Bounds {
    const ENGINE_RSS_KIB: u64 = 84 * 1024;
    const ENGINE_FDS: u64 = 32;
    const ENGINE_SST: u64 = 128;
    const ENGINE_FDS_AFTER: u64 = 8;
    const LAUNCHER_RSS_KIB: u64 = 8 * 1024;
    const LAUNCHER_FDS: u64 = 4;
}

/// Peaks of one process over the run.
#[derive(Clone, Copy, Debug, Default)]
struct Peak {
    rss_kib: u64,
    fds: u64,
    fds_other_than_sst: u64,
    sst: u64,
}

impl Peak {
    fn update(&mut self, usage: &Usage) {
        self.rss_kib = self.rss_kib.max(usage.rss_kib);
        self.fds = self.fds.max(usage.fds.total);
        self.fds_other_than_sst = self.fds_other_than_sst.max(usage.fds.other_than_sst());
        self.sst = self.sst.max(usage.fds.sst);
    }
}

/// Everything watched while the run goes on.
struct Watch {
    started: Instant,
    engine_pid: Option<u32>,
    launcher_pid: Option<u32>,
    engine: Peak,
    launcher: Peak,
    /// Peak of engine + launcher sampled together.
    combined_rss_kib: u64,
    combined_fds: u64,
    samples: u64,
    status_max: Duration,
    /// `/status` answered once: from then on it must keep answering.
    status_seen: bool,
    /// Whether REGISTERED must hold (after phase 1).
    registered: bool,
    problems: Vec<String>,
    /// Problems already reported, so a lasting one is reported once.
    reported: std::collections::BTreeSet<String>,
    last_progress: Instant,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            started: Instant::now(),
            engine_pid: None,
            launcher_pid: None,
            engine: Peak::default(),
            launcher: Peak::default(),
            combined_rss_kib: 0,
            combined_fds: 0,
            samples: 0,
            status_max: Duration::ZERO,
            status_seen: false,
            registered: false,
            problems: Vec::new(),
            reported: Default::default(),
            last_progress: Instant::now(),
        }
    }

    fn problem(&mut self, key: String, text: String) {
        if self.reported.insert(key) {
            let at = self.started.elapsed().as_secs();
            eprintln!("fault-test: at {at} s: {text}");
            self.problems.push(format!("at {at} s: {text}"));
        }
    }

    /// One sample: resources of both processes, `/status`.
    fn sample(&mut self, service: &mut Service) {
        self.samples += 1;
        if let Some(status) = service.launcher_exited() {
            self.problem(
                "launcher exited".into(),
                format!("the launcher exited ({status})"),
            );
        }
        let engine_pid = service.engine_pid();
        match (self.engine_pid, engine_pid) {
            (Some(before), Some(now)) if before != now => self.problem(
                format!("engine pid {now}"),
                format!("the engine was restarted (pid {before} then {now}): it crashed or exited"),
            ),
            (None, Some(now)) => self.engine_pid = Some(now),
            _ => {}
        }
        self.launcher_pid = self.launcher_pid.or(service.launcher_pid());
        let engine = engine_pid.and_then(procfs::usage);
        let launcher = service.launcher_pid().and_then(procfs::usage);
        if let Some(usage) = &engine {
            self.engine.update(usage);
        }
        if let Some(usage) = &launcher {
            self.launcher.update(usage);
        }
        if let (Some(engine), Some(launcher)) = (engine, launcher) {
            self.combined_rss_kib = self.combined_rss_kib.max(engine.rss_kib + launcher.rss_kib);
            self.combined_fds = self.combined_fds.max(engine.fds.total + launcher.fds.total);
        }
        let asked = Instant::now();
        let status = service.status();
        let took = asked.elapsed();
        self.status_max = self.status_max.max(took);
        if took > STATUS_SLOW {
            self.problem(
                format!("slow status {}", self.started.elapsed().as_secs() / 10),
                format!("/status took {took:?}: an actor's mailbox is stuck"),
            );
        }
        let Some(status) = status else {
            if self.status_seen {
                self.problem(
                    "no status".into(),
                    "the engine's local API did not answer /status".into(),
                );
            }
            return;
        };
        self.status_seen = true;
        for problem in actor_problems(&status) {
            self.problem(problem.clone(), problem);
        }
        for part in ["registration", "logs"] {
            if status[part].is_null() {
                self.problem(
                    format!("{part} null"),
                    format!("/status has no {part}: its actor did not answer"),
                );
            }
        }
        if self.registered && status["registration"]["status"] != "REGISTERED" {
            self.problem(
                format!("registration {}", status["registration"]["status"]),
                format!(
                    "the agent left REGISTERED: {} (a fault must not change the registration)",
                    status["registration"]
                ),
            );
        }
    }

    fn progress(&mut self, text: impl FnOnce() -> String) {
        if self.last_progress.elapsed() >= Duration::from_secs(10) {
            self.last_progress = Instant::now();
            eprintln!(
                "fault-test: {:>4} s {} | engine {} MiB {} fds | launcher {} MiB {} fds",
                self.started.elapsed().as_secs(),
                text(),
                self.engine.rss_kib / 1024,
                self.engine.fds,
                self.launcher.rss_kib / 1024,
                self.launcher.fds
            );
        }
    }
}

/// Faults injected per (route, label), to tell which pairs were exercised.
#[derive(Default)]
struct Coverage {
    injected: BTreeMap<(String, &'static str), u32>,
}

/// The faults still queued in the simulator: (route, label, remaining).
fn queued_faults(sim: &Sim) -> Vec<(String, &'static str, u32)> {
    array(&sim.admin_get("/admin/faults"), "faults")
        .iter()
        .map(|fault| {
            (
                fault["route"].as_str().unwrap_or_default().to_owned(),
                FaultKind::label_of(&fault["kind"]),
                fault["remaining"].as_u64().unwrap_or(0) as u32,
            )
        })
        .collect()
}

impl Coverage {
    fn inject(&mut self, sim: &Sim, route: &str, kind: &FaultKind) {
        kind.inject(sim, route);
        *self
            .injected
            .entry((route.to_owned(), kind.label))
            .or_default() += kind.count;
    }

    /// Requests that got each (route, label) so far: injected minus still queued.
    fn consumed(
        &self,
        queued: &[(String, &'static str, u32)],
    ) -> BTreeMap<(String, &'static str), u32> {
        let mut left: BTreeMap<(String, &'static str), u32> = BTreeMap::new();
        for (route, label, remaining) in queued {
            *left.entry((route.clone(), label)).or_default() += remaining;
        }
        self.injected
            .iter()
            .map(|(key, injected)| {
                let remaining = left.get(key).copied().unwrap_or(0);
                (key.clone(), injected.saturating_sub(remaining))
            })
            .collect()
    }
}

/// One fault queued per route at a time: once the agent met a route's fault, the next kind of
/// that route's shuffled round is injected after a random gap of 1 to 5 s, so that successful
/// requests come in between and a delayed answer does not hold a pile of faults behind it.
struct Rotation<'k> {
    routes: Vec<RouteRotation<'k>>,
}

struct RouteRotation<'k> {
    route: &'static str,
    kinds: Vec<&'k FaultKind>,
    round: Vec<&'k FaultKind>,
    /// When the next fault may be injected (`None` while one is queued).
    due: Option<Instant>,
    injected: u32,
}

impl<'k> Rotation<'k> {
    /// Every route of `routes` with every kind, except the pairs `skip` rejects.
    fn new(
        routes: &[&'static str],
        kinds: &'k [FaultKind],
        skip: impl Fn(&str, &FaultKind) -> bool,
    ) -> Rotation<'k> {
        let routes = routes
            .iter()
            .map(|route| RouteRotation {
                route,
                kinds: kinds.iter().filter(|kind| !skip(route, kind)).collect(),
                round: Vec::new(),
                due: Some(Instant::now()),
                injected: 0,
            })
            .collect();
        Rotation { routes }
    }

    /// Injects what is due; `queued` is the simulator's fault queue now. A new round starts
    /// with the kinds the route has not met yet. Without `allow_delay`, delayed answers are
    /// skipped (the phase is about to end).
    fn tick(
        &mut self,
        sim: &Sim,
        coverage: &mut Coverage,
        queued: &[(String, &'static str, u32)],
        allow_delay: bool,
        rng: &mut impl Rng,
    ) {
        let now = Instant::now();
        let consumed = coverage.consumed(queued);
        let met = |route: &str, kind: &FaultKind| {
            consumed
                .get(&(route.to_owned(), kind.label))
                .is_some_and(|count| *count > 0)
        };
        for rotation in &mut self.routes {
            let busy = queued.iter().any(|(route, _, _)| route == rotation.route);
            match rotation.due {
                None if !busy => {
                    rotation.due = Some(now + Duration::from_millis(rng.gen_range(1000..5000)));
                }
                Some(due) if !busy && now >= due => {
                    if rotation.round.is_empty() {
                        rotation.round = rotation.kinds.clone();
                        rotation.round.shuffle(rng);
                        // Popped from the end: the kinds not met yet go last in the vector.
                        rotation
                            .round
                            .sort_by_key(|kind| !met(rotation.route, kind));
                    }
                    let Some(kind) = rotation.round.pop() else {
                        continue;
                    };
                    if kind.label == "delay" && !allow_delay {
                        continue;
                    }
                    coverage.inject(sim, rotation.route, kind);
                    rotation.injected += 1;
                    rotation.due = None;
                }
                _ => {}
            }
        }
    }

    /// Whether every (route, kind) of the rotation was injected at least once.
    fn all_injected(&self, coverage: &Coverage) -> bool {
        self.routes.iter().all(|rotation| {
            rotation.kinds.iter().all(|kind| {
                coverage
                    .injected
                    .contains_key(&(rotation.route.to_owned(), kind.label))
            })
        })
    }

    fn injected(&self) -> u32 {
        self.routes.iter().map(|rotation| rotation.injected).sum()
    }
}

/// Engine crashes are violations here; the policy only keeps the launcher quick if one happens.
const LAUNCHER_RESTART: &str =
    "{ max_restarts: 5, within: 1m, backoff_initial: 200ms, backoff_max: 2s, reset_after: 1m }";

/// The run: what it drives, what it watches, what it injected.
struct Run {
    settings: Settings,
    rng: rand::rngs::StdRng,
    kinds: Vec<FaultKind>,
    sim: Sim,
    service: Service,
    watch: Watch,
    coverage: Coverage,
    workload: Workload,
}

/// Baselines and durations the report needs.
struct Timeline {
    registered_after: Duration,
    engine: Usage,
    launcher: Usage,
    bearer_faults: u32,
    recovery: Duration,
}

impl Run {
    fn new(settings: Settings) -> Run {
        let sim = Sim::start(SimOpts::default());
        let service = Service::new(
            "info",
            LAUNCHER_RESTART,
            &agent_sections(&sim, &["log_shipper: { batch_max: 50, interval: 1s }"]),
        );
        Run {
            rng: rand::rngs::StdRng::seed_from_u64(settings.seed),
            workload: Workload::new("f", settings.seed),
            settings,
            kinds: fault_kinds(),
            sim,
            service,
            watch: Watch::new(),
            coverage: Coverage::default(),
        }
    }

    /// Phase 1: every kind on E1, then on E2. The trickled body is last: its answer still
    /// arrives, so the registration goes on and no later fault would be met.
    fn register_through_faults(&mut self) -> Duration {
        for route in REGISTRATION_ROUTES {
            let (mut order, last): (Vec<FaultKind>, Vec<FaultKind>) = self
                .kinds
                .iter()
                .cloned()
                .partition(|kind| kind.label != "slow");
            order.shuffle(&mut self.rng);
            for kind in order.iter().chain(&last) {
                self.coverage.inject(&self.sim, route, kind);
            }
        }
        let exec_delay = self.settings.exec_delay_ms.to_string();
        let Run {
            service,
            sim,
            watch,
            ..
        } = self;
        service.launch(&[("OIBUS_AGENT_TEST_EXEC_DELAY_MS", exec_delay.as_str())]);
        let registered =
            service.register_by_hand(sim, Duration::from_secs(300), |service, registration| {
                watch.sample(service);
                watch.progress(|| format!("registering ({})", registration["status"]));
            });
        assert!(
            registered,
            "the agent did not register through the E1/E2 faults within 300 s; log tail:\n{}",
            service.log_tail(80)
        );
        let registered_after = watch.started.elapsed();
        eprintln!("fault-test: registered after {registered_after:?}");
        watch.registered = true;
        registered_after
    }

    /// Phase 2: work under faults, at least `FAULT_SECONDS`, longer (bounded) until every
    /// (route, kind) pair was met. Returns how many faults the Bearer routes got.
    fn work_under_faults(&mut self) -> u32 {
        let kinds = self.kinds.clone();
        let mut rotation = Rotation::new(&BEARER_ROUTES, &kinds, |route, kind| {
            route == "commands-status" && kind.label == "404"
        });
        let phase = Duration::from_secs(self.settings.seconds);
        let longest = phase + Duration::from_secs(self.settings.extend);
        let started = Instant::now();
        let mut next_burst = started;
        let mut next_cancel = started + CANCEL_EVERY;
        loop {
            let queued = queued_faults(&self.sim);
            let elapsed = started.elapsed();
            let all_met = self.coverage.consumed(&queued).values().all(|n| *n > 0)
                && rotation.all_injected(&self.coverage);
            if elapsed >= longest || (elapsed >= phase && all_met) {
                break;
            }
            // A delayed answer injected later would still be pending when the faults clear.
            let end = if all_met { phase } else { longest };
            let allow_delay = elapsed + oibus_actors::client::DEFAULT_TIMEOUT + TICK * 10 < end;
            let now = Instant::now();
            if now >= next_burst {
                self.workload.burst(&self.sim, BURST);
                next_burst += BURST_EVERY;
            }
            if now >= next_cancel {
                self.workload.cancel_retrieved(&self.sim);
                next_cancel += CANCEL_EVERY;
            }
            rotation.tick(
                &self.sim,
                &mut self.coverage,
                &queued,
                allow_delay,
                &mut self.rng,
            );
            self.watch.sample(&mut self.service);
            let (commands, injected) = (self.workload.len(), rotation.injected());
            self.watch.progress(|| {
                format!("faults: {commands} commands queued, {injected} faults injected")
            });
            std::thread::sleep(TICK);
        }
        let consumed = self.coverage.consumed(&queued_faults(&self.sim));
        let cleared = self.sim.admin_delete("/admin/faults")["cleared"]
            .as_u64()
            .unwrap_or(0);
        eprintln!(
            "fault-test: faults cleared ({cleared} still queued) after {} commands and {} faults on the Bearer routes",
            self.workload.len(),
            rotation.injected()
        );
        let not_met: Vec<String> = consumed
            .iter()
            .filter(|(_, count)| **count == 0)
            .map(|((route, label), _)| format!("{label} on {route}"))
            .collect();
        if !not_met.is_empty() {
            self.watch.problems.push(format!(
                "the run did not exercise {} (route, kind) pairs (the agent made no request there while the fault was queued): {}",
                not_met.len(),
                not_met.join(", ")
            ));
        }
        rotation.injected()
    }

    /// Phase 3: waits until every command ended, the last messages show every change and the
    /// log queue is empty with everything delivered. Returns how long that took.
    fn recover(&mut self) -> Duration {
        let started = Instant::now();
        let mut last_config_check: Option<Instant> = None;
        let mut config_ok = false;
        loop {
            self.watch.sample(&mut self.service);
            let terminal = self.workload.terminal_count(&self.sim);
            let all_ended = terminal == self.workload.len();
            let logs = self.service.status_of("logs");
            // The last full-config grows with every entity: read it every 5 s only.
            if all_ended
                && last_config_check.is_none_or(|at| at.elapsed() >= Duration::from_secs(5))
            {
                last_config_check = Some(Instant::now());
                let finals = self.workload.latest_finals(&self.sim);
                config_ok = self.workload.check_config(&self.sim, &finals).is_empty();
            }
            if all_ended && logs_settled(&logs) && config_ok {
                eprintln!(
                    "fault-test: recovered {:?} after the faults were cleared",
                    started.elapsed()
                );
                return started.elapsed();
            }
            if started.elapsed() >= self.settings.recovery {
                self.watch.problems.push(format!(
                    "not recovered {:?} after the faults were cleared (details below)",
                    self.settings.recovery
                ));
                return started.elapsed();
            }
            let commands = self.workload.len();
            self.watch.progress(|| {
                format!(
                    "recovery: {terminal}/{commands} commands ended, log queue {}, config {}",
                    logs["queue_len"],
                    if config_ok { "complete" } else { "behind" }
                )
            });
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Everything that must hold at the end; returns the report.
    fn check_and_report(&mut self, timeline: &Timeline) -> String {
        self.watch.sample(&mut self.service);
        let final_engine = self.service.engine_pid().and_then(procfs::usage);
        let problems = &mut self.watch.problems;
        let (finals, status_problems) = self.workload.check_statuses(&self.sim);
        problems.extend(status_problems);
        problems.extend(self.workload.check_config(&self.sim, &finals));
        let (records, repeats) = distinct_log_records(&self.sim);
        let (missing, order) = self.workload.check_log_markers(&records, &finals);
        if !missing.is_empty() {
            problems.push(missing_markers(&missing));
        }
        problems.extend(order);
        problems.extend(log_order_problems(&records, LOG_ORDER_TOLERANCE_MS));
        let logs = self.service.status_of("logs");
        problems.extend(log_accounting_problems(&logs, records.len()));
        problems.extend(protocol_violations(&self.sim));
        bound_problems(&mut self.watch, timeline, final_engine.as_ref());

        let messages = self.sim.admin_get("/admin/messages?limit=0")["count"]
            .as_u64()
            .unwrap_or(0);
        let items = finals.len() + records.len() + messages as usize;
        let watch = &self.watch;
        let mut report = String::new();
        let _ = writeln!(
            report,
            "registered after {:.1} s through {} faults on E1/E2; {} faults on the Bearer routes; {} commands ({} cancel requests), {} terminal statuses, {} log records ({} repeats of timed-out posts), {messages} configuration messages; recovered in {:.1} s",
            timeline.registered_after.as_secs_f64(),
            REGISTRATION_ROUTES.len() * self.kinds.len(),
            timeline.bearer_faults,
            self.workload.len(),
            self.workload.cancel_requested(),
            finals.len(),
            records.len(),
            repeats,
            timeline.recovery.as_secs_f64()
        );
        let _ = writeln!(
            report,
            "engine: baseline {} MiB / {} fds ({} sst), max {} MiB / {} fds ({} sst), after recovery {}; launcher: baseline {} MiB / {} fds, max {} MiB / {} fds; slowest /status {:?}",
            timeline.engine.rss_kib / 1024,
            timeline.engine.fds.total,
            timeline.engine.fds.sst,
            watch.engine.rss_kib / 1024,
            watch.engine.fds,
            watch.engine.sst,
            final_engine
                .map(|u| format!("{} MiB / {} fds ({} sst)", u.rss_kib / 1024, u.fds.total, u.fds.sst))
                .unwrap_or_else(|| "gone".into()),
            timeline.launcher.rss_kib / 1024,
            timeline.launcher.fds.total,
            watch.launcher.rss_kib / 1024,
            watch.launcher.fds,
            watch.status_max,
        );
        for problem in &watch.problems {
            let _ = writeln!(report, "VIOLATION: {problem}");
        }
        let _ = writeln!(
            report,
            "fault-test: {} kinds x {} routes, {items} items delivered, max RSS {} MiB, max fds {}, {} violations",
            self.kinds.len(),
            REGISTRATION_ROUTES.len() + BEARER_ROUTES.len(),
            watch.combined_rss_kib / 1024,
            watch.combined_fds,
            watch.problems.len()
        );
        report
    }
}

#[test]
#[ignore = "proof run of several minutes: scripts/fault-test.sh"]
fn every_fault_on_every_route_delays_the_agent_but_loses_nothing() {
    let settings = Settings::from_env();
    eprintln!(
        "fault-test: seed {} (FAULT_SEED), {} s of faults, recovery within {:?}",
        settings.seed, settings.seconds, settings.recovery
    );
    let report_path = settings.report.clone();
    let mut run = Run::new(settings);
    let registered_after = run.register_through_faults();
    std::thread::sleep(Duration::from_secs(2));
    let engine = run
        .service
        .engine_pid()
        .and_then(procfs::usage)
        .expect("the engine runs");
    let launcher = run
        .service
        .launcher_pid()
        .and_then(procfs::usage)
        .expect("the launcher runs");
    let bearer_faults = run.work_under_faults();
    let recovery = run.recover();
    // Phase 4, once nothing else is left to report.
    std::thread::sleep(Duration::from_secs(3));
    check_status_404_is_an_acknowledgement(&run.sim, &mut run.watch);
    std::thread::sleep(Duration::from_secs(2));
    let timeline = Timeline {
        registered_after,
        engine,
        launcher,
        bearer_faults,
        recovery,
    };
    let report = run.check_and_report(&timeline);
    eprint!("{report}");
    if let Some(path) = &report_path {
        std::fs::write(path, &report).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
    assert!(
        run.watch.problems.is_empty(),
        "{} violations (see above); service log tail:\n{}",
        run.watch.problems.len(),
        run.service.log_tail(60)
    );
}

/// The log queue is empty and every record the layer accepted into its channel was delivered
/// or counted as dropped on the way (nothing in between). `dropped_channel` counts records
/// that were never accepted.
fn logs_settled(logs: &Value) -> bool {
    let n = |key: &str| logs[key].as_u64().unwrap_or(0);
    logs.is_object()
        && n("queue_len") == 0
        && n("accepted")
            == n("delivered") + n("dropped_cap") + n("dropped_store") + n("skipped_corrupt")
}

/// The engine's own log accounting (`/status` `logs`) after recovery: nothing dropped, nothing
/// left, and at least as many distinct records at the simulator as the engine delivered.
fn log_accounting_problems(logs: &Value, distinct_at_sim: usize) -> Vec<String> {
    if !logs.is_object() {
        return vec!["/status has no log statistics after recovery".into()];
    }
    let n = |key: &str| logs[key].as_u64().unwrap_or(0);
    let mut problems = Vec::new();
    for key in [
        "dropped_channel",
        "dropped_cap",
        "dropped_store",
        "skipped_corrupt",
    ] {
        if n(key) > 0 {
            problems.push(format!("the engine lost {} log records ({key})", n(key)));
        }
    }
    if !logs_settled(logs) {
        problems.push(format!(
            "the log queue did not drain: {} queued, {} accepted, {} delivered",
            n("queue_len"),
            n("accepted"),
            n("delivered")
        ));
    }
    if (distinct_at_sim as u64) < n("delivered") {
        problems.push(format!(
            "the engine delivered {} log records but the simulator holds {distinct_at_sim} distinct ones",
            n("delivered")
        ));
    }
    problems
}

/// Phase 4: with nothing else to report, the first `commands/status` PUT of a new command (its
/// RETRIEVED report) gets a 404, which the protocol counts as acknowledged: that report must
/// never arrive, the COMPLETED one must.
fn check_status_404_is_an_acknowledgement(sim: &Sim, watch: &mut Watch) {
    let id = "ack404";
    sim.fault(
        "commands-status",
        1,
        json!({"status": 404, "body": "Not Found"}),
    );
    sim.queue(
        &json!({"id": id, "type": "create-scan-mode", "targetVersion": oibus_actors::COMPATIBLE_OIBUS_VERSION,
        "commandContent": {"name": "ack404-mode", "description": "", "cron": "0 * * * * *"}}),
    );
    let statuses = || -> Vec<String> {
        array(
            &sim.admin_get(&format!("/admin/statuses?id={id}")),
            "records",
        )
        .iter()
        .filter_map(|r| r["record"]["status"].as_str().map(str::to_owned))
        .collect()
    };
    let done = crate::kit::wait_until(Duration::from_secs(60), || {
        sim.admin_get("/admin/faults")["count"] == 0 && statuses().contains(&"COMPLETED".into())
    });
    // A re-sent report would come at the next flush, after `command_retry` (1 s).
    std::thread::sleep(Duration::from_secs(3));
    let received = statuses();
    if received.iter().any(|status| status == "RETRIEVED") {
        watch.problems.push(format!(
            "a status report answered 404 was sent again (the protocol counts 404 as acknowledged): {id} received {received:?}"
        ));
    } else if !done {
        watch.problems.push(format!(
            "after a 404 on its first status report, command {id} never reported COMPLETED (received {received:?})"
        ));
    } else {
        eprintln!("fault-test: 404 on commands/status acknowledged: {id} received {received:?}");
    }
}

fn bound_problems(watch: &mut Watch, baseline: &Timeline, engine_after: Option<&Usage>) {
    let (engine, launcher) = (&baseline.engine, &baseline.launcher);
    let mut check = |what: &str, value: u64, baseline: u64, allowance: u64, unit: &str| {
        if value > baseline + allowance {
            watch.problems.push(format!(
                "{what}: {value} {unit} is above its bound {} {unit} (baseline {baseline} + {allowance})",
                baseline + allowance
            ));
        }
    };
    check(
        "engine max RSS",
        watch.engine.rss_kib,
        engine.rss_kib,
        Bounds::ENGINE_RSS_KIB,
        "KiB",
    );
    check(
        "engine max descriptors other than table files",
        watch.engine.fds_other_than_sst,
        engine.fds.other_than_sst(),
        Bounds::ENGINE_FDS,
        "fds",
    );
    check(
        "engine max table files open",
        watch.engine.sst,
        0,
        Bounds::ENGINE_SST,
        "fds",
    );
    if let Some(after) = engine_after {
        check(
            "engine descriptors other than table files after recovery",
            after.fds.other_than_sst(),
            engine.fds.other_than_sst(),
            Bounds::ENGINE_FDS_AFTER,
            "fds",
        );
    }
    check(
        "launcher max RSS",
        watch.launcher.rss_kib,
        launcher.rss_kib,
        Bounds::LAUNCHER_RSS_KIB,
        "KiB",
    );
    check(
        "launcher max descriptors",
        watch.launcher.fds,
        launcher.fds.total,
        Bounds::LAUNCHER_FDS,
        "fds",
    );
}
