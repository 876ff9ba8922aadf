//! The launcher with real processes: `oibus-agent launch` spawning real engines (or small
//! shell scripts standing in for a broken engine), real signals, real upgrades on disk.
//!
//! The upgrade tests that need a second build of the binary, reporting version 9.9.9, are
//! `#[ignore]`d in the quick suite and run by `scripts/upgrade-test.sh`: the binary is built
//! into `<target>/upgrade-next`, seeded with a copy of the compiled dependencies (about
//! 2.5 GB). The rollback tests use small scripts as broken engines and run everywhere.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use oibus_actors::upgrade::{read_marker, write_marker, Layout, Marker, Step};
use serde_json::Value;

use crate::commands::statuses;
use crate::kit::agent::{sim_section, BIN as AGENT};
use crate::kit::service::Service;
use crate::kit::{bench_figure, procfs, wait_until, Sim};

const NEXT_VERSION: &str = "9.9.9";
/// The OIBus version the 9.9.9 build reports to OIAnalytics (`OIBUS_COMPATIBLE_VERSION`).
const NEXT_OIBUS_VERSION: &str = "3.8.9";
const FAST_RESTARTS: &str =
    "{ max_restarts: 5, within: 1m, backoff_initial: 200ms, backoff_max: 2s, reset_after: 1m }";

fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A service (`kit::Service`) whose `launcher.restart` flow mapping is `restart`, with `tail` (more
/// top-level YAML sections) and an empty `bin/`.
fn install(restart: &str, tail: &str) -> Service {
    let service = Service::new("silent", restart, tail);
    fs::create_dir_all(service.install_dir().join("bin")).unwrap();
    service
}

fn with_fast_restarts() -> Service {
    install(FAST_RESTARTS, "")
}

/// A service with fast restarts running the real engine, and the engine's pid once it is up.
fn running_real_engine() -> (Service, i64) {
    let mut install = with_fast_restarts();
    install.install_real_engine();
    install.launch(&[]);
    let engine = install.expect_engine(&version_of_agent(), None, "engine up");
    (install, engine)
}

/// The start times (ns) a test engine script appended to `starts`.
fn start_times(starts: &Path) -> Vec<u128> {
    fs::read_to_string(starts)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// What only the launcher tests need of a [`Service`].
impl Service {
    /// `bin/oibus-agent` = the real engine.
    fn install_real_engine(&self) {
        link_or_copy(Path::new(AGENT), &self.layout().engine_bin());
    }

    /// `bin/oibus-agent` = a script.
    fn install_script(&self, body: &str) {
        write_script(&self.layout().engine_bin(), body);
    }

    /// Waits for an engine of `version` whose pid differs from `not_pid`; returns its pid.
    fn wait_engine(&self, version: &str, not_pid: Option<i64>, timeout: Duration) -> Option<i64> {
        let mut found = None;
        wait_until(timeout, || {
            let Some(s) = self.status() else { return false };
            let pid = s["pid"].as_i64();
            if s["version"] == version && pid != not_pid {
                found = pid;
                return true;
            }
            false
        });
        found
    }

    /// [`Service::wait_engine`] within 30 s, or a panic that says `what` with the log.
    fn expect_engine(&self, version: &str, not_pid: Option<i64>, what: &str) -> i64 {
        self.wait_engine(version, not_pid, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{what}:\n{}", self.log_text()))
    }

    /// [`Service::wait_marker`] within 30 s, or a panic that names `step` with the log.
    fn expect_marker(&self, step: Step) -> Marker {
        self.wait_marker(step, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no {step} marker:\n{}", self.log_text()))
    }

    /// Waits up to 30 s for the launcher process to run `bin/oibus-agent`; `what` if it does not.
    fn assert_launcher_runs_bin(&self, what: &str) {
        let exe = format!("/proc/{}/exe", self.launcher_pid().unwrap());
        let runs_bin = wait_until(Duration::from_secs(30), || {
            fs::read_link(&exe).is_ok_and(|p| p == self.layout().engine_bin())
        });
        assert!(runs_bin, "{what}:\n{}", self.log_text());
    }

    fn marker(&self) -> Option<Marker> {
        read_marker(&self.layout().marker()).unwrap()
    }

    fn wait_marker(&self, step: Step, timeout: Duration) -> Option<Marker> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.marker().filter(|m| m.step == step);
            found.is_some()
        });
        found
    }

    /// What the engine side would leave after a successful staging of `binary`.
    fn stage_by_hand(&self, binary: &Path, old_version: &str, update_launcher: bool) {
        let layout = self.layout();
        fs::create_dir_all(layout.staged_bin().parent().unwrap()).unwrap();
        link_or_copy(binary, &layout.staged_bin());
        let marker = Marker::staged(
            "cmd-upgrade",
            "asset-1",
            old_version,
            NEXT_VERSION,
            update_launcher,
        );
        write_marker(&layout.marker(), &marker).unwrap();
    }

    /// The first `field=<number>` the launcher logged.
    fn logged_ms(&self, field: &str) -> Option<u64> {
        let log = self.log_text();
        let at = log.find(&format!("{field}="))? + field.len() + 1;
        log[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    fn engine_healthy(&self) -> bool {
        self.get_json("/health")
            .is_some_and(|h| h["status"] == "ok")
    }
}

fn link_or_copy(from: &Path, to: &Path) {
    let _ = fs::remove_file(to);
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to).unwrap();
    }
}

fn version_of_agent() -> String {
    let out = Command::new(AGENT).arg("--version").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Launcher only
// ---------------------------------------------------------------------------------------------

#[test]
fn crash_loop_backs_off_more_each_time_and_stops_at_the_limit() {
    let mut install = install(
        "{ max_restarts: 3, within: 1m, backoff_initial: 200ms, backoff_max: 5s, reset_after: 1m }",
        "",
    );
    let starts = install.path("starts");
    install.install_script(&format!("date +%s%N >> {}\nexit 1", starts.display()));
    install.launch(&[]);
    let status = install
        .wait_exit(Duration::from_secs(20))
        .expect("the launcher gives up");
    assert_eq!(status.code(), Some(70), "{}", install.log_text());
    assert!(
        install.log_text().contains("staying down"),
        "{}",
        install.log_text()
    );
    let times = start_times(&starts);
    assert_eq!(times.len(), 4, "the first start and 3 restarts");
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .collect();
    eprintln!("crash loop: gaps between starts (ms): {gaps:?}");
    // Nominal 200, 400, 800 ms, each jittered down to no less than half.
    for (gap, nominal) in gaps.iter().zip([200u128, 400, 800]) {
        assert!(
            *gap >= nominal / 2,
            "gap {gap} ms for a nominal {nominal} ms: {gaps:?}"
        );
    }
    assert!(gaps[2] > gaps[0], "the backoff grows: {gaps:?}");
}

#[test]
fn config_rejected_by_the_engine_keeps_it_down_with_78() {
    let mut install = with_fast_restarts();
    let starts = install.path("starts");
    install.install_script(&format!("echo x >> {}\nexit 78", starts.display()));
    install.launch(&[]);
    let status = install
        .wait_exit(Duration::from_secs(10))
        .expect("the launcher stops");
    assert_eq!(status.code(), Some(78));
    assert_eq!(
        fs::read_to_string(&starts).unwrap().lines().count(),
        1,
        "never restarted"
    );
}

#[test]
fn sigterm_stops_the_engine_gracefully_within_the_timeout() {
    let (mut install, engine) = running_real_engine();
    let asked = Instant::now();
    install.signal_launcher(Signal::SIGTERM);
    let status = install
        .wait_exit(Duration::from_secs(10))
        .expect("the launcher stops");
    let took = asked.elapsed();
    eprintln!("SIGTERM to launcher exit: {took:?}");
    assert_eq!(status.code(), Some(0), "{}", install.log_text());
    assert!(
        took < Duration::from_secs(5),
        "within shutdown_timeout: {took:?}"
    );
    assert!(!procfs::alive(engine as u32), "the engine is gone");
    let log = install.log_text();
    assert!(
        log.contains("oibus-agent engine stopped"),
        "the engine stopped in order:\n{log}"
    );
    assert!(
        log.contains("stopped on request (the engine exited with code 0)"),
        "{log}"
    );
    assert!(!install.layout().pid_file().exists());
}

#[test]
fn sighup_reaches_the_engine() {
    let (install, _) = running_real_engine();
    assert!(install.status().unwrap()["config"]["last_reload"].is_null());
    install.signal_launcher(Signal::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || {
            install
                .status()
                .is_some_and(|s| s["config"]["last_reload"]["applied"] == true)
        }),
        "the engine reloaded its configuration:\n{}",
        install.log_text()
    );
}

#[test]
fn sigusr1_restarts_the_engine_under_the_same_launcher() {
    let (mut install, first) = running_real_engine();
    install.signal_launcher(Signal::SIGUSR1);
    install.expect_engine(&version_of_agent(), Some(first), "a new engine pid");
    assert!(!procfs::alive(first as u32));
    assert!(
        install.launcher_exited().is_none(),
        "the launcher keeps running"
    );
}

#[test]
fn exit_75_restarts_at_once_without_backoff() {
    // A 3 s backoff would show: the restart after 75 must not wait for it.
    let mut install = install(
        "{ max_restarts: 5, within: 1m, backoff_initial: 3s, backoff_max: 3s, reset_after: 1m }",
        "",
    );
    let starts = install.path("starts");
    let once = install.path("once");
    install.install_script(&format!(
        "date +%s%N >> {starts}\nif [ ! -f {once} ]; then touch {once}; sleep 1.2; exit 75; fi\nexec {AGENT} \"$@\"",
        starts = starts.display(),
        once = once.display(),
    ));
    install.launch(&[]);
    install.expect_engine(&version_of_agent(), None, "engine up after the restart");
    let times = start_times(&starts);
    assert_eq!(times.len(), 2);
    let gap_ms = (times[1] - times[0]) / 1_000_000;
    eprintln!("exit 75: {gap_ms} ms between the two starts, 1200 of which the first one ran");
    assert!(
        gap_ms < 2_000,
        "restart at once, not after the 3 s backoff: {gap_ms} ms\n{}",
        install.log_text()
    );
}

#[test]
fn without_an_installed_binary_the_launcher_runs_itself_as_the_engine() {
    let mut install = with_fast_restarts();
    install.launch(&[]);
    let pid = install.expect_engine(&version_of_agent(), None, "engine up");
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(
        exe,
        fs::canonicalize(AGENT).unwrap(),
        "{}",
        install.log_text()
    );
}

// ---------------------------------------------------------------------------------------------
// Upgrade, launcher side
// ---------------------------------------------------------------------------------------------

/// The binary built with `OIBUS_AGENT_VERSION=9.9.9` and `OIBUS_COMPATIBLE_VERSION=3.8.9`, or
/// why there is none.
fn next_version_binary() -> Result<PathBuf, String> {
    static NEXT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    NEXT.get_or_init(build_next_version).clone()
}

fn build_next_version() -> Result<PathBuf, String> {
    let profile = Path::new(AGENT).parent().ok_or("no target folder")?;
    let target = profile.parent().ok_or("no target folder")?;
    let next_target = target.join("upgrade-next");
    let next_profile = next_target.join(profile.file_name().ok_or("no profile folder")?);
    if !next_profile.exists() {
        // Seeded aside and renamed: a copy cut short must not pass for a seeded folder.
        let partial = next_target.join("seeding");
        let _ = fs::remove_dir_all(&partial);
        seed_target(profile, &partial)?;
        fs::rename(&partial, &next_profile).map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    // The variables `cargo test` sets for this process would reach build scripts that track
    // them (ring tracks CARGO_MANIFEST_DIR) and make the build differ from a plain one.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME") || key == "LD_LIBRARY_PATH" {
            cargo.env_remove(&*key);
        }
    }
    // RocksDB's C++ takes ~25 minutes on 2 cores: link the library the main build made.
    if let Some(lib_dir) = built_rocksdb(profile) {
        cargo
            .env("ROCKSDB_LIB_DIR", lib_dir)
            .env("ROCKSDB_STATIC", "1");
    }
    let out = cargo
        .args(["build", "--bin", "oibus-agent", "--target-dir"])
        .arg(&next_target)
        .env("OIBUS_AGENT_VERSION", NEXT_VERSION)
        .env("OIBUS_COMPATIBLE_VERSION", NEXT_OIBUS_VERSION)
        .env("CARGO_INCREMENTAL", "0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!("built the {NEXT_VERSION} binary in {:?}", started.elapsed());
    Ok(next_profile.join("oibus-agent"))
}

/// The folder holding the `librocksdb.a` that librocksdb-sys built for `profile`, if any.
fn built_rocksdb(profile: &Path) -> Option<PathBuf> {
    fs::read_dir(profile.join("build"))
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("librocksdb-sys-")
        })
        .map(|e| e.path().join("out"))
        .find(|out| out.join("librocksdb.a").is_file())
}

