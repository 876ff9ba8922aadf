//! What each configuration command does to the entities: check the command, read the current
//! entities, and stage the writes into a batch that the executor commits together with the
//! command's outcome. Secrets arrive decrypted (the actor decrypts what [`secret_plan`] lists)
//! and are sealed here with the local cipher; an empty secret keeps the previous value.
//!
//! Everything a command creates gets an id derived from the command id ([`derive_id`]), so a
//! command re-run after a crash overwrites what it made instead of duplicating it.

use std::collections::{BTreeMap, HashSet};

use serde::de::{self, Unexpected};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::commands::catalogue::CONTENT;
use crate::commands::CommandType;
use crate::config::{Config, LogLevel, PERMISSION_FLAGS};
use crate::entities::{
    cron, Audit, Certificate, Entity, EntityError, EntityKind, EntityStore, HistoryItem,
    HistoryQuery, IpFilter, NorthConnector, RemoteRegistrationSettings, ScanMode, SouthConnector,
    SouthGroup, SouthItem, SyslogProtocol, BY_OIANALYTICS, SUBSCRIPTION_SCAN_MODE_ID,
};
use crate::secrets_paths::{self, ConnectorKind};
use crate::store::{Batch, StoreError};

pub mod certificate;

/// Why a command could not be applied. `Invalid` is the command's fault and becomes its ERRORED
/// result; the others are local failures.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Entities(#[from] EntityError),
    #[error("entity store: {0}")]
    Store(#[from] StoreError),
}

fn invalid<T>(message: impl Into<String>) -> Result<T, ApplyError> {
    Err(ApplyError::Invalid(message.into()))
}

/// What a command needs from around it.
pub struct Env<'a> {
    pub entities: &'a EntityStore,
    pub config: &'a Config,
    pub command_id: &'a str,
    pub now: &'a str,
    /// Seals a plaintext secret with the local cipher; `None` when the key vault is not
    /// running (then a command with a secret to store fails, the others go through).
    pub sealer: Option<&'a dyn Fn(&str) -> String>,
}

impl Env<'_> {
    fn seal(&self, plain: &str) -> Result<String, ApplyError> {
        match self.sealer {
            Some(seal) => Ok(seal(plain)),
            None => invalid("The key vault is not running: secrets cannot be sealed"),
        }
    }
}

/// The kind of change made to an entity, as `events::ontology` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "INSERT",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Op::Insert => "created",
            Op::Update => "updated",
            Op::Delete => "deleted",
        }
    }
}

/// What follows a successful command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effects {
    /// Queue a full-config message (E6).
    pub full_config: bool,
    /// Queue a history-queries message (E7).
    pub history_queries: bool,
    /// Registration settings changed: intervals and permissions apply now.
    pub registration: bool,
    /// Engine settings changed (the logger levels among them): publish them.
    pub engine: bool,
}

/// The outcome of a command that was applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The COMPLETED result, a fixed English sentence.
    pub result: String,
    pub ontology: Option<(EntityKind, Op)>,
    pub effects: Effects,
}

impl Applied {
    fn entity(kind: EntityKind, op: Op) -> Applied {
        let effects = match kind {
            EntityKind::HistoryQuery => Effects {
                history_queries: true,
                ..Effects::default()
            },
            _ => Effects {
                full_config: true,
                ..Effects::default()
            },
        };
        Applied {
            result: format!("{} {} successfully", kind.label(), op.verb()),
            ontology: Some((kind, op)),
            effects,
        }
    }
}

/// Where the secrets of a command's content sit: each part is a subtree (JSON pointer into
/// `commandContent`) and the secret paths inside it (connector-secrets §1.1 notation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretPlan {
    pub parts: Vec<SecretPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPart {
    pub pointer: String,
    pub paths: Vec<String>,
}

impl SecretPlan {
    fn paths(&self, pointer: &str) -> Vec<String> {
        self.parts
            .iter()
            .find(|p| p.pointer == pointer)
            .map(|p| p.paths.clone())
            .unwrap_or_default()
    }
}

/// The secrets to decrypt in `content` before [`run`]. For a connector type the manifests do
/// not know, strings that look like RSA ciphertext of `modulus_bytes` are taken as secrets
/// (connector-secrets §6), and their paths are recorded with the entity.
pub fn secret_plan(command_type: CommandType, content: &Value, modulus_bytes: usize) -> SecretPlan {
    use CommandType::*;
    let connector = |kind, root: &str, type_key: &str, settings_key: &str| {
        let root_value = content.pointer(root).unwrap_or(&Value::Null);
        let connector_type = root_value
            .get(type_key)
            .and_then(Value::as_str)
            .unwrap_or("");
        let settings = root_value.get(settings_key).unwrap_or(&Value::Null);
        let paths = if secrets_paths::is_known_type(kind, connector_type) {
            secrets_paths::secret_paths(kind, connector_type)
                .iter()
                .map(|p| p.to_string())
                .collect()
        } else {
            secrets_paths::ciphertext_paths(settings, modulus_bytes)
        };
        SecretPart {
            pointer: format!("{root}/{settings_key}"),
            paths,
        }
    };
    let parts = match command_type {
        CreateSouth | UpdateSouth => vec![connector(ConnectorKind::South, "", "type", "settings")],
        CreateNorth | UpdateNorth => vec![connector(ConnectorKind::North, "", "type", "settings")],
        CreateHistoryQuery => vec![
            connector(ConnectorKind::South, "", "southType", "southSettings"),
            connector(ConnectorKind::North, "", "northType", "northSettings"),
        ],
        UpdateHistoryQuery => vec![
            connector(
                ConnectorKind::South,
                "/historyQuery",
                "southType",
                "southSettings",
            ),
            connector(
                ConnectorKind::North,
                "/historyQuery",
                "northType",
                "northSettings",
            ),
        ],
        UpdateEngineLogger => vec![SecretPart {
            pointer: "/loki".into(),
            paths: vec!["password".into()],
        }],
        _ => Vec::new(),
    };
    SecretPlan {
        parts: parts.into_iter().filter(|p| !p.paths.is_empty()).collect(),
    }
}

