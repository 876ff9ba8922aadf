//! The engine settings (reference §2 table, changed by `update-engine-*`) and the registration
//! settings (intervals and the 42 permissions, changed by `update-registration-settings`).
//!
//! Both sit on top of the YAML: what OIAnalytics never changed follows the file (engine name,
//! console and OIA log levels, local API port, intervals), and the YAML permissions are a ceiling
//! that OIAnalytics can only lower. The `effective` functions compute what applies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Audit;
use crate::config::{Config, LogLevel, OiaConfig, PERMISSION_FLAGS};

/// The engine settings as OIBus models them. Passwords are sealed with the local cipher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineSettings {
    pub general: GeneralSettings,
    pub web_server: WebServerSettings,
    pub proxy_server: ProxyServerSettings,
    pub logger: LoggerSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneralSettings {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebServerSettings {
    pub port: u16,
    /// One of `1h, 6h, 1d, 3d, 7d, 14d, 30d`.
    pub auth_token_duration: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyServerSettings {
    pub enabled: bool,
    pub port: Option<u16>,
    pub username: Option<String>,
    /// Sealed with the local cipher; never sent (E6 shows `null`).
    pub password: Option<String>,
    pub forward: ProxyForwardSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyForwardSettings {
    pub enabled: bool,
    pub url: Option<String>,
    pub username: Option<String>,
    /// Sealed with the local cipher; never sent (E6 shows `null`).
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggerSettings {
    pub console: ConsoleLogger,
    pub file: FileLogger,
    pub database: DatabaseLogger,
    pub loki: LokiLogger,
    pub oia: OiaLogger,
    pub syslog: SyslogLogger,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleLogger {
    pub level: LogLevel,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileLogger {
    pub level: LogLevel,
    /// MB, at least 1.
    pub max_file_size: u64,
    pub number_of_files: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseLogger {
    pub level: LogLevel,
    pub max_number_of_logs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LokiLogger {
    pub level: LogLevel,
    /// Seconds, at least 10.
    pub interval: u64,
    pub address: String,
    pub username: String,
    /// Sealed with the local cipher; E6 shows `""`.
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OiaLogger {
    pub level: LogLevel,
    /// Seconds, at least 10.
    pub interval: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyslogProtocol {
    #[serde(rename = "udp4")]
    Udp4,
    #[serde(rename = "tcp")]
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyslogLogger {
    pub level: LogLevel,
    pub host: String,
    pub port: u16,
    pub protocol: SyslogProtocol,
}

impl Default for EngineSettings {
    /// The reference defaults (reference §2).
    fn default() -> Self {
        EngineSettings {
            general: GeneralSettings {
                name: "OIBus".into(),
            },
            web_server: WebServerSettings {
                port: 2223,
                auth_token_duration: "7d".into(),
            },
            proxy_server: ProxyServerSettings {
                enabled: false,
                port: Some(9000),
                username: None,
                password: None,
                forward: ProxyForwardSettings {
                    enabled: false,
                    url: None,
                    username: None,
                    password: None,
                },
            },
            logger: LoggerSettings {
                console: ConsoleLogger {
                    level: LogLevel::Silent,
                },
                file: FileLogger {
                    level: LogLevel::Info,
                    max_file_size: 50,
                    number_of_files: 5,
                },
                database: DatabaseLogger {
                    level: LogLevel::Info,
                    max_number_of_logs: 100_000,
                },
                loki: LokiLogger {
                    level: LogLevel::Silent,
                    interval: 60,
                    address: String::new(),
                    username: String::new(),
                    password: None,
                },
                oia: OiaLogger {
                    level: LogLevel::Silent,
                    interval: 10,
                },
                syslog: SyslogLogger {
                    level: LogLevel::Silent,
                    host: String::new(),
                    port: 514,
                    protocol: SyslogProtocol::Udp4,
                },
            },
        }
    }
}

/// Which groups of engine settings OIAnalytics has set; the others follow the YAML.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EngineOverrides {
    pub general: bool,
    pub web_server: bool,
    pub logger: bool,
}

/// The stored engine settings, with their audit. `id` is the engine id (E6 `oIBusInternalId`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineSettingsRecord {
    pub id: String,
    pub settings: EngineSettings,
    pub remote: EngineOverrides,
    pub audit: Audit,
}

impl EngineSettingsRecord {
    pub(super) fn seeded(engine_id: &str, config: &Config, audit: Audit) -> Self {
        let mut record = EngineSettingsRecord {
            id: engine_id.to_owned(),
            settings: EngineSettings::default(),
            remote: EngineOverrides::default(),
            audit,
        };
        record.settings = record.effective(config);
        record
    }

    /// What applies now: the stored settings, with the groups OIAnalytics never set taken from
    /// the YAML (engine name, local API port, console and OIA log levels).
    pub fn effective(&self, config: &Config) -> EngineSettings {
        let mut s = self.settings.clone();
        if !self.remote.general {
            s.general.name = config.engine.name.clone();
        }
        if !self.remote.web_server {
            s.web_server.port = config.engine.api.listen.port();
        }
        if !self.remote.logger {
            s.logger.console.level = config.engine.log.console;
            s.logger.oia.level = config.engine.log.oia;
        }
        s
    }
}

/// What `update-registration-settings` sent last (intervals in seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRegistrationSettings {
    pub command_refresh_interval: u64,
    pub command_retry_interval: u64,
    pub message_retry_interval: u64,
    pub command_permissions: BTreeMap<String, bool>,
}

/// The stored registration settings: `remote` is `None` until OIAnalytics sends some.
///
/// A permission OIAnalytics switched off stays off, whatever later commands say (as OIBus);
/// only a local edit grants it again: see [`RegistrationSettingsRecord::apply_local_edit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationSettingsRecord {
    pub id: String,
    pub remote: Option<RemoteRegistrationSettings>,
    /// `oianalytics.permissions` of the YAML as last seen, to tell a local edit from a restart.
    #[serde(default)]
    pub local_permissions: Option<BTreeMap<String, bool>>,
    pub audit: Audit,
}

/// The intervals and permissions in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRegistrationSettings {
    pub command_refresh: Duration,
    pub command_retry: Duration,
    pub message_retry: Duration,
    /// All 42 flags.
    pub permissions: BTreeMap<&'static str, bool>,
}

impl EffectiveRegistrationSettings {
    /// Whether commands guarded by `flag` may run. Unknown flags are refused.
    pub fn permitted(&self, flag: &str) -> bool {
        self.permissions.get(flag).copied().unwrap_or(false)
    }

    /// Whole seconds, as OIAnalytics expects them (at least 1, rounded up).
    pub fn secs(d: Duration) -> u64 {
        d.as_millis().div_ceil(1000).max(1) as u64
    }
}

impl RegistrationSettingsRecord {
    pub(super) fn seeded(audit: Audit) -> Self {
        RegistrationSettingsRecord {
            id: crate::random_id(16),
            remote: None,
            local_permissions: None,
            audit,
        }
    }

    /// Take remote settings: intervals replace the previous ones, and a permission is granted
    /// only if it was still granted and the command grants it (OIBus: a flag that is off stays
    /// off).
    pub fn apply_remote(&mut self, mut settings: RemoteRegistrationSettings) {
        if let Some(previous) = &self.remote {
            for (flag, granted) in settings.command_permissions.iter_mut() {
                *granted &= previous
                    .command_permissions
                    .get(flag)
                    .copied()
                    .unwrap_or(true);
            }
        }
        self.remote = Some(settings);
    }

    /// A local edit of `oianalytics.permissions`: a flag the YAML now sets to `true`, where the
    /// last YAML seen did not, is granted again remotely too. The first YAML seen only sets the
    /// reference, so a restart grants nothing. Returns the flags granted again, and whether the
    /// record changed.
    pub fn apply_local_edit(&mut self, yaml: &BTreeMap<String, bool>) -> (Vec<String>, bool) {
        let mut granted = Vec::new();
        if let (Some(seen), Some(remote)) = (&self.local_permissions, &mut self.remote) {
            for (flag, &now) in yaml {
                let was_true = seen.get(flag).copied() == Some(true);
                let revoked = remote.command_permissions.get(flag) == Some(&false);
                if now && !was_true && revoked {
                    remote.command_permissions.insert(flag.clone(), true);
                    granted.push(flag.clone());
                }
            }
        }
        let changed = !granted.is_empty() || self.local_permissions.as_ref() != Some(yaml);
        self.local_permissions = Some(yaml.clone());
        (granted, changed)
    }

    /// Remote intervals replace the YAML ones; a permission is granted only if both the YAML
    /// ceiling and the remote setting (default `true`) allow it.
    pub fn effective(&self, oia: &OiaConfig) -> EffectiveRegistrationSettings {
        Self::effective_of(Some(self), oia)
    }

    /// [`Self::effective`] of a record that may be missing (then the YAML alone applies).
    pub fn effective_of(record: Option<&Self>, oia: &OiaConfig) -> EffectiveRegistrationSettings {
        let remote = record.and_then(|r| r.remote.as_ref());
        let secs = |remote: Option<u64>, yaml: Duration| match remote {
            Some(s) => Duration::from_secs(s.max(1)),
            None => yaml,
        };
        let permissions = PERMISSION_FLAGS
            .iter()
            .map(|&flag| {
                let remote_ok = remote
                    .and_then(|r| r.command_permissions.get(flag).copied())
                    .unwrap_or(true);
                (flag, oia.permission_ceiling(flag) && remote_ok)
            })
            .collect();
        EffectiveRegistrationSettings {
            command_refresh: secs(
                remote.map(|r| r.command_refresh_interval),
                oia.intervals.command_refresh,
            ),
            command_retry: secs(
                remote.map(|r| r.command_retry_interval),
                oia.intervals.command_retry,
            ),
            message_retry: secs(
                remote.map(|r| r.message_retry_interval),
                oia.intervals.message_retry,
            ),
            permissions,
        }
    }
}

/// The engine settings in force, published for the parts that apply them live (console level,
/// log shipper). Cheap to clone; every clone sees the same value.
#[derive(Clone, Debug)]
pub struct LiveEngineSettings {
    tx: Arc<watch::Sender<Arc<EngineSettings>>>,
}

impl LiveEngineSettings {
    pub fn new(initial: EngineSettings) -> LiveEngineSettings {
        LiveEngineSettings {
            tx: Arc::new(watch::channel(Arc::new(initial)).0),
        }
    }

    /// Replace the settings and wake every receiver, even when the values are the same: what
    /// applies can change without them (OIAnalytics setting `logger.oia.interval` to the value
    /// already shown replaces the YAML interval), so receivers compare for themselves.
    pub fn publish(&self, settings: EngineSettings) {
        self.tx.send_replace(Arc::new(settings));
    }

    pub fn current(&self) -> Arc<EngineSettings> {
        self.tx.borrow().clone()
    }

    /// A receiver woken at each change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<EngineSettings>> {
        self.tx.subscribe()
    }
}

/// One setting in force, and where its value comes from: `oianalytics` (a remote command set
/// it; `key` is its name there) or `yaml` (`key` is its YAML path). `oibus-agent status` lists
/// them, as `config/agent.yaml` promises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingInForce {
    pub name: &'static str,
    pub value: String,
    pub source: &'static str,
    pub key: &'static str,
}

/// The settings OIAnalytics may change, as they apply now over `config`.
pub fn settings_in_force(
    config: &Config,
    engine: Option<&EngineSettingsRecord>,
    registration: Option<&RegistrationSettingsRecord>,
) -> Vec<SettingInForce> {
    let remote = engine.map(|e| e.remote).unwrap_or_default();
    let stored = engine.map(|e| e.effective(config));
    let pick = |name, remote: bool, oia_key, oia_value: Option<String>, yaml_key, yaml: String| {
        match oia_value.filter(|_| remote) {
            Some(value) => SettingInForce {
                name,
                value,
                source: "oianalytics",
                key: oia_key,
            },
            None => SettingInForce {
                name,
                value: yaml,
                source: "yaml",
                key: yaml_key,
            },
        }
    };
    let human = |d: Duration| humantime::format_duration(d).to_string();
    let mut out = vec![
        pick(
            "engine name",
            remote.general,
            "general.name",
            stored.as_ref().map(|s| s.general.name.clone()),
            "engine.name",
            config.engine.name.clone(),
        ),
        pick(
            "local API port",
            remote.web_server,
            "webServer.port",
            stored.as_ref().map(|s| s.web_server.port.to_string()),
            "engine.api.listen",
            config.engine.api.listen.port().to_string(),
        ),
        pick(
            "console log level",
            remote.logger,
            "logger.console.level",
            stored.as_ref().map(|s| s.logger.console.level.to_string()),
            "engine.log.console",
            config.engine.log.console.to_string(),
        ),
        pick(
            "OIAnalytics log level",
            remote.logger,
            "logger.oia.level",
            stored.as_ref().map(|s| s.logger.oia.level.to_string()),
            "engine.log.oia",
            config.engine.log.oia.to_string(),
        ),
        pick(
            "log shipping interval",
            remote.logger,
            "logger.oia.interval",
            stored.as_ref().map(|s| {
                human(crate::log_shipper::effective_interval(Duration::from_secs(
                    s.logger.oia.interval,
                )))
            }),
            "actors.log_shipper.interval",
            human(crate::log_shipper::effective_interval(
                config.actors.log_shipper.interval,
            )),
        ),
    ];
    let effective = RegistrationSettingsRecord::effective_of(registration, &config.oianalytics);
    let from_oia = registration.and_then(|r| r.remote.as_ref()).is_some();
    let intervals = &config.oianalytics.intervals;
    for (name, oia_key, value, yaml_key, yaml) in [
        (
            "command refresh interval",
            "commandRefreshInterval",
            effective.command_refresh,
            "oianalytics.intervals.command_refresh",
            intervals.command_refresh,
        ),
        (
            "command retry interval",
            "commandRetryInterval",
            effective.command_retry,
            "oianalytics.intervals.command_retry",
            intervals.command_retry,
        ),
        (
            "message retry interval",
            "messageRetryInterval",
            effective.message_retry,
            "oianalytics.intervals.message_retry",
            intervals.message_retry,
        ),
    ] {
        out.push(pick(
            name,
            from_oia,
            oia_key,
            Some(human(value)),
            yaml_key,
            human(yaml),
        ));
    }
    // Permissions: the YAML is a ceiling, OIAnalytics may only switch flags off.
    let denied_by_yaml: Vec<&str> = PERMISSION_FLAGS
        .iter()
        .copied()
        .filter(|f| !config.oianalytics.permission_ceiling(f))
        .collect();
    let denied_by_oia: Vec<&str> = PERMISSION_FLAGS
        .iter()
        .copied()
        .filter(|f| config.oianalytics.permission_ceiling(f) && !effective.permitted(f))
        .collect();
    let total = PERMISSION_FLAGS.len();
    out.push(SettingInForce {
        name: "command permissions (ceiling)",
        value: if denied_by_yaml.is_empty() {
            format!("all {total} allowed")
        } else {
            format!("denied: {}", denied_by_yaml.join(", "))
        },
        source: "yaml",
        key: "oianalytics.permissions",
    });
    if registration.and_then(|r| r.remote.as_ref()).is_some() {
        out.push(SettingInForce {
            name: "command permissions",
            value: if denied_by_oia.is_empty() {
                "none denied below the ceiling".to_owned()
            } else {
                format!("denied: {}", denied_by_oia.join(", "))
            },
            source: "oianalytics",
            key: "commandPermissions",
        });
    }
    out
}
