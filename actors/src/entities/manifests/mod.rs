//! The item `settings` attributes of each south type, as OIBus 3.8.8's manifests declare them
//! (`backend/src/south/*/manifest.ts`, `items.rootAttribute.attributes[key = settings]`). Kept as
//! static data, trimmed to what validation reads: key, type, the validators OIBus's Joi schema
//! honours (REQUIRED, PATTERN, MINIMUM, MAXIMUM, PLATFORM), select values, enabling conditions
//! and nested attributes. The CSV item import types its `settings_<key>` columns from these.

use serde::Deserialize;

/// One manifest attribute.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub validators: Vec<Validator>,
    #[serde(default)]
    pub selectable_values: Vec<String>,
    /// Object attributes: the children made required by a sibling's value.
    #[serde(default)]
    pub enabling_conditions: Vec<EnablingCondition>,
    /// Object attributes: the children.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Array attributes: the element.
    #[serde(default)]
    pub root_attribute: Option<Box<Attribute>>,
}

impl Attribute {
    pub fn is_required(&self) -> bool {
        self.validators.iter().any(|v| v.kind == "REQUIRED")
    }

    /// The first argument of validator `kind`, if the attribute has one.
    pub fn argument(&self, kind: &str) -> Option<&str> {
        self.validators
            .iter()
            .find(|v| v.kind == kind)
            .and_then(|v| v.arguments.first())
            .map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Validator {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub arguments: Vec<String>,
}

/// `target` is required when the sibling `referral` has one of `values`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EnablingCondition {
    pub referral: String,
    pub target: String,
    pub values: Vec<serde_json::Value>,
}

macro_rules! south_item_manifests {
    ($($name:literal,)*) => {
        /// The south types whose item settings are known.
        pub const SOUTH_TYPES: &[&str] = &[$($name,)*];

        fn source(south_type: &str) -> Option<&'static str> {
            match south_type {
                $($name => Some(include_str!(concat!("south_items/", $name, ".json"))),)*
                _ => None,
            }
        }
    };
}

south_item_manifests! {
    "ads",
    "folder-scanner",
    "ftp",
    "influxdb",
    "modbus",
    "mqtt",
    "mssql",
    "mysql",
    "odbc",
    "oianalytics",
    "oledb",
    "opc",
    "opcua",
    "oracle",
    "osisoft-pi",
    "postgresql",
    "rest",
    "sftp",
    "sqlite",
}

/// The item `settings` attribute (an object) of `south_type`; `None` for a type OIBus 3.8.8 does
/// not have. The data is compiled in and checked by a test, so a parse failure cannot happen at
/// run time; it is still reported as `None` rather than a panic.
pub fn south_item_settings(south_type: &str) -> Option<Attribute> {
    serde_json::from_str(source(south_type)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_south_item_manifest_parses_as_a_settings_object() {
        for t in SOUTH_TYPES {
            let settings = south_item_settings(t).unwrap_or_else(|| panic!("{t} does not parse"));
            assert_eq!(settings.key, "settings", "{t}");
            assert_eq!(settings.kind, "object", "{t}");
            assert!(!settings.attributes.is_empty(), "{t}");
        }
        assert_eq!(SOUTH_TYPES.len(), 19);
        assert!(south_item_settings("steam-engine").is_none());
    }

    #[test]
    fn opcua_items_need_a_node_id_and_a_mode() {
        let s = south_item_settings("opcua").unwrap();
        let node_id = s.attributes.iter().find(|a| a.key == "nodeId").unwrap();
        assert!(node_id.is_required());
        let mode = s.attributes.iter().find(|a| a.key == "mode").unwrap();
        assert_eq!(mode.selectable_values, ["ha", "da"]);
    }
}
