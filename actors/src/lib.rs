//! The oibus-agent actors and what they share: configuration model, RocksDB store, supervision,
//! OIAnalytics client, protocol types and crypto.

pub mod client;
pub mod config;
pub mod context;
pub mod events;
pub mod key_vault;
pub mod metrics_aggregator;
pub mod oia;
pub mod protocol;
pub mod registration;
pub mod secret;
pub mod secrets_paths;
pub mod store;
pub mod supervision;

pub use context::AgentContext;
pub use secret::Secret;

/// The version this binary reports to OIAnalytics: `OIBUS_AGENT_VERSION` at build time, else the
/// crate version.
pub const VERSION: &str = match option_env!("OIBUS_AGENT_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

