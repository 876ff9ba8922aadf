//! Extraction of a release zip, safe against hostile archives (zip-slip and friends).
//!
//! Every entry is checked before anything is written: relative paths made only of plain
//! components (no absolute path, `..`, `.`, backslash or NUL), regular files and folders only
//! (no symlinks, devices or FIFOs), no encryption, no duplicates, sizes within limits, and
//! `binaries/oibus-agent` or `binaries/oibus` (OIBus's layout) present; which of them is the
//! agent is decided after extraction ([`super::find_agent_binary`]). Only then is the archive written into a folder that must not
//! exist yet; files are created with `create_new` (never through an existing path), their size
//! is enforced while copying (a lying header cannot inflate them) and the CRC is checked. On any
//! error the folder is removed, so a failed extraction leaves nothing behind.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{fsync_dir, UpgradeError, ASSET_BINARY, OIBUS_ASSET_BINARY};

/// Bounds on what an archive may unpack to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractLimits {
    pub max_entries: usize,
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_entries: 1_000,
            max_entry_bytes: 512 << 20,
            max_total_bytes: 1 << 30,
        }
    }
}

/// What an extraction wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub files: usize,
    pub bytes: u64,
}

/// One checked entry of the plan.
struct Entry {
    index: usize,
    path: PathBuf,
    dir: bool,
    size: u64,
    executable: bool,
}

/// Check `zip` entirely, then extract it into `dest` (created; it must not exist).
pub fn extract_release(
    zip: &Path,
    dest: &Path,
    limits: &ExtractLimits,
) -> Result<Extracted, UpgradeError> {
    let file = File::open(zip).map_err(UpgradeError::io("cannot open the release asset", zip))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| UpgradeError::Zip(format!("{}: {e}", zip.display())))?;
    let plan = check_archive(&mut archive, limits)?;
    fs::create_dir(dest).map_err(UpgradeError::io("cannot create the staging folder", dest))?;
    match write_plan(&mut archive, &plan, dest) {
        Ok(extracted) => Ok(extracted),
        Err(e) => {
            if let Err(cleanup) = fs::remove_dir_all(dest) {
                tracing::warn!(path = %dest.display(), error = %cleanup, "cannot remove a failed extraction");
            }
            Err(e)
        }
    }
}

/// The declared uncompressed size of the archive, for the free-disk check (checked again entry
/// by entry while writing).
pub fn declared_size(zip: &Path) -> Result<u64, UpgradeError> {
    let file = File::open(zip).map_err(UpgradeError::io("cannot open the release asset", zip))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| UpgradeError::Zip(format!("{}: {e}", zip.display())))?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| UpgradeError::Zip(e.to_string()))?;
        total = total.saturating_add(entry.size());
    }
    Ok(total)
}

