//! The 47 command types of protocol §4.6: their names, the permission flag guarding each (§4.4),
//! whether the agent runs them, and how a received element maps onto the local record (field
//! types checked, `historyId` → `historyQueryId`, `retrieveSecretsFrom*` → the local id fields,
//! top-level CSV fields folded into `commandContent`).

use serde_json::{Map, Value};

use crate::config::PERMISSION_FLAGS;

macro_rules! command_types {
    ($($variant:ident = $name:literal,)*) => {
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
    };
}

command_types! {
    UpdateVersion = "update-version",
    RestartEngine = "restart-engine",
    RegenerateCipherKeys = "regenerate-cipher-keys",
    UpdateEngineGeneral = "update-engine-general",
    UpdateEngineWebServer = "update-engine-web-server",
    UpdateEngineProxy = "update-engine-proxy",
    UpdateEngineLogger = "update-engine-logger",
    UpdateRegistrationSettings = "update-registration-settings",
    CreateScanMode = "create-scan-mode",
    UpdateScanMode = "update-scan-mode",
    DeleteScanMode = "delete-scan-mode",
    CreateIpFilter = "create-ip-filter",
    UpdateIpFilter = "update-ip-filter",
    DeleteIpFilter = "delete-ip-filter",
    CreateCertificate = "create-certificate",
    UpdateCertificate = "update-certificate",
    DeleteCertificate = "delete-certificate",
    CreateSouth = "create-south",
    UpdateSouth = "update-south",
    DeleteSouth = "delete-south",
    TestSouthConnection = "test-south-connection",
    TestSouthItem = "test-south-item",
    CreateOrUpdateSouthItemsFromCsv = "create-or-update-south-items-from-csv",
    CreateNorth = "create-north",
    UpdateNorth = "update-north",
    DeleteNorth = "delete-north",
    TestNorthConnection = "test-north-connection",
    CreateHistoryQuery = "create-history-query",
    UpdateHistoryQuery = "update-history-query",
    DeleteHistoryQuery = "delete-history-query",
    TestHistoryQueryNorthConnection = "test-history-query-north-connection",
    TestHistoryQuerySouthConnection = "test-history-query-south-connection",
    TestHistoryQuerySouthItem = "test-history-query-south-item",
    CreateOrUpdateHistoryQuerySouthItemsFromCsv = "create-or-update-history-query-south-items-from-csv",
    UpdateHistoryQueryStatus = "update-history-query-status",
    Setpoint = "setpoint",
    SearchNorthCacheContent = "search-north-cache-content",
    GetNorthCacheFileContent = "get-north-cache-file-content",
    UpdateNorthCacheContent = "update-north-cache-content",
    SearchHistoryCacheContent = "search-history-cache-content",
    GetHistoryCacheFileContent = "get-history-cache-file-content",
    UpdateHistoryCacheContent = "update-history-cache-content",
    CreateCustomTransformer = "create-custom-transformer",
    UpdateCustomTransformer = "update-custom-transformer",
    DeleteCustomTransformer = "delete-custom-transformer",
    TestCustomTransformer = "test-custom-transformer",
    TestTransformer = "test-transformer",
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
                | CreateNorth
                | UpdateNorth
                | DeleteNorth
                | CreateHistoryQuery
                | UpdateHistoryQuery
                | DeleteHistoryQuery
                | UpdateHistoryQueryStatus
                | CreateCustomTransformer
                | UpdateCustomTransformer
                | DeleteCustomTransformer
        )
    }

    /// How the wire element maps onto local fields.
    fn layout(self) -> Layout {
        use CommandType::*;
        use Content::{Absent, Array, Object, OptionalObject};
        let l = |content, fields| Layout { content, fields };
        match self {
            UpdateVersion => l(OptionalObject, &[]),
            RestartEngine | RegenerateCipherKeys => l(Absent, &[]),
            UpdateEngineGeneral
            | UpdateEngineWebServer
            | UpdateEngineProxy
            | UpdateEngineLogger
            | UpdateRegistrationSettings
            | CreateScanMode
            | CreateIpFilter
            | CreateCertificate
            | CreateCustomTransformer
            | TestCustomTransformer => l(Object, &[]),
            UpdateScanMode => l(Object, &[SCAN_MODE_ID]),
            DeleteScanMode => l(OptionalObject, &[SCAN_MODE_ID]),
            UpdateIpFilter => l(Object, &[IP_FILTER_ID]),
            DeleteIpFilter => l(OptionalObject, &[IP_FILTER_ID]),
            UpdateCertificate => l(Object, &[CERTIFICATE_ID]),
            DeleteCertificate => l(OptionalObject, &[CERTIFICATE_ID]),
            CreateSouth => l(Object, &[FROM_SOUTH]),
            UpdateSouth | TestSouthConnection => l(Object, &[SOUTH_ID]),
            DeleteSouth => l(OptionalObject, &[SOUTH_ID]),
            TestSouthItem => l(Object, &[SOUTH_ID, ITEM_ID]),
            CreateOrUpdateSouthItemsFromCsv => {
                l(Absent, &[SOUTH_ID, CSV_DELETE, CSV_CONTENT, CSV_DELIMITER])
            }
            CreateNorth => l(Object, &[FROM_NORTH]),
            UpdateNorth
            | TestNorthConnection
            | SearchNorthCacheContent
            | GetNorthCacheFileContent
            | UpdateNorthCacheContent => l(Object, &[NORTH_ID]),
            DeleteNorth => l(OptionalObject, &[NORTH_ID]),
            CreateHistoryQuery => l(Object, &[FROM_SOUTH, FROM_NORTH, FROM_HISTORY]),
            UpdateHistoryQuery => l(Object, &[HISTORY_ID]),
            DeleteHistoryQuery => l(OptionalObject, &[HISTORY_ID]),
            TestHistoryQueryNorthConnection => l(Object, &[HISTORY_ID, NORTH_ID]),
            TestHistoryQuerySouthConnection => l(Object, &[HISTORY_ID, SOUTH_ID]),
            TestHistoryQuerySouthItem => l(Object, &[HISTORY_ID, SOUTH_ID, ITEM_ID]),
            CreateOrUpdateHistoryQuerySouthItemsFromCsv => l(
                Absent,
                &[HISTORY_ID, CSV_DELETE, CSV_CONTENT, CSV_DELIMITER],
            ),
            UpdateHistoryQueryStatus => l(Absent, &[HISTORY_ID, HISTORY_STATUS]),
            Setpoint => l(Array, &[NORTH_ID]),
            SearchHistoryCacheContent | GetHistoryCacheFileContent | UpdateHistoryCacheContent => {
                l(Object, &[HISTORY_QUERY_ID])
            }
            UpdateCustomTransformer | TestTransformer => l(Object, &[TRANSFORMER_ID]),
            DeleteCustomTransformer => l(OptionalObject, &[TRANSFORMER_ID]),
        }
    }

    /// Map a received element (already known to be an object of this type) onto the local
    /// fields of its record, checking field types. The error names the field at fault.
    pub fn local_fields(self, element: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        let layout = self.layout();
        let mut local = Map::new();
        let mut content = match (layout.content, element.get(CONTENT)) {
            (Content::Absent, _) => None,
            (Content::Object | Content::OptionalObject, Some(Value::Object(cc))) => {
                Some(cc.clone())
            }
            (Content::Array, Some(v @ Value::Array(_))) => {
                local.insert(CONTENT.into(), v.clone());
                None
            }
            (Content::OptionalObject, None | Some(Value::Null)) => None,
            (Content::Object, None) | (Content::Array, None) => {
                return Err(format!("field '{CONTENT}' is missing"))
            }
            (expected, Some(found)) => {
                return Err(format!(
                    "field '{CONTENT}' must be {}, found {}",
                    expected.describe(),
                    kind_of(found)
                ))
            }
        };
        for field in layout.fields {
            let value = element.get(field.wire).unwrap_or(&Value::Null);
            let value = field.shape.check(field.wire, value)?;
            if field.into_content {
                content
                    .get_or_insert_with(Map::new)
                    .insert(field.local.into(), value);
            } else {
                local.insert(field.local.into(), value);
            }
        }
        if self == CommandType::UpdateVersion {
            content = Some(update_version_content(element, content)?);
        }
        if let Some(cc) = content {
            local.insert(CONTENT.into(), Value::Object(cc));
        }
        Ok(local)
    }
}

