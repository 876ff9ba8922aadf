//! The engine side of `update-version`: download the asset (E9), check the disk, extract it
//! safely into a fresh folder, find the agent binary in it (`binaries/oibus-agent`, or OIBus's
//! `binaries/oibus` when it is an agent build), check that it runs as the target version, rename the
//! folder to `update/staged`, record the marker at step `staged`. The caller (the command
//! executor) then makes the engine exit with [`crate::exit::UPGRADE`]; the launcher does the rest.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::extract::{declared_size, extract_release, ExtractLimits};
use super::{
    find_agent_binary, fsync_dir, normalize_version, read_marker, write_marker, Layout, Marker,
    UpgradeError,
};
use crate::client::{routes, with_query, Auth, OiaClient};
use crate::Secret;

/// Set to `1` by the launcher in the engine's environment: only then can a staged upgrade be
/// applied, so only then may `update-version` stage one.
pub const LAUNCHER_ENV: &str = "OIBUS_AGENT_LAUNCHER";

/// Set by the launcher to its own version: after an upgrade without `updateLauncher` the launcher
/// keeps running the old binary, and full-config reports both versions.
pub const LAUNCHER_VERSION_ENV: &str = "OIBUS_AGENT_LAUNCHER_VERSION";

/// Whether this engine runs under `oibus-agent launch`.
pub fn launcher_present() -> bool {
    std::env::var_os(LAUNCHER_ENV).is_some_and(|v| v == "1")
}

/// What OIAnalytics asked for (`update-version` command content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRequest {
    pub command_id: String,
    pub asset_id: String,
    /// Target version; a leading `v` is ignored.
    pub version: String,
    pub update_launcher: bool,
}

/// Bounds for one staging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageLimits {
    /// The download is cut (and fails) beyond this.
    pub max_asset_bytes: u64,
    /// Free space that must remain after the download and after the extraction.
    pub min_free_bytes: u64,
    pub extract: ExtractLimits,
    /// `<new binary> --version` must answer within this.
    pub version_check_timeout: Duration,
}

impl Default for StageLimits {
    fn default() -> Self {
        StageLimits {
            max_asset_bytes: 512 << 20,
            min_free_bytes: 64 << 20,
            extract: ExtractLimits::default(),
            version_check_timeout: Duration::from_secs(15),
        }
    }
}

/// Refuse to stage while another upgrade is between `staged` and a final step (for example
/// while this very engine is on probation).
pub fn ensure_no_upgrade_in_progress(layout: &Layout) -> Result<(), UpgradeError> {
    match read_marker(&layout.marker())? {
        Some(m) if !m.step.is_final() => Err(UpgradeError::InProgress {
            command_id: m.command_id,
            to_version: m.to_version,
            step: m.step,
        }),
        _ => Ok(()),
    }
}

/// Free bytes for an unprivileged user on the file system holding `path`.
pub fn available_bytes(path: &Path) -> Result<u64, UpgradeError> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(|errno| UpgradeError::Io {
        what: "cannot measure free disk space at",
        path: path.to_path_buf(),
        source: std::io::Error::from(errno),
    })?;
    // The widths of these fields vary by platform; they all fit in u64.
    #[allow(clippy::useless_conversion)]
    let bytes = u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
    Ok(bytes)
}

/// Fail unless `needed` bytes plus the safety margin are free at `path`.
pub fn ensure_free(path: &Path, needed: u64, limits: &StageLimits) -> Result<(), UpgradeError> {
    let available = available_bytes(path)?;
    let needed = needed.saturating_add(limits.min_free_bytes);
    if available < needed {
        return Err(UpgradeError::DiskFull {
            path: path.to_path_buf(),
            available,
            needed,
        });
    }
    Ok(())
}

/// The engine side of `update-version`, whole: refuse without a launcher, then take the client
/// and token from `access` (asked only once a launcher is known, so that refusal wins), refuse
/// while another upgrade is under way, download the asset (E9, streamed to `update/`, at most
/// `max_asset_bytes`, after a free-disk check), then [`stage_from_zip`]. The download is removed
/// whatever happens. On success the marker is at `staged`; the caller reports nothing yet and
/// makes the engine exit [`crate::exit::UPGRADE`] (the command stays RUNNING; see
/// [`super::settle`]).
pub async fn stage_upgrade(
    access: impl FnOnce() -> Result<(OiaClient, Secret<String>), UpgradeError>,
    request: &StageRequest,
    layout: &Layout,
    limits: &StageLimits,
) -> Result<Marker, UpgradeError> {
    if !launcher_present() {
        return Err(UpgradeError::NoLauncher);
    }
    let (client, token) = access()?;
    download_and_stage(&client, &token, request, layout, limits).await
}

