//! The configuration model: one YAML file edited by ops (`config/agent.yaml` is the documented
//! default). Every section has defaults and rejects unknown keys. [`load`] parses and validates,
//! returning every problem at once, each with its key path and `line:column`.

//!
//! Each section's struct and its checks live with the code that reads it (e.g.
//! `log_shipper/config.rs`); this module composes them and turns YAML into a [`Config`].

mod engine;
mod oianalytics;
pub(crate) mod units;
mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::command_executor::CommandExecutorConfig;
pub use crate::launcher::LauncherConfig;
pub use crate::log_shipper::LogShipperConfig;
/// How many windows of each type the metrics store keeps (`actors.metrics_aggregator.keep`).
pub use crate::metrics_aggregator::{MetricsAggregatorConfig, Retention};
pub use crate::supervision::RestartPolicy;
pub use engine::{ApiConfig, EngineConfig, LogConfig, LogFormat, LogLevel};
pub use oianalytics::{GatewayConfig, Intervals, OiaConfig, ProxyConfig, PERMISSION_FLAGS};
pub use units::{parse_byte_size, ByteSize};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub engine: EngineConfig,
    pub oianalytics: OiaConfig,
    pub actors: ActorsConfig,
    pub launcher: LauncherConfig,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorDefaults {
    pub restart: RestartPolicy,
}

/// Per-actor override of the restart policy.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorConfig {
    pub restart: Option<RestartPolicy>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorsConfig {
    pub defaults: ActorDefaults,
    pub registration: ActorConfig,
    pub key_vault: ActorConfig,
    pub command_poller: ActorConfig,
    pub command_executor: CommandExecutorConfig,
    pub message_sender: ActorConfig,
    pub log_shipper: LogShipperConfig,
    pub metrics_aggregator: MetricsAggregatorConfig,
}

impl ActorsConfig {
    /// The effective restart policy of an actor: its own, else the defaults.
    pub fn restart_policy(&self, actor: &str) -> RestartPolicy {
        let own = match actor {
            "registration" => &self.registration.restart,
            "key_vault" => &self.key_vault.restart,
            "command_poller" => &self.command_poller.restart,
            "command_executor" => &self.command_executor.restart,
            "message_sender" => &self.message_sender.restart,
            "log_shipper" => &self.log_shipper.restart,
            "metrics_aggregator" => &self.metrics_aggregator.restart,
            _ => &None,
        };
        own.clone().unwrap_or_else(|| self.defaults.restart.clone())
    }

    fn validate(&self, at: &str, problems: &mut Problems) {
        self.defaults
            .restart
            .validate(&format!("{at}.defaults.restart"), problems);
        for (name, own) in [
            ("registration", &self.registration.restart),
            ("key_vault", &self.key_vault.restart),
            ("command_poller", &self.command_poller.restart),
            ("command_executor", &self.command_executor.restart),
            ("message_sender", &self.message_sender.restart),
            ("log_shipper", &self.log_shipper.restart),
            ("metrics_aggregator", &self.metrics_aggregator.restart),
        ] {
            if let Some(policy) = own {
                policy.validate(&format!("{at}.{name}.restart"), problems);
            }
        }
        self.log_shipper
            .validate(&format!("{at}.log_shipper"), problems);
        self.command_executor
            .validate(&format!("{at}.command_executor"), problems);
        self.metrics_aggregator
            .validate(&format!("{at}.metrics_aggregator"), problems);
    }
}

impl Config {
    /// Semantic checks that serde cannot express, section by section. Returns (key path,
    /// message) pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Problems::default();
        self.engine.validate("engine", &mut problems);
        self.oianalytics.validate("oianalytics", &mut problems);
        self.actors.validate("actors", &mut problems);
        self.launcher.validate("launcher", &mut problems);
        problems.0
    }
}

/// What the section validators found: (dotted key path, message) pairs.
#[derive(Debug, Default)]
pub struct Problems(Vec<(String, String)>);

impl Problems {
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    pub fn at_most_a_year(&mut self, path: &str, value: Duration) {
        if value > MAX_DURATION {
            self.add(
                path,
                format!(
                    "must be at most 365 days, got {}",
                    humantime::format_duration(value)
                ),
            );
        }
    }

    /// A secret file named in the YAML must be readable now, not at first use.
    pub fn readable(&mut self, path: &str, file: &Option<PathBuf>) {
        if let Some(file) = file {
            if let Err(e) = std::fs::File::open(file) {
                self.add(path, format!("cannot read {}: {e}", file.display()));
            }
        }
    }
}

/// The longest duration the file accepts. Nothing in an agent that retries, restarts and times
/// out needs more, and far longer ones overflow the clock arithmetic built on them (deadlines,
/// retry caps): `10000000000000000000s` would panic at the first stop.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `oianalytics.intervals.command_refresh`; empty for the whole file.
    pub path: String,
    pub message: String,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some((line, col)) = self.location {
            write!(f, " at {line}:{col}")?;
        }
        Ok(())
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is invalid:\n{}", path.display(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

/// Read, parse and validate a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

/// Parse and validate YAML text. An empty document is the default configuration.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    yaml::parse(text)
}

#[cfg(test)]
mod tests;
