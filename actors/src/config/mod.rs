//! The configuration model: one YAML file edited by ops (`config/agent.yaml` is the documented
//! default). Every section has defaults and rejects unknown keys. [`load`] parses and validates,
//! returning every problem at once, each with its key path and `line:column`.

mod units;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
pub use units::{parse_byte_size, ByteSize};

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

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub engine: EngineConfig,
    pub oianalytics: OiaConfig,
    pub actors: ActorsConfig,
    pub launcher: LauncherConfig,
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
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            console: LogLevel::Info,
            oia: LogLevel::Silent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OiaConfig {
    /// When set and not registered, registration starts.
    pub host: Option<String>,
    pub accept_unauthorized: bool,
    pub proxy: Option<ProxyConfig>,
    pub api_gateway: Option<GatewayConfig>,
    pub intervals: Intervals,
    /// Largest answer read from OIAnalytics; `commands/pending` returns every pending command
    /// at once (about 300 bytes each).
    pub max_answer_bytes: ByteSize,
    pub key_size: u32,
    /// Ceiling for the 42 command permissions; omitted flags are `true`.
    pub permissions: BTreeMap<String, bool>,
    /// The OIBus version reported to OIAnalytics and matched against `targetVersion`
    /// (`X.Y.Z`); defaults to [`crate::COMPATIBLE_OIBUS_VERSION`].
    pub oibus_version: String,
}

