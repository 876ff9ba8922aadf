//! The launcher's file-system steps of an upgrade. Each one is idempotent, so that a launcher
//! killed in the middle of a step simply runs it again from the recorded marker:
//! - [`backup`] rebuilds `backup/` from scratch: the old binary (hard link, else copy), a
//!   RocksDB checkpoint of the store, a copy of the vault (or a `NO_VAULT` note);
//! - [`swap`] renames the staged binary over `bin/oibus-agent`;
//! - [`restore`] puts the backed-up binary and data back (built aside, then renamed in);
//! - [`cleanup`] removes what a finished upgrade leaves.
//!
//! The store is opened only here, while no engine runs (the launcher stopped or reaped it).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::store::Store;
use crate::upgrade::stage::remove_dir_if_present;
use crate::upgrade::{fsync_dir, fsync_parent, Layout, UpgradeError};

/// Written in `backup/` when there was no vault to copy, so a rollback removes a new one.
const NO_VAULT: &str = "NO_VAULT";

/// Take the backup of what `current_binary` runs on.
pub fn backup(layout: &Layout, current_binary: &Path) -> Result<(), UpgradeError> {
    let dir = layout.backup_dir();
    remove_dir_if_present(&dir)?;
    fs::create_dir_all(&dir).map_err(UpgradeError::io("cannot create", &dir))?;
    link_or_copy(current_binary, &layout.backup_bin())?;
    super::failpoint("backup:partial");

    fs::create_dir_all(&layout.data_dir)
        .map_err(UpgradeError::io("cannot create", &layout.data_dir))?;
    let store = Store::open(&layout.store_dir()).map_err(|e| UpgradeError::Io {
        what: "cannot open the store to back it up",
        path: layout.store_dir(),
        source: io::Error::other(e.to_string()),
    })?;
    store
        .checkpoint(&layout.backup_store())
        .map_err(|e| UpgradeError::Io {
            what: "cannot checkpoint the store into",
            path: layout.backup_store(),
            source: io::Error::other(e.to_string()),
        })?;
    drop(store);

    let vault = layout.vault_dir();
    if vault.is_dir() {
        copy_tree(&vault, &layout.backup_vault(), false)?;
    } else {
        let note = dir.join(NO_VAULT);
        fs::write(&note, b"").map_err(UpgradeError::io("cannot write", &note))?;
    }
    sync_tree(&dir)
}

/// Put the staged binary in place. Already done (the staged binary is gone and `bin/` has
/// one) counts as done: that is a launcher killed between the rename and the marker.
pub fn swap(layout: &Layout) -> Result<(), UpgradeError> {
    let staged = layout.staged_bin();
    let target = layout.engine_bin();
    if let Some(bin_dir) = target.parent() {
        fs::create_dir_all(bin_dir).map_err(UpgradeError::io("cannot create", bin_dir))?;
    }
    if staged.is_file() {
        fs::rename(&staged, &target)
            .map_err(UpgradeError::io("cannot move the new binary to", &target))?;
        super::failpoint("swap:renamed");
        return fsync_parent(&target);
    }
    if target.is_file() {
        return Ok(());
    }
    Err(UpgradeError::Io {
        what: "neither the staged nor the installed binary exists",
        path: staged,
        source: io::Error::from(io::ErrorKind::NotFound),
    })
}

/// Put back the old binary, the store and the vault, as the backup has them.
pub fn restore(layout: &Layout) -> Result<(), UpgradeError> {
    let bin = layout.engine_bin();
    let aside = bin.with_file_name(".oibus-agent.restore");
    remove_file_if_present(&aside)?;
    link_or_copy(&layout.backup_bin(), &aside)?;
    fs::rename(&aside, &bin).map_err(UpgradeError::io("cannot restore the old binary at", &bin))?;
    fsync_parent(&bin)?;
    super::failpoint("restore:binary");

    replace_tree(&layout.backup_store(), &layout.store_dir(), true)?;
    if layout.backup_dir().join(NO_VAULT).exists() {
        remove_dir_if_present(&layout.vault_dir())?;
    } else {
        replace_tree(&layout.backup_vault(), &layout.vault_dir(), false)?;
    }
    fsync_dir(&layout.data_dir)
}

