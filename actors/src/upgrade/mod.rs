//! Self-upgrade, the parts both processes share (DESIGN.md "Upgrade, the safe way").
//!
//! - [`Layout`]: where things live in `launcher.install_dir` (`bin/`, `update/`, `backup/`, the
//!   marker) and in `engine.data_dir` (the store and the vault that a backup covers).
//! - [`Marker`] (`upgrade.json`): the journal of one upgrade, rewritten atomically at each step:
//!   `staged → backed_up → swapped → probation → committed`, or `… → rolling_back → rolled_back`.
//!   The engine writes `staged`; the launcher writes every later step, so a launcher killed at any
//!   point reads where it was and resumes or rolls back. (The one exception: an engine that finds
//!   its own upgrade still `staged` after a restart abandons it, see [`settle`].)
//! - [`extract`]: the zip-slip-proof extractor of a release asset.
//! - [`find_agent_binary`]: which file of an extracted asset is the agent. OIBus's own layout
//!   (`binaries/oibus`, what its launcher installs) is accepted when that file is an agent build,
//!   and renamed to `binaries/oibus-agent` so that the launcher always installs the same path.
//! - [`stage`]: the engine side of `update-version` (download, extract, verify, mark; the engine
//!   then exits 76) and [`settle`], which the engine calls to learn how the command ended;
//!   [`stager`]: the seam through which the CommandExecutor asks for it.

pub mod extract;
pub mod stage;
pub mod stager;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use extract::{extract_release, ExtractLimits, Extracted};
pub use stage::{
    launcher_present, stage_from_zip, stage_upgrade, StageLimits, StageRequest, LAUNCHER_ENV,
    LAUNCHER_VERSION_ENV,
};

/// The engine binary's name, in `bin/` and in the asset (`binaries/oibus-agent`).
pub const BINARY_NAME: &str = "oibus-agent";
/// Where the engine binary sits inside a release zip (and in `update/staged/`).
pub const ASSET_BINARY: &str = "binaries/oibus-agent";
/// Where OIBus's launcher takes the new binary from (`OIBus: launcher/src/launcher.ts:122`); an
/// asset may carry the agent there instead, under OIBus's release layout.
pub const OIBUS_ASSET_BINARY: &str = "binaries/oibus";

/// Bytes every oibus-agent build carries, so that a `binaries/oibus` can be recognised as an
/// agent *without running it*: a Node-based OIBus binary started with `--version` may well start
/// a whole OIBus (ports, data folders), so nothing is executed unless this marker is found.
/// `--version` then still has to answer the target version ([`stage::verify_binary`]). An ELF
/// check alone would not do: a genuine OIBus for Linux is an ELF of this architecture too.
pub static AGENT_MARKER: &[u8] = b"oibus-agent build marker 7d1f3a9c2e5b8d04";

/// Whether the file at `path` carries [`AGENT_MARKER`]. Streams the file (a release binary is
/// tens of MiB) and finds a marker that straddles two reads.
pub fn carries_agent_marker(path: &Path) -> io::Result<bool> {
    use std::io::Read as _;
    // Read through `black_box` so the compiler keeps the marker as contiguous bytes in the
    // binary (a comparison folded into immediates would leave no bytes to find).
    let marker: &[u8] = std::hint::black_box(AGENT_MARKER);
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut kept = 0;
    loop {
        let n = file.read(&mut buf[kept..])?;
        if n == 0 {
            return Ok(false);
        }
        let filled = kept + n;
        if buf[..filled].windows(marker.len()).any(|w| w == marker) {
            return Ok(true);
        }
        // Keep the tail that could be the start of a marker cut by this read.
        kept = filled.min(marker.len() - 1);
        buf.copy_within(filled - kept..filled, 0);
    }
}

/// The agent binary of an extracted asset at `root`, made to sit at [`ASSET_BINARY`]:
/// `binaries/oibus-agent` if present, else `binaries/oibus` when it carries [`AGENT_MARKER`]
/// (renamed; never executed otherwise). Windows' `oibus.exe` is not looked for: the agent is
/// Linux-only.
pub fn find_agent_binary(root: &Path) -> Result<PathBuf, UpgradeError> {
    let agent = root.join(ASSET_BINARY);
    if agent.is_file() {
        return Ok(agent);
    }
    let oibus = root.join(OIBUS_ASSET_BINARY);
    if !oibus.is_file() {
        return Err(UpgradeError::MissingBinary);
    }
    let is_agent = carries_agent_marker(&oibus).map_err(UpgradeError::io("cannot read", &oibus))?;
    if !is_agent {
        return Err(UpgradeError::NotAgentBinary);
    }
    fs::rename(&oibus, &agent).map_err(UpgradeError::io("cannot rename", &oibus))?;
    tracing::info!("the asset carries the agent as {OIBUS_ASSET_BINARY} (OIBus layout)");
    Ok(agent)
}