/// `update-version` carries `{version, assetId, updateLauncher, backupFoldersPattern}`, in
/// `commandContent` or at the top level; locally `backupFoldersPattern` becomes `backupFolders`.
fn update_version_content(
    element: &Map<String, Value>,
    content: Option<Map<String, Value>>,
) -> Result<Map<String, Value>, String> {
    let source = content.unwrap_or_default();
    let pick = |key: &str| {
        source
            .get(key)
            .or_else(|| element.get(key))
            .unwrap_or(&Value::Null)
    };
    let mut out = Map::new();
    out.insert(
        "version".into(),
        Shape::Str.check("version", pick("version"))?,
    );
    out.insert(
        "assetId".into(),
        Shape::Str.check("assetId", pick("assetId"))?,
    );
    out.insert(
        "updateLauncher".into(),
        Shape::OptBool.check("updateLauncher", pick("updateLauncher"))?,
    );
    let backup = match pick("backupFoldersPattern") {
        Value::Null => pick("backupFolders"),
        v => v,
    };
    out.insert(
        "backupFolders".into(),
        Shape::OptStr.check("backupFoldersPattern", backup)?,
    );
    Ok(out)
}

/// The local (and wire) name of the command's payload.
pub const CONTENT: &str = "commandContent";

#[derive(Debug, Clone, Copy)]
enum Content {
    Absent,
    Object,
    OptionalObject,
    Array,
}

