//! The entities remote commands act on (protocol §4.6, reference §6): scan modes, IP filters,
//! certificates, south and north connectors with their items, history queries, plus the engine
//! settings and the registration settings. JSON records in `Cf::Entities`.
//!
//! Not an actor: a typed view over the store that every actor may read (the MessageSender builds
//! its E6/E7 snapshots from [`EntityStore::list`], [`EntityStore::engine_settings`] and
//! [`EntityStore::registration_settings`]). The CommandExecutor is the only writer: it stages
//! entity writes into the same atomic batch as the journal entry of the command that made them
//! ([`EntityStore::stage_put`]), so after a crash an entity exists if and only if its command's
//! outcome was journaled.
//!
//! Secrets inside stored settings are sealed with the vault's local cipher (AES-256-GCM). Each
//! connector records the paths of its secrets (`secret_paths`), so outbound views can blank them.
//!
//! Keys: `e/<kind>/<id>` the entity; `n/<kind>/<name>` the id owning a unique name;
//! `s/engine` and `s/registration` the two settings records.

pub mod cron;
pub mod manifests;
mod settings;
pub mod transformers;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use settings::{settings_in_force, SettingInForce};
pub use settings::{
    ConsoleLogger, DatabaseLogger, EffectiveRegistrationSettings, EngineOverrides, EngineSettings,
    EngineSettingsRecord, FileLogger, GeneralSettings, LiveEngineSettings, LoggerSettings,
    LokiLogger, OiaLogger, ProxyForwardSettings, ProxyServerSettings, RegistrationSettingsRecord,
    RemoteRegistrationSettings, SyslogLogger, SyslogProtocol, WebServerSettings,
};

use crate::config::Config;
use crate::store::{Batch, Cf, Store, StoreError};

/// Audit author of what the engine creates by itself (seeds).
pub const BY_SYSTEM: &str = "system";
/// Audit author of what remote commands change.
pub const BY_OIANALYTICS: &str = "oianalytics";

/// The id of the built-in scan mode that connectors with subscriptions use; it has no cron.
pub const SUBSCRIPTION_SCAN_MODE_ID: &str = "subscription";

#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    #[error("entity store: {0}")]
    Store(#[from] StoreError),
}

pub type Result<T, E = EntityError> = std::result::Result<T, E>;

/// The kinds of stored entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntityKind {
    ScanMode,
    IpFilter,
    Certificate,
    South,
    North,
    HistoryQuery,
    Transformer,
}

impl EntityKind {
    pub const ALL: [EntityKind; 7] = [
        EntityKind::ScanMode,
        EntityKind::IpFilter,
        EntityKind::Certificate,
        EntityKind::South,
        EntityKind::North,
        EntityKind::HistoryQuery,
        EntityKind::Transformer,
    ];

    /// Key segment, and the ontology name given to `events::ontology`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::ScanMode => "scan-mode",
            EntityKind::IpFilter => "ip-filter",
            EntityKind::Certificate => "certificate",
            EntityKind::South => "south",
            EntityKind::North => "north",
            EntityKind::HistoryQuery => "history-query",
            EntityKind::Transformer => "transformer",
        }
    }

    /// Name used in sentences ("Scan mode", "South connector").
    pub fn label(self) -> &'static str {
        match self {
            EntityKind::ScanMode => "Scan mode",
            EntityKind::IpFilter => "IP Filter",
            EntityKind::Certificate => "Certificate",
            EntityKind::South => "South connector",
            EntityKind::North => "North connector",
            EntityKind::HistoryQuery => "History query",
            EntityKind::Transformer => "Transformer",
        }
    }

    /// How OIBus's services name this kind when an id is unknown: `South "<id>" not found`.
    pub fn not_found(self, id: &str) -> String {
        let label = match self {
            EntityKind::ScanMode => "Scan mode",
            EntityKind::IpFilter => "IP filter",
            EntityKind::Certificate => "Certificate",
            EntityKind::South => "South",
            EntityKind::North => "North",
            EntityKind::HistoryQuery => "History query",
            EntityKind::Transformer => "Transformer",
        };
        format!("{label} \"{id}\" not found")
    }
}