/// Remove the backup and the staging folder of a finished upgrade.
pub fn cleanup(layout: &Layout) -> Result<(), UpgradeError> {
    remove_dir_if_present(&layout.backup_dir())?;
    remove_dir_if_present(&layout.staged_dir())?;
    for leftover in [
        aside(&layout.store_dir(), "restore"),
        aside(&layout.store_dir(), "old"),
    ] {
        remove_dir_if_present(&leftover)?;
    }
    for leftover in [
        aside(&layout.vault_dir(), "restore"),
        aside(&layout.vault_dir(), "old"),
    ] {
        remove_dir_if_present(&leftover)?;
    }
    Ok(())
}

/// `live` becomes a copy of `backup`: built next to it, then renamed in. Re-running it after a
/// crash at any point converges (the half-built copy is rebuilt, a moved-aside `live` removed).
fn replace_tree(backup: &Path, live: &Path, link_sst: bool) -> Result<(), UpgradeError> {
    let building = aside(live, "restore");
    let old = aside(live, "old");
    remove_dir_if_present(&building)?;
    copy_tree(backup, &building, link_sst)?;
    sync_tree(&building)?;
    if live.exists() {
        remove_dir_if_present(&old)?;
        fs::rename(live, &old).map_err(UpgradeError::io("cannot move aside", live))?;
    }
    fs::rename(&building, live).map_err(UpgradeError::io("cannot restore", live))?;
    fsync_parent(live)?;
    remove_dir_if_present(&old)
}

fn aside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

/// Copy `src` to `dst` (created with `src`'s mode). RocksDB table files (`*.sst`) are never
/// modified once written, so `link_sst` hard-links them instead of copying; everything else
/// (MANIFEST, WAL, vault files) is copied because it may be appended to. Symbolic links are
/// refused: nothing we back up has any.
fn copy_tree(src: &Path, dst: &Path, link_sst: bool) -> Result<(), UpgradeError> {
    let mode = fs::metadata(src)
        .map_err(UpgradeError::io("cannot read", src))?
        .permissions()
        .mode();
    fs::DirBuilder::new()
        .mode(mode & 0o7777)
        .create(dst)
        .map_err(UpgradeError::io("cannot create", dst))?;
    for entry in fs::read_dir(src).map_err(UpgradeError::io("cannot list", src))? {
        let entry = entry.map_err(UpgradeError::io("cannot list", src))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(UpgradeError::io("cannot read", &from))?;
        if kind.is_dir() {
            copy_tree(&from, &to, link_sst)?;
        } else if kind.is_file() {
            if link_sst && from.extension().is_some_and(|e| e == "sst") {
                link_or_copy(&from, &to)?;
            } else {
                copy_file(&from, &to)?;
            }
        } else {
            return Err(UpgradeError::Io {
                what: "refusing to copy a link or special file",
                path: from,
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
    }
    Ok(())
}

/// A hard link where the file system allows it, else a copy.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), UpgradeError> {
    remove_file_if_present(to)?;
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    copy_file(from, to)
}

fn copy_file(from: &Path, to: &Path) -> Result<(), UpgradeError> {
    fs::copy(from, to).map_err(UpgradeError::io("cannot copy to", to))?;
    Ok(())
}

fn remove_file_if_present(path: &Path) -> Result<(), UpgradeError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(UpgradeError::io("cannot remove", path)(e))
        }
        _ => Ok(()),
    }
}

