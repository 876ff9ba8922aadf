//! The fuzz harnesses (feature `fuzzing`): each `run` feeds one input to the agent's code the way
//! the running agent would, and panics when an invariant breaks (a panic of the code under test
//! is a finding too). The cargo-fuzz targets in `fuzz/fuzz_targets/` only call them, and
//! `tests/fuzz_replay.rs` replays past findings through them on stable.

pub mod commands;
pub mod config;
pub mod modbus;
pub mod mqtt;
pub mod secrets;
pub mod upgrade_zip;

use std::fs;
use std::path::{Path, PathBuf};

/// A scratch folder private to this process, under `$TMPDIR` (`/dev/shm` in `scripts/fuzz.sh`),
/// created empty. Folders left by earlier fuzzing processes that are gone are removed, so crashes
/// and killed runs do not pile up.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::temp_dir();
    let prefix = format!("oibus-agent-fuzz-{name}-");
    if let Ok(entries) = fs::read_dir(&base) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(pid) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    // The harness cannot run without it: failing here is a broken environment, not a finding.
    fs::create_dir_all(&dir).expect("cannot create the fuzzing scratch folder");
    dir
}
