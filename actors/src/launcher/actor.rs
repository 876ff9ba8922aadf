//! The Launcher actor: one engine process at a time, its restarts, and upgrades.
//!
//! Messages: [`LauncherSignal`] from the process edge (`src/launch.rs`): `Terminate`
//! (SIGTERM/SIGINT), `Reload` (SIGHUP), `RestartEngine` (SIGUSR1), `Child` (SIGCHLD). Timers
//! (backoff, kill deadline, health polls) are closures the actor schedules on itself; each
//! carries the epoch of the engine it was meant for and is ignored once that engine is gone,
//! so a stale timer can never act on a later engine or a later upgrade.
//!
//! Upgrade steps (checkpoint, copies, renames) run synchronously on the actor: they take
//! milliseconds to a few seconds, and a signal arriving meanwhile is handled right after.
//! The engine is spawned from this (the system) thread, which lives as long as the launcher,
//! as the parent-death signal requires.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix::prelude::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::oneshot;

use super::{
    after_exit, back_off, failpoint, install, next_action, notify, process, EngineExit,
    LauncherSettings, Next, Probation, StopIntent, UpgradeAction, Verdict,
};
use crate::config;
use crate::supervision::RestartTracker;
use crate::upgrade::{self, read_marker, write_marker, Marker, Step};

/// How often the launcher checks on its engine even without SIGCHLD (signals coalesce).
const REAP_INTERVAL: Duration = Duration::from_secs(1);
/// One `/health` request may take this long.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// A signal the process edge received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum LauncherSignal {
    /// SIGTERM or SIGINT: stop the engine within `shutdown_timeout`, then exit 0. A second
    /// one kills the engine at once.
    Terminate,
    /// SIGHUP: forwarded to the engine (it reloads its YAML); the launcher reloads its own
    /// section.
    Reload,
    /// SIGUSR1: graceful engine restart.
    RestartEngine,
    /// SIGCHLD: the engine may have exited.
    Child,
}

/// How the launcher ends: its exit code, or a re-execution of the new binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub code: i32,
    pub reexec: Option<PathBuf>,
}

struct Running {
    pid: Pid,
    epoch: u64,
    started: Instant,
}

pub struct Launcher {
    settings: LauncherSettings,
    tracker: RestartTracker,
    engine: Option<Running>,
    /// Set when the launcher asked the engine to stop, and why.
    stopping: Option<StopIntent>,
    probation: Option<Probation>,
    /// The upgrade under way (its marker as last recorded).
    upgrade: Option<Marker>,
    /// For the figures in the logs: when the launcher began applying, or rolling back.
    upgrade_began: Option<Instant>,
    rollback_began: Option<Instant>,
    /// Incremented at each spawn; timers carry it.
    epoch: u64,
    shutting_down: bool,
    /// The last watchdog check failed (logged once per streak).
    watchdog_withheld: bool,
    done: Option<oneshot::Sender<Finished>>,
}

impl Launcher {
    /// `done` receives how the launcher ends; the caller then stops the system.
    pub fn new(settings: LauncherSettings, done: oneshot::Sender<Finished>) -> Self {
        let tracker = RestartTracker::new(settings.launcher.restart.clone(), Instant::now());
        Launcher {
            settings,
            tracker,
            engine: None,
            stopping: None,
            probation: None,
            upgrade: None,
            upgrade_began: None,
            rollback_began: None,
            epoch: 0,
            shutting_down: false,
            watchdog_withheld: false,
            done: Some(done),
        }
    }