impl Content {
    fn describe(self) -> &'static str {
        match self {
            Content::Absent => "absent",
            Content::Object | Content::OptionalObject => "an object",
            Content::Array => "an array",
        }
    }
}

struct Layout {
    content: Content,
    fields: &'static [Field],
}

/// One top-level wire field and its local name.
struct Field {
    wire: &'static str,
    local: &'static str,
    shape: Shape,
    /// Moved into the local `commandContent` (the CSV commands).
    into_content: bool,
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A non-empty string.
    Str,
    /// A string or null; null is kept.
    OptStr,
    /// A string or null; null becomes `""` (`retrieveSecretsFrom*`, as OIBus stores them).
    IdOrEmpty,
    Bool,
    OptBool,
}

impl Shape {
    fn check(self, name: &str, value: &Value) -> Result<Value, String> {
        let wrong = |expected: &str| {
            Err(format!(
                "field '{name}' must be {expected}, found {}",
                kind_of(value)
            ))
        };
        match (self, value) {
            (Shape::Str, Value::String(s)) if !s.is_empty() => Ok(value.clone()),
            (Shape::Str, Value::String(_)) => Err(format!("field '{name}' must not be empty")),
            (Shape::Str, Value::Null) => Err(format!("field '{name}' is missing")),
            (Shape::Str, _) => wrong("a string"),
            (Shape::OptStr, Value::String(_) | Value::Null) => Ok(value.clone()),
            (Shape::OptStr, _) => wrong("a string or null"),
            (Shape::IdOrEmpty, Value::String(_)) => Ok(value.clone()),
            (Shape::IdOrEmpty, Value::Null) => Ok(Value::String(String::new())),
            (Shape::IdOrEmpty, _) => wrong("a string or null"),
            (Shape::Bool, Value::Bool(_)) => Ok(value.clone()),
            (Shape::Bool, Value::Null) => Err(format!("field '{name}' is missing")),
            (Shape::Bool, _) => wrong("a boolean"),
            (Shape::OptBool, Value::Bool(_) | Value::Null) => Ok(value.clone()),
            (Shape::OptBool, _) => wrong("a boolean or null"),
        }
    }
}

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

const fn id(wire: &'static str, local: &'static str) -> Field {
    Field {
        wire,
        local,
        shape: Shape::Str,
        into_content: false,
    }
}

const fn from(wire: &'static str, local: &'static str) -> Field {
    Field {
        wire,
        local,
        shape: Shape::IdOrEmpty,
        into_content: false,
    }
}

