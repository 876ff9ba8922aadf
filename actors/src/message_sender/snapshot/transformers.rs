//! E6 `transformers`, in OIBus's shape (`oianalytics-message.service.ts`
//! `createTransformersCommand`): a standard one is `{oIBusInternalId, type, settings{functionName,
//! inputType, outputType}, manifest}` (no audit fields), a custom one `{A, type, settings{name,
//! description, inputType, language, timeout, outputType, customCode}, manifest}`.

use serde::Serialize;
use serde_json::Value;

use super::{Audited, SnapshotError};
use crate::entities::transformers::{self, Transformer, TransformerDefinition};
use crate::entities::{Entity, EntityStore};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TransformerEntry {
    Standard {
        #[serde(rename = "oIBusInternalId")]
        internal_id: String,
        #[serde(rename = "type")]
        kind: &'static str,
        settings: StandardSettingsOut,
        manifest: Value,
    },
    Custom {
        #[serde(flatten)]
        audit: Audited,
        #[serde(rename = "type")]
        kind: &'static str,
        settings: CustomSettingsOut,
        manifest: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StandardSettingsOut {
    pub function_name: String,
    pub input_type: String,
    pub output_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomSettingsOut {
    pub name: String,
    pub description: String,
    pub input_type: String,
    pub language: String,
    pub timeout: u64,
    pub output_type: String,
    pub custom_code: String,
}

/// Standard transformers first in catalogue order, then custom ones in creation order (OIBus
/// lists its rows in insertion order, and seeds the standard ones first). A stored standard
/// function the catalogue no longer has is left out: it has no manifest to send.
pub fn entries(entities: &EntityStore) -> Result<Vec<TransformerEntry>, SnapshotError> {
    let mut keyed: Vec<((usize, String, String), TransformerEntry)> = Vec::new();
    for t in entities.list::<Transformer>()? {
        let Transformer {
            id,
            input_type,
            output_type,
            definition,
            audit,
        } = t.clone();
        match definition {
            TransformerDefinition::Standard { function_name } => {
                let Some((position, entry)) = transformers::standard(&function_name) else {
                    continue;
                };
                keyed.push((
                    (position, String::new(), id.clone()),
                    TransformerEntry::Standard {
                        internal_id: id,
                        kind: "standard",
                        settings: StandardSettingsOut {
                            function_name,
                            input_type,
                            output_type,
                        },
                        manifest: entry.manifest.clone(),
                    },
                ));
            }
            TransformerDefinition::Custom(custom) => {
                keyed.push((
                    (usize::MAX, audit.created_at.clone(), id.clone()),
                    TransformerEntry::Custom {
                        audit: Audited::new(t.id(), &audit),
                        kind: "custom",
                        settings: CustomSettingsOut {
                            name: custom.name,
                            description: custom.description,
                            input_type,
                            language: custom.language,
                            timeout: custom.timeout,
                            output_type,
                            custom_code: custom.custom_code,
                        },
                        manifest: custom.custom_manifest,
                    },
                ));
            }
        }
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keyed.into_iter().map(|(_, entry)| entry).collect())
}