    /// First thing at start: an engine orphaned by a killed launcher, and an upgrade it left.
    fn resume(&mut self, ctx: &mut Context<Self>) {
        let s = &self.settings;
        if let Some(pid) = process::stop_orphan(
            &s.layout.pid_file(),
            &s.config_path,
            s.launcher.shutdown_timeout,
        ) {
            tracing::info!(%pid, "the previous engine is gone");
        }
        match read_marker(&self.settings.layout.marker()) {
            Ok(Some(marker)) if !marker.step.is_final() => {
                tracing::warn!(
                    command_id = %marker.command_id,
                    from = %marker.from_version,
                    to = %marker.to_version,
                    step = %marker.step,
                    "an upgrade is under way; resuming it"
                );
                self.upgrade = Some(marker);
                self.upgrade_began = Some(Instant::now());
                self.drive_upgrade(ctx);
            }
            Ok(_) => {
                self.tidy_after_upgrade();
                self.spawn(ctx);
            }
            Err(e) => {
                let aside = self.settings.layout.marker().with_extension("json.corrupt");
                tracing::error!(error = %e, moved_to = %aside.display(), "the upgrade marker is unreadable; moving it aside and starting the installed binary");
                if let Err(e) = std::fs::rename(self.settings.layout.marker(), &aside) {
                    tracing::error!(error = %e, "cannot move the unreadable marker aside");
                }
                self.spawn(ctx);
            }
        }
    }

    fn tidy_after_upgrade(&self) {
        if let Err(e) = install::cleanup(&self.settings.layout) {
            tracing::warn!(error = %e, "cannot remove the backup or staging of a finished upgrade; it only takes disk space");
        }
    }

