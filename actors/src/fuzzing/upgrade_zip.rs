//! Target `upgrade_zip`: an input is a release asset as downloaded by `update-version`, given to
//! the checks and the extraction of `upgrade::extract`.
//!
//! Each input is written to `<case>/asset.zip` and extracted into `<case>/stage/dest`.
//! Invariants: no panic; a refused archive leaves the case folder exactly as it was; an
//! accepted one only adds regular files and folders under `dest`, including the binary, within
//! the limits, and reports what it wrote.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::upgrade::extract::{declared_size, extract_release, ExtractLimits};
use crate::upgrade::ASSET_BINARY;

/// Small limits: the checks are the same, and writing stays cheap.
fn limits() -> ExtractLimits {
    ExtractLimits {
        max_entries: 64,
        max_entry_bytes: 256 << 10,
        max_total_bytes: 1 << 20,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File { size: u64, mode: u32 },
    Other(String),
}

fn case_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| super::scratch_dir("upgrade-zip").join("case"))
}

pub fn run(data: &[u8]) {
    let case = case_dir();
    // Setup failures are a broken environment, not findings.
    let _ = fs::remove_dir_all(case);
    fs::create_dir_all(case.join("stage")).expect("cannot create the case folder");
    let zip = case.join("asset.zip");
    fs::write(&zip, data).expect("cannot write the asset");
    let dest = case.join("stage").join("dest");
    let before = snapshot(case);

    let declared = declared_size(&zip);
    let limits = limits();
    let result = extract_release(&zip, &dest, &limits);
    let after = snapshot(case);
    let extracted = match result {
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(
                after, before,
                "a refused archive ({e}) left something behind"
            );
            return;
        }
        Ok(extracted) => extracted,
    };
    assert!(declared.is_ok(), "extracted but its size is unknown");
    for (path, node) in &before {
        assert_eq!(after.get(path), Some(node), "{path:?} was changed");
    }
    let dest_rel = Path::new("stage/dest");
    let (mut files, mut bytes) = (0, 0);
    for (path, node) in &after {
        if before.contains_key(path) {
            continue;
        }
        assert!(
            path.starts_with(dest_rel),
            "{path:?} was written outside the staging folder"
        );
        match node {
            Node::Dir => {}
            Node::File { size, .. } => {
                assert!(*size <= limits.max_entry_bytes, "{path:?} is too large");
                files += 1;
                bytes += size;
            }
            Node::Other(kind) => panic!("{path:?} is a {kind}"),
        }
    }
    assert!(bytes <= limits.max_total_bytes);
    assert_eq!((extracted.files, extracted.bytes), (files, bytes));
    match after.get(&dest_rel.join(ASSET_BINARY)) {
        Some(Node::File { mode, .. }) => assert_eq!(mode & 0o777, 0o755, "binary mode"),
        other => panic!("accepted without a binary file: {other:?}"),
    }
}

/// Everything under `root` (links not followed), by relative path. Bounded: an extraction may
/// write at most `max_entries` entries.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            assert!(out.len() < 10_000, "runaway extraction");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("read_dir yields children of its folder")
                .to_path_buf();
            let meta = fs::symlink_metadata(&path).expect("an entry just listed exists");
            let node = if meta.is_dir() {
                pending.push(path);
                Node::Dir
            } else if meta.is_file() {
                Node::File {
                    size: meta.len(),
                    mode: meta.permissions().mode(),
                }
            } else if meta.file_type().is_symlink() {
                Node::Other("symbolic link".into())
            } else {
                Node::Other(format!("{:?}", meta.file_type()))
            };
            out.insert(rel, node);
        }
    }
    out
}
