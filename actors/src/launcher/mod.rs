//! The launcher (`oibus-agent launch`): the service's main process. It owns the engine process
//! and the install folder: it spawns `bin/oibus-agent run`, reaps it, acts on its exit code,
//! forwards signals, and applies a staged upgrade with a health-gated rollback.
//!
//! This file holds the pure decisions, testable without processes or a clock:
//! - [`after_exit`]: what the engine's exit means (stop, restart now, back off, give up, apply an
//!   upgrade, roll back), given why the launcher stopped it, if it did;
//! - [`Probation`]: whether a new version has been healthy long enough, or failed;
//! - [`next_action`]: where an upgrade stands from its marker, so that a launcher killed at any
//!   step resumes or rolls back.
//!
//! [`actor::Launcher`] is the actix shell: it takes [`actor::LauncherSignal`] from the process
//! edge (`src/launch.rs`) and does the I/O ([`process`]: spawn, reap, signal; [`install`]:
//! backup, swap, restore; [`notify`]: systemd readiness).
//!
//! Exit codes of the launcher: 0 stopped on request (or the engine stopped itself with 0),
//! 70 the engine crash-looped past `launcher.restart`, 78 the configuration is invalid,
//! 1 the launcher itself failed.

mod config;
pub use config::LauncherConfig;
pub mod actor;
pub mod install;
pub mod notify;
pub mod process;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use actor::{Finished, Launcher, LauncherSignal};

use crate::config::Config;
use crate::exit;
use crate::supervision::{Decision, RestartTracker};
use crate::upgrade::{Layout, Marker, Step};

/// A probation interrupted this many times (launcher restarts) rolls back instead of retrying.
pub const MAX_PROBATION_ATTEMPTS: u32 = 3;

/// The launcher's own exit code when the engine crash-looped.
pub const EXIT_GAVE_UP: i32 = exit::ESCALATED;

/// What the launcher needs to know, from the YAML and the command line.
#[derive(Debug, Clone)]
pub struct LauncherSettings {
    /// Absolute path of the YAML, passed on to the engine.
    pub config_path: PathBuf,
    pub layout: Layout,
    /// The engine's local API, for `/health` during probation.
    pub api: SocketAddr,
    pub launcher: LauncherConfig,
    /// The launcher's own executable: the engine binary in dev mode (no `bin/oibus-agent`).
    pub own_exe: PathBuf,
}

impl LauncherSettings {
    pub fn from_config(config_path: PathBuf, config: &Config, own_exe: PathBuf) -> Self {
        LauncherSettings {
            config_path,
            layout: Layout::from_config(config),
            api: config.engine.api.listen,
            launcher: config.launcher.clone(),
            own_exe,
        }
    }

    /// The binary to spawn: `bin/oibus-agent`, else (dev mode) the launcher's own executable.
    pub fn engine_binary(&self) -> PathBuf {
        let installed = self.layout.engine_bin();
        if installed.is_file() {
            installed
        } else {
            self.own_exe.clone()
        }
    }

    /// The committed upgrade this launcher should hand over to at start, if any: under systemd
    /// the service always starts the packaged binary (`/usr/lib/oibus-agent/current`), while an
    /// upgrade from OIAnalytics lives in the state directory (`bin/oibus-agent`). A launcher that
    /// finds a committed upgrade to another version there, an agent build answering that version,
    /// re-executes itself from it, so that the launcher and the engine stay the same binary
    /// across restarts. Never during an upgrade under way (the running launcher drives it), and
    /// never twice (the new binary runs the target version).
    pub fn upgraded_launcher(&self) -> Option<PathBuf> {
        let marker = crate::upgrade::read_marker(&self.layout.marker()).ok()??;
        if marker.step != Step::Committed {
            return None;
        }
        let to = crate::upgrade::normalize_version(&marker.to_version);
        if to == crate::upgrade::normalize_version(crate::VERSION) {
            return None;
        }
        let binary = self.layout.engine_bin();
        let same = |a: &std::path::Path, b: &std::path::Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
        if !binary.is_file() || same(&binary, &self.own_exe) {
            return None;
        }
        if !crate::upgrade::carries_agent_marker(&binary).unwrap_or(false) {
            return None;
        }
        match crate::upgrade::stage::verify_binary(&binary, to, Duration::from_secs(15)) {
            Ok(()) => Some(binary),
            Err(e) => {
                tracing::warn!(binary = %binary.display(), error = %e, "the committed upgrade fails its check; this launcher stays");
                None
            }
        }
    }