/// [`stage_upgrade`] without the launcher check.
pub(crate) async fn download_and_stage(
    client: &OiaClient,
    token: &Secret<String>,
    request: &StageRequest,
    layout: &Layout,
    limits: &StageLimits,
) -> Result<Marker, UpgradeError> {
    ensure_no_upgrade_in_progress(layout)?;
    let update = layout.update_dir();
    fs::create_dir_all(&update).map_err(UpgradeError::io("cannot create", &update))?;
    ensure_free(&update, 0, limits)?;
    let zip = update.join(format!("asset-{}.zip", crate::random_id(8)));
    let path = with_query(routes::UPGRADE_ASSET, &[("assetId", &request.asset_id)]);
    let downloaded = client
        .download_to_file(&path, Auth::Bearer(token), &zip, limits.max_asset_bytes)
        .await
        .map_err(|e| UpgradeError::Download(e.to_string()));
    let result = match downloaded {
        Ok(bytes) => {
            tracing::info!(asset_id = %request.asset_id, bytes, "release asset downloaded");
            let (zip, request, layout, limits) =
                (zip.clone(), request.clone(), layout.clone(), limits.clone());
            tokio::task::spawn_blocking(move || stage_from_zip(&zip, &request, &layout, &limits))
                .await
                .unwrap_or_else(|e| {
                    Err(UpgradeError::Io {
                        what: "the staging task failed (a bug) while staging",
                        path: update.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })
                })
        }
        Err(e) => Err(e),
    };
    if let Err(e) = fs::remove_file(&zip) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %zip.display(), error = %e, "cannot remove the downloaded asset");
        }
    }
    result
}

/// Stage a downloaded asset: extract, verify, rename into `update/staged`, write the marker.
/// Blocking (file I/O and a child process): call it from `spawn_blocking`. On error nothing is
/// left under `update/` and no marker is written.
pub fn stage_from_zip(
    zip: &Path,
    request: &StageRequest,
    layout: &Layout,
    limits: &StageLimits,
) -> Result<Marker, UpgradeError> {
    ensure_no_upgrade_in_progress(layout)?;
    let update = layout.update_dir();
    fs::create_dir_all(&update).map_err(UpgradeError::io("cannot create", &update))?;
    remove_leftovers(&update, zip)?;
    ensure_free(&update, declared_size(zip)?, limits)?;

    let incoming = update.join(format!("incoming-{}", crate::random_id(8)));
    extract_release(zip, &incoming, &limits.extract)?;
    let result = find_agent_binary(&incoming)
        .and_then(|binary| verify_binary(&binary, &request.version, limits.version_check_timeout))
        .and_then(|()| {
            let staged = layout.staged_dir();
            remove_dir_if_present(&staged)?;
            fs::rename(&incoming, &staged)
                .map_err(UpgradeError::io("cannot rename into", &staged))?;
            fsync_dir(&update)
        });
    if let Err(e) = result {
        if let Err(cleanup) = fs::remove_dir_all(&incoming) {
            tracing::warn!(path = %incoming.display(), error = %cleanup, "cannot remove a rejected staging folder");
        }
        return Err(e);
    }
    let marker = Marker::staged(
        &request.command_id,
        &request.asset_id,
        crate::VERSION,
        normalize_version(&request.version),
        request.update_launcher,
    );
    write_marker(&layout.marker(), &marker)?;
    tracing::info!(
        command_id = %request.command_id,
        from = crate::VERSION,
        to = %marker.to_version,
        "upgrade staged; the engine exits 76 so that the launcher applies it"
    );
    Ok(marker)
}

