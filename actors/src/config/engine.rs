//! The `engine` section: the name, the data folder, the local API and the log levels.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Problems;

/// Log levels, as OIBus names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Silent,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const ALL: [LogLevel; 6] = [
        LogLevel::Silent,
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Silent => "silent",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    pub fn parse(s: &str) -> Option<LogLevel> {
        LogLevel::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The most verbose `tracing` level this setting lets through; `None` for silent.
    pub fn max_tracing_level(self) -> Option<tracing::Level> {
        match self {
            LogLevel::Silent => None,
            LogLevel::Error => Some(tracing::Level::ERROR),
            LogLevel::Warn => Some(tracing::Level::WARN),
            LogLevel::Info => Some(tracing::Level::INFO),
            LogLevel::Debug => Some(tracing::Level::DEBUG),
            LogLevel::Trace => Some(tracing::Level::TRACE),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Name reported to OIAnalytics.
    pub name: String,
    /// RocksDB store, vault and staging live here.
    pub data_dir: PathBuf,
    pub api: ApiConfig,
    pub log: LogConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            name: "oibus-agent".into(),
            data_dir: PathBuf::from("/var/lib/oibus-agent"),
            api: ApiConfig::default(),
            log: LogConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Local API (health, status, metrics, registration). Loopback by default.
    pub listen: SocketAddr,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2223)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub console: LogLevel,
    /// Records at or above this level are shipped to OIAnalytics (E8).
    pub oia: LogLevel,
    /// How console lines are written; `--log-format` and `OIBUS_AGENT_LOG_FORMAT` override it.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            console: LogLevel::Info,
            oia: LogLevel::Silent,
            format: LogFormat::Text,
        }
    }
}

/// The console log format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people: timestamped, in colour on a terminal; under the journal, each with its
    /// syslog priority and no timestamp.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, message, fields), for collectors.
    Json,
}

impl EngineConfig {
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        if self.name.trim().is_empty() {
            problems.add(format!("{at}.name"), "must not be empty");
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.add(format!("{at}.data_dir"), "must not be empty");
        }
        if self.api.listen.port() == 0 {
            problems.add(
                format!("{at}.api.listen"),
                "port 0 is not allowed: the launcher and the CLI need a fixed port",
            );
        }
    }
}