/// Copy the compiled dependencies into a fresh target folder, without the workspace's own
/// crates (rebuilt there). A copy, not hard links: cargo and build scripts rewrite some of
/// these files in place, which would write through a link into the main target.
fn seed_target(from: &Path, to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| e.to_string())?;
    for sub in ["deps", "build", ".fingerprint"] {
        let status = Command::new("cp")
            .arg("-a")
            .arg(from.join(sub))
            .arg(to.join(sub))
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("cp -a {sub} failed"));
        }
        for entry in fs::read_dir(to.join(sub))
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().replace('-', "_");
            if name.contains("oibus_a") || name.starts_with("main_") {
                let path = entry.path();
                let _ = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
    }
    Ok(())
}

macro_rules! next_binary_or_skip {
    () => {
        match next_version_binary() {
            Ok(path) => path,
            Err(why) => panic!("cannot build the {NEXT_VERSION} binary these tests need: {why}"),
        }
    };
}

/// An install whose `bin/oibus-agent` is the real engine behind a script that exits 76 once
/// when the file `exit76` exists: the test plays the command executor that staged an upgrade.
fn upgradable_install() -> Service {
    let install = with_fast_restarts();
    let trigger = install.path("exit76");
    install.install_script(&format!(
        "if [ -f {t} ]; then rm -f {t}; exit 76; fi\nexec {AGENT} \"$@\"",
        t = trigger.display()
    ));
    install
}