/// fsync every file and folder under `dir`, and `dir` itself.
fn sync_tree(dir: &Path) -> Result<(), UpgradeError> {
    for entry in fs::read_dir(dir).map_err(UpgradeError::io("cannot list", dir))? {
        let entry = entry.map_err(UpgradeError::io("cannot list", dir))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(UpgradeError::io("cannot read", &path))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            OpenOptions::new()
                .read(true)
                .open(&path)
                .and_then(|f| f.sync_all())
                .map_err(UpgradeError::io("cannot fsync", &path))?;
        }
    }
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Cf, Durability};

    struct Fixture {
        _tmp: tempfile::TempDir,
        layout: Layout,
        old_bin: PathBuf,
    }

    /// An install with an old binary, a store holding `before`, a vault, and a staged binary.
    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().join("inst"), tmp.path().join("data"));
        let old_bin = layout.engine_bin();
        fs::create_dir_all(old_bin.parent().unwrap()).unwrap();
        fs::write(&old_bin, b"old").unwrap();
        fs::create_dir_all(layout.staged_bin().parent().unwrap()).unwrap();
        fs::write(layout.staged_bin(), b"new").unwrap();
        let store = Store::open(&layout.store_dir()).unwrap();
        store
            .put(Cf::State, b"k", "before", Durability::Sync)
            .unwrap();
        drop(store);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(layout.vault_dir())
            .unwrap();
        fs::write(layout.vault_dir().join("key.pem"), b"old key").unwrap();
        Fixture {
            _tmp: tmp,
            layout,
            old_bin,
        }
    }

    fn value(layout: &Layout) -> Option<String> {
        Store::open(&layout.store_dir())
            .unwrap()
            .get(Cf::State, b"k")
            .unwrap()
    }

    /// What the new version does on probation: new data, a new key.
    fn new_version_writes(layout: &Layout) {
        let store = Store::open(&layout.store_dir()).unwrap();
        store
            .put(Cf::State, b"k", "after", Durability::Sync)
            .unwrap();
        store.flush().unwrap();
        drop(store);
        fs::write(layout.vault_dir().join("key.pem"), b"new key").unwrap();
    }

    #[test]
    fn backup_swap_restore_brings_back_binary_store_and_vault() {
        let f = fixture();
        let l = &f.layout;
        backup(l, &f.old_bin).unwrap();
        swap(l).unwrap();
        assert_eq!(fs::read(l.engine_bin()).unwrap(), b"new");
        new_version_writes(l);
        assert_eq!(value(l).as_deref(), Some("after"));

        restore(l).unwrap();
        assert_eq!(fs::read(l.engine_bin()).unwrap(), b"old");
        assert_eq!(value(l).as_deref(), Some("before"));
        assert_eq!(fs::read(l.vault_dir().join("key.pem")).unwrap(), b"old key");
        let mode = fs::metadata(l.vault_dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        cleanup(l).unwrap();
        assert!(!l.backup_dir().exists());
    }

    #[test]
    fn restore_run_twice_converges() {
        let f = fixture();
        let l = &f.layout;
        backup(l, &f.old_bin).unwrap();
        swap(l).unwrap();
        new_version_writes(l);
        restore(l).unwrap();
        restore(l).unwrap();
        assert_eq!(value(l).as_deref(), Some("before"));
        assert_eq!(fs::read(l.engine_bin()).unwrap(), b"old");
    }

    #[test]
    fn restore_after_a_crash_between_its_renames_converges() {
        let f = fixture();
        let l = &f.layout;
        backup(l, &f.old_bin).unwrap();
        swap(l).unwrap();
        new_version_writes(l);
        // The state a crash leaves after `live` was moved aside and before the copy came in.
        fs::rename(l.store_dir(), aside(&l.store_dir(), "old")).unwrap();
        fs::create_dir(aside(&l.store_dir(), "restore")).unwrap();
        restore(l).unwrap();
        assert_eq!(value(l).as_deref(), Some("before"));
        assert!(!aside(&l.store_dir(), "old").exists());
    }

    #[test]
    fn swap_is_idempotent_once_the_binary_moved() {
        let f = fixture();
        swap(&f.layout).unwrap();
        swap(&f.layout).unwrap();
        assert_eq!(fs::read(f.layout.engine_bin()).unwrap(), b"new");
    }

    #[test]
    fn swap_without_any_binary_fails() {
        let f = fixture();
        fs::remove_file(f.layout.staged_bin()).unwrap();
        fs::remove_file(f.layout.engine_bin()).unwrap();
        assert!(swap(&f.layout).is_err());
    }

    #[test]
    fn rollback_removes_a_vault_the_old_version_did_not_have() {
        let f = fixture();
        let l = &f.layout;
        fs::remove_dir_all(l.vault_dir()).unwrap();
        backup(l, &f.old_bin).unwrap();
        swap(l).unwrap();
        fs::create_dir(l.vault_dir()).unwrap();
        restore(l).unwrap();
        assert!(!l.vault_dir().exists());
    }

    #[test]
    fn dev_mode_backup_copies_the_launcher_executable() {
        let f = fixture();
        let l = &f.layout;
        let dev = l.install_dir.join("dev-binary");
        fs::write(&dev, b"dev").unwrap();
        fs::remove_file(l.engine_bin()).unwrap();
        backup(l, &dev).unwrap();
        swap(l).unwrap();
        restore(l).unwrap();
        assert_eq!(fs::read(l.engine_bin()).unwrap(), b"dev");
    }
}