/// Who created and last changed an entity, and when (ISO-8601 UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    pub created_by: String,
    pub updated_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Audit {
    pub fn new(by: &str, at: &str) -> Audit {
        Audit {
            created_by: by.to_owned(),
            updated_by: by.to_owned(),
            created_at: at.to_owned(),
            updated_at: at.to_owned(),
        }
    }

    /// The same creation, updated by `by` at `at`.
    pub fn touched(&self, by: &str, at: &str) -> Audit {
        Audit {
            updated_by: by.to_owned(),
            updated_at: at.to_owned(),
            ..self.clone()
        }
    }
}

/// A stored entity of one kind.
pub trait Entity: Serialize + DeserializeOwned + Clone {
    const KIND: EntityKind;
    fn id(&self) -> &str;
    /// The name that must be unique within the kind, if the kind has one.
    fn unique_name(&self) -> Option<&str>;
    fn audit(&self) -> &Audit;
}

macro_rules! entity {
    ($ty:ty, $kind:expr, |$e:ident| $name:expr) => {
        impl Entity for $ty {
            const KIND: EntityKind = $kind;
            fn id(&self) -> &str {
                &self.id
            }
            fn unique_name(&self) -> Option<&str> {
                let $e = self;
                $name
            }
            fn audit(&self) -> &Audit {
                &self.audit
            }
        }
    };
}

/// `{id, name, description, cron}`; the cron has 6 fields with seconds ([`cron::validate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanMode {
    pub id: String,
    pub name: String,
    pub description: String,
    pub cron: String,
    pub audit: Audit,
}
entity!(ScanMode, EntityKind::ScanMode, |e| Some(&e.name));

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpFilter {
    pub id: String,
    pub address: String,
    pub description: String,
    pub audit: Audit,
}
entity!(IpFilter, EntityKind::IpFilter, |_e| None);

/// A self-signed certificate made by create-certificate (`command_executor::configure::certificate`).
/// `public_key` (SPKI PEM), `certificate` (PEM) and `expiry` (ISO) are what E6 reports; they
/// are `None` only in records from versions that did not generate certificates.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    pub id: String,
    pub name: String,
    pub description: String,
    pub public_key: Option<String>,
    pub certificate: Option<String>,
    pub expiry: Option<String>,
    /// The private key (PKCS#1 PEM) sealed with the local cipher; never sent nor shown.
    #[serde(default)]
    pub private_key: Option<String>,
    pub audit: Audit,
}

/// By hand so that not even the sealed private key reaches a log line.
impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("description", &self.description)
            .field("public_key", &self.public_key)
            .field("certificate", &self.certificate)
            .field("expiry", &self.expiry)
            .field("private_key", &self.private_key.as_ref().map(|_| "***"))
            .field("audit", &self.audit)
            .finish()
    }
}
entity!(Certificate, EntityKind::Certificate, |e| Some(&e.name));

/// A south connector (protocol §4.6 "South"). `settings` holds the type-specific settings with
/// every secret sealed; `secret_paths` lists where (spec connector-secrets §1.1 notation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SouthConnector {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub connector_type: String,
    pub description: String,
    pub enabled: bool,
    pub settings: Value,
    pub items: Vec<SouthItem>,
    pub groups: Vec<SouthGroup>,
    pub secret_paths: Vec<String>,
    pub audit: Audit,
}
entity!(SouthConnector, EntityKind::South, |e| Some(&e.name));

/// One item of a south connector. Scan mode and group are resolved to ids; the other fields of
/// the command (`syncWithGroup`, `maxReadInterval`, `readDelay`, `startTimeOffset`,
/// `endTimeOffset`, `recoveryStrategy`, …) are kept as received in `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SouthItem {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub settings: Value,
    pub scan_mode_id: Option<String>,
    pub group_id: Option<String>,
    pub other: Map<String, Value>,
    pub audit: Audit,
}