impl Default for OiaConfig {
    fn default() -> Self {
        OiaConfig {
            host: None,
            accept_unauthorized: false,
            proxy: None,
            api_gateway: None,
            intervals: Intervals::default(),
            max_answer_bytes: ByteSize(crate::client::DEFAULT_MAX_BODY_BYTES as u64),
            key_size: 4096,
            permissions: BTreeMap::new(),
            oibus_version: crate::COMPATIBLE_OIBUS_VERSION.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the proxy password (first line, trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Inline password; prefer `password_file`.
    #[serde(default)]
    pub password: Option<Secret<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub base_endpoint: String,
    pub header_key: String,
    #[serde(default)]
    pub header_value_file: Option<PathBuf>,
    #[serde(default)]
    pub header_value: Option<Secret<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Intervals {
    #[serde(with = "units::duration")]
    pub command_refresh: Duration,
    #[serde(with = "units::duration")]
    pub command_retry: Duration,
    #[serde(with = "units::duration")]
    pub message_retry: Duration,
    #[serde(with = "units::duration")]
    pub registration_check: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            command_refresh: Duration::from_secs(60),
            command_retry: Duration::from_secs(5),
            message_retry: Duration::from_secs(5),
            registration_check: Duration::from_secs(10),
        }
    }
}

/// Restart policy of one supervised actor (or of the engine, for the launcher).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartPolicy {
    /// At most this many restarts within `within`; one more escalates.
    pub max_restarts: u32,
    #[serde(with = "units::duration")]
    pub within: Duration,
    #[serde(with = "units::duration")]
    pub backoff_initial: Duration,
    #[serde(with = "units::duration")]
    pub backoff_max: Duration,
    /// Running this long without failing resets the backoff.
    #[serde(with = "units::duration")]
    pub reset_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            within: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
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
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandExecutorConfig {
    /// Finished commands whose final status OIAnalytics acknowledged are removed from the
    /// journal this long after they ended. Until then a copy of the same id is ignored.
    #[serde(with = "units::duration")]
    pub journal_retention: Duration,
    pub restart: Option<RestartPolicy>,
}

impl Default for CommandExecutorConfig {
    fn default() -> Self {
        CommandExecutorConfig {
            journal_retention: Duration::from_secs(7 * 24 * 3600),
            restart: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogShipperConfig {
    pub batch_max: usize,
    #[serde(with = "units::duration")]
    pub interval: Duration,
    pub queue_max_bytes: ByteSize,
    pub restart: Option<RestartPolicy>,
}

impl Default for LogShipperConfig {
    fn default() -> Self {
        LogShipperConfig {
            batch_max: 500,
            interval: Duration::from_secs(10),
            queue_max_bytes: ByteSize(64 * 1024 * 1024),
            restart: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsAggregatorConfig {
    #[serde(with = "units::duration")]
    pub flush_interval: Duration,
    pub retention: Retention,
    pub restart: Option<RestartPolicy>,
}

impl Default for MetricsAggregatorConfig {
    fn default() -> Self {
        MetricsAggregatorConfig {
            flush_interval: Duration::from_secs(10),
            retention: Retention::default(),
            restart: None,
        }
    }
}

/// How many windows of each type the metrics store keeps (`actors.metrics_aggregator.retention`).
pub use crate::metrics_aggregator::Retention;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LauncherConfig {
    pub install_dir: PathBuf,
    /// A new version must stay healthy this long before an upgrade is committed.
    #[serde(with = "units::duration")]
    pub health_grace: Duration,
    /// SIGTERM to the engine, then SIGKILL after this long.
    #[serde(with = "units::duration")]
    pub shutdown_timeout: Duration,
    /// Engine crash-loop policy: backoff between restarts, and the limit that keeps it down.
    pub restart: RestartPolicy,
}

impl Default for LauncherConfig {
    fn default() -> Self {
        LauncherConfig {
            install_dir: PathBuf::from("/opt/oibus-agent"),
            health_grace: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            restart: RestartPolicy {
                max_restarts: 10,
                within: Duration::from_secs(600),
                backoff_initial: Duration::from_secs(1),
                backoff_max: Duration::from_secs(60),
                reset_after: Duration::from_secs(300),
            },
        }
    }
}

/// The 42 command permission flags of OIAnalytics (protocol §4.4), in OIBus's order.
pub const PERMISSION_FLAGS: [&str; 42] = [
    "updateVersion",
    "restartEngine",
    "regenerateCipherKeys",
    "updateEngineSettings",
    "updateRegistrationSettings",
    "createScanMode",
    "updateScanMode",
    "deleteScanMode",
    "createIpFilter",
    "updateIpFilter",
    "deleteIpFilter",
    "createCertificate",
    "updateCertificate",
    "deleteCertificate",
    "createHistoryQuery",
    "updateHistoryQuery",
    "deleteHistoryQuery",
    "createOrUpdateHistoryItemsFromCsv",
    "testHistoryNorthConnection",
    "testHistorySouthConnection",
    "testHistorySouthItem",
    "createSouth",
    "updateSouth",
    "deleteSouth",
    "createOrUpdateSouthItemsFromCsv",
    "testSouthConnection",
    "testSouthItem",
    "createNorth",
    "updateNorth",
    "deleteNorth",
    "testNorthConnection",
    "setpoint",
    "searchHistoryCacheContent",
    "getHistoryCacheFileContent",
    "updateHistoryCacheContent",
    "searchNorthCacheContent",
    "getNorthCacheFileContent",
    "updateNorthCacheContent",
    "createCustomTransformer",
    "updateCustomTransformer",
    "deleteCustomTransformer",
    "testCustomTransformer",
];

impl OiaConfig {
    /// The YAML ceiling for one permission flag (omitted = allowed).
    pub fn permission_ceiling(&self, flag: &str) -> bool {
        self.permissions.get(flag).copied().unwrap_or(true)
    }

    /// The proxy password from `password` or `password_file`.
    pub fn proxy_password(&self) -> Result<Option<Secret<String>>, std::io::Error> {
        match &self.proxy {
            Some(p) => read_secret(p.password.as_ref(), p.password_file.as_deref()),
            None => Ok(None),
        }
    }

    /// The gateway header value from `header_value` or `header_value_file`.
    pub fn gateway_header_value(&self) -> Result<Option<Secret<String>>, std::io::Error> {
        match &self.api_gateway {
            Some(g) => read_secret(g.header_value.as_ref(), g.header_value_file.as_deref()),
            None => Ok(None),
        }
    }
}

fn read_secret(
    inline: Option<&Secret<String>>,
    file: Option<&Path>,
) -> Result<Option<Secret<String>>, std::io::Error> {
    if let Some(v) = inline {
        return Ok(Some(v.clone()));
    }
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)?;
            Ok(Some(Secret::new(
                text.trim_end_matches(['\r', '\n']).to_string(),
            )))
        }
        None => Ok(None),
    }
}

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

impl Config {
    /// Semantic checks that serde cannot express. Returns (key path, message) pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |path: &str, msg: String| out.push((path.to_string(), msg));

        if self.engine.name.trim().is_empty() {
            bad("engine.name", "must not be empty".into());
        }
        if self.engine.data_dir.as_os_str().is_empty() {
            bad("engine.data_dir", "must not be empty".into());
        }
        if self.engine.api.listen.port() == 0 {
            bad(
                "engine.api.listen",
                "port 0 is not allowed: the launcher and the CLI need a fixed port".into(),
            );
        }

        let oia = &self.oianalytics;
        if let Some(host) = &oia.host {
            if !(host.starts_with("http://") || host.starts_with("https://")) {
                bad(
                    "oianalytics.host",
                    format!("must start with http:// or https://, got {host:?}"),
                );
            } else if let Err(e) = host.parse::<http_uri::Uri>() {
                bad("oianalytics.host", format!("is not a valid URL: {e}"));
            }
        }
        for (name, value) in [
            ("command_refresh", oia.intervals.command_refresh),
            ("command_retry", oia.intervals.command_retry),
            ("message_retry", oia.intervals.message_retry),
            ("registration_check", oia.intervals.registration_check),
        ] {
            let path = format!("oianalytics.intervals.{name}");
            if value < Duration::from_secs(1) {
                bad(
                    &path,
                    format!(
                        "must be at least 1s, got {}",
                        humantime::format_duration(value)
                    ),
                );
            }
            check_at_most_a_year(&mut bad, &path, value);
        }
        if !(64 * 1024..=1 << 30).contains(&oia.max_answer_bytes.0) {
            bad(
                "oianalytics.max_answer_bytes",
                format!(
                    "must be between 64KiB and 1GiB, got {}",
                    oia.max_answer_bytes
                ),
            );
        }
        if ![2048, 3072, 4096].contains(&oia.key_size) {
            bad(
                "oianalytics.key_size",
                format!("must be one of 2048, 3072, 4096, got {}", oia.key_size),
            );
        }
        if !crate::is_release_version(oia.oibus_version.as_bytes()) {
            bad(
                "oianalytics.oibus_version",
                format!(
                    "must be an OIBus release version X.Y.Z (e.g. {}), got {:?}",
                    crate::COMPATIBLE_OIBUS_VERSION,
                    oia.oibus_version
                ),
            );
        }
        for flag in oia.permissions.keys() {
            if !PERMISSION_FLAGS.contains(&flag.as_str()) {
                bad(
                    &format!("oianalytics.permissions.{flag}"),
                    "is not a known command permission (see config/agent.yaml for the 42 flags)"
                        .into(),
                );
            }
        }
        if let Some(proxy) = &oia.proxy {
            if !proxy.url.starts_with("http://") {
                bad(
                    "oianalytics.proxy.url",
                    format!("must be an http:// proxy URL, got {:?}", proxy.url),
                );
            }
            if proxy.password.is_some() && proxy.password_file.is_some() {
                bad(
                    "oianalytics.proxy.password",
                    "give either password or password_file, not both".into(),
                );
            }
            check_readable(
                &mut bad,
                "oianalytics.proxy.password_file",
                &proxy.password_file,
            );
        }
        if let Some(gw) = &oia.api_gateway {
            if !gw.base_endpoint.is_empty() && !gw.base_endpoint.starts_with('/') {
                bad(
                    "oianalytics.api_gateway.base_endpoint",
                    format!("must start with '/', got {:?}", gw.base_endpoint),
                );
            }
            if gw.header_key.trim().is_empty() {
                bad(
                    "oianalytics.api_gateway.header_key",
                    "must not be empty".into(),
                );
            }
            if gw.header_value.is_some() && gw.header_value_file.is_some() {
                bad(
                    "oianalytics.api_gateway.header_value",
                    "give either header_value or header_value_file, not both".into(),
                );
            }
            check_readable(
                &mut bad,
                "oianalytics.api_gateway.header_value_file",
                &gw.header_value_file,
            );
        }

        let actors = &self.actors;
        let mut policies = vec![(
            "actors.defaults.restart".to_string(),
            &actors.defaults.restart,
        )];
        for (name, own) in [
            ("registration", &actors.registration.restart),
            ("key_vault", &actors.key_vault.restart),
            ("command_poller", &actors.command_poller.restart),
            ("command_executor", &actors.command_executor.restart),
            ("message_sender", &actors.message_sender.restart),
            ("log_shipper", &actors.log_shipper.restart),
            ("metrics_aggregator", &actors.metrics_aggregator.restart),
        ] {
            if let Some(p) = own {
                policies.push((format!("actors.{name}.restart"), p));
            }
        }
        policies.push(("launcher.restart".to_string(), &self.launcher.restart));
        for (path, p) in policies {
            if p.backoff_initial.is_zero() {
                bad(
                    &format!("{path}.backoff_initial"),
                    "must be greater than 0".into(),
                );
            }
            if p.backoff_max < p.backoff_initial {
                bad(
                    &format!("{path}.backoff_max"),
                    "must be at least backoff_initial".into(),
                );
            }
            if p.within.is_zero() {
                bad(&format!("{path}.within"), "must be greater than 0".into());
            }
            for (name, value) in [
                ("within", p.within),
                ("backoff_initial", p.backoff_initial),
                ("backoff_max", p.backoff_max),
                ("reset_after", p.reset_after),
            ] {
                check_at_most_a_year(&mut bad, &format!("{path}.{name}"), value);
            }
        }
        let ls = &actors.log_shipper;
        if ls.batch_max == 0 || ls.batch_max > 10_000 {
            bad(
                "actors.log_shipper.batch_max",
                format!("must be between 1 and 10000, got {}", ls.batch_max),
            );
        }
        if ls.interval < Duration::from_secs(1) || ls.interval > Duration::from_secs(60) {
            bad(
                "actors.log_shipper.interval",
                "must be between 1s and 60s".into(),
            );
        }
        if ls.queue_max_bytes.0 < 64 * 1024 {
            bad(
                "actors.log_shipper.queue_max_bytes",
                "must be at least 64KiB".into(),
            );
        }
        if actors.command_executor.journal_retention < Duration::from_secs(3600) {
            bad(
                "actors.command_executor.journal_retention",
                "must be at least 1h: a finished command is remembered that long so that a \
                 copy of it is not run again"
                    .into(),
            );
        }
        let ma = &actors.metrics_aggregator;
        if ma.flush_interval < Duration::from_secs(1) || ma.flush_interval > Duration::from_secs(60)
        {
            bad(
                "actors.metrics_aggregator.flush_interval",
                "must be between 1s and 60s (a minute slot must be flushed within its minute)"
                    .into(),
            );
        }
        for (name, n) in [
            ("hours", ma.retention.hours),
            ("days", ma.retention.days),
            ("months", ma.retention.months),
        ] {
            if n == 0 {
                bad(
                    &format!("actors.metrics_aggregator.retention.{name}"),
                    "must be at least 1".into(),
                );
            }
        }
        let l = &self.launcher;
        if l.install_dir.as_os_str().is_empty() {
            bad("launcher.install_dir", "must not be empty".into());
        }
        if l.health_grace < Duration::from_secs(1) {
            bad("launcher.health_grace", "must be at least 1s".into());
        }
        if l.shutdown_timeout < Duration::from_secs(1) {
            bad("launcher.shutdown_timeout", "must be at least 1s".into());
        }
        check_at_most_a_year(&mut bad, "launcher.health_grace", l.health_grace);
        check_at_most_a_year(&mut bad, "launcher.shutdown_timeout", l.shutdown_timeout);
        out
    }
}

/// The longest duration the file accepts. Nothing in an agent that retries, restarts and times
/// out needs more, and far longer ones overflow the clock arithmetic built on them (deadlines,
/// retry caps of 10x the interval): `10000000000000000000s` would panic at the first stop.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

fn check_at_most_a_year(bad: &mut impl FnMut(&str, String), path: &str, value: Duration) {
    if value > MAX_DURATION {
        bad(
            path,
            format!(
                "must be at most 365 days, got {}",
                humantime::format_duration(value)
            ),
        );
    }
}

fn check_readable(bad: &mut impl FnMut(&str, String), path: &str, file: &Option<PathBuf>) {
    if let Some(file) = file {
        if let Err(e) = std::fs::File::open(file) {
            bad(path, format!("cannot read {}: {e}", file.display()));
        }
    }
}

/// `http::Uri` through awc's re-export, so the config does not need its own URL crate.
mod http_uri {
    pub use awc::http::Uri;
}

#[cfg(test)]
mod tests;
