//! OIBus 3.6+ `caching` settings (`north-connector.model.ts`), read from the stored
//! `NorthConnector.caching` / `HistoryQuery.caching` JSON. Every field is optional and takes the
//! default OIBus's UI proposes (`edit-north.component.ts`), so an older or partial record still
//! opens; `null` counts as absent.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::CacheError;

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CachingSettings {
    pub trigger: Trigger,
    pub throttling: Throttling,
    pub error: ErrorSettings,
    pub archive: ArchiveSettings,
}

/// When a send run starts besides the scan mode: enough elements or enough raw files queued.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Trigger {
    pub scan_mode_id: Option<String>,
    pub number_of_elements: u64,
    pub number_of_files: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Throttling {
    /// Milliseconds between two runs.
    pub run_min_delay: u64,
    /// MB over cache + error + archive; 0 = unlimited.
    pub max_size: u64,
    /// Elements per sent batch (and per cache entry); 0 = no limit.
    pub max_number_of_elements: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorSettings {
    /// Milliseconds between two attempts at the same batch.
    pub retry_interval: u64,
    pub retry_count: u64,
    /// Hours an entry stays in the error area; 0 = forever.
    pub retention_duration: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArchiveSettings {
    pub enabled: bool,
    /// Hours an entry stays in the archive; 0 = forever.
    pub retention_duration: u64,
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger {
            scan_mode_id: None,
            number_of_elements: 1000,
            number_of_files: 1,
        }
    }
}

impl Default for Throttling {
    fn default() -> Self {
        Throttling {
            run_min_delay: 200,
            max_size: 0,
            max_number_of_elements: 10_000,
        }
    }
}

impl Default for ErrorSettings {
    fn default() -> Self {
        ErrorSettings {
            retry_interval: 5000,
            retry_count: 3,
            retention_duration: 0,
        }
    }
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        ArchiveSettings {
            enabled: false,
            retention_duration: 72,
        }
    }
}

impl CachingSettings {
    /// Reads the stored `caching` JSON; `null` (no caching section) gives the defaults.
    pub fn from_value(v: &Value) -> Result<CachingSettings, CacheError> {
        if v.is_null() {
            return Ok(CachingSettings::default());
        }
        serde_path_to_error::deserialize(without_nulls(v)).map_err(|e| CacheError::Settings {
            field: e.path().to_string(),
            reason: e.inner().to_string(),
        })
    }

    /// The size limit in bytes; `None` when unlimited.
    pub fn max_size_bytes(&self) -> Option<u64> {
        (self.throttling.max_size > 0).then(|| self.throttling.max_size.saturating_mul(1 << 20))
    }

    /// Elements per entry and per batch; `None` when unlimited.
    pub fn max_elements(&self) -> Option<usize> {
        (self.throttling.max_number_of_elements > 0)
            .then(|| usize::try_from(self.throttling.max_number_of_elements).unwrap_or(usize::MAX))
    }

    pub fn run_min_delay(&self) -> Duration {
        Duration::from_millis(self.throttling.run_min_delay)
    }

    pub fn retry_interval(&self) -> Duration {
        Duration::from_millis(self.error.retry_interval)
    }
}

/// `v` without its `null` members, so that a `null` takes the field's own default.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
