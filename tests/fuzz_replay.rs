//! Replays, on the stable toolchain, what the fuzz targets were given: the inputs that once made
//! them fail (`actors/tests-data/fuzz/<target>/`) and their seeds (`fuzz/corpus/<target>/`),
//! through the very harness cargo-fuzz runs (`oibus_actors::fuzzing`). A fixed finding stays fixed without
//! nightly or cargo-fuzz; `scripts/fuzz.sh` does the fuzzing itself.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use oibus_actors::fuzzing as harness;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

/// Every input of `target` goes through `run`; the failures are listed together.
fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = inputs(&root.join("actors/tests-data/fuzz").join(target));
    files.extend(inputs(&root.join("fuzz/corpus").join(target)));
    assert!(!files.is_empty(), "no input for {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let bytes = std::fs::read(path).expect("a listed input is readable");
            panic::catch_unwind(AssertUnwindSafe(|| run(&bytes))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} fails on {failed:#?}");
}

#[test]
fn commands_fuzz_findings_and_seeds_pass_the_harness() {
    replay("commands", harness::commands::run);
}

#[test]
fn config_fuzz_findings_and_seeds_pass_the_harness() {
    replay("config", harness::config::run);
}

#[test]
fn upgrade_zip_fuzz_findings_and_seeds_pass_the_harness() {
    replay("upgrade_zip", harness::upgrade_zip::run);
}

#[test]
fn secrets_fuzz_findings_and_seeds_pass_the_harness() {
    replay("secrets", harness::secrets::run);
}

#[test]
fn modbus_fuzz_findings_and_seeds_pass_the_harness() {
    replay("modbus", harness::modbus::run);
}

#[test]
fn mqtt_fuzz_findings_and_seeds_pass_the_harness() {
    replay("mqtt", harness::mqtt::run);
}
