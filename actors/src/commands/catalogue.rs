//! The 47 command types of protocol §4.6 and their typed records: the permission flag guarding
//! each type (§4.4), whether the agent runs it, and one struct per type for the fields it
//! carries.
//!
//! An E3 element is first mapped onto the local record as OIBus's command repository does
//! ([`Command::from_element`]: `historyId` → `historyQueryId`, `retrieveSecretsFrom*` → the local
//! id fields, top-level CSV, status and version fields folded into `commandContent`), then
//! deserialized into its type's struct, so an error names the field at fault. The same structs
//! read a stored record back ([`Command::from_record`]) and check the simulator's E5 records.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::config::PERMISSION_FLAGS;

/// A JSON object carried as is (connector settings and other content the executor reads).
pub type Object = Map<String, Value>;

/// A required, non-empty string: an entity id or a status name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        let id = String::deserialize(deserializer)?;
        if id.is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(Id(id))
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// `retrieveSecretsFrom*`: absent or null is stored as `""` (no source), as OIBus stores it.
fn id_or_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

/// `update-version`'s content, read from `commandContent` or the top level of the element;
/// `backupFoldersPattern` is stored as `backupFolders` (OIBus's local name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateVersionContent {
    pub version: Id,
    pub asset_id: Id,
    #[serde(default)]
    pub update_launcher: Option<bool>,
    #[serde(default)]
    pub backup_folders: Option<String>,
}

/// The CSV import commands' content, folded from the element's top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsvImportContent {
    pub delete_items_not_present: bool,
    #[serde(default)]
    pub csv_content: Option<String>,
    pub delimiter: Id,
}

/// `update-history-query-status`'s content: any status name is stored; the executor says which
/// ones it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryStatusContent {
    pub history_query_status: Id,
}