/// A group of south items: `standardSettings{name, scanModeId}`, `historySettings{…}` kept in
/// `other` as received (scan mode resolved to an id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SouthGroup {
    pub id: String,
    pub other: Map<String, Value>,
}

/// A north connector (protocol §4.6 "North"); `caching.trigger.scanModeId` is resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NorthConnector {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub connector_type: String,
    pub description: String,
    pub enabled: bool,
    pub settings: Value,
    pub caching: Value,
    pub transformers: Vec<Value>,
    pub secret_paths: Vec<String>,
    pub audit: Audit,
}
entity!(NorthConnector, EntityKind::North, |e| Some(&e.name));

/// A history query (protocol §4.6 "History"): a south side and a north side, each with its
/// type, settings (secrets sealed) and secret paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    pub id: String,
    pub name: String,
    pub description: String,
    /// `PENDING` at creation, then `RUNNING` or `PAUSED` (update-history-query-status).
    pub status: String,
    pub query_time_range: Value,
    pub caching: Value,
    pub north_transformers: Vec<Value>,
    pub south_type: String,
    pub south_settings: Value,
    pub south_secret_paths: Vec<String>,
    pub items: Vec<HistoryItem>,
    pub north_type: String,
    pub north_settings: Value,
    pub north_secret_paths: Vec<String>,
    pub audit: Audit,
}
entity!(HistoryQuery, EntityKind::HistoryQuery, |e| Some(&e.name));

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub settings: Value,
    pub audit: Audit,
}

const ENGINE_KEY: &[u8] = b"s/engine";
const REGISTRATION_KEY: &[u8] = b"s/registration";

fn entity_prefix(kind: EntityKind) -> Vec<u8> {
    format!("e/{}/", kind.as_str()).into_bytes()
}

fn entity_key(kind: EntityKind, id: &str) -> Vec<u8> {
    let mut key = entity_prefix(kind);
    key.extend_from_slice(id.as_bytes());
    key
}

fn name_key(kind: EntityKind, name: &str) -> Vec<u8> {
    format!("n/{}/{name}", kind.as_str()).into_bytes()
}

/// The typed view over `Cf::Entities`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EntityStore {
    store: Store,
}

impl EntityStore {
    pub fn new(store: Store) -> EntityStore {
        EntityStore { store }
    }

    /// Create what must exist on a fresh store: the OIBus default scan modes (when there is no
    /// scan mode at all), the standard transformers missing from the store, the engine settings
    /// and the registration settings. Idempotent.
    pub fn seed(&self, config: &Config, engine_id: &str) -> Result<()> {
        let now = crate::protocol::iso_now();
        let audit = Audit::new(BY_SYSTEM, &now);
        let mut batch = self.store.batch();
        if self
            .store
            .scan_raw(Cf::Entities, &entity_prefix(EntityKind::ScanMode), 1)?
            .is_empty()
        {
            for (id, name, description, cron) in default_scan_modes() {
                let mode = ScanMode {
                    id,
                    name: name.to_owned(),
                    description: description.to_owned(),
                    cron: cron.to_owned(),
                    audit: audit.clone(),
                };
                self.stage_put(&mut batch, None, &mode)?;
            }
        }
        transformers::stage_standard_seed(self, &mut batch, &audit)?;
        if self.store.get_raw(Cf::Entities, ENGINE_KEY)?.is_none() {
            let record = EngineSettingsRecord::seeded(engine_id, config, audit.clone());
            batch.put(Cf::Entities, ENGINE_KEY, &record)?;
        }
        if self
            .store
            .get_raw(Cf::Entities, REGISTRATION_KEY)?
            .is_none()
        {
            let record = RegistrationSettingsRecord::seeded(audit);
            batch.put(Cf::Entities, REGISTRATION_KEY, &record)?;
        }
        if !batch.is_empty() {
            self.store.write(batch, crate::store::Durability::Sync)?;
        }
        Ok(())
    }