    /// How often `/health` is asked during probation.
    pub fn health_poll_interval(&self) -> Duration {
        (self.launcher.health_grace / 20).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

/// How an engine process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineExit {
    Code(i32),
    Signal(i32),
    /// It could not be started at all (missing or broken binary).
    SpawnFailed,
}

impl fmt::Display for EngineExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineExit::Code(c) => write!(f, "exited with code {c}"),
            EngineExit::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s).map_or("?", |s| s.as_str());
                write!(f, "was killed by signal {s} ({name})")
            }
            EngineExit::SpawnFailed => f.write_str("could not be started"),
        }
    }
}

/// Why the launcher itself stopped the engine; it decides what its exit means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopIntent {
    /// SIGTERM/SIGINT to the launcher: stop, exit 0.
    Shutdown,
    /// SIGUSR1: start it again at once.
    Restart,
    /// A committed upgrade with `updateLauncher`: re-execute the launcher from the new binary.
    Reexec,
    /// Probation failed while the engine ran: restore the old version once it is down.
    Rollback(String),
}

/// What to do once the engine is down.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Exit the launcher with `code`.
    Exit { code: i32, why: String },
    /// Re-execute the launcher from the installed binary.
    Reexec,
    /// Start the engine again now.
    Restart,
    /// Start it again after `delay` (attempt counts consecutive failures).
    RestartAfter { delay: Duration, attempt: u32 },
    /// The engine staged an upgrade (exit 76): apply it.
    ApplyUpgrade,
    /// The new version failed its probation: restore the old one.
    Rollback(String),
}

/// A restart request (exit 75) from an engine younger than this counts as a crash, so that a
/// binary asking to restart in a loop backs off instead of spinning.
pub const MIN_UPTIME_FOR_RESTART: Duration = Duration::from_secs(1);

/// Decide what the engine's exit means. `on_probation`: the engine was a new version on trial;
/// `ran`: how long it ran.
pub fn after_exit(
    exit: EngineExit,
    intent: Option<&StopIntent>,
    on_probation: bool,
    ran: Duration,
    tracker: &mut RestartTracker,
    now: Instant,
) -> Next {
    match intent {
        Some(StopIntent::Shutdown) => {
            return Next::Exit {
                code: 0,
                why: format!("stopped on request (the engine {exit})"),
            }
        }
        // An engine that staged an upgrade as it was being restarted still gets it applied.
        Some(StopIntent::Restart) if exit != EngineExit::Code(exit::UPGRADE) => {
            return Next::Restart
        }
        Some(StopIntent::Reexec) => return Next::Reexec,
        Some(StopIntent::Rollback(reason)) => return Next::Rollback(reason.clone()),
        Some(StopIntent::Restart) | None => {}
    }
    match exit {
        // A restart request is legitimate even on probation: the trial starts over.
        EngineExit::Code(exit::RESTART) if ran >= MIN_UPTIME_FOR_RESTART => Next::Restart,
        _ if on_probation => Next::Rollback(format!("the new engine {exit} during probation")),
        EngineExit::Code(exit::UPGRADE) => Next::ApplyUpgrade,
        EngineExit::Code(exit::STOPPED) => Next::Exit {
            code: 0,
            why: "the engine stopped with code 0 without being asked by the launcher (someone stopped it); staying stopped".into(),
        },
        EngineExit::Code(exit::CONFIG) => Next::Exit {
            code: exit::CONFIG,
            why: "the engine rejected the configuration; fix it (oibus-agent check-config) and start the service again".into(),
        },
        _ => back_off(tracker, now, &format!("it {exit}")),
    }
}