macro_rules! commands {
    ($(
        $variant:ident = $name:literal {
            $( $(#[$meta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {
        /// A command type of the catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CommandType {
            $($variant,)*
        }

        impl CommandType {
            pub const ALL: &'static [CommandType] = &[$(CommandType::$variant,)*];

            /// The wire name, e.g. `create-scan-mode`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CommandType::$variant => $name,)*
                }
            }

            pub fn parse(name: &str) -> Option<CommandType> {
                match name {
                    $($name => Some(CommandType::$variant),)*
                    _ => None,
                }
            }
        }

        /// The local fields of each command type, one struct per type.
        pub mod fields {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[doc = concat!("The local fields of `", $name, "`.")]
                #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
                #[serde(rename_all = "camelCase")]
                pub struct $variant {
                    $( $(#[$meta])* pub $field: $ty, )*
                }
            )*
        }

        /// A command with its typed local fields.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Command {
            $($variant(fields::$variant),)*
        }

        impl Command {
            pub fn command_type(&self) -> CommandType {
                match self {
                    $(Command::$variant(_) => CommandType::$variant,)*
                }
            }

            /// Read the local fields of a record of type `command_type`.
            pub fn from_record(
                command_type: CommandType,
                fields: &Map<String, Value>,
            ) -> Result<Command, String> {
                let value = Value::Object(fields.clone());
                match command_type {
                    $(CommandType::$variant => typed(value).map(Command::$variant),)*
                }
            }

            /// The local fields, as journaled and reported in E5.
            pub fn local_fields(&self) -> Map<String, Value> {
                let value = match self {
                    $(Command::$variant(f) => serde_json::to_value(f),)*
                };
                match value {
                    Ok(Value::Object(map)) => map,
                    // Every struct above is a map of JSON-representable fields.
                    _ => Map::new(),
                }
            }
        }
    };
}

commands! {
    UpdateVersion = "update-version" { command_content: UpdateVersionContent }
    RestartEngine = "restart-engine" {}
    RegenerateCipherKeys = "regenerate-cipher-keys" {}
    UpdateEngineGeneral = "update-engine-general" { command_content: Object }
    UpdateEngineWebServer = "update-engine-web-server" { command_content: Object }
    UpdateEngineProxy = "update-engine-proxy" { command_content: Object }
    UpdateEngineLogger = "update-engine-logger" { command_content: Object }
    UpdateRegistrationSettings = "update-registration-settings" { command_content: Object }
    CreateScanMode = "create-scan-mode" { command_content: Object }
    UpdateScanMode = "update-scan-mode" { scan_mode_id: Id, command_content: Object }
    DeleteScanMode = "delete-scan-mode" {
        scan_mode_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")] command_content: Option<Object>,
    }
    CreateIpFilter = "create-ip-filter" { command_content: Object }
    UpdateIpFilter = "update-ip-filter" { ip_filter_id: Id, command_content: Object }
    DeleteIpFilter = "delete-ip-filter" {
        ip_filter_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")] command_content: Option<Object>,
    }
    CreateCertificate = "create-certificate" { command_content: Object }
    UpdateCertificate = "update-certificate" { certificate_id: Id, command_content: Object }
    DeleteCertificate = "delete-certificate" {
        certificate_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")] command_content: Option<Object>,
    }
    CreateSouth = "create-south" {
        #[serde(default, deserialize_with = "id_or_empty")] south_connector_id: String,
        command_content: Object,
    }
    UpdateSouth = "update-south" { south_connector_id: Id, command_content: Object }
    DeleteSouth = "delete-south" {
        south_connector_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")] command_content: Option<Object>,
    }
    TestSouthConnection = "test-south-connection" { south_connector_id: Id, command_content: Object }
    TestSouthItem = "test-south-item" {
        south_connector_id: Id, item_id: Id, command_content: Object,
    }
    CreateOrUpdateSouthItemsFromCsv = "create-or-update-south-items-from-csv" {
        south_connector_id: Id, command_content: CsvImportContent,
    }
    CreateNorth = "create-north" {
        #[serde(default, deserialize_with = "id_or_empty")] north_connector_id: String,
        command_content: Object,
    }
    UpdateNorth = "update-north" { north_connector_id: Id, command_content: Object }
    DeleteNorth = "delete-north" {
        north_connector_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")] command_content: Option<Object>,
    }
    TestNorthConnection = "test-north-connection" { north_connector_id: Id, command_content: Object }
    CreateHistoryQuery = "create-history-query" {
        #[serde(default, deserialize_with = "id_or_empty")] south_connector_id: String,
        #[serde(default, deserialize_with = "id_or_empty")] north_connector_id: String,
        #[serde(default, deserialize_with = "id_or_empty")] history_query_id: String,
        command_content: Object,
    }
    UpdateHistoryQuery = "update-history-query" { history_query_id: Id, command_content: Object }
    DeleteHistoryQuery = "delete-history-query" {
        history_query_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")] command_content: Option<Object>,
    }
    TestHistoryQueryNorthConnection = "test-history-query-north-connection" {
        history_query_id: Id, north_connector_id: Id, command_content: Object,
    }
    TestHistoryQuerySouthConnection = "test-history-query-south-connection" {
        history_query_id: Id, south_connector_id: Id, command_content: Object,
    }
    TestHistoryQuerySouthItem = "test-history-query-south-item" {
        history_query_id: Id, south_connector_id: Id, item_id: Id, command_content: Object,
    }
    CreateOrUpdateHistoryQuerySouthItemsFromCsv =
        "create-or-update-history-query-south-items-from-csv" {
        history_query_id: Id, command_content: CsvImportContent,
    }
    UpdateHistoryQueryStatus = "update-history-query-status" {
        history_query_id: Id, command_content: HistoryStatusContent,
    }
    Setpoint = "setpoint" { north_connector_id: Id, command_content: Vec<Value> }
    SearchNorthCacheContent = "search-north-cache-content" {
        north_connector_id: Id, command_content: Object,
    }
    GetNorthCacheFileContent = "get-north-cache-file-content" {
        north_connector_id: Id, command_content: Object,
    }
    UpdateNorthCacheContent = "update-north-cache-content" {
        north_connector_id: Id, command_content: Object,
    }
    SearchHistoryCacheContent = "search-history-cache-content" {
        history_query_id: Id, command_content: Object,
    }
    GetHistoryCacheFileContent = "get-history-cache-file-content" {
        history_query_id: Id, command_content: Object,
    }
    UpdateHistoryCacheContent = "update-history-cache-content" {
        history_query_id: Id, command_content: Object,
    }
    CreateCustomTransformer = "create-custom-transformer" { command_content: Object }
    UpdateCustomTransformer = "update-custom-transformer" { transformer_id: Id, command_content: Object }
    DeleteCustomTransformer = "delete-custom-transformer" {
        transformer_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")] command_content: Option<Object>,
    }
    TestCustomTransformer = "test-custom-transformer" { command_content: Object }
    TestTransformer = "test-transformer" { transformer_id: Id, command_content: Object }
}

/// Deserialize a record's fields; the message names the field at fault.
fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        // Tell serde's "invalid type: integer `3`, expected a string" which field it is about;
        // a missing field already names itself.
        if path == "." {
            e.inner().to_string()
        } else {
            format!("field '{path}': {}", e.inner())
        }
    })
}