/// Stage `binary`, then make the running engine exit 76 (SIGUSR1 restarts it into the trigger).
fn upgrade_to(install: &Service, binary: &Path) -> Instant {
    install.stage_by_hand(binary, &version_of_agent(), false);
    fs::write(install.path("exit76"), b"").unwrap();
    let t0 = Instant::now();
    install.signal_launcher(Signal::SIGUSR1);
    t0
}

/// Launches the old version, upgrades it to `binary` and waits for the rollback, whose reason
/// must contain `why`; the launcher, the old engine's pid and the marker.
fn rolled_back(install: &mut Service, binary: &Path, why: &str) -> (i64, Marker) {
    install.launch(&[]);
    let first = install.expect_engine(&version_of_agent(), None, "old engine up");
    upgrade_to(install, binary);
    let marker = install.expect_marker(Step::RolledBack);
    let reason = marker.reason.as_deref().unwrap_or_default();
    assert!(reason.contains(why), "{marker:?}");
    (first, marker)
}

fn millis_between(from: &Marker, step_a: Step, step_b: Step) -> Option<i64> {
    let at = |s: Step| {
        from.history
            .iter()
            .rev()
            .find(|r| r.step == s)
            .and_then(|r| chrono::DateTime::parse_from_rfc3339(&r.at).ok())
    };
    Some((at(step_b)? - at(step_a)?).num_milliseconds())
}