/// Paths of the install layout. The launcher owns `bin/`, `backup/` and the marker's later
/// steps; the engine writes only under `update/` and the marker's first step.
///
/// Under systemd (README "Operate") `install_dir` is `/var/lib/oibus-agent/upgrade`, inside the
/// state directory: the packaged binary in `/usr/lib/oibus-agent` stays read-only, and
/// `bin/oibus-agent` only exists once an upgrade from OIAnalytics put one there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub install_dir: PathBuf,
    pub data_dir: PathBuf,
    /// Where the engine's pid file goes: systemd's `RuntimeDirectory` (`$RUNTIME_DIRECTORY`,
    /// `/run/oibus-agent`) when set, else `install_dir`.
    pub run_dir: PathBuf,
}

/// The environment variable systemd sets to the unit's `RuntimeDirectory=`.
pub const RUNTIME_DIRECTORY_ENV: &str = "RUNTIME_DIRECTORY";

impl Layout {
    pub fn new(install_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        let install_dir = install_dir.into();
        Layout {
            run_dir: install_dir.clone(),
            install_dir,
            data_dir: data_dir.into(),
        }
    }

    /// The layout a configuration describes (`launcher.install_dir`, `engine.data_dir`), with
    /// the pid file in `$RUNTIME_DIRECTORY` when systemd set it.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let mut layout = Layout::new(&config.launcher.install_dir, &config.engine.data_dir);
        if let Some(run) = runtime_directory() {
            layout.run_dir = run;
        }
        layout
    }

    /// `bin/oibus-agent`: the engine the launcher spawns.
    pub fn engine_bin(&self) -> PathBuf {
        self.install_dir.join("bin").join(BINARY_NAME)
    }
    /// `update/`: staging area, written by the engine.
    pub fn update_dir(&self) -> PathBuf {
        self.install_dir.join("update")
    }
    /// `update/staged/`: a complete, verified extraction (renamed into place as a whole).
    pub fn staged_dir(&self) -> PathBuf {
        self.update_dir().join("staged")
    }
    pub fn staged_bin(&self) -> PathBuf {
        self.staged_dir().join(ASSET_BINARY)
    }
    /// `backup/`: what a rollback restores.
    pub fn backup_dir(&self) -> PathBuf {
        self.install_dir.join("backup")
    }
    pub fn backup_bin(&self) -> PathBuf {
        self.backup_dir().join(BINARY_NAME)
    }
    /// RocksDB checkpoint of the store.
    pub fn backup_store(&self) -> PathBuf {
        self.backup_dir().join("store")
    }
    pub fn backup_vault(&self) -> PathBuf {
        self.backup_dir().join("vault")
    }
    pub fn marker(&self) -> PathBuf {
        marker_path(&self.install_dir)
    }
    /// The pid of the engine the launcher runs, so a restarted launcher can find an orphan.
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir.join("engine.pid")
    }
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }
    pub fn vault_dir(&self) -> PathBuf {
        self.data_dir.join("vault")
    }
}

/// The first absolute folder of `$RUNTIME_DIRECTORY` (systemd separates several with `:`).
pub fn runtime_directory() -> Option<PathBuf> {
    let value = std::env::var_os(RUNTIME_DIRECTORY_ENV)?;
    let first = value.to_str()?.split(':').next()?.to_owned();
    let path = PathBuf::from(first);
    path.is_absolute().then_some(path)
}

/// `<install_dir>/upgrade.json`.
pub fn marker_path(install_dir: &Path) -> PathBuf {
    install_dir.join("upgrade.json")
}

/// One step of an upgrade, as recorded in the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The engine extracted and verified the new binary under `update/staged`.
    Staged,
    /// The launcher checkpointed the store, copied the vault and kept the old binary.
    BackedUp,
    /// The new binary is `bin/oibus-agent`.
    Swapped,
    /// The new engine runs and must stay healthy for `health_grace`.
    Probation,
    /// The new version passed probation; backups are deleted.
    Committed,
    /// Probation failed (or a step did): the old binary and data are being restored.
    RollingBack,
    /// The old binary and data are back.
    RolledBack,
}

