//! The oibus-agent actors and what they share: configuration model, RocksDB store, supervision,
//! OIAnalytics client, protocol types and crypto.

/// The version this binary reports to OIAnalytics: `OIBUS_AGENT_VERSION` at build time, else the
/// crate version.
pub const VERSION: &str = match option_env!("OIBUS_AGENT_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

pub mod metrics_aggregator;
pub mod secret;
pub use secret::Secret;
