//! The E6 full-config and E7 history-queries bodies (protocol §6.2, §6.3), built from the entity
//! store as a full snapshot at send time.
//!
//! Every wire type here is made for output and only for it. Secrets are kept out by the types,
//! not by a step that blanks them:
//! - connector, history-query and item settings are [`Outbound`] trees, whose secret paths are
//!   `Secret` nodes (serialised `""`);
//! - the engine proxy passwords are [`NullSecret`] (serialised `null`, holds nothing) and the
//!   Loki password a `Secret` (serialised `""`);
//! - `registration.publicKey` is a [`PublicKeyPem`], which only an SPKI public key parses into;
//! - no type has a field for a private key, a token, a proxy or gateway credential, or a host.

use std::collections::BTreeMap;
use std::path::Path;

use rsa::pkcs8::DecodePublicKey;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::outbound::{Outbound, SecretPaths};
use crate::config::{Config, PERMISSION_FLAGS};
use crate::entities::{
    Audit, Certificate, ConsoleLogger, DatabaseLogger, EffectiveRegistrationSettings,
    EngineSettings, Entity, EntityError, EntityStore, FileLogger, GeneralSettings, HistoryItem,
    HistoryQuery, IpFilter, NorthConnector, OiaLogger, RegistrationSettingsRecord, ScanMode,
    SouthConnector, SouthGroup, SouthItem, SyslogLogger, WebServerSettings, BY_SYSTEM,
};
use crate::secrets_paths::{self, ConnectorKind};
use crate::Secret;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read the configuration to push: {0}")]
    Entities(#[from] EntityError),
    #[error(
        "the {0} settings are missing from the entity store (they are seeded at engine start); \
         the message is retried"
    )]
    NotSeeded(&'static str),
    #[error("the vault's public key is not an RSA SPKI PEM ({0}); regenerate the keys")]
    PublicKey(String),
}

/// The `oIBus*` audit fields without the id (south and history-query items carry `id`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditFields {
    #[serde(rename = "oIBusCreatedBy")]
    pub created_by: String,
    #[serde(rename = "oIBusUpdatedBy")]
    pub updated_by: String,
    #[serde(rename = "oIBusCreatedAt")]
    pub created_at: String,
    #[serde(rename = "oIBusUpdatedAt")]
    pub updated_at: String,
}

/// The audit fields **A** of spec §6.2: the local id and [`AuditFields`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Audited {
    #[serde(rename = "oIBusInternalId")]
    pub internal_id: String,
    #[serde(flatten)]
    pub audit: AuditFields,
}

impl From<&Audit> for AuditFields {
    fn from(a: &Audit) -> Self {
        AuditFields {
            created_by: a.created_by.clone(),
            updated_by: a.updated_by.clone(),
            created_at: a.created_at.clone(),
            updated_at: a.updated_at.clone(),
        }
    }
}

impl Audited {
    fn new(id: &str, audit: &Audit) -> Audited {
        Audited {
            internal_id: id.to_owned(),
            audit: audit.into(),
        }
    }
}

/// `{A, settings}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry<S> {
    #[serde(flatten)]
    pub audit: Audited,
    pub settings: S,
}

/// `{A, type, settings}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectorEntry<S> {
    #[serde(flatten)]
    pub audit: Audited,
    #[serde(rename = "type")]
    pub connector_type: String,
    pub settings: S,
}

/// A password the engine keeps but never sends: it holds nothing and serialises as `null`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NullSecret;

impl Serialize for NullSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_none()
    }
}

/// A list the agent has nothing for (users): serialises as `[]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoEntries;

impl Serialize for NoEntries {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(std::iter::empty::<()>())
    }
}

/// An RSA public key in SPKI PEM, checked to be one. The only key a snapshot can carry, so a
/// private key cannot reach `registration.publicKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PublicKeyPem(String);