#[test]
#[ignore = "slow: builds a second binary (version 9.9.9); run scripts/upgrade-test.sh"]
fn staged_upgrade_is_applied_and_committed_after_the_grace() {
    let next = next_binary_or_skip!();
    let mut install = upgradable_install();
    let old = version_of_agent();
    install.launch(&[]);
    install.expect_engine(&old, None, "old engine up");

    let t0 = upgrade_to(&install, &next);
    install.expect_engine(NEXT_VERSION, None, "the new version runs");
    let to_healthy = t0.elapsed();
    let marker = install
        .wait_marker(Step::Committed, Duration::from_secs(10))
        .expect("committed");
    eprintln!(
        "upgrade: SIGUSR1 → new version answering {to_healthy:?}; launcher: exit 76 → healthy {:?} ms; committed after {:?} ms of probation",
        install.logged_ms("since_exit_76_ms"),
        millis_between(&marker, Step::Probation, Step::Committed),
    );
    if let Some(ms) = install.logged_ms("since_exit_76_ms") {
        bench_figure("upgrade_exit76_to_healthy_ms", ms as f64, "ms");
    }
    let layout = install.layout();
    assert!(
        wait_until(Duration::from_secs(5), || !layout.backup_dir().exists()
            && !layout.staged_dir().exists()),
        "backup and staging removed after the commit"
    );
    let out = Command::new(layout.engine_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(NEXT_VERSION));
    assert!(install.engine_healthy());
}

#[test]
fn new_binary_that_exits_at_once_is_rolled_back_and_the_old_version_runs_again() {
    let mut install = upgradable_install();
    let old = version_of_agent();
    let vault = install.data_dir().join("vault");
    fs::create_dir_all(&vault).unwrap();
    fs::write(vault.join("test-key"), b"old").unwrap();
    let broken = install.path("broken");
    // A new version that changes the data, then dies.
    write_script(
        &broken,
        &format!("echo new > {}/test-key\nexit 1", vault.display()),
    );

    let (first, marker) = rolled_back(&mut install, &broken, "exited with code 1");
    install.expect_engine(&old, Some(first), "the old version runs again");
    let healthy_at = chrono::Utc::now();
    let crash_at = marker
        .history
        .iter()
        .find(|r| r.step == Step::Probation)
        .unwrap();
    let crash_at = chrono::DateTime::parse_from_rfc3339(&crash_at.at).unwrap();
    let rollback_ms = (healthy_at - crash_at.with_timezone(&chrono::Utc)).num_milliseconds();
    eprintln!(
        "rollback: new engine started → old version healthy again in {rollback_ms} ms (launcher: restore took {:?} ms)",
        install.logged_ms("rollback_ms"),
    );
    bench_figure("rollback_ms", rollback_ms as f64, "ms");
    assert_eq!(
        fs::read(vault.join("test-key")).unwrap(),
        b"old",
        "the data is restored"
    );
    let bin = fs::read_to_string(install.layout().engine_bin()).unwrap();
    assert!(bin.contains("exit 76"), "the old binary is back");
    assert!(wait_until(Duration::from_secs(5), || !install
        .layout()
        .backup_dir()
        .exists()));
}

#[test]
fn new_binary_that_never_gets_healthy_is_rolled_back_after_the_grace() {
    let mut install = upgradable_install();
    let old = version_of_agent();
    let silent = install.path("silent");
    write_script(&silent, "exec sleep 600");
    let (first, marker) = rolled_back(&mut install, &silent, "not healthy within 1s");
    let waited = millis_between(&marker, Step::Probation, Step::RollingBack).unwrap();
    assert!(waited >= 1_000, "the grace period was given: {waited} ms");
    install.expect_engine(&old, Some(first), "the old version runs again");
}

/// The FHS layout: no `bin/oibus-agent` at first, the launcher runs its own (packaged,
/// read-only) binary as the engine. An upgrade lands in `bin/` (the state directory); once it
/// is committed, a launcher started again from the packaged binary (what systemd does) hands
/// over to it, so that launcher and engine stay the same version.
#[test]
#[ignore = "slow: builds a second binary (version 9.9.9); run scripts/upgrade-test.sh"]
fn a_committed_upgrade_of_a_packaged_install_takes_over_at_the_next_start() {
    let next = next_binary_or_skip!();
    let mut install = with_fast_restarts();
    install.stage_by_hand(&next, &version_of_agent(), false);
    install.launch(&[]);
    install.expect_marker(Step::Committed);
    assert!(install.layout().engine_bin().is_file());
    install.expect_engine(NEXT_VERSION, None, "the new engine runs");
    assert!(install
        .stop(Duration::from_secs(20))
        .is_some_and(|s| s.success()));

    install.launch(&[]);
    install.assert_launcher_runs_bin(
        "the launcher started from the packaged binary hands over to bin/oibus-agent",
    );
    install.expect_engine(NEXT_VERSION, None, "the new engine runs");
}