    fn spawn(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return self.finish(0, None, ctx);
        }
        let binary = self.settings.engine_binary();
        self.epoch += 1;
        match process::spawn_engine(&binary, &self.settings.config_path) {
            Ok(pid) => {
                let now = Instant::now();
                process::write_pid_file(&self.settings.layout.pid_file(), pid);
                self.engine = Some(Running {
                    pid,
                    epoch: self.epoch,
                    started: now,
                });
                self.tracker.started(now);
                let on_probation = self.probation.is_some();
                tracing::info!(%pid, binary = %binary.display(), on_probation, "engine started");
                if on_probation {
                    self.schedule_health_poll(self.epoch, Duration::ZERO, ctx);
                }
                notify::notify(&[notify::NotifyState::Status(&format!(
                    "engine running (pid {pid}{})",
                    if on_probation {
                        ", new version on probation"
                    } else {
                        ""
                    }
                ))]);
            }
            Err(e) => {
                tracing::error!(binary = %binary.display(), error = %e, "cannot start the engine");
                self.on_exit(EngineExit::SpawnFailed, Duration::ZERO, ctx);
            }
        }
    }

    fn reap(&mut self, ctx: &mut Context<Self>) {
        let Some(running) = &self.engine else { return };
        if let Some(exit) = process::try_reap(running.pid) {
            let ran = running.started.elapsed();
            self.engine = None;
            process::remove_pid_file(&self.settings.layout.pid_file());
            self.on_exit(exit, ran, ctx);
        }
    }

    fn on_exit(&mut self, exit: EngineExit, ran: Duration, ctx: &mut Context<Self>) {
        let intent = self.stopping.take();
        let next = after_exit(
            exit,
            intent.as_ref(),
            self.probation.is_some(),
            ran,
            &mut self.tracker,
            Instant::now(),
        );
        tracing::info!(exit = %exit, ran_ms = ran.as_millis() as u64, ?intent, "engine exited");
        self.act(next, ctx);
    }

    fn act(&mut self, next: Next, ctx: &mut Context<Self>) {
        match next {
            Next::Exit { code, why } => {
                if code == 0 {
                    tracing::info!(why, "launcher stopping");
                } else {
                    tracing::error!(code, why, "launcher giving up");
                }
                self.finish(code, None, ctx);
            }
            Next::Reexec => {
                let binary = self.settings.layout.engine_bin();
                self.finish(0, Some(binary), ctx);
            }
            Next::Restart => {
                if let Some(p) = &mut self.probation {
                    *p = Probation::new(self.settings.launcher.health_grace, Instant::now());
                }
                self.spawn(ctx);
            }
            Next::RestartAfter { delay, attempt } => {
                tracing::warn!(
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    "engine failed; restarting after a backoff"
                );
                notify::notify(&[notify::NotifyState::Status(&format!(
                    "engine failed; restart {attempt} in {} ms",
                    delay.as_millis()
                ))]);
                let epoch = self.epoch;
                ctx.run_later(delay, move |act, ctx| {
                    if act.epoch == epoch && act.engine.is_none() {
                        act.spawn(ctx);
                    }
                });
            }
            Next::ApplyUpgrade => self.apply_staged(ctx),
            Next::Rollback(reason) => self.begin_rollback(reason, ctx),
        }
    }

    /// Exit 76: the engine staged an upgrade.
    fn apply_staged(&mut self, ctx: &mut Context<Self>) {
        match read_marker(&self.settings.layout.marker()) {
            Ok(Some(marker)) if marker.step == Step::Staged => {
                tracing::info!(command_id = %marker.command_id, from = %marker.from_version, to = %marker.to_version, "applying the staged upgrade");
                self.upgrade = Some(marker);
                self.upgrade_began = Some(Instant::now());
                self.drive_upgrade(ctx);
            }
            other => {
                let found = match other {
                    Ok(Some(m)) => format!("a marker at step {}", m.step),
                    Ok(None) => "no marker".to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::error!(found, "the engine exited 76 (upgrade staged) but there is no staged upgrade; treating it as a failure");
                let next = back_off(
                    &mut self.tracker,
                    Instant::now(),
                    "exit 76 without a staged upgrade",
                );
                self.act(next, ctx);
            }
        }
    }

    /// Run upgrade steps from the recorded marker until the new engine is on probation, the
    /// upgrade is finished, or a step must be retried later.
    fn drive_upgrade(&mut self, ctx: &mut Context<Self>) {
        loop {
            let Some(marker) = &self.upgrade else {
                return self.spawn(ctx);
            };
            let layout = self.settings.layout.clone();
            let recorded = match next_action(marker, layout.staged_bin().is_file()) {
                UpgradeAction::Backup => {
                    match install::backup(&layout, &self.settings.engine_binary()) {
                        Ok(()) => self.record(Step::BackedUp, None),
                        Err(e) => self.record(
                            Step::RolledBack,
                            Some(format!("the backup failed, nothing was changed: {e}")),
                        ),
                    }
                }
                UpgradeAction::Swap => match install::swap(&layout) {
                    Ok(()) => self.record(Step::Swapped, None),
                    Err(e) => self.record(
                        Step::RollingBack,
                        Some(format!("the binary swap failed: {e}")),
                    ),
                },
                UpgradeAction::StartProbation => {
                    if self.record(Step::Probation, None) {
                        self.probation = Some(Probation::new(
                            self.settings.launcher.health_grace,
                            Instant::now(),
                        ));
                        self.spawn(ctx);
                        failpoint("probation:running");
                        return;
                    }
                    false
                }
                UpgradeAction::BeginRollback(reason) => {
                    self.rollback_began.get_or_insert_with(Instant::now);
                    self.record(Step::RollingBack, Some(reason))
                }
                UpgradeAction::Restore => match install::restore(&layout) {
                    Ok(()) => self.record(Step::RolledBack, None),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot restore the previous version; retrying");
                        false
                    }
                },
                UpgradeAction::Abort(reason) => self.record(Step::RolledBack, Some(reason)),
                UpgradeAction::Finish => {
                    self.finish_upgrade();
                    return self.spawn(ctx);
                }
            };
            if !recorded {
                return self.retry_upgrade_later(ctx);
            }
        }
    }

    fn retry_upgrade_later(&mut self, ctx: &mut Context<Self>) {
        match back_off(&mut self.tracker, Instant::now(), "an upgrade step failed") {
            Next::RestartAfter { delay, .. } => {
                let epoch = self.epoch;
                ctx.run_later(delay, move |act, ctx| {
                    if act.epoch == epoch && act.engine.is_none() && !act.shutting_down {
                        act.drive_upgrade(ctx);
                    }
                });
            }
            other => self.act(other, ctx),
        }
    }

    /// The upgrade reached a final step: log the outcome and tidy up.
    fn finish_upgrade(&mut self) {
        if let Some(m) = self.upgrade.take() {
            match m.step {
                Step::RolledBack => tracing::error!(
                    command_id = %m.command_id,
                    to = %m.to_version,
                    back_to = %m.from_version,
                    reason = m.reason.as_deref().unwrap_or(""),
                    rollback_ms = self.rollback_began.map(|t| t.elapsed().as_millis() as u64),
                    "upgrade rolled back; starting the previous version"
                ),
                _ => {
                    tracing::info!(command_id = %m.command_id, version = %m.to_version, "upgrade finished")
                }
            }
        }
        self.probation = None;
        self.upgrade_began = None;
        self.rollback_began = None;
        self.tidy_after_upgrade();
    }

    /// Record `step` in the marker (fsynced) before going on; false if it could not be written.
    fn record(&mut self, step: Step, reason: Option<String>) -> bool {
        let Some(current) = &self.upgrade else {
            return false;
        };
        let mut next = current.clone();
        if let Err(e) = next.advance(step, reason) {
            tracing::error!(error = %e, "upgrade journal error; abandoning the upgrade");
            self.upgrade = None;
            return true;
        }
        if let Err(e) = write_marker(&self.settings.layout.marker(), &next) {
            tracing::error!(error = %e, %step, "cannot record the upgrade step; will retry");
            return false;
        }
        tracing::info!(%step, reason = next.reason.as_deref().unwrap_or(""), "upgrade step recorded");
        self.upgrade = Some(next);
        failpoint(&format!("after:{step}"));
        true
    }

    fn begin_rollback(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.probation = None;
        self.rollback_began.get_or_insert_with(Instant::now);
        let Some(marker) = &self.upgrade else {
            tracing::warn!(
                reason,
                "rollback asked without an upgrade under way; restarting the engine"
            );
            return self.spawn(ctx);
        };
        tracing::warn!(reason, "the new version failed its probation; rolling back");
        if marker.step != Step::RollingBack && !self.record(Step::RollingBack, Some(reason)) {
            return self.retry_upgrade_later(ctx);
        }
        self.drive_upgrade(ctx);
    }

    fn commit(&mut self, ctx: &mut Context<Self>) {
        // If the marker cannot be written, probation goes on and the next answer retries.
        if !self.record(Step::Committed, None) {
            return self.schedule_health_poll(
                self.epoch,
                self.settings.health_poll_interval(),
                ctx,
            );
        }
        let marker = self.upgrade.clone();
        self.finish_upgrade();
        let Some(marker) = marker else { return };
        if marker.update_launcher {
            let binary = self.settings.layout.engine_bin();
            match upgrade::stage::verify_binary(
                &binary,
                &marker.to_version,
                Duration::from_secs(15),
            ) {
                Ok(()) => {
                    tracing::info!(binary = %binary.display(), "updateLauncher: restarting the engine under the new launcher");
                    self.stop_engine(StopIntent::Reexec, ctx);
                }
                Err(e) => {
                    tracing::error!(error = %e, "updateLauncher: the new binary fails its check; keeping this launcher")
                }
            }
        }
    }

    fn stop_engine(&mut self, intent: StopIntent, ctx: &mut Context<Self>) {
        let Some(running) = &self.engine else { return };
        if self.stopping.is_some() {
            if intent == StopIntent::Shutdown {
                self.stopping = Some(intent);
            }
            return;
        }
        let (pid, epoch) = (running.pid, running.epoch);
        tracing::info!(%pid, ?intent, "stopping the engine");
        self.stopping = Some(intent);
        process::signal(pid, Signal::SIGTERM);
        let timeout = self.settings.launcher.shutdown_timeout;
        ctx.run_later(timeout, move |act, _| {
            if act.engine.as_ref().is_some_and(|e| e.epoch == epoch) {
                tracing::warn!(%pid, timeout_ms = timeout.as_millis() as u64, "the engine did not stop within the shutdown timeout; killing it");
                process::signal(pid, Signal::SIGKILL);
            }
        });
    }

    fn schedule_health_poll(&mut self, epoch: u64, after: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(after, move |act, ctx| act.poll_health(epoch, ctx));
    }

    fn poll_health(&mut self, epoch: u64, ctx: &mut Context<Self>) {
        if !self.is_current(epoch) || self.probation.is_none() {
            return;
        }
        // Where the engine says it listens: OIAnalytics may have moved `webServer.port`.
        let addr = probe_address(crate::api_address::current(
            &self.settings.layout.data_dir,
            self.settings.api,
        ));
        let expected = self.upgrade.as_ref().map(|m| m.to_version.clone());
        ctx.spawn(
            check_health(addr, expected)
                .into_actor(self)
                .map(move |answer, act, ctx| act.on_health(epoch, answer, ctx)),
        );
    }

    fn on_health(&mut self, epoch: u64, answer: Result<(), String>, ctx: &mut Context<Self>) {
        if !self.is_current(epoch) {
            return;
        }
        let Some(probation) = &mut self.probation else {
            return;
        };
        let was_healthy = probation.healthy_since().is_some();
        match probation.on_health(answer, Instant::now()) {
            Verdict::Wait => {
                if !was_healthy && probation.healthy_since().is_some() {
                    tracing::info!(
                        since_exit_76_ms = self.upgrade_began.map(|t| t.elapsed().as_millis() as u64),
                        grace = %humantime::format_duration(self.settings.launcher.health_grace),
                        "new version healthy; probation continues"
                    );
                }
                self.schedule_health_poll(epoch, self.settings.health_poll_interval(), ctx);
            }
            Verdict::Commit => self.commit(ctx),
            Verdict::Fail(reason) => {
                self.rollback_began = Some(Instant::now());
                self.probation = None;
                // Recorded before stopping, so that a launcher stopped meanwhile restores at its
                // next start; if the write fails, `begin_rollback` retries once the engine is down.
                self.record(Step::RollingBack, Some(reason.clone()));
                self.stop_engine(StopIntent::Rollback(reason), ctx);
            }
        }
    }

    /// The engine of `epoch` still runs and is not being stopped.
    fn is_current(&self, epoch: u64) -> bool {
        self.stopping.is_none() && self.engine.as_ref().is_some_and(|e| e.epoch == epoch)
    }

    fn reload(&mut self) {
        notify::reloading();
        if let Some(running) = &self.engine {
            tracing::info!(pid = %running.pid, "SIGHUP: forwarding to the engine");
            process::signal(running.pid, Signal::SIGHUP);
        }
        match config::load(&self.settings.config_path) {
            Ok(new) => {
                if new.launcher.install_dir != self.settings.launcher.install_dir
                    || new.engine.data_dir != self.settings.layout.data_dir
                    || new.engine.api.listen != self.settings.api
                {
                    tracing::warn!("install_dir, data_dir and api.listen changes apply at the next launcher start");
                }
                self.tracker.set_policy(new.launcher.restart.clone());
                self.settings.launcher.health_grace = new.launcher.health_grace;
                self.settings.launcher.shutdown_timeout = new.launcher.shutdown_timeout;
                self.settings.launcher.restart = new.launcher.restart;
                tracing::info!("launcher settings reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "launcher settings not reloaded; keeping the running ones")
            }
        }
        notify::notify(&[notify::NotifyState::Ready]);
    }

    /// The watchdog ping, sent only while the engine answers its health check, or while no
    /// engine runs because the launcher itself is backing off (or upgrading): a hung engine
    /// or a hung launcher stops the pings and systemd restarts the service.
    fn watchdog(&mut self, ctx: &mut Context<Self>) {
        if self.engine.is_none() {
            notify::notify(&[notify::NotifyState::Watchdog]);
            return;
        }
        let addr = probe_address(crate::api_address::current(
            &self.settings.layout.data_dir,
            self.settings.api,
        ));
        ctx.spawn(check_health(addr, None).into_actor(self).map(|answer, act, _| {
            match answer {
                Ok(()) => {
                    act.watchdog_withheld = false;
                    notify::notify(&[notify::NotifyState::Watchdog]);
                }
                Err(e) if !act.watchdog_withheld => {
                    act.watchdog_withheld = true;
                    tracing::warn!(error = %e, "engine not healthy: the watchdog ping is withheld");
                }
                Err(_) => {}
            }
        }));
    }

    fn finish(&mut self, code: i32, reexec: Option<PathBuf>, ctx: &mut Context<Self>) {
        notify::notify(&[notify::NotifyState::Stopping]);
        if let Some(done) = self.done.take() {
            // The receiver lives in `launch::run` until the end; if it is gone, so is the process.
            let _ = done.send(Finished { code, reexec });
        }
        ctx.stop();
    }
}

