//! The oibus-agent actors and what they share: configuration model, RocksDB store, supervision,
//! OIAnalytics client, protocol types and crypto.

pub mod api_address;
pub mod client;
pub mod command_executor;
pub mod command_poller;
pub mod commands;
pub mod config;
pub mod context;
pub mod entities;
pub mod events;
pub mod key_vault;
pub mod launcher;
pub mod log_shipper;
pub mod message_sender;
pub mod messages;
pub mod metrics_aggregator;
pub mod oia;
pub mod protocol;
pub mod registration;
pub mod secret;
pub mod secrets_paths;
pub mod store;
pub mod supervision;
pub mod upgrade;

pub use context::AgentContext;
pub use secret::Secret;

/// The version this binary reports to OIAnalytics: `OIBUS_AGENT_VERSION` at build time, else the
/// crate version.
pub const VERSION: &str = match option_env!("OIBUS_AGENT_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

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