#[test]
#[ignore = "slow: builds a second binary (version 9.9.9); run scripts/upgrade-test.sh"]
fn update_launcher_reexecutes_the_launcher_from_the_new_binary_after_the_commit() {
    let next = next_binary_or_skip!();
    let mut install = with_fast_restarts();
    install.install_script(&format!("exec {AGENT} \"$@\""));
    install.stage_by_hand(&next, &version_of_agent(), true);
    install.launch(&[]);
    install.expect_marker(Step::Committed);
    install.assert_launcher_runs_bin("the launcher process (same pid) now runs bin/oibus-agent");
    install.expect_engine(NEXT_VERSION, None, "the new launcher runs the new engine");
    assert!(install.log_text().contains("re-executing the launcher"));
}

#[test]
#[ignore = "slow: builds a second binary (version 9.9.9); run scripts/upgrade-test.sh"]
fn launcher_killed_at_any_upgrade_step_converges_on_a_healthy_version() {
    let next = next_binary_or_skip!();
    let old = version_of_agent();
    let good = [
        "backup:partial",
        "after:backed_up",
        "swap:renamed",
        "after:swapped",
        "after:probation",
        "probation:running",
        "after:committed",
    ];
    let bad = ["after:rolling_back", "restore:binary", "after:rolled_back"];
    let cases = good
        .iter()
        .map(|f| (*f, true))
        .chain(bad.iter().map(|f| (*f, false)));
    for (failpoint, next_is_good) in cases {
        let mut install = with_fast_restarts();
        install.install_script(&format!("exec {AGENT} \"$@\""));
        let binary = if next_is_good {
            next.clone()
        } else {
            let broken = install.path("broken");
            write_script(&broken, "exit 1");
            broken
        };
        install.stage_by_hand(&binary, &old, false);

        install.launch(&[("OIBUS_AGENT_FAILPOINT", failpoint)]);
        let status = install.wait_exit(Duration::from_secs(30));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(9),
            "{failpoint}: the launcher died at the failpoint:\n{}",
            install.log_text()
        );
        let step_at_kill = install.marker().map(|m| m.step);

        install.launch(&[]);
        let (expected_step, expected_version) = if next_is_good {
            (Step::Committed, NEXT_VERSION)
        } else {
            (Step::RolledBack, old.as_str())
        };
        let marker = install.wait_marker(expected_step, Duration::from_secs(30));
        assert!(
            marker.is_some(),
            "{failpoint} (killed at {step_at_kill:?}): ends {expected_step}, got {:?}\n{}",
            install.marker().map(|m| m.step),
            install.log_text()
        );
        let runs = format!("{failpoint}: {expected_version} runs and is healthy");
        install.expect_engine(expected_version, None, &runs);
        assert!(install.engine_healthy());
        eprintln!("killed at {failpoint} ({step_at_kill:?}) → {expected_step}, {expected_version} healthy");
    }
}

#[test]
#[ignore = "slow: builds a second binary (version 9.9.9); run scripts/upgrade-test.sh"]
fn release_zip_script_builds_an_asset_the_engine_stages() {
    let next = next_binary_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/release-zip.sh"
    ))
    .arg(NEXT_VERSION)
    .arg("--binary")
    .arg(&next)
    .arg("--out")
    .arg(dir.path())
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("zip: command not found")
    {
        eprintln!("SKIPPED: the zip command is not installed");
        return;
    }
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zip = PathBuf::from(stdout.lines().next().unwrap());
    assert!(zip
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("oibus-agent-9.9.9-linux_"));

    let layout = Layout::new(dir.path().join("inst"), dir.path().join("data"));
    let request = oibus_actors::upgrade::StageRequest {
        command_id: "cmd-1".into(),
        asset_id: "asset-1".into(),
        version: format!("v{NEXT_VERSION}"),
        update_launcher: false,
    };
    let limits = oibus_actors::upgrade::StageLimits {
        min_free_bytes: 0,
        ..Default::default()
    };
    let marker = oibus_actors::upgrade::stage_from_zip(&zip, &request, &layout, &limits).unwrap();
    assert_eq!(
        (marker.step, marker.to_version.as_str()),
        (Step::Staged, NEXT_VERSION)
    );
    assert!(layout.staged_bin().is_file());
}