    pub fn get<E: Entity>(&self, id: &str) -> Result<Option<E>> {
        Ok(self.store.get(Cf::Entities, &entity_key(E::KIND, id))?)
    }

    /// Every entity of a kind, in id order.
    pub fn list<E: Entity>(&self) -> Result<Vec<E>> {
        Ok(self
            .store
            .scan::<E>(Cf::Entities, &entity_prefix(E::KIND))?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    /// How many entities of a kind are stored.
    pub fn count(&self, kind: EntityKind) -> Result<usize> {
        Ok(self
            .store
            .scan_raw(Cf::Entities, &entity_prefix(kind), usize::MAX)?
            .len())
    }

    /// The id of the entity of kind `E` named `name`, for kinds with unique names.
    pub fn id_by_name<E: Entity>(&self, name: &str) -> Result<Option<String>> {
        Ok(self.store.get(Cf::Entities, &name_key(E::KIND, name))?)
    }

    /// The stored engine settings. Read [`EngineSettingsRecord::effective`] for what applies.
    pub fn engine_settings(&self) -> Result<Option<EngineSettingsRecord>> {
        Ok(self.store.get(Cf::Entities, ENGINE_KEY)?)
    }

    /// The stored registration settings. Read [`RegistrationSettingsRecord::effective`] for what
    /// applies.
    pub fn registration_settings(&self) -> Result<Option<RegistrationSettingsRecord>> {
        Ok(self.store.get(Cf::Entities, REGISTRATION_KEY)?)
    }

    /// The registration settings in force: the stored ones over `oia`, or the YAML alone when
    /// the store cannot be read (logged).
    pub fn effective_registration_settings(
        &self,
        oia: &crate::config::OiaConfig,
    ) -> EffectiveRegistrationSettings {
        let stored = self.registration_settings().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the registration settings; using the YAML intervals");
            None
        });
        RegistrationSettingsRecord::effective_of(stored.as_ref(), oia)
    }

    /// Stage the creation or replacement of `entity`, keeping the name index in step.
    /// `previous` is the stored version (same id), if any.
    pub fn stage_put<E: Entity>(
        &self,
        batch: &mut Batch,
        previous: Option<&E>,
        entity: &E,
    ) -> Result<()> {
        if let Some(old) = previous.and_then(Entity::unique_name) {
            if Some(old) != entity.unique_name() {
                batch.delete(Cf::Entities, &name_key(E::KIND, old));
            }
        }
        if let Some(name) = entity.unique_name() {
            batch.put(Cf::Entities, &name_key(E::KIND, name), entity.id())?;
        }
        batch.put(Cf::Entities, &entity_key(E::KIND, entity.id()), entity)?;
        Ok(())
    }

    /// Stage the deletion of `entity` and its name.
    pub fn stage_delete<E: Entity>(&self, batch: &mut Batch, entity: &E) {
        if let Some(name) = entity.unique_name() {
            batch.delete(Cf::Entities, &name_key(E::KIND, name));
        }
        batch.delete(Cf::Entities, &entity_key(E::KIND, entity.id()));
    }

    pub fn stage_engine_settings(
        &self,
        batch: &mut Batch,
        record: &EngineSettingsRecord,
    ) -> Result<()> {
        Ok(batch.put(Cf::Entities, ENGINE_KEY, record)?)
    }

    pub fn stage_registration_settings(
        &self,
        batch: &mut Batch,
        record: &RegistrationSettingsRecord,
    ) -> Result<()> {
        Ok(batch.put(Cf::Entities, REGISTRATION_KEY, record)?)
    }

    /// Write the registration settings alone, synced (a local edit of the permissions).
    pub fn write_registration_settings(&self, record: &RegistrationSettingsRecord) -> Result<()> {
        let mut batch = self.store.batch();
        self.stage_registration_settings(&mut batch, record)?;
        Ok(self.store.write(batch, crate::store::Durability::Sync)?)
    }
}