impl Command {
    /// Map an E3 element onto its local record as OIBus's command repository stores it, then
    /// type it. The error names the field at fault by its wire name.
    pub fn from_element(
        command_type: CommandType,
        element: &Map<String, Value>,
    ) -> Result<Command, String> {
        use CommandType::*;
        let mut local = element.clone();
        let mut renames: Vec<(&str, &str)> = Vec::new();
        let mut rename = |local: &mut Map<String, Value>, wire: &'static str, to: &'static str| {
            local.remove(to);
            if let Some(v) = local.remove(wire) {
                local.insert(to.into(), v);
            }
            renames.push((wire, to));
        };
        match command_type {
            CreateSouth => rename(&mut local, "retrieveSecretsFromSouth", "southConnectorId"),
            CreateNorth => rename(&mut local, "retrieveSecretsFromNorth", "northConnectorId"),
            CreateHistoryQuery => {
                rename(&mut local, "retrieveSecretsFromSouth", "southConnectorId");
                rename(&mut local, "retrieveSecretsFromNorth", "northConnectorId");
                rename(
                    &mut local,
                    "retrieveSecretsFromHistoryQuery",
                    "historyQueryId",
                );
            }
            UpdateHistoryQuery
            | DeleteHistoryQuery
            | TestHistoryQueryNorthConnection
            | TestHistoryQuerySouthConnection
            | TestHistoryQuerySouthItem
            | CreateOrUpdateHistoryQuerySouthItemsFromCsv
            | UpdateHistoryQueryStatus => rename(&mut local, "historyId", "historyQueryId"),
            _ => {}
        }
        match command_type {
            CreateOrUpdateSouthItemsFromCsv | CreateOrUpdateHistoryQuerySouthItemsFromCsv => {
                fold_into_content(
                    &mut local,
                    &["deleteItemsNotPresent", "csvContent", "delimiter"],
                )
            }
            UpdateHistoryQueryStatus => fold_into_content(&mut local, &["historyQueryStatus"]),
            UpdateVersion => fold_version(&mut local),
            _ => {}
        }
        Command::from_record(command_type, &local).map_err(|message| {
            renames.iter().fold(message, |m, (wire, to)| {
                m.replace(&format!("`{to}`"), &format!("`{wire}`"))
                    .replace(&format!("'{to}'"), &format!("'{wire}'"))
            })
        })
    }
}

/// Move top-level `keys` into a fresh `commandContent` (what OIA sent there is not kept, as in
/// OIBus).
fn fold_into_content(local: &mut Map<String, Value>, keys: &[&str]) {
    let mut content = Map::new();
    for key in keys {
        if let Some(v) = local.remove(*key) {
            content.insert((*key).into(), v);
        }
    }
    local.insert(CONTENT.into(), Value::Object(content));
}

