//! Console logging for the binary: structured `tracing` events to stderr, with a level that
//! SIGHUP or a remote command can change while running. The engine adds the OIA log layer
//! (`oibus_actors::log_shipper`), which has its own level handle.

use oibus_actors::config::LogLevel;
use oibus_actors::log_shipper::OiaLogLayer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, Layer, Registry};

/// Changes the console level of a running process.
#[derive(Clone)]
pub struct ConsoleLevel(reload::Handle<LevelFilter, Registry>);

impl ConsoleLevel {
    pub fn set(&self, level: LogLevel) {
        // Fails only if the subscriber is gone, i.e. at process exit: nothing left to filter.
        let _ = self.0.reload(level_filter(level));
    }
}

pub fn level_filter(level: LogLevel) -> LevelFilter {
    level
        .max_tracing_level()
        .map_or(LevelFilter::OFF, LevelFilter::from_level)
}

/// Install the global subscriber: console output at `level`, and the records for OIAnalytics
/// when `oia` is given. The OIA layer goes last so the console filter keeps its type.
pub fn init(level: LogLevel, oia: Option<OiaLogLayer>) -> ConsoleLevel {
    let (filter, handle) = reload::Layer::new(level_filter(level));
    let console = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter);
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(oia)
        .try_init();
    ConsoleLevel(handle)
}