impl EntityStore {
    /// A summary of every stored entity and the settings in force, for the local API
    /// (`GET /api/entities`): names, ids and audit, never settings subtrees or secrets.
    pub fn summary(&self, config: &Config) -> Result<Value> {
        fn row<E: Entity>(e: &E, extra: Value) -> Value {
            let mut row = serde_json::json!({
                "id": e.id(),
                "name": e.unique_name(),
                "createdBy": e.audit().created_by,
                "updatedBy": e.audit().updated_by,
                "createdAt": e.audit().created_at,
                "updatedAt": e.audit().updated_at,
            });
            if let (Some(row), Value::Object(extra)) = (row.as_object_mut(), extra) {
                row.extend(extra);
            }
            row
        }
        let list = |rows: Vec<Value>| Value::Array(rows);
        let engine = self.engine_settings()?.map(|record| {
            let mut settings = record.effective(config);
            // Sealed values are not for display.
            settings.proxy_server.password = None;
            settings.proxy_server.forward.password = None;
            settings.logger.loki.password = None;
            settings
        });
        let registration = RegistrationSettingsRecord::effective_of(
            self.registration_settings()?.as_ref(),
            &config.oianalytics,
        );
        Ok(serde_json::json!({
            "scanModes": list(self.list::<ScanMode>()?.iter()
                .map(|m| row(m, serde_json::json!({"cron": m.cron}))).collect()),
            "ipFilters": list(self.list::<IpFilter>()?.iter()
                .map(|f| row(f, serde_json::json!({"address": f.address}))).collect()),
            "certificates": list(self.list::<Certificate>()?.iter()
                .map(|c| row(c, Value::Null)).collect()),
            "southConnectors": list(self.list::<SouthConnector>()?.iter()
                .map(|s| row(s, serde_json::json!({"type": s.connector_type, "items": s.items.len()})))
                .collect()),
            "northConnectors": list(self.list::<NorthConnector>()?.iter()
                .map(|n| row(n, serde_json::json!({"type": n.connector_type}))).collect()),
            "historyQueries": list(self.list::<HistoryQuery>()?.iter()
                .map(|h| row(h, serde_json::json!({"status": h.status, "items": h.items.len()})))
                .collect()),
            "engine": engine,
            "registration": {
                "commandRefreshInterval": EffectiveRegistrationSettings::secs(registration.command_refresh),
                "commandRetryInterval": EffectiveRegistrationSettings::secs(registration.command_retry),
                "messageRetryInterval": EffectiveRegistrationSettings::secs(registration.message_retry),
                "commandPermissions": registration.permissions,
            },
        }))
    }
}

/// The scan modes OIBus creates on an empty table (reference §6), with fresh ids, then
/// `subscription` (fixed id, empty cron).
fn default_scan_modes() -> Vec<(String, &'static str, &'static str, &'static str)> {
    let periodic = [
        ("Every second", "Trigger every second", "* * * * * *"),
        (
            "Every 10 seconds",
            "Trigger every 10 seconds",
            "*/10 * * * * *",
        ),
        ("Every minute", "Trigger every minute", "0 * * * * *"),
        (
            "Every 10 minutes",
            "Trigger every 10 minutes",
            "0 */10 * * * *",
        ),
        ("Every hour", "Trigger every hour", "0 0 * * * *"),
        ("Every 24 hours", "Trigger every 24 hours", "0 0 0 * * *"),
    ];
    let mut modes: Vec<_> = periodic
        .into_iter()
        .map(|(name, description, cron)| (crate::random_id(6), name, description, cron))
        .collect();
    modes.push((
        SUBSCRIPTION_SCAN_MODE_ID.to_owned(),
        "Subscription",
        "Used for subscription",
        "",
    ));
    modes
}

#[cfg(test)]
mod tests;