/// `update-version` fields come in `commandContent` or at the top level (both exist in the
/// field); `backupFoldersPattern` is stored as `backupFolders`.
fn fold_version(local: &mut Map<String, Value>) {
    let source = match local.remove(CONTENT) {
        Some(Value::Object(cc)) => cc,
        _ => Map::new(),
    };
    let mut content = Map::new();
    let pick = |key: &str| {
        source
            .get(key)
            .filter(|v| !v.is_null())
            .or_else(|| local.get(key).filter(|v| !v.is_null()))
            .cloned()
    };
    for key in [
        "version",
        "assetId",
        "updateLauncher",
        "backupFoldersPattern",
    ] {
        let value = match key {
            "backupFoldersPattern" => pick(key).or_else(|| pick("backupFolders")),
            _ => pick(key),
        };
        if let Some(v) = value {
            let local_key = if key == "backupFoldersPattern" {
                "backupFolders"
            } else {
                key
            };
            content.insert(local_key.into(), v);
        }
    }
    local.insert(CONTENT.into(), Value::Object(content));
}

/// The local (and wire) name of the command's payload.
pub const CONTENT: &str = "commandContent";

/// The JSON type of a value, for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl CommandType {
    /// The permission flag guarding this type (protocol §4.4): the name in camelCase, with the
    /// documented exceptions. `None` would be a catalogue bug (a test checks all 47); callers
    /// treat it as "not authorized".
    pub fn permission_flag(self) -> Option<&'static str> {
        use CommandType::*;
        let flag = match self {
            UpdateEngineGeneral
            | UpdateEngineWebServer
            | UpdateEngineProxy
            | UpdateEngineLogger => "updateEngineSettings".to_owned(),
            TestHistoryQueryNorthConnection => "testHistoryNorthConnection".to_owned(),
            TestHistoryQuerySouthConnection => "testHistorySouthConnection".to_owned(),
            TestHistoryQuerySouthItem => "testHistorySouthItem".to_owned(),
            CreateOrUpdateHistoryQuerySouthItemsFromCsv => {
                "createOrUpdateHistoryItemsFromCsv".to_owned()
            }
            UpdateHistoryQueryStatus => "updateHistoryQuery".to_owned(),
            TestTransformer => "testNorthConnection".to_owned(),
            other => camel_case(other.as_str()),
        };
        PERMISSION_FLAGS.iter().copied().find(|f| *f == flag)
    }

    /// Whether the agent executes this type; every other type ends ERRORED at once with
    /// "<type> is not supported by oibus-agent" (the agent runs no connectors, so it cannot
    /// test them, write setpoints or read their caches), or, for the two transformer tests, a
    /// sentence saying the agent has no transformer runtime (custom transformers are stored).
    pub fn is_supported(self) -> bool {
        use CommandType::*;
        matches!(
            self,
            UpdateVersion
                | RestartEngine
                | RegenerateCipherKeys
                | UpdateEngineGeneral
                | UpdateEngineWebServer
                | UpdateEngineProxy
                | UpdateEngineLogger
                | UpdateRegistrationSettings
                | CreateScanMode
                | UpdateScanMode
                | DeleteScanMode
                | CreateIpFilter
                | UpdateIpFilter
                | DeleteIpFilter
                | CreateCertificate
                | UpdateCertificate
                | DeleteCertificate
                | CreateSouth
                | UpdateSouth
                | DeleteSouth
                | CreateOrUpdateSouthItemsFromCsv
                | CreateNorth
                | UpdateNorth
                | DeleteNorth
                | CreateHistoryQuery
                | UpdateHistoryQuery
                | DeleteHistoryQuery
                | CreateOrUpdateHistoryQuerySouthItemsFromCsv
                | UpdateHistoryQueryStatus
                | CreateCustomTransformer
                | UpdateCustomTransformer
                | DeleteCustomTransformer
        ) || self.runs_on_data_plane()
    }

    /// The commands the running data plane answers (`data_flow::DataCommand`): tests,
    /// setpoints and the cache commands.
    pub fn runs_on_data_plane(self) -> bool {
        use CommandType::*;
        matches!(
            self,
            TestNorthConnection
                | TestSouthConnection
                | TestSouthItem
                | TestHistoryQuerySouthConnection
                | TestHistoryQuerySouthItem
                | Setpoint
                | SearchNorthCacheContent
                | GetNorthCacheFileContent
                | UpdateNorthCacheContent
                | SearchHistoryCacheContent
                | GetHistoryCacheFileContent
                | UpdateHistoryCacheContent
        )
    }
}

