//! Replacing a file whole: a reader, or a crash, sees the old contents or the new ones, never a
//! torn file. Used for the upgrade marker, the pid and API address files and the key vault.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Temporary siblings start with this, so a folder's owner can sweep leftovers of a crash.
pub const TMP_PREFIX: &str = ".tmp-";

/// The step of an atomic write that failed, and on which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}: {source}", path.display())]
pub struct WriteError {
    pub step: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Replaces `path` with `bytes`, with the permissions a new file gets from the umask.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_with_mode(path, bytes, 0o666)
}

/// Replaces `path` with `bytes`, readable by its owner only (0600) from before the first byte.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_with_mode(path, bytes, 0o600)
}

/// Replaces `path` with `bytes`, readable by its owner and group only (0640).
pub fn write_group_readable(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_with_mode(path, bytes, 0o640)
}

/// Temporary sibling (`mode`, less the umask), fsync, rename over `path`, fsync of the folder so
/// the rename survives a power loss. On failure the temporary file is removed.
fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let failed = |step, path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { step, path, source }
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut file = tempfile::Builder::new()
        .prefix(&format!("{TMP_PREFIX}{name}."))
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(failed("create a temporary file in", dir))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(failed("write", file.path()))?;
    file.persist(path)
        .map_err(|e| failed("rename into place", path)(e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed("fsync folder", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marker.json");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(names_in(dir.path()), ["marker.json"]);
    }

    #[test]
    fn files_with_the_same_stem_do_not_share_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.json"), b"1").unwrap();
        write(&dir.path().join("a.pid"), b"2").unwrap();
        assert_eq!(names_in(dir.path()), ["a.json", "a.pid"]);
        assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"1");
    }

    #[test]
    fn a_private_file_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private.pem");
        write_private(&path, b"secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_write_into_a_missing_folder_names_the_step_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(&dir.path().join("missing/file"), b"x").unwrap_err();
        assert_eq!(err.step, "create a temporary file in");
        assert_eq!(err.path, dir.path().join("missing"));
        assert_eq!(names_in(dir.path()), Vec::<String>::new());
    }
}