/// What an earlier attempt left under `update/` (a half-extracted folder, an old download, a
/// `staged` folder whose upgrade ended); `keep` is the asset being staged now. A `staged`
/// folder of an upgrade still under way is protected by the marker check before this.
fn remove_leftovers(update: &Path, keep: &Path) -> Result<(), UpgradeError> {
    let entries = fs::read_dir(update).map_err(UpgradeError::io("cannot list", update))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if path == keep {
            continue;
        }
        if name.starts_with("incoming-") || name == "staged" {
            remove_dir_if_present(&path)?;
        } else if name.ends_with(".zip") || name.ends_with(".zip.part") {
            fs::remove_file(&path).map_err(UpgradeError::io("cannot remove", &path))?;
        }
    }
    Ok(())
}

pub(crate) fn remove_dir_if_present(path: &Path) -> Result<(), UpgradeError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(UpgradeError::io("cannot remove", path)(e))
        }
        _ => Ok(()),
    }
}

/// `<binary> --version` must exit 0 within `timeout` and print `<name> <version>`.
pub fn verify_binary(binary: &Path, version: &str, timeout: Duration) -> Result<(), UpgradeError> {
    let expected = normalize_version(version);
    let fail = |detail: String| UpgradeError::BinaryCheck {
        expected: expected.to_string(),
        detail,
    };
    let mut child = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot run {} --version: {e}", binary.display())))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("no answer to --version within {timeout:?}")));
            }
            Err(e) => return Err(fail(format!("cannot wait for --version: {e}"))),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        // The version line is tiny; a binary that floods stdout is wrong anyway.
        let _ = stdout.by_ref().take(4096).read_to_string(&mut out);
    }
    if !status.success() {
        return Err(fail(format!("--version exited with {status}")));
    }
    let reported = out.split_whitespace().last().unwrap_or_default();
    if normalize_version(reported) != expected {
        return Err(fail(format!("it reports {:?}", out.trim())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::{Reply, TestServer};
    use crate::upgrade::extract::tests::zip_with;
    use crate::upgrade::{Step, ASSET_BINARY, OIBUS_ASSET_BINARY};
    use std::os::unix::fs::PermissionsExt;

    fn script(body: &str) -> Vec<u8> {
        format!("#!/bin/sh\n{body}\n").into_bytes()
    }

    fn asset(dir: &Path, binary: &[u8]) -> std::path::PathBuf {
        zip_with(dir, &[(ASSET_BINARY, binary)])
    }

    /// A script that is an "agent build": it carries the marker (in a comment).
    fn marked_script(body: &str) -> Vec<u8> {
        let marker = String::from_utf8(crate::upgrade::AGENT_MARKER.to_vec()).unwrap();
        format!("#!/bin/sh\n# {marker}\n{body}\n").into_bytes()
    }

    fn request(version: &str) -> StageRequest {
        StageRequest {
            command_id: "cmd-7".into(),
            asset_id: "asset-7".into(),
            version: version.into(),
            update_launcher: false,
        }
    }

    fn layout(dir: &Path) -> Layout {
        Layout::new(dir.join("install"), dir.join("data"))
    }

    /// The names in the update folder (which must exist).
    fn update_folder(layout: &Layout) -> Vec<String> {
        let entries = fs::read_dir(layout.update_dir()).unwrap();
        entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn limits() -> StageLimits {
        StageLimits {
            min_free_bytes: 0,
            ..StageLimits::default()
        }
    }

    #[test]
    fn good_asset_is_staged_and_marked() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = asset(tmp.path(), &script("echo oibus-agent 2.1.0"));
        let layout = layout(tmp.path());
        let marker = stage_from_zip(&zip, &request("v2.1.0"), &layout, &limits()).unwrap();
        assert_eq!(marker.step, Step::Staged);
        assert_eq!(marker.to_version, "2.1.0");
        assert_eq!(marker.from_version, crate::VERSION);
        assert_eq!(read_marker(&layout.marker()).unwrap(), Some(marker));
        let mode = fs::metadata(layout.staged_bin())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(update_folder(&layout), ["staged"]);
    }

    #[test]
    fn agent_named_binaries_oibus_is_staged_as_the_agent() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = zip_with(
            tmp.path(),
            &[(OIBUS_ASSET_BINARY, &marked_script("echo oibus-agent 2.1.0"))],
        );
        let layout = layout(tmp.path());
        let marker = stage_from_zip(&zip, &request("2.1.0"), &layout, &limits()).unwrap();
        assert_eq!(marker.to_version, "2.1.0");
        // Renamed to where the launcher installs from.
        assert!(layout.staged_bin().is_file());
        assert!(!layout.staged_dir().join(OIBUS_ASSET_BINARY).exists());
    }

    #[test]
    fn binaries_oibus_that_is_not_an_agent_is_refused_without_running_it() {
        let tmp = tempfile::tempdir().unwrap();
        let ran = tmp.path().join("ran");
        // A Node-based OIBus would start; this one leaves a trace if it is run at all.
        let body = format!("touch {}\necho oibus-agent 2.1.0", ran.display());
        let zip = zip_with(tmp.path(), &[(OIBUS_ASSET_BINARY, &script(&body))]);
        let layout = layout(tmp.path());
        let err = stage_from_zip(&zip, &request("2.1.0"), &layout, &limits()).unwrap_err();
        assert!(matches!(err, UpgradeError::NotAgentBinary), "{err}");
        assert_eq!(
            err.to_string(),
            "The asset holds binaries/oibus, which is not an oibus-agent build \
             (expected binaries/oibus-agent or an oibus-agent binary named binaries/oibus)"
        );
        assert!(!ran.exists(), "the foreign binary must not be executed");
        assert!(read_marker(&layout.marker()).unwrap().is_none());
        assert!(update_folder(&layout).is_empty());
    }

    #[test]
    fn binaries_oibus_agent_wins_over_binaries_oibus() {
        let tmp = tempfile::tempdir().unwrap();
        let path = zip_with(
            tmp.path(),
            &[
                (OIBUS_ASSET_BINARY, &script("exit 1")),
                (ASSET_BINARY, &script("echo oibus-agent 2.1.0")),
            ],
        );
        let layout = layout(tmp.path());
        stage_from_zip(&path, &request("2.1.0"), &layout, &limits()).unwrap();
        assert!(layout.staged_bin().is_file());
    }

    #[test]
    fn the_marker_is_found_across_read_boundaries() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = crate::upgrade::AGENT_MARKER;
        // Straddles the 256 KiB read boundary.
        let mut bytes = vec![b'x'; 256 * 1024 - 5];
        bytes.extend_from_slice(marker);
        bytes.extend_from_slice(&[b'y'; 100]);
        let file = tmp.path().join("bin");
        fs::write(&file, &bytes).unwrap();
        assert!(crate::upgrade::carries_agent_marker(&file).unwrap());
        fs::write(&file, &bytes[..bytes.len() - 101]).unwrap();
        assert!(!crate::upgrade::carries_agent_marker(&file).unwrap());
    }

    #[test]
    fn this_build_carries_the_marker() {
        // What makes a real agent binary named binaries/oibus recognisable.
        let exe = std::env::current_exe().unwrap();
        assert!(crate::upgrade::carries_agent_marker(&exe).unwrap());
    }

    #[test]
    fn binary_reporting_another_version_is_not_staged() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = asset(tmp.path(), &script("echo oibus-agent 2.0.9"));
        let layout = layout(tmp.path());
        let err = stage_from_zip(&zip, &request("2.1.0"), &layout, &limits()).unwrap_err();
        assert!(matches!(err, UpgradeError::BinaryCheck { .. }), "{err}");
        assert!(read_marker(&layout.marker()).unwrap().is_none());
        assert!(update_folder(&layout).is_empty());
    }

    #[test]
    fn binary_that_cannot_run_is_not_staged() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = asset(tmp.path(), b"\x7fELF garbage");
        let err =
            stage_from_zip(&zip, &request("2.1.0"), &layout(tmp.path()), &limits()).unwrap_err();
        assert!(matches!(err, UpgradeError::BinaryCheck { .. }), "{err}");
    }

    #[test]
    fn binary_that_hangs_on_version_is_killed_and_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = asset(tmp.path(), &script("exec sleep 30"));
        let limits = StageLimits {
            version_check_timeout: Duration::from_millis(300),
            ..limits()
        };
        let started = Instant::now();
        let err =
            stage_from_zip(&zip, &request("2.1.0"), &layout(tmp.path()), &limits).unwrap_err();
        assert!(err.to_string().contains("no answer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn staging_is_refused_while_an_upgrade_is_on_probation() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = layout(tmp.path());
        fs::create_dir_all(&layout.install_dir).unwrap();
        let mut m = Marker::staged("cmd-1", "a", "1", "2", false);
        for s in [Step::BackedUp, Step::Swapped, Step::Probation] {
            m.advance(s, None).unwrap();
        }
        write_marker(&layout.marker(), &m).unwrap();
        let zip = asset(tmp.path(), &script("echo oibus-agent 3.0.0"));
        let err = stage_from_zip(&zip, &request("3.0.0"), &layout, &limits()).unwrap_err();
        assert!(matches!(err, UpgradeError::InProgress { .. }), "{err}");
    }

    #[test]
    fn staging_needs_the_free_space_it_will_use() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = asset(tmp.path(), &script("echo oibus-agent 2.1.0"));
        let limits = StageLimits {
            min_free_bytes: u64::MAX / 2,
            ..StageLimits::default()
        };
        let err =
            stage_from_zip(&zip, &request("2.1.0"), &layout(tmp.path()), &limits).unwrap_err();
        assert!(matches!(err, UpgradeError::DiskFull { .. }), "{err}");
    }

    #[test]
    fn leftovers_of_a_crashed_staging_are_cleared_first() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = layout(tmp.path());
        let stale = layout.update_dir().join("incoming-dead");
        fs::create_dir_all(&stale).unwrap();
        fs::write(layout.update_dir().join("asset-old.zip"), b"x").unwrap();
        let zip = asset(tmp.path(), &script("echo oibus-agent 2.1.0"));
        stage_from_zip(&zip, &request("2.1.0"), &layout, &limits()).unwrap();
        assert!(!stale.exists());
        assert!(!layout.update_dir().join("asset-old.zip").exists());
    }

    fn oia_client(url: &str) -> OiaClient {
        let settings = crate::client::ClientSettings::new(url);
        crate::client::ClientFactory::new(std::sync::Arc::new(settings))
            .unwrap()
            .client()
    }

    /// Version 2.1.0 downloaded from `server` with `token` and staged in `layout`.
    async fn download(
        server: &TestServer,
        token: &str,
        layout: &Layout,
    ) -> Result<Marker, UpgradeError> {
        let token = Secret::new(token.to_string());
        let client = oia_client(&server.url());
        download_and_stage(&client, &token, &request("2.1.0"), layout, &limits()).await
    }

    #[actix_rt::test]
    async fn asset_is_downloaded_with_the_token_and_staged() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = asset(tmp.path(), &script("echo oibus-agent 2.1.0"));
        let body = fs::read(&zip).unwrap();
        let server = TestServer::start(move |_| Reply::new(200, body.clone())).await;
        let layout = layout(tmp.path());
        let marker = download(&server, "tok-9", &layout).await.unwrap();
        assert_eq!(marker.step, Step::Staged);
        let seen = server.only_request();
        let asset = "/api/oianalytics/oibus/upgrade/asset?assetId=asset-7";
        assert_eq!(
            (seen.target.as_str(), seen.header("authorization")),
            (asset, Some("Bearer tok-9"))
        );
        assert!(layout.staged_bin().is_file());
        assert_eq!(
            update_folder(&layout),
            ["staged"],
            "the download is removed"
        );
    }

    #[actix_rt::test]
    async fn asset_answering_404_stages_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let server = TestServer::start(|_| Reply::new(404, "no such asset")).await;
        let layout = layout(tmp.path());
        let err = download(&server, "t", &layout).await.unwrap_err();
        assert!(err.to_string().contains("404 - no such asset"), "{err}");
        assert!(read_marker(&layout.marker()).unwrap().is_none());
        assert!(update_folder(&layout).is_empty());
    }

    #[actix_rt::test]
    async fn staging_without_a_launcher_is_refused_before_downloading() {
        let tmp = tempfile::tempdir().unwrap();
        let token = Secret::new("t".to_string());
        // Nothing listens there: the refusal comes first.
        let err = stage_upgrade(
            || Ok((oia_client("http://127.0.0.1:9"), token)),
            &request("2.1.0"),
            &layout(tmp.path()),
            &limits(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, UpgradeError::NoLauncher), "{err}");
    }

    #[test]
    fn available_bytes_of_a_real_folder_is_positive() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(available_bytes(tmp.path()).unwrap() > 0);
    }
}