/// An id for something a command creates, derived from the command id (and `what`, to tell
/// several creations of one command apart): 6 characters of `[0-9A-Za-z]`, the shape of
/// OIBus's `generateRandomId(6)`, so a re-run creates nothing twice.
pub fn derive_id(command_id: &str, what: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = Sha256::new()
        .chain_update(command_id.as_bytes())
        .chain_update([0])
        .chain_update(what.as_bytes())
        .finalize();
    digest
        .iter()
        .take(6)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// Stage the entity changes of a supported configuration command. `fields` are the record's local fields and
/// `content` its `commandContent` with secrets decrypted per `plan`.
pub fn run(
    command_type: CommandType,
    fields: &Map<String, Value>,
    content: &Value,
    plan: &SecretPlan,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    use CommandType::*;
    let id_field = |name: &str| -> Result<String, ApplyError> {
        match fields.get(name).and_then(Value::as_str) {
            Some(id) => Ok(id.to_owned()),
            None => invalid(format!("field '{name}' is missing")),
        }
    };
    match command_type {
        CreateScanMode => put_scan_mode(None, content, env, batch),
        UpdateScanMode => {
            let id = id_field("scanModeId")?;
            put_scan_mode(Some(id), content, env, batch)
        }
        DeleteScanMode => delete_scan_mode(&id_field("scanModeId")?, env, batch),
        CreateIpFilter => put_ip_filter(None, content, env, batch),
        UpdateIpFilter => {
            let id = id_field("ipFilterId")?;
            put_ip_filter(Some(id), content, env, batch)
        }
        DeleteIpFilter => delete::<IpFilter>(&id_field("ipFilterId")?, env, batch),
        CreateCertificate => certificate::put(None, content, env, batch),
        UpdateCertificate => {
            certificate::put(Some(id_field("certificateId")?), content, env, batch)
        }
        DeleteCertificate => delete::<Certificate>(&id_field("certificateId")?, env, batch),
        CreateSouth => {
            let from = id_field("southConnectorId")?;
            put_south(None, Some(from), content, plan, env, batch)
        }
        UpdateSouth => {
            let id = id_field("southConnectorId")?;
            put_south(Some(id), None, content, plan, env, batch)
        }
        DeleteSouth => delete::<SouthConnector>(&id_field("southConnectorId")?, env, batch),
        CreateNorth => {
            let from = id_field("northConnectorId")?;
            put_north(None, Some(from), content, plan, env, batch)
        }
        UpdateNorth => {
            let id = id_field("northConnectorId")?;
            put_north(Some(id), None, content, plan, env, batch)
        }
        DeleteNorth => delete::<NorthConnector>(&id_field("northConnectorId")?, env, batch),
        CreateHistoryQuery => {
            let from = HistorySources {
                south: id_field("southConnectorId")?,
                north: id_field("northConnectorId")?,
                history: id_field("historyQueryId")?,
            };
            put_history(None, Some(from), content, "", plan, env, batch)
        }
        UpdateHistoryQuery => {
            let id = id_field("historyQueryId")?;
            let UpdateHistoryContent { history_query } = typed(content, CONTENT)?;
            put_history(
                Some(id),
                None,
                &Value::Object(history_query),
                "/historyQuery",
                plan,
                env,
                batch,
            )
        }
        DeleteHistoryQuery => delete::<HistoryQuery>(&id_field("historyQueryId")?, env, batch),
        UpdateHistoryQueryStatus => {
            // Records journaled by builds before 0.2 kept the status at the top level.
            let status = match content.get("historyQueryStatus").and_then(Value::as_str) {
                Some(status) => status.to_owned(),
                None => id_field("historyQueryStatus")?,
            };
            history_status(&id_field("historyQueryId")?, &status, env, batch)
        }
        UpdateEngineGeneral | UpdateEngineWebServer | UpdateEngineProxy | UpdateEngineLogger => {
            engine_settings(command_type, content, env, batch)
        }
        UpdateRegistrationSettings => registration_settings(typed(content, CONTENT)?, env, batch),
        CreateOrUpdateSouthItemsFromCsv => csv_import::import::<SouthConnector>(
            &id_field("southConnectorId")?,
            content,
            env,
            batch,
        ),
        CreateOrUpdateHistoryQuerySouthItemsFromCsv => {
            csv_import::import::<HistoryQuery>(&id_field("historyQueryId")?, content, env, batch)
        }
        CreateCustomTransformer => transformer::put_custom(None, content, CONTENT, env, batch),
        UpdateCustomTransformer => {
            let id = id_field("transformerId")?;
            transformer::put_custom(Some(id), content, CONTENT, env, batch)
        }
        DeleteCustomTransformer => {
            transformer::delete_custom(&id_field("transformerId")?, env, batch)
        }
        other => invalid(format!("{} is not a configuration command", other.as_str())),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading command content with errors that name the field.

/// Deserialize `value` (a part of the command content found at `path`) into a typed struct; the
/// error names the field at fault, e.g. `commandContent.options.keySize: invalid type: …`.
pub fn typed<T: serde::de::DeserializeOwned>(value: &Value, path: &str) -> Result<T, ApplyError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." {
            path.to_owned()
        } else {
            format!("{path}.{at}")
        };
        ApplyError::Invalid(format!("{at}: {}", e.inner()))
    })
}