fn check_archive<R: Read + io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    limits: &ExtractLimits,
) -> Result<Vec<Entry>, UpgradeError> {
    if archive.len() > limits.max_entries {
        return Err(UpgradeError::TooLarge {
            what: "number of entries",
            actual: archive.len() as u64,
            limit: limits.max_entries as u64,
        });
    }
    let mut plan = Vec::with_capacity(archive.len());
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut has_binary = false;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| UpgradeError::Zip(format!("entry {index}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| UpgradeError::Zip(format!("entry {index} has an unreadable name: {e}")))?
            .into_owned();
        let unsafe_entry = |reason: &str| UpgradeError::UnsafeEntry {
            name: name.clone(),
            reason: reason.to_string(),
        };
        let path = safe_relative_path(&name).map_err(&unsafe_entry)?;
        let dir = entry.is_dir();
        match entry.unix_mode().map(|m| m & 0o170000) {
            None | Some(0) | Some(0o100000) => {}
            Some(0o040000) if dir => {}
            Some(0o120000) => return Err(unsafe_entry("symbolic links are not allowed")),
            Some(_) => return Err(unsafe_entry("only regular files and folders are allowed")),
        }
        if entry.encrypted() {
            return Err(unsafe_entry("encrypted entries are not supported"));
        }
        if !seen.insert(path.clone()) {
            return Err(unsafe_entry("the archive lists this path twice"));
        }
        let size = if dir { 0 } else { entry.size() };
        if size > limits.max_entry_bytes {
            return Err(UpgradeError::TooLarge {
                what: "one entry",
                actual: size,
                limit: limits.max_entry_bytes,
            });
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(UpgradeError::TooLarge {
                what: "total uncompressed size",
                actual: total,
                limit: limits.max_total_bytes,
            });
        }
        let is_binary =
            !dir && (path == Path::new(ASSET_BINARY) || path == Path::new(OIBUS_ASSET_BINARY));
        has_binary |= is_binary;
        let executable = is_binary || entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        plan.push(Entry {
            index,
            path,
            dir,
            size,
            executable,
        });
    }
    if !has_binary {
        return Err(UpgradeError::MissingBinary);
    }
    Ok(plan)
}

/// A path made only of plain components, or why not. Checked on the raw name, segment by
/// segment, because `Path::components` would silently drop `.` and empty segments.
fn safe_relative_path(name: &str) -> Result<PathBuf, &'static str> {
    if name.contains('\0') {
        return Err("NUL byte in the name");
    }
    if name.contains('\\') {
        return Err("backslash in the name (a Windows path?)");
    }
    if name.starts_with('/') {
        return Err("absolute path");
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    if trimmed.is_empty() {
        return Err("empty name");
    }
    let mut clean = PathBuf::new();
    for segment in trimmed.split('/') {
        match segment {
            "" => return Err("empty path segment (//)"),
            "." => return Err("'.' in the path"),
            ".." => return Err("parent folder (..) in the path"),
            plain => clean.push(plain),
        }
    }
    Ok(clean)
}

fn write_plan<R: Read + io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    plan: &[Entry],
    dest: &Path,
) -> Result<Extracted, UpgradeError> {
    let mut dirs: HashSet<PathBuf> = HashSet::from([dest.to_path_buf()]);
    let mut written = Extracted { files: 0, bytes: 0 };
    for entry in plan {
        let target = dest.join(&entry.path);
        if entry.dir {
            create_dirs(dest, &entry.path, &mut dirs)?;
            continue;
        }
        if let Some(parent) = entry.path.parent() {
            create_dirs(dest, parent, &mut dirs)?;
        }
        let mut source = archive
            .by_index(entry.index)
            .map_err(|e| UpgradeError::Zip(format!("{}: {e}", entry.path.display())))?;
        let mode = if entry.executable { 0o755 } else { 0o644 };
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)
            .map_err(UpgradeError::io("cannot create", &target))?;
        // One byte more than declared: a longer stream is caught instead of truncated silently.
        let copied = io::copy(&mut (&mut source).take(entry.size + 1), &mut out).map_err(|e| {
            UpgradeError::Zip(format!(
                "{}: {e} (truncated or corrupt archive?)",
                entry.path.display()
            ))
        })?;
        if copied != entry.size {
            return Err(UpgradeError::UnsafeEntry {
                name: entry.path.display().to_string(),
                reason: format!("declares {} bytes but holds {copied}", entry.size),
            });
        }
        out.sync_all()
            .map_err(UpgradeError::io("cannot fsync", &target))?;
        written.files += 1;
        written.bytes += copied;
    }
    for dir in &dirs {
        fsync_dir(dir)?;
    }
    Ok(written)
}