// ---------------------------------------------------------------------------------------------
// The whole round trip: OIAnalytics asks, the engine stages, the launcher applies
// ---------------------------------------------------------------------------------------------

/// A release zip holding `binary` as `name`, `binaries/oibus-agent` or OIBus's `binaries/oibus`
/// (stored: the test binary is large and compressing it unoptimised would take long).
fn release_zip_at(binary: &Path, name: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755);
    zip.start_file(name, options).unwrap();
    zip.write_all(&fs::read(binary).unwrap()).unwrap();
    zip.finish().unwrap().into_inner()
}

/// A simulator and an install registered with it, its launcher running the current version.
fn registered_install() -> (Sim, Service) {
    let sim = Sim::auto_completing("10ms");
    let mut install = install(FAST_RESTARTS, &sim_section(&sim, ""));
    install.install_script(&format!("exec {AGENT} \"$@\""));
    install.launch(&[]);
    assert!(
        wait_until(Duration::from_secs(60), || install
            .status()
            .is_some_and(|s| s["registration"]["status"] == "REGISTERED")),
        "registered:\n{}",
        install.log_text()
    );
    (sim, install)
}

/// Publish `binary` at `name` in an asset and queue `update-version` `id` to it.
fn queue_update_version_at(sim: &Sim, id: &str, binary: &Path, name: &str) {
    let asset = format!("oibus-agent-{id}.zip");
    sim.put_asset(&asset, release_zip_at(binary, name));
    sim.queue(&serde_json::json!({
        // OIA targets the OIBus version it was told; the asset's version is the agent's.
        "id": id, "type": "update-version", "targetVersion": oibus_actors::COMPATIBLE_OIBUS_VERSION,
        "commandContent": {"version": format!("v{NEXT_VERSION}"), "assetId": asset,
            "updateLauncher": false, "backupFoldersPattern": "cache/*"}
    }));
}

/// The COMPLETED or ERRORED record OIAnalytics received for command `id`.
fn final_status(sim: &Sim, id: &str, install: &Service) -> Value {
    let mut found = None;
    let reported = wait_until(Duration::from_secs(120), || {
        found = statuses(sim, id)
            .into_iter()
            .find(|r| r["status"] == "COMPLETED" || r["status"] == "ERRORED");
        found.is_some()
    });
    assert!(reported, "a final status for {id}:\n{}", install.log_text());
    found.unwrap_or_default()
}

#[test]
#[ignore = "slow: builds a second binary (version 9.9.9); run scripts/upgrade-test.sh"]
fn update_version_from_oianalytics_is_applied_and_reported_completed() {
    let next = next_binary_or_skip!();
    let (sim, install) = registered_install();
    let asked = Instant::now();
    queue_update_version_at(&sim, "up-1", &next, "binaries/oibus-agent");
    let record = final_status(&sim, "up-1", &install);
    eprintln!(
        "update-version: queued → {} reported in {:?}",
        record["status"],
        asked.elapsed()
    );
    assert_eq!(
        record["status"],
        "COMPLETED",
        "{record}\n{}",
        install.log_text()
    );
    assert_eq!(
        record["result"],
        format!(
            "OIBus updated to version {NEXT_VERSION}, launcher updated to version {NEXT_VERSION}"
        )
    );
    install.expect_engine(NEXT_VERSION, None, "the new engine runs");
    // OIA is told the OIBus version the new build was made for, not the agent's own.
    let full_config_has_the_new_version = wait_until(Duration::from_secs(30), || {
        sim.admin_get("/admin/messages?kind=full-config")["messages"]
            .as_array()
            .is_some_and(|m| {
                m.iter()
                    .any(|m| m["body"]["engine"]["softwareVersion"] == NEXT_OIBUS_VERSION)
            })
    });
    assert!(full_config_has_the_new_version, "{}", install.log_text());
    install.expect_marker(Step::Committed);
}