/// A required string that is not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(de::Error::custom("must not be empty"));
        }
        Ok(Name(s))
    }
}

/// An integer from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Int<const MIN: u64, const MAX: u64>(u64);

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Int<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        if !(MIN..=MAX).contains(&v) {
            let expected = format!("an integer from {MIN} to {MAX}");
            return Err(de::Error::invalid_value(
                Unexpected::Unsigned(v),
                &expected.as_str(),
            ));
        }
        Ok(Int(v))
    }
}

type AtLeast<const MIN: u64> = Int<MIN, { u64::MAX }>;
type Port = Int<1, { u16::MAX as u64 }>;
type Interval = Int<1, { u32::MAX as u64 }>;

impl Port {
    fn port(self) -> u16 {
        self.0 as u16
    }
}

/// A settings subtree: an object or null (absent is null).
type Settings = Option<Map<String, Value>>;

fn settings(s: Settings) -> Value {
    s.map_or(Value::Null, Value::Object)
}

/// `slot` takes `value` when one is given (an absent field keeps the stored setting).
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// An optional string where `""` means absent.
fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// With `#[serde(default)]`: `None` when the field is absent, `Some(None)` when it is null.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// An object that refers to a scan mode by id or name (items, group standard settings, caching
/// triggers); the other fields pass through.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct WithScanMode {
    scan_mode_id: Option<String>,
    scan_mode_name: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct ScanModeContent {
    name: Name,
    description: Option<String>,
    cron: String,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct IpFilterContent {
    address: Name,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct SouthContent {
    name: Name,
    #[serde(rename = "type")]
    connector_type: Name,
    description: Option<String>,
    enabled: Option<bool>,
    settings: Settings,
    items: Option<Vec<SouthItemContent>>,
    groups: Option<Vec<GroupContent>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct SouthItemContent {
    id: Option<String>,
    name: Name,
    enabled: Option<bool>,
    settings: Settings,
    scan_mode_id: Option<String>,
    scan_mode_name: Option<String>,
    group_id: Option<String>,
    group_name: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct GroupContent {
    id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    standard_settings: Option<Option<WithScanMode>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct NorthContent {
    name: Name,
    #[serde(rename = "type")]
    connector_type: Name,
    description: Option<String>,
    enabled: Option<bool>,
    settings: Settings,
    caching: Option<CachingContent>,
    transformers: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct CachingContent {
    #[serde(default, deserialize_with = "present")]
    trigger: Option<Option<WithScanMode>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct HistoryContent {
    name: Name,
    description: Option<String>,
    query_time_range: Settings,
    caching: Option<CachingContent>,
    north_transformers: Option<Vec<Value>>,
    south_type: Name,
    south_settings: Settings,
    items: Option<Vec<HistoryItemContent>>,
    north_type: Name,
    north_settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct UpdateHistoryContent {
    history_query: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct HistoryItemContent {
    id: Option<String>,
    name: Name,
    enabled: Option<bool>,
    settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct GeneralContent {
    name: Name,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct WebServerContent {
    port: Port,
    #[serde(deserialize_with = "token_duration")]
    auth_token_duration: String,
}

fn token_duration<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if !TOKEN_DURATIONS.contains(&s.as_str()) {
        return Err(de::Error::unknown_variant(&s, TOKEN_DURATIONS));
    }
    Ok(s)
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct ProxyContent {
    enabled: bool,
    port: Option<Port>,
    username: Option<String>,
    password: Option<String>,
    forward: Option<ForwardContent>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct ForwardContent {
    enabled: bool,
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct LoggerContent {
    console: LevelContent,
    file: FileLoggerContent,
    database: DatabaseLoggerContent,
    loki: LokiContent,
    oia: OiaContent,
    syslog: SyslogContent,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct LevelContent {
    level: LogLevel,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct FileLoggerContent {
    level: LogLevel,
    max_file_size: Option<AtLeast<1>>,
    number_of_files: Option<AtLeast<1>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct DatabaseLoggerContent {
    level: LogLevel,
    max_number_of_logs: Option<AtLeast<100_000>>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct LokiContent {
    level: LogLevel,
    interval: Option<AtLeast<10>>,
    address: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct OiaContent {
    level: LogLevel,
    interval: Option<AtLeast<10>>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "an object")]
struct SyslogContent {
    level: LogLevel,
    host: Option<String>,
    port: Option<Port>,
    protocol: Option<SyslogProtocol>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct RegistrationContent {
    command_refresh_interval: Interval,
    command_retry_interval: Interval,
    message_retry_interval: Interval,
    command_permissions: BTreeMap<String, bool>,
}

// ---------------------------------------------------------------------------------------------
// Generic helpers.

/// The stored entity `id` of kind `E`, or the command's error.
fn existing<E: Entity>(id: &str, env: &Env<'_>) -> Result<E, ApplyError> {
    match env.entities.get::<E>(id)? {
        Some(e) => Ok(e),
        None => invalid(E::KIND.not_found(id)),
    }
}

/// The entity a create or update writes: for an update the stored one; for a create the one
/// this command may already have made before a crash (same derived id).
fn target<E: Entity>(
    update_id: Option<String>,
    env: &Env<'_>,
) -> Result<(String, Option<E>), ApplyError> {
    match update_id {
        Some(id) => {
            let current = existing::<E>(&id, env)?;
            Ok((id, Some(current)))
        }
        None => {
            let id = derive_id(env.command_id, E::KIND.as_str());
            let previous = env.entities.get::<E>(&id)?;
            Ok((id, previous))
        }
    }
}

fn check_unique_name<E: Entity>(name: &str, id: &str, env: &Env<'_>) -> Result<(), ApplyError> {
    match env.entities.id_by_name::<E>(name)? {
        Some(owner) if owner != id => invalid(format!(
            "{} name \"{name}\" already exists",
            E::KIND.label()
        )),
        _ => Ok(()),
    }
}

fn audit_for<E: Entity>(previous: Option<&E>, env: &Env<'_>) -> Audit {
    audited(previous.map(Entity::audit), env)
}

/// The audit of something this command writes: `previous` touched, or a new one.
fn audited(previous: Option<&Audit>, env: &Env<'_>) -> Audit {
    match previous {
        Some(p) => p.touched(BY_OIANALYTICS, env.now),
        None => Audit::new(BY_OIANALYTICS, env.now),
    }
}

/// Stage `entity` over `previous`: an update when there is one (a create re-run too), else an
/// insert.
fn stage<E: Entity>(
    entity: &E,
    previous: Option<&E>,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    env.entities.stage_put(batch, previous, entity)?;
    let op = if previous.is_some() {
        Op::Update
    } else {
        Op::Insert
    };
    Ok(Applied::entity(E::KIND, op))
}

fn delete<E: Entity>(id: &str, env: &Env<'_>, batch: &mut Batch) -> Result<Applied, ApplyError> {
    let entity = existing::<E>(id, env)?;
    env.entities.stage_delete(batch, &entity);
    Ok(Applied::entity(E::KIND, Op::Delete))
}

/// Seal the decrypted secrets of `settings` at `paths`; an empty one takes the sealed value at
/// the same path in `previous`.
fn seal_secrets(
    settings: &mut Value,
    paths: &[String],
    previous: Option<&Value>,
    env: &Env<'_>,
) -> Result<(), ApplyError> {
    secrets_paths::decrypt_paths(paths, settings, |plain| env.seal(plain)).map_err(
        |e| match e {
            secrets_paths::SecretPathError::Decrypt { source, .. } => source,
            other => ApplyError::Invalid(other.to_string()),
        },
    )?;
    if let Some(previous) = previous {
        secrets_paths::keep_previous_paths(paths, settings, previous);
    }
    Ok(())
}

/// A scan mode referenced by id, or else by name; `None` when neither is given. `path` names
/// the referring object in messages.
fn resolve_scan_mode(
    id: &Option<String>,
    name: &Option<String>,
    path: &str,
    env: &Env<'_>,
) -> Result<Option<String>, ApplyError> {
    if let Some(id) = given(id) {
        existing::<ScanMode>(id, env)?;
        return Ok(Some(id.to_owned()));
    }
    match given(name) {
        Some(name) => match env.entities.id_by_name::<ScanMode>(name)? {
            Some(id) => Ok(Some(id)),
            None => invalid(format!("{path}: scan mode \"{name}\" not found")),
        },
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Scan modes and IP filters (certificates: `certificate`).

fn put_scan_mode(
    update_id: Option<String>,
    content: &Value,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    if update_id.as_deref() == Some(SUBSCRIPTION_SCAN_MODE_ID) {
        return invalid("The subscription scan mode cannot be changed");
    }
    let (id, previous) = target::<ScanMode>(update_id, env)?;
    let cc: ScanModeContent = typed(content, CONTENT)?;
    cron::validate(&cc.cron).or_else(|e| invalid(e.to_string()))?;
    check_unique_name::<ScanMode>(&cc.name.0, &id, env)?;
    let mode = ScanMode {
        id,
        name: cc.name.0,
        description: cc.description.unwrap_or_default(),
        cron: cc.cron,
        audit: audit_for(previous.as_ref(), env),
    };
    stage(&mode, previous.as_ref(), env, batch)
}

fn delete_scan_mode(id: &str, env: &Env<'_>, batch: &mut Batch) -> Result<Applied, ApplyError> {
    if id == SUBSCRIPTION_SCAN_MODE_ID {
        return invalid("The subscription scan mode cannot be deleted");
    }
    let mode = existing::<ScanMode>(id, env)?;
    if let Some(user) = scan_mode_user(id, env)? {
        return invalid(format!("Scan mode \"{}\" is used by {user}", mode.name));
    }
    env.entities.stage_delete(batch, &mode);
    Ok(Applied::entity(EntityKind::ScanMode, Op::Delete))
}

/// Who uses a scan mode, if anyone: south items and groups, north and history-query caching.
fn scan_mode_user(id: &str, env: &Env<'_>) -> Result<Option<String>, ApplyError> {
    let is = |v: &Value| v.as_str() == Some(id);
    for south in env.entities.list::<SouthConnector>()? {
        let item_uses = south
            .items
            .iter()
            .any(|i| i.scan_mode_id.as_deref() == Some(id));
        let group_uses = south.groups.iter().any(|g| {
            g.other
                .get("standardSettings")
                .is_some_and(|s| is(&s["scanModeId"]))
        });
        if item_uses || group_uses {
            return Ok(Some(format!("south connector \"{}\"", south.name)));
        }
    }
    for north in env.entities.list::<NorthConnector>()? {
        if is(&north.caching["trigger"]["scanModeId"]) {
            return Ok(Some(format!("north connector \"{}\"", north.name)));
        }
    }
    for query in env.entities.list::<HistoryQuery>()? {
        if is(&query.caching["trigger"]["scanModeId"]) {
            return Ok(Some(format!("history query \"{}\"", query.name)));
        }
    }
    Ok(None)
}

fn put_ip_filter(
    update_id: Option<String>,
    content: &Value,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let (id, previous) = target::<IpFilter>(update_id, env)?;
    let cc: IpFilterContent = typed(content, CONTENT)?;
    let filter = IpFilter {
        id,
        address: cc.address.0,
        description: cc.description.unwrap_or_default(),
        audit: audit_for(previous.as_ref(), env),
    };
    stage(&filter, previous.as_ref(), env, batch)
}

// ---------------------------------------------------------------------------------------------
// South and north connectors.

/// The settings secrets are taken from on save: the connector named by `retrieveSecretsFrom*`.
fn secrets_source<E: Entity>(from: Option<&str>, env: &Env<'_>) -> Result<Option<E>, ApplyError> {
    match from.filter(|id| !id.is_empty()) {
        None => Ok(None),
        Some(id) => match env.entities.get::<E>(id)? {
            Some(e) => Ok(Some(e)),
            None => invalid(format!(
                "Could not find {} {id} to retrieve secrets from",
                E::KIND.label().to_lowercase()
            )),
        },
    }
}

/// A stored connector, as far as secrets are concerned.
trait Connector: Entity {
    fn connector_type(&self) -> &str;
    fn settings(&self) -> &Value;
    fn secret_paths(&self) -> &[String];
}

impl Connector for SouthConnector {
    fn connector_type(&self) -> &str {
        &self.connector_type
    }
    fn settings(&self) -> &Value {
        &self.settings
    }
    fn secret_paths(&self) -> &[String] {
        &self.secret_paths
    }
}

impl Connector for NorthConnector {
    fn connector_type(&self) -> &str {
        &self.connector_type
    }
    fn settings(&self) -> &Value {
        &self.settings
    }
    fn secret_paths(&self) -> &[String] {
        &self.secret_paths
    }
}

/// What a create or update of either connector kind starts with.
struct ConnectorBase {
    name: String,
    connector_type: String,
    /// The settings with every secret sealed ("empty keeps" applied).
    settings: Value,
    paths: Vec<String>,
}

/// A unique name, and the settings with their secrets sealed: an empty secret keeps the value of the previous version, or of the
/// `retrieveSecretsFrom*` connector when it has the same type.
fn connector_base<E: Connector>(
    id: &str,
    previous: Option<&E>,
    secrets_from: Option<String>,
    (name, connector_type, settings_in): (Name, Name, Settings),
    plan: &SecretPlan,
    env: &Env<'_>,
) -> Result<ConnectorBase, ApplyError> {
    check_unique_name::<E>(&name.0, id, env)?;
    let source = secrets_source::<E>(secrets_from.as_deref(), env)?;
    let keep_from = previous.or(source.as_ref());

    let mut settings = settings(settings_in);
    let mut paths = plan.paths("/settings");
    if let Some(from) = keep_from.filter(|f| f.connector_type() == connector_type.0) {
        merge_paths(&mut paths, from.secret_paths());
    }
    seal_secrets(&mut settings, &paths, keep_from.map(|f| f.settings()), env)?;
    Ok(ConnectorBase {
        name: name.0,
        connector_type: connector_type.0,
        settings,
        paths,
    })
}

fn put_south(
    update_id: Option<String>,
    secrets_from: Option<String>,
    content: &Value,
    plan: &SecretPlan,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let (id, previous) = target::<SouthConnector>(update_id, env)?;
    let cc: SouthContent = typed(content, CONTENT)?;
    let base = (cc.name, cc.connector_type, cc.settings);
    let ConnectorBase {
        name,
        connector_type,
        settings,
        paths,
    } = connector_base(&id, previous.as_ref(), secrets_from, base, plan, env)?;

    let groups = south_groups(cc.groups.unwrap_or_default(), &id, env)?;
    let items = south_items(
        cc.items.unwrap_or_default(),
        &id,
        &groups,
        previous.as_ref(),
        env,
    )?;
    let south = SouthConnector {
        id,
        name,
        connector_type,
        description: cc.description.unwrap_or_default(),
        enabled: cc.enabled.unwrap_or(false),
        settings,
        items,
        groups,
        secret_paths: paths,
        audit: audit_for(previous.as_ref(), env),
    };
    stage(&south, previous.as_ref(), env, batch)
}

/// Paths recorded for an unknown type stay secret across updates even when the new value is
/// empty (so "keep" works for them).
fn merge_paths(paths: &mut Vec<String>, recorded: &[String]) {
    for p in recorded {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
}

fn south_groups(
    contents: Vec<GroupContent>,
    connector_id: &str,
    env: &Env<'_>,
) -> Result<Vec<SouthGroup>, ApplyError> {
    let mut groups = Vec::new();
    for (i, group) in contents.into_iter().enumerate() {
        let id = match given(&group.id) {
            Some(id) => id.to_owned(),
            None => derive_id(env.command_id, &format!("{connector_id}/group/{i}")),
        };
        let mut other = group.other;
        match group.standard_settings {
            None => {}
            Some(None) => {
                other.insert("standardSettings".into(), Value::Null);
            }
            Some(Some(standard)) => {
                let path = format!("{CONTENT}.groups[{i}].standardSettings");
                let scan_mode = resolve_scan_mode(
                    &standard.scan_mode_id,
                    &standard.scan_mode_name,
                    &path,
                    env,
                )?;
                let mut standard = standard.other;
                standard.insert(
                    "scanModeId".into(),
                    scan_mode.map_or(Value::Null, Value::String),
                );
                other.insert("standardSettings".into(), Value::Object(standard));
            }
        }
        groups.push(SouthGroup { id, other });
    }
    Ok(groups)
}

fn south_items(
    contents: Vec<SouthItemContent>,
    connector_id: &str,
    groups: &[SouthGroup],
    previous: Option<&SouthConnector>,
    env: &Env<'_>,
) -> Result<Vec<SouthItem>, ApplyError> {
    let mut names = HashSet::new();
    let mut items = Vec::new();
    for (i, item) in contents.into_iter().enumerate() {
        let path = format!("{CONTENT}.items[{i}]");
        let name = item.name.0;
        if !names.insert(name.clone()) {
            return invalid(format!("{CONTENT}: item name \"{name}\" is used twice"));
        }
        let id = match given(&item.id) {
            Some(id) => id.to_owned(),
            None => derive_id(env.command_id, &format!("{connector_id}/item/{i}")),
        };
        let group_id = match (given(&item.group_id), given(&item.group_name)) {
            (Some(id), _) => Some(id.to_owned()),
            (None, Some(group_name)) => Some(
                groups
                    .iter()
                    .find(|g| {
                        g.other
                            .get("standardSettings")
                            .is_some_and(|s| s["name"] == group_name)
                    })
                    .map(|g| g.id.clone())
                    .ok_or_else(|| {
                        ApplyError::Invalid(format!("{path}: group \"{group_name}\" not found"))
                    })?,
            ),
            (None, None) => None,
        };
        let old = previous.and_then(|p| p.items.iter().find(|o| o.id == id));
        items.push(SouthItem {
            scan_mode_id: resolve_scan_mode(&item.scan_mode_id, &item.scan_mode_name, &path, env)?,
            group_id,
            name,
            enabled: item.enabled.unwrap_or(true),
            settings: settings(item.settings),
            other: item.other,
            audit: audited(old.map(|o| &o.audit), env),
            id,
        });
    }
    Ok(items)
}

fn put_north(
    update_id: Option<String>,
    secrets_from: Option<String>,
    content: &Value,
    plan: &SecretPlan,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let is_update = update_id.is_some();
    let (id, previous) = target::<NorthConnector>(update_id, env)?;
    let cc: NorthContent = typed(content, CONTENT)?;
    let base = (cc.name, cc.connector_type, cc.settings);
    let ConnectorBase {
        name,
        connector_type,
        settings,
        paths,
    } = connector_base(&id, previous.as_ref(), secrets_from, base, plan, env)?;
    let transformers = transformer::north_transformers(
        &cc.transformers.unwrap_or_default(),
        &format!("{CONTENT}.transformers"),
        is_update,
        &id,
        env,
    )?;

    let north = NorthConnector {
        id,
        name,
        connector_type,
        description: cc.description.unwrap_or_default(),
        enabled: cc.enabled.unwrap_or(false),
        settings,
        caching: caching(cc.caching, CONTENT, env)?,
        transformers,
        secret_paths: paths,
        audit: audit_for(previous.as_ref(), env),
    };
    stage(&north, previous.as_ref(), env, batch)
}

/// `caching` (of the content at `path`) with its trigger's scan mode resolved to an id
/// (`scanModeName` becomes null).
fn caching(
    caching: Option<CachingContent>,
    path: &str,
    env: &Env<'_>,
) -> Result<Value, ApplyError> {
    let Some(caching) = caching else {
        return Ok(Value::Null);
    };
    let mut out = caching.other;
    match caching.trigger {
        None => {}
        Some(None) => {
            out.insert("trigger".into(), Value::Null);
        }
        Some(Some(trigger)) => {
            let at = format!("{path}.caching.trigger");
            let scan_mode =
                resolve_scan_mode(&trigger.scan_mode_id, &trigger.scan_mode_name, &at, env)?;
            let mut trigger = trigger.other;
            trigger.insert(
                "scanModeId".into(),
                scan_mode.map_or(Value::Null, Value::String),
            );
            trigger.insert("scanModeName".into(), Value::Null);
            out.insert("trigger".into(), Value::Object(trigger));
        }
    }
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------------------------
// History queries.

/// `retrieveSecretsFrom{South,North,HistoryQuery}` of create-history-query (`""` = none).
struct HistorySources {
    south: String,
    north: String,
    history: String,
}

/// Create or update a history query; `pointer_root` is where `content` sits in `commandContent`
/// (`""` or `/historyQuery`).
#[allow(clippy::too_many_arguments)]
fn put_history(
    update_id: Option<String>,
    sources: Option<HistorySources>,
    content: &Value,
    pointer_root: &str,
    plan: &SecretPlan,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let path = format!("{CONTENT}{}", pointer_root.replace('/', "."));
    let is_update = update_id.is_some();
    let (id, previous) = target::<HistoryQuery>(update_id, env)?;
    let hq: HistoryContent = typed(content, &path)?;
    let name = hq.name.0;
    check_unique_name::<HistoryQuery>(&name, &id, env)?;
    let (south_type, north_type) = (hq.south_type.0, hq.north_type.0);

    // Where "empty means keep" takes previous secrets from, per side.
    let (mut south_keep, mut north_keep) = (None, None);
    if let Some(p) = &previous {
        south_keep = Some((
            p.south_settings.clone(),
            p.south_type.clone(),
            p.south_secret_paths.clone(),
        ));
        north_keep = Some((
            p.north_settings.clone(),
            p.north_type.clone(),
            p.north_secret_paths.clone(),
        ));
    }
    if let Some(from) = &sources {
        if let Some(h) = secrets_source::<HistoryQuery>(Some(&from.history), env)? {
            south_keep = Some((h.south_settings, h.south_type, h.south_secret_paths));
            north_keep = Some((h.north_settings, h.north_type, h.north_secret_paths));
        }
        if let Some(s) = secrets_source::<SouthConnector>(Some(&from.south), env)? {
            south_keep = Some((s.settings, s.connector_type, s.secret_paths));
        }
        if let Some(n) = secrets_source::<NorthConnector>(Some(&from.north), env)? {
            north_keep = Some((n.settings, n.connector_type, n.secret_paths));
        }
    }
    let side = |key: &str, sent: Settings, ty: &str, keep: Option<(Value, String, Vec<String>)>| {
        let mut settings = settings(sent);
        let mut paths = plan.paths(&format!("{pointer_root}/{key}"));
        let keep = keep.filter(|(_, keep_type, _)| keep_type == ty);
        if let Some((_, _, recorded)) = &keep {
            merge_paths(&mut paths, recorded);
        }
        seal_secrets(&mut settings, &paths, keep.as_ref().map(|(s, _, _)| s), env)?;
        Ok::<_, ApplyError>((settings, paths))
    };
    let (south_settings, south_secret_paths) =
        side("southSettings", hq.south_settings, &south_type, south_keep)?;
    let (north_settings, north_secret_paths) =
        side("northSettings", hq.north_settings, &north_type, north_keep)?;

    let mut names = HashSet::new();
    let mut items = Vec::new();
    for (i, item) in hq.items.unwrap_or_default().into_iter().enumerate() {
        let item_name = item.name.0;
        if !names.insert(item_name.clone()) {
            return invalid(format!("{path}: item name \"{item_name}\" is used twice"));
        }
        let item_id = match given(&item.id) {
            Some(item_id) => item_id.to_owned(),
            None => derive_id(env.command_id, &format!("{id}/item/{i}")),
        };
        let old = previous
            .as_ref()
            .and_then(|p| p.items.iter().find(|o| o.id == item_id));
        items.push(HistoryItem {
            name: item_name,
            enabled: item.enabled.unwrap_or(true),
            settings: settings(item.settings),
            audit: audited(old.map(|o| &o.audit), env),
            id: item_id,
        });
    }
    let north_transformers = transformer::history_transformers(
        &hq.north_transformers.unwrap_or_default(),
        &format!("{path}.northTransformers"),
        is_update,
        &id,
        &items,
        env,
    )?;
    let query = HistoryQuery {
        name,
        description: hq.description.unwrap_or_default(),
        status: previous
            .as_ref()
            .map_or_else(|| "PENDING".to_owned(), |p| p.status.clone()),
        query_time_range: settings(hq.query_time_range),
        caching: caching(hq.caching, &path, env)?,
        north_transformers,
        south_type,
        south_settings,
        south_secret_paths,
        items,
        north_type,
        north_settings,
        north_secret_paths,
        audit: audit_for(previous.as_ref(), env),
        id,
    };
    stage(&query, previous.as_ref(), env, batch)
}

/// Start or pause a history query. OIBus's texts; any other status is refused with its
/// sentence. Nothing runs the query yet: the status is stored and reported in E7.
fn history_status(
    id: &str,
    status: &str,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let result = match status {
        "RUNNING" => "History query started",
        "PAUSED" => "History query paused",
        other => {
            return invalid(format!(
                "History query status of {id} can not be updated to {other}"
            ))
        }
    };
    let previous = existing::<HistoryQuery>(id, env)?;
    let mut query = previous.clone();
    query.status = status.to_owned();
    query.audit = previous.audit.touched(BY_OIANALYTICS, env.now);
    env.entities.stage_put(batch, Some(&previous), &query)?;
    let mut applied = Applied::entity(EntityKind::HistoryQuery, Op::Update);
    applied.result = result.to_owned();
    Ok(applied)
}

// ---------------------------------------------------------------------------------------------
// Engine and registration settings.

const TOKEN_DURATIONS: &[&str] = &["1h", "6h", "1d", "3d", "7d", "14d", "30d"];

/// OIBus's refusal when the web server and the proxy server would share a port.
const SAME_PORTS: &str = "Web server port and proxy port can not be the same";

fn engine_settings(
    command_type: CommandType,
    content: &Value,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let Some(mut record) = env.entities.engine_settings()? else {
        return invalid("Engine settings are not initialised; restart the engine");
    };
    let s = &mut record.settings;
    let result = match command_type {
        CommandType::UpdateEngineGeneral => {
            let cc: GeneralContent = typed(content, CONTENT)?;
            s.general.name = cc.name.0;
            record.remote.general = true;
            "Engine name updated successfully"
        }
        CommandType::UpdateEngineWebServer => {
            let cc: WebServerContent = typed(content, CONTENT)?;
            let port = cc.port.port();
            if s.proxy_server.port == Some(port) {
                return invalid(SAME_PORTS);
            }
            s.web_server.port = port;
            s.web_server.auth_token_duration = cc.auth_token_duration;
            record.remote.web_server = true;
            "Engine web server settings updated successfully"
        }
        CommandType::UpdateEngineProxy => {
            let cc: ProxyContent = typed(content, CONTENT)?;
            let p = &mut s.proxy_server;
            p.enabled = cc.enabled;
            if let Some(port) = cc.port.map(Port::port) {
                // OIBus checks the collision only for a proxy that is switched on.
                if p.enabled && port == s.web_server.port {
                    return invalid(SAME_PORTS);
                }
                p.port = Some(port);
            }
            p.username = cc.username;
            // Plaintext on the wire (protocol §4.6); empty or absent keeps the stored value.
            if let Some(password) = given(&cc.password) {
                p.password = Some(env.seal(password)?);
            }
            if let Some(forward) = cc.forward {
                let f = &mut p.forward;
                f.enabled = forward.enabled;
                f.url = forward.url;
                f.username = forward.username;
                if let Some(password) = given(&forward.password) {
                    f.password = Some(env.seal(password)?);
                }
            }
            "Engine proxy settings updated successfully"
        }
        CommandType::UpdateEngineLogger => {
            let cc: LoggerContent = typed(content, CONTENT)?;
            let l = &mut s.logger;
            l.console.level = cc.console.level;
            l.file.level = cc.file.level;
            set(
                &mut l.file.max_file_size,
                cc.file.max_file_size.map(|v| v.0),
            );
            set(
                &mut l.file.number_of_files,
                cc.file.number_of_files.map(|v| v.0),
            );
            l.database.level = cc.database.level;
            set(
                &mut l.database.max_number_of_logs,
                cc.database.max_number_of_logs.map(|v| v.0),
            );
            l.loki.level = cc.loki.level;
            set(&mut l.loki.interval, cc.loki.interval.map(|v| v.0));
            set(&mut l.loki.address, cc.loki.address);
            set(&mut l.loki.username, cc.loki.username);
            // Decrypted by the actor (RSA on the wire); empty keeps the stored value.
            if let Some(password) = given(&cc.loki.password) {
                l.loki.password = Some(env.seal(password)?);
            }
            l.oia.level = cc.oia.level;
            set(&mut l.oia.interval, cc.oia.interval.map(|v| v.0));
            l.syslog.level = cc.syslog.level;
            set(&mut l.syslog.host, cc.syslog.host);
            set(&mut l.syslog.port, cc.syslog.port.map(Port::port));
            set(&mut l.syslog.protocol, cc.syslog.protocol);
            record.remote.logger = true;
            "Engine logger settings updated successfully"
        }
        other => {
            return invalid(format!(
                "{} is not an engine settings command",
                other.as_str()
            ))
        }
    };
    record.audit = record.audit.touched(BY_OIANALYTICS, env.now);
    env.entities.stage_engine_settings(batch, &record)?;
    Ok(Applied {
        result: result.to_owned(),
        ontology: None,
        effects: Effects {
            full_config: true,
            engine: true,
            ..Effects::default()
        },
    })
}

fn registration_settings(
    cc: RegistrationContent,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let Some(mut record) = env.entities.registration_settings()? else {
        return invalid("Registration settings are not initialised; restart the engine");
    };
    let mut command_permissions = BTreeMap::new();
    for flag in PERMISSION_FLAGS {
        let Some(permitted) = cc.command_permissions.get(flag) else {
            return invalid(format!(
                "{CONTENT}.commandPermissions: missing field `{flag}`"
            ));
        };
        command_permissions.insert(flag.to_owned(), *permitted);
    }
    record.apply_remote(RemoteRegistrationSettings {
        command_refresh_interval: cc.command_refresh_interval.0,
        command_retry_interval: cc.command_retry_interval.0,
        message_retry_interval: cc.message_retry_interval.0,
        command_permissions,
    });
    record.audit = record.audit.touched(BY_OIANALYTICS, env.now);
    env.entities.stage_registration_settings(batch, &record)?;
    Ok(Applied {
        result: "Registration settings updated successfully".into(),
        ontology: None,
        // OIBus fires "updated", which queues both E6 and E7.
        effects: Effects {
            full_config: true,
            history_queries: true,
            registration: true,
            ..Effects::default()
        },
    })
}

mod csv_import;
mod transformer;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