/// Create `rel` under `dest` one component at a time, refusing to go through anything that is
/// not a folder we made (defence in depth: the plan has no links, but the disk might).
fn create_dirs(dest: &Path, rel: &Path, made: &mut HashSet<PathBuf>) -> Result<(), UpgradeError> {
    let mut current = dest.to_path_buf();
    for component in rel.components() {
        current.push(component);
        if made.contains(&current) {
            continue;
        }
        match fs::create_dir(&current) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = fs::symlink_metadata(&current)
                    .map_err(UpgradeError::io("cannot inspect", &current))?;
                if !meta.is_dir() {
                    return Err(UpgradeError::UnsafeEntry {
                        name: rel.display().to_string(),
                        reason: "a file and a folder share this path".into(),
                    });
                }
            }
            Err(e) => return Err(UpgradeError::io("cannot create folder", &current)(e)),
        }
        made.insert(current.clone());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    /// A zip with `entries` (name, contents); a name ending in `/` is a folder.
    pub(crate) fn zip_with(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("asset.zip");
        let mut w = zip::ZipWriter::new(File::create(&path).unwrap());
        let opts = SimpleFileOptions::default().unix_permissions(0o755);
        for (name, body) in entries {
            if name.ends_with('/') {
                w.add_directory(*name, opts).unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(body).unwrap();
            }
        }
        w.finish().unwrap();
        path
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                out.push(e.path());
                if e.file_type().unwrap().is_dir() {
                    out.extend(files_under(&e.path()));
                }
            }
        }
        out.sort();
        out
    }

    /// Extract into `<tmp>/stage/dest` and check that nothing appeared anywhere else in `<tmp>`.
    fn extract_expecting_error(entries: &[(&str, &[u8])]) -> UpgradeError {
        let tmp = tempfile::tempdir().unwrap();
        let zip = zip_with(tmp.path(), entries);
        fs::create_dir(tmp.path().join("stage")).unwrap();
        let before = files_under(tmp.path());
        let err = extract_release(
            &zip,
            &tmp.path().join("stage/dest"),
            &ExtractLimits::default(),
        )
        .unwrap_err();
        assert_eq!(
            files_under(tmp.path()),
            before,
            "nothing may be left behind"
        );
        err
    }

    #[test]
    fn release_with_the_binary_is_extracted_with_its_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = zip_with(
            tmp.path(),
            &[
                ("binaries/", b""),
                (ASSET_BINARY, b"#!/bin/sh\n"),
                ("README.md", b"hi"),
            ],
        );
        let dest = tmp.path().join("dest");
        let done = extract_release(&zip, &dest, &ExtractLimits::default()).unwrap();
        assert_eq!(
            done,
            Extracted {
                files: 2,
                bytes: 12
            }
        );
        let mode = fs::metadata(dest.join(ASSET_BINARY)).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o755
        );
        assert_eq!(fs::read(dest.join("README.md")).unwrap(), b"hi");
    }

    #[test]
    fn unsafe_entries_and_releases_without_the_binary_are_rejected_leaving_nothing() {
        const UNSAFE: &str = "unsafe entry";
        const MISSING: &str = "has neither";
        type Entries<'a> = &'a [(&'a str, &'a [u8])];
        let cases: [(Entries, &str); 7] = [
            (
                &[(ASSET_BINARY, b"x"), ("binaries/../../evil", b"x")],
                UNSAFE,
            ),
            (
                &[(ASSET_BINARY, b"x"), ("/tmp/evil", b"x")],
                "absolute path",
            ),
            (&[(ASSET_BINARY, b"x"), ("..\\evil", b"x")], UNSAFE),
            // The binary comes first: a one-pass extractor would have written it already.
            (
                &[(ASSET_BINARY, b"payload"), ("a/../../../x", b"x")],
                UNSAFE,
            ),
            (
                &[(OIBUS_ASSET_BINARY, b"x"), ("binaries/../../x", b"x")],
                UNSAFE,
            ),
            (&[("binaries/other", b"x")], MISSING),
            // A folder is not a binary.
            (&[("binaries/oibus-agent/", b"")], MISSING),
        ];
        for (entries, expected) in cases {
            let err = extract_expecting_error(entries).to_string();
            assert!(err.contains(expected), "{entries:?}: {err}");
        }
    }

    #[test]
    fn zip_symlink_entry_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("asset.zip");
        let mut w = zip::ZipWriter::new(File::create(&path).unwrap());
        let opts = SimpleFileOptions::default();
        w.start_file(ASSET_BINARY, opts).unwrap();
        w.write_all(b"x").unwrap();
        w.add_symlink("binaries/link", "/etc/passwd", opts).unwrap();
        w.finish().unwrap();
        let err = extract_release(&path, &tmp.path().join("dest"), &ExtractLimits::default())
            .unwrap_err();
        assert!(err.to_string().contains("symbolic links"), "{err}");
        assert!(!tmp.path().join("dest").exists());
    }

    #[test]
    fn release_in_the_oibus_layout_is_extracted() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = zip_with(tmp.path(), &[(OIBUS_ASSET_BINARY, b"#!/bin/sh\n")]);
        let dest = tmp.path().join("dest");
        extract_release(&zip, &dest, &ExtractLimits::default()).unwrap();
        assert!(dest.join(OIBUS_ASSET_BINARY).is_file());
    }

    #[test]
    fn truncated_zip_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let zip = zip_with(tmp.path(), &[(ASSET_BINARY, &big)]);
        let bytes = fs::read(&zip).unwrap();
        fs::write(&zip, &bytes[..bytes.len() / 2]).unwrap();
        let err =
            extract_release(&zip, &tmp.path().join("dest"), &ExtractLimits::default()).unwrap_err();
        assert!(matches!(err, UpgradeError::Zip(_)), "{err}");
        assert!(!tmp.path().join("dest").exists());
    }

    #[test]
    fn corrupt_entry_data_fails_its_checksum_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let body = vec![7u8; 4096];
        let path = tmp.path().join("asset.zip");
        let mut w = zip::ZipWriter::new(File::create(&path).unwrap());
        let stored =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        w.start_file(ASSET_BINARY, stored).unwrap();
        w.write_all(&body).unwrap();
        w.finish().unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.windows(16).position(|w| w == [7u8; 16]).unwrap();
        bytes[at + 100] = 8;
        fs::write(&path, &bytes).unwrap();
        let err = extract_release(&path, &tmp.path().join("dest"), &ExtractLimits::default())
            .unwrap_err();
        assert!(matches!(err, UpgradeError::Zip(_)), "{err}");
        assert!(!tmp.path().join("dest").exists());
    }

    #[test]
    fn oversize_entry_is_rejected_before_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = zip_with(tmp.path(), &[(ASSET_BINARY, &[0u8; 2048])]);
        let limits = ExtractLimits {
            max_entry_bytes: 1024,
            ..ExtractLimits::default()
        };
        let err = extract_release(&zip, &tmp.path().join("dest"), &limits).unwrap_err();
        assert!(
            matches!(
                err,
                UpgradeError::TooLarge {
                    what: "one entry",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!tmp.path().join("dest").exists());
    }

    #[test]
    fn archive_over_the_total_limit_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = zip_with(
            tmp.path(),
            &[(ASSET_BINARY, &[0u8; 600]), ("b", &[0u8; 600])],
        );
        let limits = ExtractLimits {
            max_total_bytes: 1000,
            ..ExtractLimits::default()
        };
        let err = extract_release(&zip, &tmp.path().join("dest"), &limits).unwrap_err();
        assert!(matches!(err, UpgradeError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn existing_destination_is_never_written_into() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = zip_with(tmp.path(), &[(ASSET_BINARY, b"x")]);
        let dest = tmp.path().join("dest");
        fs::create_dir(&dest).unwrap();
        assert!(extract_release(&zip, &dest, &ExtractLimits::default()).is_err());
        assert!(!dest.join(ASSET_BINARY).exists());
    }

    #[test]
    fn safe_paths_are_plain_components_only() {
        assert!(safe_relative_path("binaries/oibus-agent").is_ok());
        assert!(safe_relative_path("binaries/").is_ok());
        for bad in [
            "", "/", "/etc/x", "a/../b", "./a", "a/./b", "a\\b", "a\0b", "..", "//x",
        ] {
            assert!(safe_relative_path(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