/// Publishes as `name` a script that passes the engine's `--version` check (`header` first),
/// then dies as soon as it runs: the update is rolled back, reported ERRORED, and the old
/// version runs on healthy.
fn crashing_update_is_rolled_back(id: &str, name: &str, header: &str) {
    let (sim, install) = registered_install();
    let old = version_of_agent();
    let crashing = install.path("crashing");
    write_script(
        &crashing,
        &format!(
            "{header}[ \"$1\" = --version ] && echo oibus-agent {NEXT_VERSION} && exit 0\nexit 1"
        ),
    );
    queue_update_version_at(&sim, id, &crashing, name);
    let record = final_status(&sim, id, &install);
    let result = record["result"].as_str().unwrap_or_default();
    assert!(
        record["status"] == "ERRORED"
            && result == format!("OIBus has not been updated. Rollback to version {old}"),
        "{record}\n{}",
        install.log_text()
    );
    let marker = install.marker().expect("the upgrade journal");
    assert_eq!(marker.step, Step::RolledBack);
    assert!(marker
        .reason
        .unwrap_or_default()
        .contains("exited with code 1"));
    install.expect_engine(&old, None, "the old version runs on");
    assert!(install.engine_healthy());
}

#[test]
fn update_version_to_a_binary_that_crashes_is_rolled_back_and_reported_errored() {
    crashing_update_is_rolled_back("up-2", "binaries/oibus-agent", "");
}

// ---------------------------------------------------------------------------------------------
// OIBus's asset layout: the binary at binaries/oibus
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "slow: builds a second binary (version 9.9.9); run scripts/upgrade-test.sh"]
fn update_version_with_the_agent_at_binaries_oibus_is_applied() {
    let next = next_binary_or_skip!();
    let (sim, install) = registered_install();
    queue_update_version_at(&sim, "up-oibus", &next, "binaries/oibus");
    let record = final_status(&sim, "up-oibus", &install);
    assert_eq!(
        record["status"],
        "COMPLETED",
        "{record}\n{}",
        install.log_text()
    );
    install.expect_engine(NEXT_VERSION, None, "the new engine runs");
}

#[test]
fn agent_script_at_binaries_oibus_is_installed_and_put_on_probation() {
    // An agent build (it carries the marker) in OIBus's layout: staged and swapped in. It dies
    // once running, so the launcher rolls back: proof that it was the binary installed.
    let marker = String::from_utf8(oibus_actors::upgrade::AGENT_MARKER.to_vec()).unwrap();
    crashing_update_is_rolled_back("up-3", "binaries/oibus", &format!("# {marker}\n"));
}

#[test]
fn genuine_oibus_asset_is_errored_and_the_old_version_keeps_running() {
    let (sim, install) = registered_install();
    let old = version_of_agent();
    let pid = install.status().and_then(|s| s["pid"].as_i64());
    // Stands in for OIBus's Node binary; it leaves a trace if it is ever run.
    let ran = install.path("oibus-ran");
    let binary = install.path("node-oibus");
    write_script(
        &binary,
        &format!("touch {}\necho oibus-agent {NEXT_VERSION}", ran.display()),
    );
    queue_update_version_at(&sim, "up-4", &binary, "binaries/oibus");
    let record = final_status(&sim, "up-4", &install);
    assert_eq!(
        record["status"],
        "ERRORED",
        "{record}\n{}",
        install.log_text()
    );
    assert_eq!(
        record["result"],
        "The asset holds binaries/oibus, which is not an oibus-agent build \
         (expected binaries/oibus-agent or an oibus-agent binary named binaries/oibus)"
    );
    assert!(!ran.exists(), "the foreign binary was executed");
    assert!(install.marker().is_none(), "nothing was staged");
    let status = install.status().expect("the engine still answers");
    assert_eq!(status["version"], old.as_str());
    assert_eq!(status["pid"].as_i64(), pid, "the same engine runs on");
}