/// A failure counted against `launcher.restart`: restart after a backoff, or give up.
pub fn back_off(tracker: &mut RestartTracker, now: Instant, last: &str) -> Next {
    match tracker.on_failure(now) {
        Decision::Restart { after, attempt } => Next::RestartAfter {
            delay: after,
            attempt,
        },
        Decision::Escalate { failures } => Next::Exit {
            code: EXIT_GAVE_UP,
            why: format!(
                "the engine failed {failures} times within the launcher.restart window (last: {last}); staying down so that the service manager sees the failure"
            ),
        },
    }
}

/// A new version on trial: it must answer `/health` OK, then keep answering OK for
/// `grace`. It has `grace` to answer OK the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probation {
    grace: Duration,
    started: Instant,
    healthy_since: Option<Instant>,
}

/// The probation's verdict after a health answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Wait,
    Commit,
    Fail(String),
}

impl Probation {
    pub fn new(grace: Duration, now: Instant) -> Self {
        Probation {
            grace,
            started: now,
            healthy_since: None,
        }
    }

    /// When the new engine first answered OK.
    pub fn healthy_since(&self) -> Option<Instant> {
        self.healthy_since
    }

    pub fn on_health(&mut self, answer: Result<(), String>, now: Instant) -> Verdict {
        match answer {
            Ok(()) => {
                let since = *self.healthy_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= self.grace {
                    Verdict::Commit
                } else {
                    Verdict::Wait
                }
            }
            Err(e) if self.healthy_since.is_some() => Verdict::Fail(format!(
                "the new engine stopped being healthy during probation: {e}"
            )),
            Err(e) if now.saturating_duration_since(self.started) >= self.grace => {
                Verdict::Fail(format!(
                    "the new engine was not healthy within {} (last answer: {e})",
                    humantime::format_duration(self.grace)
                ))
            }
            Err(_) => Verdict::Wait,
        }
    }
}

/// The next thing to do for an upgrade, from its marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeAction {
    /// `staged`: checkpoint the store, copy the vault, keep the old binary.
    Backup,
    /// `backed_up`: put the new binary in place.
    Swap,
    /// `swapped` or an interrupted `probation`: (re)start the new engine on trial.
    StartProbation,
    /// Record `rolling_back` with this reason, then restore.
    BeginRollback(String),
    /// `rolling_back`: restore the old binary and data.
    Restore,
    /// Nothing was changed yet but the upgrade cannot go on: record `rolled_back` at once.
    Abort(String),
    /// A final step: tidy up and run normally.
    Finish,
}

/// Where an upgrade stands. `staged_binary_present`: whether `update/staged` still holds the
/// new binary.
pub fn next_action(marker: &Marker, staged_binary_present: bool) -> UpgradeAction {
    match marker.step {
        Step::Staged if !staged_binary_present => {
            UpgradeAction::Abort("the staged binary is missing from update/staged".into())
        }
        Step::Staged => UpgradeAction::Backup,
        Step::BackedUp => UpgradeAction::Swap,
        Step::Swapped => UpgradeAction::StartProbation,
        Step::Probation if marker.probation_attempts >= MAX_PROBATION_ATTEMPTS => {
            UpgradeAction::BeginRollback(format!(
                "probation was interrupted {} times (the launcher was restarted each time)",
                marker.probation_attempts
            ))
        }
        Step::Probation => UpgradeAction::StartProbation,
        Step::RollingBack => UpgradeAction::Restore,
        Step::Committed | Step::RolledBack => UpgradeAction::Finish,
    }
}