impl PublicKeyPem {
    pub fn parse(pem: &str) -> Result<PublicKeyPem, SnapshotError> {
        rsa::RsaPublicKey::from_public_key_pem(pem.trim())
            .map_err(|e| SnapshotError::PublicKey(e.to_string()))?;
        Ok(PublicKeyPem(pem.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// E6 body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FullConfig {
    pub engine: EngineEntry,
    pub registration: RegistrationEntry,
    pub scan_modes: Vec<Entry<ScanModeOut>>,
    pub ip_filters: Vec<Entry<IpFilterOut>>,
    pub certificates: Vec<Entry<CertificateOut>>,
    pub south_connectors: Vec<ConnectorEntry<SouthOut>>,
    pub north_connectors: Vec<ConnectorEntry<NorthOut>>,
    /// The local administrator, as OIBus seeds it.
    pub users: Vec<Entry<UserOut>>,
    /// The 15 standard transformers and the custom ones.
    pub transformers: Vec<transformers::TransformerEntry>,
}

/// What the engine reports about itself besides its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineInfo {
    pub software_version: String,
    pub launcher_version: String,
    pub architecture: String,
    pub operating_system: String,
    pub data_folder: String,
    pub binary_folder: String,
}

impl EngineInfo {
    /// This process: the reported OIBus version, platform, data folder and executable path.
    pub fn current(config: &Config) -> EngineInfo {
        let data_dir = &config.engine.data_dir;
        let data_folder = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.clone());
        let binary_folder = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        EngineInfo {
            // OIA knows OIBus versions only: both are the reported OIBus version, whatever
            // the agent's and its launcher's own versions are.
            software_version: config.oianalytics.oibus_version.clone(),
            launcher_version: config.oianalytics.oibus_version.clone(),
            architecture: crate::protocol::arch_string().to_owned(),
            operating_system: crate::protocol::os_string(),
            data_folder: display(&data_folder),
            binary_folder,
        }
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineEntry {
    #[serde(flatten)]
    pub audit: Audited,
    pub name: String,
    #[serde(flatten)]
    pub info: EngineInfo,
    pub ignore_ip_filters: bool,
    pub ignore_remote_update: bool,
    pub settings: EngineSettingsOut,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineSettingsOut {
    pub general: GeneralSettings,
    pub web_server: WebServerSettings,
    pub proxy_server: ProxyServerOut,
    pub logger: LoggerOut,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyServerOut {
    pub enabled: bool,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: NullSecret,
    pub forward: ProxyForwardOut,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyForwardOut {
    pub enabled: bool,
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: NullSecret,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggerOut {
    pub console: ConsoleLogger,
    pub file: FileLogger,
    pub database: DatabaseLogger,
    pub loki: LokiOut,
    pub oia: OiaLogger,
    pub syslog: SyslogLogger,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LokiOut {
    pub level: crate::config::LogLevel,
    pub interval: u64,
    pub address: String,
    pub username: String,
    pub password: Secret<String>,
}

impl EngineSettingsOut {
    /// Moves the settings in force into their outbound form.
    fn from_settings(s: EngineSettings) -> EngineSettingsOut {
        let proxy = s.proxy_server;
        let loki = s.logger.loki;
        EngineSettingsOut {
            general: s.general,
            web_server: s.web_server,
            proxy_server: ProxyServerOut {
                enabled: proxy.enabled,
                port: proxy.port,
                username: proxy.username,
                password: NullSecret,
                forward: ProxyForwardOut {
                    enabled: proxy.forward.enabled,
                    url: proxy.forward.url,
                    username: proxy.forward.username,
                    password: NullSecret,
                },
            },
            logger: LoggerOut {
                console: s.logger.console,
                file: s.logger.file,
                database: s.logger.database,
                loki: LokiOut {
                    level: loki.level,
                    interval: loki.interval,
                    address: loki.address,
                    username: loki.username,
                    password: Secret::new(loki.password.unwrap_or_default()),
                },
                oia: s.logger.oia,
                syslog: s.logger.syslog,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationEntry {
    #[serde(flatten)]
    pub audit: Audited,
    /// `""` when there is no key pair yet.
    #[serde(serialize_with = "pem_or_blank")]
    pub public_key: Option<PublicKeyPem>,
    pub settings: RegistrationSettingsOut,
}

fn pem_or_blank<S: Serializer>(pem: &Option<PublicKeyPem>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(pem.as_ref().map_or("", PublicKeyPem::as_str))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationSettingsOut {
    /// Seconds.
    pub command_refresh_interval: u64,
    pub command_retry_interval: u64,
    pub message_retry_interval: u64,
    pub command_permissions: Permissions,
}

/// The 42 permission flags in force, serialised in the protocol's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions(BTreeMap<&'static str, bool>);

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            PERMISSION_FLAGS
                .iter()
                .map(|flag| (*flag, self.0.get(flag).copied().unwrap_or(false))),
        )
    }
}

impl RegistrationSettingsOut {
    fn from_effective(e: EffectiveRegistrationSettings) -> RegistrationSettingsOut {
        let secs = EffectiveRegistrationSettings::secs;
        RegistrationSettingsOut {
            command_refresh_interval: secs(e.command_refresh),
            command_retry_interval: secs(e.command_retry),
            message_retry_interval: secs(e.message_retry),
            command_permissions: Permissions(e.permissions),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanModeOut {
    pub name: String,
    pub description: String,
    pub cron: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IpFilterOut {
    pub description: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateOut {
    pub name: String,
    pub description: String,
    pub public_key: Option<String>,
    pub certificate: Option<String>,
    pub expiry: Option<String>,
}

/// South = `{type, name, description, enabled, settings, items, groups}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SouthOut {
    #[serde(rename = "type")]
    pub connector_type: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub settings: Outbound,
    pub items: Vec<SouthItemOut>,
    pub groups: Vec<SouthGroupOut>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SouthItemOut {
    pub id: String,
    #[serde(flatten)]
    pub audit: AuditFields,
    pub name: String,
    pub enabled: bool,
    pub scan_mode_id: Option<String>,
    /// Always `null` on the wire.
    pub scan_mode_name: (),
    pub group_id: Option<String>,
    /// Always `null` on the wire.
    pub group_name: (),
    pub settings: Outbound,
    pub sync_with_group: Outbound,
    pub max_read_interval: Outbound,
    pub read_delay: Outbound,
    pub start_time_offset: Outbound,
    pub end_time_offset: Outbound,
    pub recovery_strategy: Outbound,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SouthGroupOut {
    pub id: String,
    pub standard_settings: Outbound,
    pub history_settings: Outbound,
}

/// North = `{type, name, description, enabled, settings, caching, transformers}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NorthOut {
    #[serde(rename = "type")]
    pub connector_type: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub settings: Outbound,
    pub caching: Outbound,
    pub transformers: Vec<Outbound>,
}

/// E7 body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQueries {
    pub history_queries: Vec<Entry<HistoryQueryOut>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQueryOut {
    pub name: String,
    pub description: String,
    pub status: String,
    pub south_type: String,
    pub south_settings: Outbound,
    pub query_time_range: Outbound,
    pub north_type: String,
    pub north_settings: Outbound,
    pub caching: Outbound,
    pub items: Vec<HistoryItemOut>,
    pub north_transformers: Vec<Outbound>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryItemOut {
    pub id: String,
    #[serde(flatten)]
    pub audit: AuditFields,
    pub name: String,
    pub enabled: bool,
    pub settings: Outbound,
}

/// Builds E6 from the store, the YAML and the engine's own facts.
pub fn full_config(
    entities: &EntityStore,
    config: &Config,
    info: &EngineInfo,
    public_key: Option<PublicKeyPem>,
) -> Result<FullConfig, SnapshotError> {
    let engine = entities
        .engine_settings()?
        .ok_or(SnapshotError::NotSeeded("engine"))?;
    let registration = entities
        .registration_settings()?
        .ok_or(SnapshotError::NotSeeded("registration"))?;
    let settings = engine.effective(config);
    Ok(FullConfig {
        engine: EngineEntry {
            audit: Audited::new(&engine.id, &engine.audit),
            name: settings.general.name.clone(),
            info: info.clone(),
            ignore_ip_filters: false,
            ignore_remote_update: false,
            settings: EngineSettingsOut::from_settings(settings),
        },
        registration: registration_entry(&registration, config, public_key),
        scan_modes: listed(entities, scan_mode)?,
        ip_filters: listed(entities, ip_filter)?,
        certificates: listed(entities, certificate)?,
        south_connectors: listed(entities, south)?,
        north_connectors: listed(entities, north)?,
        users: vec![admin_user(&engine.id, &engine.audit.created_at)],
        transformers: transformers::entries(entities)?,
    })
}

/// E6 `users` entry: OIBus's default `admin` account (no name, no e-mail, `en`,
/// `Europe/Paris`), standing for whoever operates the gateway locally.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOut {
    pub login: &'static str,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub language: &'static str,
    pub timezone: &'static str,
}

/// The admin user, created with the engine: its id (6 characters, like OIBus's) is derived from
/// the engine id, so it never changes across restarts.
fn admin_user(engine_id: &str, engine_created_at: &str) -> Entry<UserOut> {
    let id = crate::command_executor::configure::derive_id(engine_id, "user/admin");
    Entry {
        audit: Audited::new(&id, &Audit::new(BY_SYSTEM, engine_created_at)),
        settings: UserOut {
            login: "admin",
            first_name: None,
            last_name: None,
            email: None,
            language: "en",
            timezone: "Europe/Paris",
        },
    }
}

/// Builds E7 from the store: every history query (the list may be empty).
pub fn history_queries(entities: &EntityStore) -> Result<HistoryQueries, SnapshotError> {
    Ok(HistoryQueries {
        history_queries: listed(entities, history_query)?,
    })
}

/// Every entity of a kind in creation order (as OIBus lists its rows), converted.
fn listed<E: Entity, O>(
    entities: &EntityStore,
    convert: impl Fn(E) -> O,
) -> Result<Vec<O>, SnapshotError> {
    let mut all = entities.list::<E>()?;
    all.sort_by(|a, b| (&a.audit().created_at, a.id()).cmp(&(&b.audit().created_at, b.id())));
    Ok(all.into_iter().map(convert).collect())
}

fn registration_entry(
    record: &RegistrationSettingsRecord,
    config: &Config,
    public_key: Option<PublicKeyPem>,
) -> RegistrationEntry {
    RegistrationEntry {
        audit: Audited::new(&record.id, &record.audit),
        public_key,
        settings: RegistrationSettingsOut::from_effective(record.effective(&config.oianalytics)),
    }
}

fn scan_mode(m: ScanMode) -> Entry<ScanModeOut> {
    Entry {
        audit: Audited::new(&m.id, &m.audit),
        settings: ScanModeOut {
            name: m.name,
            description: m.description,
            cron: m.cron,
        },
    }
}

fn ip_filter(f: IpFilter) -> Entry<IpFilterOut> {
    Entry {
        audit: Audited::new(&f.id, &f.audit),
        settings: IpFilterOut {
            description: f.description,
            address: f.address,
        },
    }
}

fn certificate(c: Certificate) -> Entry<CertificateOut> {
    Entry {
        audit: Audited::new(&c.id, &c.audit),
        settings: CertificateOut {
            name: c.name,
            description: c.description,
            public_key: c.public_key,
            certificate: c.certificate,
            expiry: c.expiry,
        },
    }
}

/// The secret paths of a connector's settings: those the manifest table knows for its type and
/// those recorded with the entity (an unknown type's, found when it was created).
fn connector_secrets<'a>(
    kind: ConnectorKind,
    connector_type: &str,
    recorded: &'a [String],
) -> SecretPaths<'a> {
    SecretPaths::new(
        secrets_paths::secret_paths(kind, connector_type)
            .iter()
            .copied()
            .chain(recorded.iter().map(String::as_str)),
    )
}

fn item_secrets(kind: ConnectorKind, connector_type: &str) -> SecretPaths<'static> {
    SecretPaths::new(
        secrets_paths::item_secret_paths(kind, connector_type)
            .iter()
            .copied(),
    )
}

fn south(s: SouthConnector) -> ConnectorEntry<SouthOut> {
    let secrets = connector_secrets(ConnectorKind::South, &s.connector_type, &s.secret_paths);
    let item_secrets = item_secrets(ConnectorKind::South, &s.connector_type);
    ConnectorEntry {
        audit: Audited::new(&s.id, &s.audit),
        connector_type: s.connector_type.clone(),
        settings: SouthOut {
            connector_type: s.connector_type.clone(),
            name: s.name,
            description: s.description,
            enabled: s.enabled,
            settings: Outbound::settings(s.settings, &secrets),
            items: s
                .items
                .into_iter()
                .map(|item| south_item(item, &item_secrets))
                .collect(),
            groups: s.groups.into_iter().map(south_group).collect(),
        },
    }
}

fn south_item(item: SouthItem, secrets: &SecretPaths<'_>) -> SouthItemOut {
    let mut other = item.other;
    let mut take = |key: &str| Outbound::plain(other.remove(key).unwrap_or(Value::Null));
    SouthItemOut {
        sync_with_group: take("syncWithGroup"),
        max_read_interval: take("maxReadInterval"),
        read_delay: take("readDelay"),
        start_time_offset: take("startTimeOffset"),
        end_time_offset: take("endTimeOffset"),
        recovery_strategy: take("recoveryStrategy"),
        id: item.id,
        audit: (&item.audit).into(),
        name: item.name,
        enabled: item.enabled,
        scan_mode_id: item.scan_mode_id,
        scan_mode_name: (),
        group_id: item.group_id,
        group_name: (),
        settings: Outbound::settings(item.settings, secrets),
    }
}

fn south_group(group: SouthGroup) -> SouthGroupOut {
    let mut other = group.other;
    let mut take = |key: &str| Outbound::plain(other.remove(key).unwrap_or(Value::Null));
    SouthGroupOut {
        standard_settings: take("standardSettings"),
        history_settings: take("historySettings"),
        id: group.id,
    }
}

/// Caching as stored, with `trigger.scanModeName` `null` as OIBus sends it.
fn caching(mut caching: Value) -> Outbound {
    if let Some(trigger) = caching.get_mut("trigger").and_then(Value::as_object_mut) {
        trigger.insert("scanModeName".to_owned(), Value::Null);
    }
    Outbound::plain(caching)
}

fn north(n: NorthConnector) -> ConnectorEntry<NorthOut> {
    let secrets = connector_secrets(ConnectorKind::North, &n.connector_type, &n.secret_paths);
    ConnectorEntry {
        audit: Audited::new(&n.id, &n.audit),
        connector_type: n.connector_type.clone(),
        settings: NorthOut {
            connector_type: n.connector_type.clone(),
            name: n.name,
            description: n.description,
            enabled: n.enabled,
            settings: Outbound::settings(n.settings, &secrets),
            caching: caching(n.caching),
            transformers: n.transformers.into_iter().map(Outbound::plain).collect(),
        },
    }
}

fn history_query(h: HistoryQuery) -> Entry<HistoryQueryOut> {
    let south_secrets =
        connector_secrets(ConnectorKind::South, &h.south_type, &h.south_secret_paths);
    let north_secrets =
        connector_secrets(ConnectorKind::North, &h.north_type, &h.north_secret_paths);
    // History items use the south item manifest of the query's south type.
    let item_secrets = item_secrets(ConnectorKind::South, &h.south_type);
    Entry {
        audit: Audited::new(&h.id, &h.audit),
        settings: HistoryQueryOut {
            name: h.name,
            description: h.description,
            status: h.status,
            south_type: h.south_type.clone(),
            south_settings: Outbound::settings(h.south_settings, &south_secrets),
            query_time_range: Outbound::plain(h.query_time_range),
            north_type: h.north_type.clone(),
            north_settings: Outbound::settings(h.north_settings, &north_secrets),
            caching: caching(h.caching),
            items: h
                .items
                .into_iter()
                .map(|item| history_item(item, &item_secrets))
                .collect(),
            north_transformers: h
                .north_transformers
                .into_iter()
                .map(Outbound::plain)
                .collect(),
        },
    }
}

fn history_item(item: HistoryItem, secrets: &SecretPaths<'_>) -> HistoryItemOut {
    HistoryItemOut {
        audit: (&item.audit).into(),
        id: item.id,
        name: item.name,
        enabled: item.enabled,
        settings: Outbound::settings(item.settings, secrets),
    }
}

pub mod transformers;

#[cfg(test)]
mod tests;