impl Actor for Launcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(REAP_INTERVAL, |act, ctx| act.reap(ctx));
        self.resume(ctx);
        // Ready once the launcher supervises, whether or not this first engine came up: an
        // engine in backoff is the launcher doing its job, not a service that failed to start.
        notify::notify(&[notify::NotifyState::Ready]);
        if let Some(every) = notify::watchdog_interval() {
            tracing::info!(every = ?every, "systemd watchdog on");
            ctx.run_interval(every, |act, ctx| act.watchdog(ctx));
        }
    }
}

impl Handler<LauncherSignal> for Launcher {
    type Result = ();

    fn handle(&mut self, signal: LauncherSignal, ctx: &mut Self::Context) {
        match signal {
            LauncherSignal::Child => self.reap(ctx),
            LauncherSignal::Terminate => {
                if self.shutting_down {
                    if let Some(running) = &self.engine {
                        tracing::warn!(pid = %running.pid, "second stop request: killing the engine now");
                        process::signal(running.pid, Signal::SIGKILL);
                    }
                    return;
                }
                self.shutting_down = true;
                notify::notify(&[notify::NotifyState::Stopping]);
                if self.engine.is_some() {
                    self.stop_engine(StopIntent::Shutdown, ctx);
                } else {
                    tracing::info!("stop requested while no engine runs");
                    self.finish(0, None, ctx);
                }
            }
            LauncherSignal::Reload => self.reload(),
            LauncherSignal::RestartEngine => {
                if self.engine.is_some() {
                    self.stop_engine(StopIntent::Restart, ctx);
                } else if self.upgrade.is_some() {
                    tracing::warn!("SIGUSR1 ignored: an upgrade step is pending");
                } else if !self.shutting_down {
                    tracing::info!(
                        "SIGUSR1: starting the engine now instead of waiting for the backoff"
                    );
                    self.spawn(ctx);
                }
            }
        }
    }
}