/// Fault injection for the crash-recovery tests: when `OIBUS_AGENT_FAILPOINT` equals `name`, the
/// launcher SIGKILLs itself right there (only with the `test-hooks` feature, see [`test_hooks`]).
///
/// [`test_hooks`]: crate::test_hooks
pub fn failpoint(name: &str) {
    if crate::test_hooks::failpoint_armed(name) {
        tracing::warn!(
            failpoint = name,
            "failpoint reached: the launcher kills itself (test)"
        );
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RestartPolicy;

    fn tracker(max_restarts: u32) -> RestartTracker {
        RestartTracker::new(
            RestartPolicy {
                max_restarts,
                within: Duration::from_secs(60),
                backoff_initial: Duration::from_millis(100),
                backoff_max: Duration::from_secs(10),
                reset_after: Duration::from_secs(30),
            },
            Instant::now(),
        )
    }

    const LONG_RUN: Duration = Duration::from_secs(60);

    fn decide(exit: EngineExit, intent: Option<&StopIntent>, probation: bool) -> Next {
        after_exit(
            exit,
            intent,
            probation,
            LONG_RUN,
            &mut tracker(5),
            Instant::now(),
        )
    }

    #[test]
    fn exit_codes_map_to_what_the_launcher_does() {
        assert!(matches!(
            decide(EngineExit::Code(0), None, false),
            Next::Exit { code: 0, .. }
        ));
        assert_eq!(decide(EngineExit::Code(75), None, false), Next::Restart);
        assert_eq!(
            decide(EngineExit::Code(76), None, false),
            Next::ApplyUpgrade
        );
        assert!(matches!(
            decide(EngineExit::Code(78), None, false),
            Next::Exit { code: 78, .. }
        ));
        for crash in [
            EngineExit::Code(70),
            EngineExit::Code(1),
            EngineExit::Signal(11),
            EngineExit::SpawnFailed,
        ] {
            assert!(
                matches!(
                    decide(crash, None, false),
                    Next::RestartAfter { attempt: 1, .. }
                ),
                "{crash}"
            );
        }
    }

    #[test]
    fn stop_requested_by_the_launcher_wins_over_the_exit_code() {
        let code = EngineExit::Signal(9);
        assert!(matches!(
            decide(code, Some(&StopIntent::Shutdown), false),
            Next::Exit { code: 0, .. }
        ));
        assert_eq!(
            decide(code, Some(&StopIntent::Restart), false),
            Next::Restart
        );
        assert_eq!(decide(code, Some(&StopIntent::Reexec), false), Next::Reexec);
        assert_eq!(
            decide(code, Some(&StopIntent::Rollback("sick".into())), true),
            Next::Rollback("sick".into())
        );
    }

    #[test]
    fn upgrade_staged_while_a_restart_was_asked_is_still_applied() {
        let next = decide(EngineExit::Code(76), Some(&StopIntent::Restart), false);
        assert_eq!(next, Next::ApplyUpgrade);
    }

    #[test]
    fn any_exit_on_probation_rolls_back_except_a_restart_request() {
        for exit in [
            EngineExit::Code(0),
            EngineExit::Code(1),
            EngineExit::Code(76),
            EngineExit::Code(78),
            EngineExit::Signal(6),
        ] {
            assert!(
                matches!(decide(exit, None, true), Next::Rollback(_)),
                "{exit}"
            );
        }
        assert_eq!(decide(EngineExit::Code(75), None, true), Next::Restart);
    }

    #[test]
    fn restart_request_right_after_start_counts_as_a_crash() {
        let next = after_exit(
            EngineExit::Code(75),
            None,
            false,
            Duration::from_millis(100),
            &mut tracker(5),
            Instant::now(),
        );
        assert!(
            matches!(next, Next::RestartAfter { attempt: 1, .. }),
            "{next:?}"
        );
    }

    #[test]
    fn crash_loop_backs_off_exponentially_then_gives_up() {
        let mut t = tracker(3);
        let now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..3 {
            match after_exit(EngineExit::Code(1), None, false, LONG_RUN, &mut t, now) {
                Next::RestartAfter { delay, .. } => delays.push(delay),
                other => panic!("expected a backoff, got {other:?}"),
            }
        }
        for (delay, step) in delays
            .into_iter()
            .zip([100, 200, 400].map(Duration::from_millis))
        {
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} for a {step:?} step"
            );
        }
        match after_exit(EngineExit::Code(1), None, false, LONG_RUN, &mut t, now) {
            Next::Exit { code, why } => {
                assert_eq!(code, EXIT_GAVE_UP);
                assert!(why.contains("failed 4 times"), "{why}");
            }
            other => panic!("expected to give up, got {other:?}"),
        }
    }

    #[test]
    fn probation_commits_after_the_grace_of_continuous_health() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let mut p = Probation::new(grace, t0);
        assert_eq!(
            p.on_health(Err("refused".into()), t0 + Duration::from_secs(1)),
            Verdict::Wait
        );
        assert_eq!(
            p.on_health(Ok(()), t0 + Duration::from_secs(2)),
            Verdict::Wait
        );
        assert_eq!(
            p.on_health(Ok(()), t0 + Duration::from_secs(11)),
            Verdict::Wait
        );
        assert_eq!(
            p.on_health(Ok(()), t0 + Duration::from_secs(12)),
            Verdict::Commit
        );
    }

    #[test]
    fn probation_fails_on_the_first_bad_answer_after_being_healthy() {
        let t0 = Instant::now();
        let mut p = Probation::new(Duration::from_secs(10), t0);
        p.on_health(Ok(()), t0);
        let v = p.on_health(Err("503 degraded".into()), t0 + Duration::from_secs(3));
        assert!(
            matches!(v, Verdict::Fail(ref r) if r.contains("stopped being healthy")),
            "{v:?}"
        );
    }

    #[test]
    fn probation_fails_when_never_healthy_within_the_grace() {
        let t0 = Instant::now();
        let mut p = Probation::new(Duration::from_secs(2), t0);
        assert_eq!(
            p.on_health(Err("refused".into()), t0 + Duration::from_secs(1)),
            Verdict::Wait
        );
        let v = p.on_health(Err("refused".into()), t0 + Duration::from_secs(2));
        assert!(
            matches!(v, Verdict::Fail(ref r) if r.contains("not healthy within 2s")),
            "{v:?}"
        );
    }

    fn marker_at(steps: &[Step]) -> Marker {
        let mut m = Marker::staged("c", "a", "1.0.0", "2.0.0", false);
        for s in steps {
            let reason = (*s == Step::RollingBack).then(|| "r".to_string());
            m.advance(*s, reason).unwrap();
        }
        m
    }

    #[test]
    fn every_recorded_step_has_a_way_forward() {
        use Step::*;
        let cases = [
            (vec![], UpgradeAction::Backup),
            (vec![BackedUp], UpgradeAction::Swap),
            (vec![BackedUp, Swapped], UpgradeAction::StartProbation),
            (
                vec![BackedUp, Swapped, Probation],
                UpgradeAction::StartProbation,
            ),
            (
                vec![BackedUp, Swapped, Probation, RollingBack],
                UpgradeAction::Restore,
            ),
            (
                vec![BackedUp, Swapped, Probation, Committed],
                UpgradeAction::Finish,
            ),
            (
                vec![BackedUp, Swapped, Probation, RollingBack, RolledBack],
                UpgradeAction::Finish,
            ),
        ];
        for (steps, expected) in cases {
            assert_eq!(
                next_action(&marker_at(&steps), true),
                expected,
                "after {steps:?}"
            );
        }
    }

    #[test]
    fn staged_marker_without_its_binary_is_aborted_before_touching_anything() {
        assert!(matches!(
            next_action(&marker_at(&[]), false),
            UpgradeAction::Abort(_)
        ));
    }

    #[test]
    fn probation_interrupted_too_often_rolls_back() {
        use Step::*;
        let m = marker_at(&[BackedUp, Swapped, Probation, Probation, Probation]);
        assert!(
            matches!(next_action(&m, true), UpgradeAction::BeginRollback(ref r) if r.contains("3 times"))
        );
    }

    #[test]
    fn exit_is_described_for_humans() {
        assert_eq!(EngineExit::Code(3).to_string(), "exited with code 3");
        assert_eq!(
            EngineExit::Signal(9).to_string(),
            "was killed by signal 9 (SIGKILL)"
        );
    }
}
