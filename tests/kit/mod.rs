//! The kit shared by the end-to-end tests: start the simulator, talk HTTP, wait on conditions.
//! Every test module uses a different part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod agent;
pub mod connectors;
pub mod http;
pub mod load;
pub mod mosquitto;
pub mod opcua_server;
pub mod procfs;
pub mod proxy;
pub mod service;
pub mod sim;

use std::time::{Duration, Instant};

pub use http::Client;
pub use sim::{Sim, SimOpts};

/// An E3 command element for the OIBus version the agent is compatible with, `extra` (an
/// object) merged in.
pub fn command(id: &str, command_type: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut command = serde_json::json!({"id": id, "type": command_type,
        "targetVersion": oibus_actors::COMPATIBLE_OIBUS_VERSION});
    if let (Some(command), serde_json::Value::Object(extra)) = (command.as_object_mut(), extra) {
        command.extend(extra);
    }
    command
}

/// Polls `condition` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Print one benchmark figure as `BENCH <name> <value> <unit>`, the line `scripts/bench.sh`
/// collects (median over its runs) into `bench/results.md`.
pub fn bench_figure(name: &str, value: f64, unit: &str) {
    println!("BENCH {name} {value:.2} {unit}");
}

/// `text` without ANSI colour sequences (the console's CSI codes: ESC [ parameters, ended by a
/// letter).
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}