impl Step {
    pub fn is_final(self) -> bool {
        matches!(self, Step::Committed | Step::RolledBack)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Staged => "staged",
            Step::BackedUp => "backed_up",
            Step::Swapped => "swapped",
            Step::Probation => "probation",
            Step::Committed => "committed",
            Step::RollingBack => "rolling_back",
            Step::RolledBack => "rolled_back",
        }
    }

    /// Whether the journal may go from `self` to `next`.
    pub fn may_advance_to(self, next: Step) -> bool {
        use Step::*;
        match self {
            // Before the backup exists nothing was changed: a failure ends the upgrade at once.
            Staged => matches!(next, BackedUp | RolledBack),
            BackedUp => matches!(next, Swapped | RollingBack),
            Swapped => matches!(next, Probation | RollingBack),
            // A probation interrupted by a launcher restart starts again.
            Probation => matches!(next, Probation | Committed | RollingBack),
            RollingBack => matches!(next, RollingBack | RolledBack),
            Committed | RolledBack => false,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the marker's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: Step,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `upgrade.json`: the journal of one upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    /// The OIAnalytics `update-version` command this upgrade executes.
    pub command_id: String,
    pub asset_id: String,
    pub from_version: String,
    pub to_version: String,
    /// After a committed upgrade, the launcher re-executes itself from the new binary.
    pub update_launcher: bool,
    pub step: Step,
    /// Why a rollback happened (or the upgrade stopped before the swap).
    pub reason: Option<String>,
    /// How many times probation started; a launcher killed over and over rolls back.
    pub probation_attempts: u32,
    pub history: Vec<StepRecord>,
}

impl Marker {
    /// A marker at its first step.
    pub fn staged(
        command_id: &str,
        asset_id: &str,
        from_version: &str,
        to_version: &str,
        update_launcher: bool,
    ) -> Marker {
        Marker {
            command_id: command_id.to_string(),
            asset_id: asset_id.to_string(),
            from_version: from_version.to_string(),
            to_version: to_version.to_string(),
            update_launcher,
            step: Step::Staged,
            reason: None,
            probation_attempts: 0,
            history: vec![StepRecord {
                step: Step::Staged,
                at: now_iso(),
                reason: None,
            }],
        }
    }

    /// Move to `next` (in memory; [`write_marker`] records it).
    pub fn advance(&mut self, next: Step, reason: Option<String>) -> Result<(), UpgradeError> {
        if !self.step.may_advance_to(next) {
            return Err(UpgradeError::Transition {
                from: self.step,
                to: next,
            });
        }
        if next == Step::Probation {
            self.probation_attempts += 1;
        }
        if reason.is_some() {
            self.reason = reason.clone();
        }
        self.step = next;
        self.history.push(StepRecord {
            step: next,
            at: now_iso(),
            reason,
        });
        Ok(())
    }
}

/// Everything that can go wrong while staging, applying or reading an upgrade.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Write(#[from] crate::atomic_file::WriteError),
    #[error("the upgrade marker {path} is not valid JSON ({error}); move it aside and check bin/ and backup/ by hand")]
    CorruptMarker { path: PathBuf, error: String },
    #[error("the upgrade journal cannot go from {from} to {to} (a bug in the launcher)")]
    Transition { from: Step, to: Step },
    #[error("the release asset is not a readable zip: {0}")]
    Zip(String),
    #[error("the release asset has an unsafe entry {name:?}: {reason}; nothing was installed")]
    UnsafeEntry { name: String, reason: String },
    #[error("the release asset is too large: {what} ({actual} > {limit})")]
    TooLarge {
        what: &'static str,
        actual: u64,
        limit: u64,
    },
    #[error(
        "the release asset has neither {ASSET_BINARY} nor {OIBUS_ASSET_BINARY}; is it a release for this platform?"
    )]
    MissingBinary,
    /// A `binaries/oibus` without [`AGENT_MARKER`], e.g. a genuine (Node-based) OIBus release.
    #[error("The asset holds {OIBUS_ASSET_BINARY}, which is not an oibus-agent build (expected {ASSET_BINARY} or an oibus-agent binary named {OIBUS_ASSET_BINARY})")]
    NotAgentBinary,
    #[error("not enough free disk in {path}: {available} bytes available, {needed} needed")]
    DiskFull {
        path: PathBuf,
        available: u64,
        needed: u64,
    },
    #[error("the staged binary does not run as version {expected}: {detail}")]
    BinaryCheck { expected: String, detail: String },
    /// No launcher runs this engine ([`LAUNCHER_ENV`] is not set), so nothing would apply a
    /// staged upgrade: OIBus's sentence for an engine started without remote update.
    #[error("OIBus is not set up to execute remote update")]
    NoLauncher,
    #[error("not registered with OIAnalytics")]
    NotRegistered,
    /// No OIAnalytics client can be built from the configuration.
    #[error("{0}")]
    Client(String),
    #[error("an upgrade to {to_version} (command {command_id}) is still at step {step}; wait for it to finish")]
    InProgress {
        command_id: String,
        to_version: String,
        step: Step,
    },
    #[error("cannot download the release asset: {0}")]
    Download(String),
}