/// Where to reach the engine's API: a wildcard listen address is probed on loopback.
fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /health`: OK when it answers 200 with the expected version (another version answering
/// on that port is not the engine on trial).
async fn check_health(addr: SocketAddr, expected_version: Option<String>) -> Result<(), String> {
    let (status, body) = tokio::time::timeout(HEALTH_TIMEOUT, get(addr, "/health"))
        .await
        .map_err(|_| format!("no answer from http://{addr}/health within {HEALTH_TIMEOUT:?}"))?
        .map_err(|e| format!("http://{addr}/health: {e}"))?;
    if status != 200 {
        return Err(format!(
            "http://{addr}/health answered {status}: {}",
            body.trim()
        ));
    }
    if let Some(expected) = expected_version {
        let version = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("version")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        if upgrade::normalize_version(&version) != upgrade::normalize_version(&expected) {
            return Err(format!(
                "the engine answering on {addr} runs version {version:?}, not {expected}"
            ));
        }
    }
    Ok(())
}

/// `GET path` on the engine's API; the status and the body. The caller bounds the whole exchange.
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut response = awc::Client::default()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .body()
        .limit(64 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_address_is_probed_on_loopback() {
        assert_eq!(
            probe_address("0.0.0.0:2223".parse().unwrap()),
            "127.0.0.1:2223".parse().unwrap()
        );
        assert_eq!(
            probe_address("10.0.0.5:80".parse().unwrap()),
            "10.0.0.5:80".parse().unwrap()
        );
    }

    #[actix_rt::test]
    async fn health_answer_from_another_version_is_not_healthy() {
        use crate::client::tests::{Reply, TestServer};
        let answer = serde_json::json!({"status": "ok", "version": "1.0.0"});
        let server = TestServer::start(move |_| Reply::json(answer.clone())).await;
        let addr = server.addr;
        assert_eq!(check_health(addr, Some("v1.0.0".into())).await, Ok(()));
        let err = check_health(addr, Some("2.0.0".into())).await.unwrap_err();
        assert!(err.contains("runs version \"1.0.0\""), "{err}");
    }

    #[actix_rt::test]
    async fn nothing_listening_is_not_healthy() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(check_health(addr, None).await.is_err());
    }
}