/// `create-scan-mode` → `createScanMode`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test input is an object"),
        }
    }

    #[test]
    fn the_catalogue_has_47_distinct_types_that_round_trip() {
        assert_eq!(CommandType::ALL.len(), 47);
        let names: BTreeSet<_> = CommandType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), 47);
        for t in CommandType::ALL {
            assert_eq!(CommandType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(CommandType::parse("create-thing"), None);
    }

    #[test]
    fn the_47_types_map_onto_exactly_the_42_permission_flags() {
        let flags: BTreeSet<&str> = CommandType::ALL
            .iter()
            .map(|t| {
                t.permission_flag()
                    .unwrap_or_else(|| panic!("{} has no flag", t.as_str()))
            })
            .collect();
        let expected: BTreeSet<&str> = PERMISSION_FLAGS.iter().copied().collect();
        assert_eq!(flags, expected);
        assert_eq!(flags.len(), 42);
    }

    #[test]
    fn permission_exceptions_follow_the_spec() {
        use CommandType::*;
        assert_eq!(CreateScanMode.permission_flag(), Some("createScanMode"));
        assert_eq!(
            GetNorthCacheFileContent.permission_flag(),
            Some("getNorthCacheFileContent")
        );
        assert_eq!(
            UpdateEngineLogger.permission_flag(),
            Some("updateEngineSettings")
        );
        assert_eq!(
            UpdateEngineWebServer.permission_flag(),
            Some("updateEngineSettings")
        );
        assert_eq!(
            TestHistoryQuerySouthItem.permission_flag(),
            Some("testHistorySouthItem")
        );
        assert_eq!(
            CreateOrUpdateHistoryQuerySouthItemsFromCsv.permission_flag(),
            Some("createOrUpdateHistoryItemsFromCsv")
        );
        assert_eq!(
            UpdateHistoryQueryStatus.permission_flag(),
            Some("updateHistoryQuery")
        );
        assert_eq!(
            TestTransformer.permission_flag(),
            Some("testNorthConnection")
        );
    }

    fn local(command_type: CommandType, element: Value) -> Result<Value, String> {
        Command::from_element(command_type, &obj(element)).map(|c| Value::Object(c.local_fields()))
    }

    #[test]
    fn create_south_stores_retrieve_secrets_from_as_the_local_south_id() {
        let element = json!({
            "id": "c1", "type": "create-south", "targetVersion": "1",
            "retrieveSecretsFromSouth": null, "commandContent": {"name": "s"}, "extra": 1
        });
        assert_eq!(
            local(CommandType::CreateSouth, element),
            Ok(json!({"southConnectorId": "", "commandContent": {"name": "s"}}))
        );
    }

    #[test]
    fn history_id_becomes_history_query_id_and_csv_fields_go_into_the_content() {
        let element = json!({
            "historyId": "h1", "deleteItemsNotPresent": true, "csvContent": "a;b", "delimiter": ";"
        });
        assert_eq!(
            local(
                CommandType::CreateOrUpdateHistoryQuerySouthItemsFromCsv,
                element
            ),
            Ok(json!({"historyQueryId": "h1", "commandContent": {
                "deleteItemsNotPresent": true, "csvContent": "a;b", "delimiter": ";"}}))
        );
    }

    #[test]
    fn history_query_status_is_stored_in_the_content_as_oibus_reports_it() {
        let status = json!({"historyId": "h1", "historyQueryStatus": "RUNNING"});
        assert_eq!(
            local(CommandType::UpdateHistoryQueryStatus, status),
            Ok(json!({"historyQueryId": "h1",
                "commandContent": {"historyQueryStatus": "RUNNING"}}))
        );
    }

    #[test]
    fn update_version_accepts_its_fields_in_the_content_or_at_the_top() {
        let expected = json!({"commandContent": {
            "version": "v1.2.3", "assetId": "a1", "updateLauncher": false, "backupFolders": "cache/*"}});
        let nested = json!({"commandContent": {
            "version": "v1.2.3", "assetId": "a1", "updateLauncher": false,
            "backupFoldersPattern": "cache/*"}});
        let top = json!({
            "version": "v1.2.3", "assetId": "a1", "updateLauncher": false,
            "backupFoldersPattern": "cache/*"});
        for element in [nested, top] {
            assert_eq!(
                local(CommandType::UpdateVersion, element),
                Ok(expected.clone())
            );
        }
    }

    #[test]
    fn wrong_field_types_are_named_by_their_wire_name() {
        let cases = [
            (
                CommandType::UpdateScanMode,
                json!({"scanModeId": 3, "commandContent": {}}),
                "field 'scanModeId': invalid type: integer `3`, expected a string",
            ),
            (
                CommandType::CreateScanMode,
                json!({"commandContent": "x"}),
                "field 'commandContent': invalid type: string \"x\", expected a map",
            ),
            (
                CommandType::CreateScanMode,
                json!({}),
                "missing field `commandContent`",
            ),
            (
                CommandType::Setpoint,
                json!({"northConnectorId": "n", "commandContent": {}}),
                "field 'commandContent': invalid type: map, expected a sequence",
            ),
            (
                CommandType::DeleteHistoryQuery,
                json!({}),
                "missing field `historyId`",
            ),
            (
                CommandType::DeleteHistoryQuery,
                json!({"historyId": ""}),
                "field 'historyId': must not be empty",
            ),
            (
                CommandType::UpdateVersion,
                json!({"commandContent": {"version": "v1"}}),
                "field 'commandContent': missing field `assetId`",
            ),
        ];
        for (command_type, element, expected) in cases {
            assert_eq!(local(command_type, element), Err(expected.to_owned()));
        }
    }

    #[test]
    fn a_stored_record_reads_back_as_the_same_command() {
        let element = json!({"historyId": "h1", "deleteItemsNotPresent": false, "delimiter": ","});
        let command = Command::from_element(
            CommandType::CreateOrUpdateHistoryQuerySouthItemsFromCsv,
            &obj(element),
        )
        .unwrap();
        let again = Command::from_record(command.command_type(), &command.local_fields());
        assert_eq!(again, Ok(command));
    }

    #[test]
    fn delete_commands_need_no_content_and_restart_keeps_none() {
        assert_eq!(
            local(CommandType::DeleteScanMode, json!({"scanModeId": "s"})),
            Ok(json!({"scanModeId": "s"}))
        );
        assert_eq!(
            local(
                CommandType::RestartEngine,
                json!({"commandContent": {"ignored": true}})
            ),
            Ok(json!({}))
        );
    }

    #[test]
    fn configuration_and_data_plane_commands_are_supported() {
        let supported: Vec<_> = CommandType::ALL
            .iter()
            .filter(|t| t.is_supported())
            .collect();
        assert_eq!(supported.len(), 44);
        assert!(CommandType::TestSouthConnection.is_supported());
        assert!(CommandType::TestSouthItem.is_supported());
        assert!(CommandType::TestHistoryQuerySouthItem.is_supported());
        assert!(CommandType::Setpoint.is_supported());
        assert!(CommandType::TestNorthConnection.is_supported());
        assert!(CommandType::CreateCustomTransformer.is_supported());
        assert!(CommandType::UpdateCustomTransformer.is_supported());
        assert!(CommandType::DeleteCustomTransformer.is_supported());
        assert!(!CommandType::TestCustomTransformer.is_supported());
        assert!(!CommandType::TestTransformer.is_supported());
    }
}