impl UpgradeError {
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> UpgradeError {
        let path = path.to_path_buf();
        move |source| UpgradeError::Io { what, path, source }
    }
}

/// Read the marker; `Ok(None)` when there is none.
pub fn read_marker(path: &Path) -> Result<Option<Marker>, UpgradeError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(UpgradeError::io("cannot read the upgrade marker", path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| UpgradeError::CorruptMarker {
            path: path.to_path_buf(),
            error: e.to_string(),
        })
}

/// Record the marker atomically: temporary file, fsync, rename, fsync of the folder. A crash
/// leaves either the previous step or this one, never a torn file.
pub fn write_marker(path: &Path, marker: &Marker) -> Result<(), UpgradeError> {
    let json = serde_json::to_vec_pretty(marker).map_err(|e| UpgradeError::Io {
        what: "cannot encode the upgrade marker",
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    Ok(crate::atomic_file::write(path, &json)?)
}

/// fsync a folder, so that renames and creations in it survive a power loss.
pub fn fsync_dir(dir: &Path) -> Result<(), UpgradeError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(UpgradeError::io("cannot fsync folder", dir))
}

pub fn fsync_parent(path: &Path) -> Result<(), UpgradeError> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => fsync_dir(p),
        _ => fsync_dir(Path::new(".")),
    }
}

/// `v1.2.3` and `1.2.3` name the same version (OIAnalytics may send either).
pub fn normalize_version(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix(['v', 'V']).unwrap_or(v)
}

/// The final outcome of the `update-version` command `command_id`, for the engine to report:
/// `Some(Ok(result))` → COMPLETED, `Some(Err(result))` → ERRORED, `None` → not decided yet
/// (the new engine is on probation, or the launcher is still rolling back): keep the command
/// RUNNING and ask again later.
///
/// The decision compares the **running** binary's version ([`crate::VERSION`]) with the target
/// (protocol §9, done right), so a rollback can never be reported as COMPLETED.
///
/// A marker still at [`Step::Staged`] seen by a running engine means the engine stopped
/// otherwise than by exit 76 after staging, and the launcher started the old version again:
/// the upgrade is abandoned, and recorded as rolled back so that no later launcher start
/// applies it behind OIAnalytics' back.
pub fn settle(command_id: &str, install_dir: &Path) -> Option<Result<String, String>> {
    let path = marker_path(install_dir);
    if let Ok(Some(mut marker)) = read_marker(&path) {
        if marker.command_id == command_id && marker.step == Step::Staged {
            let reason = "the engine stopped before the launcher could apply the upgrade";
            // Staged → RolledBack is always a legal step.
            let recorded = marker
                .advance(Step::RolledBack, Some(reason.to_owned()))
                .and_then(|()| write_marker(&path, &marker));
            if let Err(e) = recorded {
                tracing::error!(error = %e, "cannot record the abandoned upgrade; asking again later");
                return None;
            }
        }
    }
    outcome_with(command_id, &path, crate::VERSION)
}

fn outcome_with(command_id: &str, marker: &Path, running: &str) -> Option<Result<String, String>> {
    // OIBus's exact sentence; the reason goes to the log, which OIAnalytics receives too.
    let not_updated = |reason: &str| {
        tracing::warn!(command = %command_id, %reason, "update-version rolled back");
        Err(format!(
            "OIBus has not been updated. Rollback to version {running}"
        ))
    };
    let marker = match read_marker(marker) {
        Ok(Some(m)) if m.command_id == command_id => m,
        Ok(_) => {
            return Some(not_updated(
                "no upgrade was staged for this command (interrupted before staging)",
            ))
        }
        Err(e) => {
            return Some(not_updated(&format!(
                "cannot tell whether the upgrade happened ({e})"
            )))
        }
    };
    if !marker.step.is_final() {
        return None;
    }
    let running = normalize_version(running);
    let on_target = running == normalize_version(&marker.to_version);
    if marker.step == Step::Committed && on_target {
        // The launcher is the same binary, so it runs the same version; OIBus always names
        // both, whether or not the launcher was replaced.
        return Some(Ok(format!(
            "OIBus updated to version {running}, launcher updated to version {running}"
        )));
    }
    let reason = marker
        .reason
        .unwrap_or_else(|| format!("the running version is not {}", marker.to_version));
    Some(not_updated(&reason))
}

