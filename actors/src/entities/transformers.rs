//! Transformers (data-plane §5): the 15 standard ones and the custom ones that
//! `create-custom-transformer` makes. One entity kind for both, as OIBus keeps both in one
//! table, so a north's `transformerId` resolves against either.
//!
//! OIBus seeds each standard transformer once with a random 6-character id
//! (`transformer.repository.ts` `createStandardTransformers`); OIA learns those ids from E6 and
//! puts them in north commands. So the ids are random like OIBus's, generated once at seed time
//! and kept in the store: the same for as long as the data folder lives.
//!
//! The manifests are static facts: `standard.json` holds what OIBus b5b672c83 sends in E6
//! (`functionName`, `inputType`, `outputType`, `manifest`), in the order it lists them.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Audit, Entity, EntityKind, EntityStore, Result};
use crate::store::Batch;

/// A transformer: `definition` tells standard from custom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transformer {
    pub id: String,
    pub input_type: String,
    pub output_type: String,
    pub definition: TransformerDefinition,
    pub audit: Audit,
}

impl Entity for Transformer {
    const KIND: EntityKind = EntityKind::Transformer;
    fn id(&self) -> &str {
        &self.id
    }
    /// Only custom transformers have names (unique among them, as OIBus checks).
    fn unique_name(&self) -> Option<&str> {
        match &self.definition {
            TransformerDefinition::Custom(custom) => Some(&custom.name),
            TransformerDefinition::Standard { .. } => None,
        }
    }
    fn audit(&self) -> &Audit {
        &self.audit
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TransformerDefinition {
    Standard {
        #[serde(rename = "functionName")]
        function_name: String,
    },
    Custom(CustomTransformer),
}

/// What a custom transformer holds besides its types: `{name, description, language, timeout
/// (ms), customCode, customManifest}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomTransformer {
    pub name: String,
    pub description: String,
    pub language: String,
    pub timeout: u64,
    pub custom_code: String,
    pub custom_manifest: Value,
}

impl Transformer {
    pub fn is_standard(&self) -> bool {
        matches!(self.definition, TransformerDefinition::Standard { .. })
    }
}

/// One entry of the standard catalogue.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandardTransformer {
    pub function_name: String,
    pub input_type: String,
    pub output_type: String,
    pub manifest: Value,
}

const STANDARD_JSON: &str = include_str!("transformers/standard.json");

/// The 15 standard transformers, in OIBus's E6 order. Static data checked by a unit test; if it
/// ever failed to parse, the list is empty and the error logged (no panic at run time).
pub fn standard_catalogue() -> &'static [StandardTransformer] {
    static CATALOGUE: OnceLock<Vec<StandardTransformer>> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        serde_json::from_str(STANDARD_JSON).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the standard transformer catalogue does not parse");
            Vec::new()
        })
    })
}

/// The catalogue entry of a standard function, with its position in the catalogue.
pub fn standard(function_name: &str) -> Option<(usize, &'static StandardTransformer)> {
    standard_catalogue()
        .iter()
        .enumerate()
        .find(|(_, s)| s.function_name == function_name)
}

/// Stage a standard transformer for every catalogue function the store lacks, each with a fresh
/// random id; those already stored keep theirs. Part of [`EntityStore::seed`].
pub(super) fn stage_standard_seed(
    entities: &EntityStore,
    batch: &mut Batch,
    audit: &Audit,
) -> Result<()> {
    let stored = entities.list::<Transformer>()?;
    let mut taken: Vec<String> = stored.iter().map(|t| t.id.clone()).collect();
    for entry in standard_catalogue() {
        let present = stored.iter().any(|t| {
            matches!(&t.definition, TransformerDefinition::Standard { function_name }
                if *function_name == entry.function_name)
        });
        if present {
            continue;
        }
        let mut id = crate::random_id(6);
        while taken.contains(&id) {
            id = crate::random_id(6);
        }
        taken.push(id.clone());
        let transformer = Transformer {
            id,
            input_type: entry.input_type.clone(),
            output_type: entry.output_type.clone(),
            definition: TransformerDefinition::Standard {
                function_name: entry.function_name.clone(),
            },
            audit: audit.clone(),
        };
        entities.stage_put(batch, None, &transformer)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_the_15_oibus_functions_each_with_an_object_manifest() {
        let catalogue = standard_catalogue();
        assert_eq!(catalogue.len(), 15);
        for entry in catalogue {
            assert_eq!(entry.manifest["type"], "object", "{}", entry.function_name);
            assert_eq!(entry.manifest["key"], "options", "{}", entry.function_name);
        }
        let mut names: Vec<_> = catalogue.iter().map(|s| s.function_name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 15);
        assert_eq!(
            standard("time-values-to-oianalytics").map(|(_, s)| s.output_type.as_str()),
            Some("oianalytics")
        );
    }
}