const SCAN_MODE_ID: Field = id("scanModeId", "scanModeId");
const IP_FILTER_ID: Field = id("ipFilterId", "ipFilterId");
const CERTIFICATE_ID: Field = id("certificateId", "certificateId");
const SOUTH_ID: Field = id("southConnectorId", "southConnectorId");
const NORTH_ID: Field = id("northConnectorId", "northConnectorId");
const ITEM_ID: Field = id("itemId", "itemId");
const HISTORY_ID: Field = id("historyId", "historyQueryId");
const HISTORY_QUERY_ID: Field = id("historyQueryId", "historyQueryId");
const TRANSFORMER_ID: Field = id("transformerId", "transformerId");
const HISTORY_STATUS: Field = id("historyQueryStatus", "historyQueryStatus");
const FROM_SOUTH: Field = from("retrieveSecretsFromSouth", "southConnectorId");
const FROM_NORTH: Field = from("retrieveSecretsFromNorth", "northConnectorId");
const FROM_HISTORY: Field = from("retrieveSecretsFromHistoryQuery", "historyQueryId");
const CSV_DELETE: Field = Field {
    wire: "deleteItemsNotPresent",
    local: "deleteItemsNotPresent",
    shape: Shape::Bool,
    into_content: true,
};
const CSV_CONTENT: Field = Field {
    wire: "csvContent",
    local: "csvContent",
    shape: Shape::OptStr,
    into_content: true,
};
const CSV_DELIMITER: Field = Field {
    wire: "delimiter",
    local: "delimiter",
    shape: Shape::Str,
    into_content: true,
};

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

    #[test]
    fn create_south_stores_retrieve_secrets_from_as_the_local_south_id() {
        let element = obj(json!({
            "id": "c1", "type": "create-south", "targetVersion": "1",
            "retrieveSecretsFromSouth": null, "commandContent": {"name": "s"}, "extra": 1
        }));
        let local = CommandType::CreateSouth.local_fields(&element).unwrap();
        assert_eq!(
            Value::Object(local),
            json!({"southConnectorId": "", "commandContent": {"name": "s"}})
        );
    }

    #[test]
    fn history_id_becomes_history_query_id_and_csv_fields_go_into_the_content() {
        let element = obj(json!({
            "historyId": "h1", "deleteItemsNotPresent": true, "csvContent": "a;b", "delimiter": ";"
        }));
        let local = CommandType::CreateOrUpdateHistoryQuerySouthItemsFromCsv
            .local_fields(&element)
            .unwrap();
        assert_eq!(
            Value::Object(local),
            json!({"historyQueryId": "h1", "commandContent": {
                "deleteItemsNotPresent": true, "csvContent": "a;b", "delimiter": ";"}})
        );
        let status = obj(json!({"historyId": "h1", "historyQueryStatus": "RUNNING"}));
        assert_eq!(
            Value::Object(
                CommandType::UpdateHistoryQueryStatus
                    .local_fields(&status)
                    .unwrap()
            ),
            json!({"historyQueryId": "h1", "historyQueryStatus": "RUNNING"})
        );
    }

    #[test]
    fn update_version_accepts_its_fields_in_the_content_or_at_the_top() {
        let expected = json!({"commandContent": {
            "version": "v1.2.3", "assetId": "a1", "updateLauncher": false, "backupFolders": "cache/*"}});
        let nested = obj(json!({"commandContent": {
            "version": "v1.2.3", "assetId": "a1", "updateLauncher": false,
            "backupFoldersPattern": "cache/*"}}));
        let top = obj(json!({
            "version": "v1.2.3", "assetId": "a1", "updateLauncher": false,
            "backupFoldersPattern": "cache/*"}));
        for element in [nested, top] {
            assert_eq!(
                Value::Object(CommandType::UpdateVersion.local_fields(&element).unwrap()),
                expected
            );
        }
    }

    #[test]
    fn wrong_field_types_are_named() {
        let err = CommandType::UpdateScanMode
            .local_fields(&obj(json!({"scanModeId": 3, "commandContent": {}})))
            .unwrap_err();
        assert_eq!(err, "field 'scanModeId' must be a string, found a number");
        let err = CommandType::CreateScanMode
            .local_fields(&obj(json!({"commandContent": "x"})))
            .unwrap_err();
        assert_eq!(
            err,
            "field 'commandContent' must be an object, found a string"
        );
        let err = CommandType::CreateScanMode
            .local_fields(&obj(json!({})))
            .unwrap_err();
        assert_eq!(err, "field 'commandContent' is missing");
        let err = CommandType::Setpoint
            .local_fields(&obj(json!({"northConnectorId": "n", "commandContent": {}})))
            .unwrap_err();
        assert_eq!(
            err,
            "field 'commandContent' must be an array, found an object"
        );
    }

    #[test]
    fn delete_commands_need_no_content_and_restart_keeps_none() {
        let local = CommandType::DeleteScanMode
            .local_fields(&obj(json!({"scanModeId": "s"})))
            .unwrap();
        assert_eq!(Value::Object(local), json!({"scanModeId": "s"}));
        let local = CommandType::RestartEngine
            .local_fields(&obj(json!({"commandContent": {"ignored": true}})))
            .unwrap();
        assert!(local.is_empty());
    }

    #[test]
    fn only_configuration_commands_are_supported() {
        let supported: Vec<_> = CommandType::ALL
            .iter()
            .filter(|t| t.is_supported())
            .collect();
        assert_eq!(supported.len(), 30);
        assert!(!CommandType::TestSouthConnection.is_supported());
        assert!(!CommandType::Setpoint.is_supported());
        assert!(CommandType::CreateCustomTransformer.is_supported());
        assert!(CommandType::UpdateCustomTransformer.is_supported());
        assert!(CommandType::DeleteCustomTransformer.is_supported());
        assert!(!CommandType::TestCustomTransformer.is_supported());
        assert!(!CommandType::TestTransformer.is_supported());
    }
}