pub(crate) fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker_in(dir: &Path, step_path: &[Step], reason: Option<&str>) -> PathBuf {
        let mut m = Marker::staged("cmd-1", "asset-1", "1.0.0", "v2.0.0", false);
        for s in step_path {
            let r = matches!(s, Step::RollingBack).then(|| reason.unwrap_or("x").to_string());
            m.advance(*s, r).unwrap();
        }
        let path = marker_path(dir);
        write_marker(&path, &m).unwrap();
        path
    }

    #[test]
    fn marker_round_trips_through_an_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = marker_in(dir.path(), &[Step::BackedUp], None);
        let m = read_marker(&path).unwrap().unwrap();
        assert_eq!(m.step, Step::BackedUp);
        assert_eq!(m.history.len(), 2);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }

    #[test]
    fn missing_marker_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_marker(&marker_path(dir.path())).unwrap().is_none());
    }

    #[test]
    fn torn_marker_is_reported_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let path = marker_path(dir.path());
        fs::write(&path, b"{\"command_id\": \"cm").unwrap();
        assert!(matches!(
            read_marker(&path),
            Err(UpgradeError::CorruptMarker { .. })
        ));
    }

    #[test]
    fn journal_refuses_to_skip_the_backup() {
        let mut m = Marker::staged("c", "a", "1", "2", false);
        assert!(m.advance(Step::Swapped, None).is_err());
        assert_eq!(m.step, Step::Staged);
    }

    #[test]
    fn journal_never_leaves_a_final_step() {
        for last in [Step::Committed, Step::RolledBack] {
            for next in [Step::Staged, Step::Probation, Step::RollingBack] {
                assert!(!last.may_advance_to(next));
            }
        }
    }

    #[test]
    fn probation_attempts_are_counted() {
        let mut m = Marker::staged("c", "a", "1", "2", false);
        for s in [
            Step::BackedUp,
            Step::Swapped,
            Step::Probation,
            Step::Probation,
        ] {
            m.advance(s, None).unwrap();
        }
        assert_eq!(m.probation_attempts, 2);
    }

    #[test]
    fn an_upgrade_outcome_is_read_from_the_marker_and_the_running_version() {
        use Step::*;
        let check =
            |steps: Option<&[Step]>, running: &str, expected: Option<Result<&str, &str>>| {
                let dir = tempfile::tempdir().unwrap();
                let path = match steps {
                    Some(steps) => marker_in(dir.path(), steps, Some("exited with code 1")),
                    None => marker_path(dir.path()),
                };
                let expected = expected.map(|r| r.map(str::to_owned).map_err(str::to_owned));
                let outcome = outcome_with("cmd-1", &path, running);
                assert_eq!(outcome, expected, "{steps:?} with {running} running");
            };
        let rolled_back = Some(Err("OIBus has not been updated. Rollback to version 1.0.0"));
        let committed: &[Step] = &[BackedUp, Swapped, Probation, Committed];
        let updated = "OIBus updated to version 2.0.0, launcher updated to version 2.0.0";
        check(Some(committed), "2.0.0", Some(Ok(updated)));
        // Committed, yet the old version runs: the new one did not hold.
        check(Some(committed), "1.0.0", rolled_back);
        let rollback: &[Step] = &[BackedUp, Swapped, Probation, RollingBack, RolledBack];
        check(Some(rollback), "1.0.0", rolled_back);
        // On probation: not decided yet.
        check(Some(&[BackedUp, Swapped, Probation]), "2.0.0", None);
        // No marker: the upgrade never started.
        check(None, "1.0.0", rolled_back);
    }

    #[test]
    fn an_upgrade_left_staged_by_a_crashed_engine_is_abandoned_for_good() {
        let dir = tempfile::tempdir().unwrap();
        marker_in(dir.path(), &[], None);
        let text = settle("cmd-1", dir.path()).unwrap().unwrap_err();
        assert_eq!(
            text,
            format!(
                "OIBus has not been updated. Rollback to version {}",
                crate::VERSION
            )
        );
        let marker = read_marker(&marker_path(dir.path())).unwrap().unwrap();
        assert!(marker
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("before the launcher could apply")));
        assert_eq!(
            marker.step,
            Step::RolledBack,
            "a later launcher start must not apply it"
        );
    }

    #[test]
    fn leading_v_does_not_change_a_version() {
        assert_eq!(normalize_version("v3.8.8"), "3.8.8");
        assert_eq!(normalize_version(" 3.8.8 "), "3.8.8");
    }
}
