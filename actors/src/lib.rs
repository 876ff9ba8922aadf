//! The oibus-agent actors and what they share: configuration model, RocksDB store, supervision,
//! OIAnalytics client, protocol types and crypto.

pub mod api_address;
pub mod api_token;
pub mod atomic_file;
pub mod backoff;
pub mod client;
pub mod command_executor;
pub mod command_poller;
pub mod command_reporter;
pub mod commands;
pub mod config;
pub mod connectors;
pub mod content;
pub mod context;
pub mod data_flow;
pub mod entities;
pub mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod key_vault;
pub mod launcher;
pub mod log_shipper;
pub mod message_sender;
pub mod messages;
pub mod metrics_aggregator;
pub mod north_cache;
pub mod north_connector;
pub mod oia;
pub mod protocol;
pub mod registration;
pub mod secret;
pub mod secrets_paths;
pub mod single_flight;
pub mod south_connector;
pub mod store;
pub mod supervision;
pub mod test_hooks;
pub mod upgrade;

pub use context::AgentContext;
pub use secret::Secret;

/// The agent's own version: `OIBUS_AGENT_VERSION` at build time, else the crate version. Shown
/// by `--version`, `status` and the local API, and compared with an `update-version` target;
/// never sent to OIAnalytics as the OIBus version (see [`COMPATIBLE_OIBUS_VERSION`]).
pub const VERSION: &str = match option_env!("OIBUS_AGENT_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// The OIBus release whose wire behaviour this build reproduces. OIAnalytics is told this version
/// (E1 `oibusVersion`, E6 `softwareVersion`/`launcherVersion`, the User-Agent) and checks each
/// command's `targetVersion` against it, so it must be one OIA knows. `3.8.8` unless the build
/// sets `OIBUS_COMPATIBLE_VERSION` (a release published to OIA as OIBus X sets it to X, so that
/// after `update-version` OIA sees the version it asked for); `oianalytics.oibus_version`
/// overrides it at run time.
pub const COMPATIBLE_OIBUS_VERSION: &str = match option_env!("OIBUS_COMPATIBLE_VERSION") {
    Some(v) => v,
    None => "3.8.8",
};

// A build with a malformed `OIBUS_COMPATIBLE_VERSION` fails here rather than at every start.
const _: () = assert!(
    is_release_version(COMPATIBLE_OIBUS_VERSION.as_bytes()),
    "OIBUS_COMPATIBLE_VERSION must be X.Y.Z"
);

/// `X.Y.Z` with decimal numbers of at most 9 digits: the form of OIBus versions in the
/// User-Agent and `targetVersion` (no `v`, no pre-release suffix).
pub const fn is_release_version(text: &[u8]) -> bool {
    let (mut i, mut dots, mut digits) = (0, 0, 0);
    while i < text.len() {
        match text[i] {
            b'0'..=b'9' if digits < 9 => digits += 1,
            b'.' if digits > 0 => {
                dots += 1;
                digits = 0;
            }
            _ => return false,
        }
        i += 1;
    }
    dots == 2 && digits > 0
}

/// Exit codes of the engine process: they tell the launcher what to do.
pub mod exit {
    /// Stopped on request (SIGTERM/SIGINT): stay stopped.
    pub const STOPPED: i32 = 0;
    /// Supervision gave up (an actor's restart budget is spent): restart with backoff.
    pub const ESCALATED: i32 = 70;
    /// Restart requested (restart-engine command): restart at once.
    pub const RESTART: i32 = 75;
    /// Upgrade staged (update-version command): apply it, then start the new version.
    pub const UPGRADE: i32 = 76;
    /// The configuration file is invalid: fix it; restarting will not help.
    pub const CONFIG: i32 = 78;
}

/// A random identifier of `len` characters from `[0-9A-Za-z]`, from the OS CSPRNG.
pub fn random_id(len: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, len)
}
