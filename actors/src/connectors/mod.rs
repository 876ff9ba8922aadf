//! The connector drivers of the data plane (data-plane §1, §2): what a south reads and what a
//! north does with one cache entry, without actors, schedules or caches (the south and north
//! actors own those and call these drivers).
//!
//! - [`north_oianalytics::OiaNorth`]: values and files to OIAnalytics (§2);
//! - [`north_console::ConsoleNorth`]: a summary or the content on stdout;
//! - [`north_file_writer::FileWriterNorth`]: each entry as a file in a folder, atomically;
//! - [`north_modbus::ModbusNorth`]: coils and registers written to a Modbus TCP server;
//! - [`north_opcua::OpcuaNorth`]: values written to the nodes of an OPC UA server;
//! - [`south_folder_scanner::FolderScanner`]: the files of a folder, per item pattern;
//! - [`south_modbus::ModbusSouth`]: registers and coils of a Modbus TCP server;
//! - [`south_mqtt::MqttSouth`]: the messages of MQTT topics, acknowledged once cached;
//! - [`south_opcua::OpcuaSouth`]: the nodes of an OPC UA server, read, subscribed or history-read.
//!
//! A north's `send` answers a [`Delivery`], which carries OIBus's retry rule: the actor keeps a
//! [`Delivery::Retry`] at the head of its queue forever and counts a [`Delivery::Failed`]
//! against `error.retryCount`.

pub mod north_console;
pub mod north_file_writer;
pub mod north_modbus;
pub mod north_mqtt;
pub mod north_oianalytics;
pub mod north_opcua;
pub mod south_folder_scanner;
pub mod south_modbus;
pub mod south_mqtt;
pub mod south_opcua;

use std::path::PathBuf;

use serde_json::Value;

use crate::content::ContentType;
use crate::key_vault::{GetLocalCipher, KeyVault, LocalCipher};
use crate::supervision::Peers;
use crate::Secret;

/// What one delivery attempt gave (data-plane §2 status rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// forceRetry codes 401, 403, 404, 407, 408, 429, 500, 502, 503, 504, 511 and network
    /// errors: retry forever.
    Retry(String),
    /// Any other status: counts toward retryCount. Texts as OIBus: `Error <code>: <body>`.
    Failed(String),
}

/// The statuses OIBus retries forever (`http-request.utils.ts` `retryableHttpStatusCodes`).
pub const FORCE_RETRY_STATUSES: [u16; 11] = [401, 403, 404, 407, 408, 429, 500, 502, 503, 504, 511];

impl Delivery {
    /// The outcome of an HTTP answer with `status` and `body`, as OIBus classifies it.
    pub fn from_status(status: u16, body: &str) -> Delivery {
        if (200..300).contains(&status) {
            return Delivery::Sent;
        }
        let message = format!("Error {status}: {body}");
        if FORCE_RETRY_STATUSES.contains(&status) {
            Delivery::Retry(message)
        } else {
            Delivery::Failed(message)
        }
    }
}

/// The `[{…}]` writes of a north that takes only `accepted` content (modbus, MQTT, OPC UA);
/// other content, or a body that is not `what`, counts toward retryCount.
pub(crate) fn writes_of<T: serde::de::DeserializeOwned>(
    label: &str,
    (accepted, what): (ContentType, &str),
    content_type: ContentType,
    body: &[u8],
) -> Result<Vec<T>, Delivery> {
    if content_type != accepted {
        return Err(Delivery::Failed(format!(
            "Content type {content_type} is not supported by north {accepted}"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| Delivery::Failed(format!("{label}: the content is not {what} ({e})")))
}

/// Why a connector cannot be built or cannot run: what, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error(
        "{connector}: settings.{key} {problem}; correct the connector's settings in OIAnalytics"
    )]
    Settings {
        connector: String,
        key: String,
        problem: String,
    },

    #[error("{connector}: {feature} is not supported by this agent; {advice}")]
    Unsupported {
        connector: String,
        feature: String,
        advice: String,
    },

    #[error(
        "{connector}: cannot open the sealed secret settings.{key}: {reason}; the key vault may \
         have been replaced: enter the secret again in OIAnalytics"
    )]
    Secret {
        connector: String,
        key: String,
        reason: String,
    },

    #[error("{connector}: cannot {action} {}: {source}; check that it exists and the agent's user may use it", path.display())]
    Io {
        connector: String,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{connector}: item {item}: settings.regex {regex:?} is not a valid pattern ({reason}); correct the item in OIAnalytics")]
    Regex {
        connector: String,
        item: String,
        regex: String,
        reason: String,
    },

    #[error("{connector}: the agent's store failed: {source}; see the engine log")]
    Store {
        connector: String,
        #[source]
        source: crate::store::StoreError,
    },
}

impl ConnectorError {
    pub(crate) fn settings(connector: &str, key: &str, problem: impl Into<String>) -> Self {
        ConnectorError::Settings {
            connector: connector.to_owned(),
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(
        connector: &str,
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ConnectorError::Io {
            connector: connector.to_owned(),
            action,
            path: path.into(),
            source,
        }
    }
}

/// Typed reads of a settings object, naming the key in every error.
pub(crate) struct SettingsReader<'a> {
    connector: &'a str,
    settings: &'a Value,
}

impl<'a> SettingsReader<'a> {
    pub(crate) fn new(connector: &'a str, settings: &'a Value) -> Self {
        SettingsReader {
            connector,
            settings,
        }
    }

    /// `key` is a dotted path (`specificSettings.host`); absent and `null` are the same.
    fn get(&self, key: &str) -> Option<&'a Value> {
        key.split('.')
            .try_fold(self.settings, |value, part| value.get(part))
            .filter(|value| !value.is_null())
    }

    fn wrong(&self, key: &str, expected: &str) -> ConnectorError {
        ConnectorError::settings(self.connector, key, format!("must be {expected}"))
    }

    pub(crate) fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConnectorError> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value
                .as_bool()
                .ok_or_else(|| self.wrong(key, "true or false")),
        }
    }

    /// A non-negative number; OIBus's forms send numbers, but a numeric string is accepted.
    pub(crate) fn u64_or(&self, key: &str, default: u64) -> Result<u64, ConnectorError> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(default),
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map_err(|_| self.wrong(key, "a non-negative integer")),
            Some(value) => value
                .as_u64()
                .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                .ok_or_else(|| self.wrong(key, "a non-negative integer")),
        }
    }

    pub(crate) fn string_or(&self, key: &str, default: &str) -> Result<String, ConnectorError> {
        match self.get(key) {
            None => Ok(default.to_owned()),
            Some(value) => value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| self.wrong(key, "a string")),
        }
    }

    pub(crate) fn required_string(&self, key: &str) -> Result<String, ConnectorError> {
        match self.get(key).map(|value| value.as_str()) {
            Some(Some(text)) if !text.trim().is_empty() => Ok(text.to_owned()),
            Some(None) => Err(self.wrong(key, "a string")),
            _ => Err(ConnectorError::settings(
                self.connector,
                key,
                "is required and missing",
            )),
        }
    }
}

/// A secret setting as stored: sealed with the vault's local key, or empty.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sealed {
    key: String,
    sealed: Option<String>,
}

impl Sealed {
    pub(crate) fn read(reader: &SettingsReader<'_>, key: &str) -> Result<Sealed, ConnectorError> {
        let sealed = reader.string_or(key, "")?;
        Ok(Sealed {
            key: key.to_owned(),
            sealed: (!sealed.is_empty()).then_some(sealed),
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sealed.is_none()
    }

    /// The plain secret (empty when none was set).
    pub(crate) fn open(
        &self,
        connector: &str,
        cipher: Option<&LocalCipher>,
    ) -> Result<Secret<String>, ConnectorError> {
        let Some(sealed) = &self.sealed else {
            return Ok(Secret::new(String::new()));
        };
        let failed = |reason: String| ConnectorError::Secret {
            connector: connector.to_owned(),
            key: self.key.clone(),
            reason,
        };
        let cipher = cipher.ok_or_else(|| failed("the key vault is not running".into()))?;
        cipher
            .open_secret(sealed)
            .map_err(|e| failed(e.to_string()))
    }
}

/// `bytes` gzipped at `level` (0-9), in memory: cache entries are bounded by compaction.
pub(crate) fn gzip(bytes: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4 + 64),
        flate2::Compression::new(level),
    );
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// The key vault's local cipher, which opens the secrets sealed in connector settings.
pub(crate) async fn local_cipher(peers: &Peers) -> Option<LocalCipher> {
    peers.get::<KeyVault>()?.send(GetLocalCipher).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundreds_are_sent() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(Delivery::from_status(status, ""), Delivery::Sent);
        }
    }

    #[test]
    fn force_retry_statuses_are_retried_forever_with_oibus_text() {
        for status in FORCE_RETRY_STATUSES {
            assert_eq!(
                Delivery::from_status(status, "busy"),
                Delivery::Retry(format!("Error {status}: busy"))
            );
        }
    }

    #[test]
    fn other_statuses_count_toward_retry_count() {
        for status in [300, 400, 402, 405, 409, 413, 415, 422, 501, 505, 599] {
            assert_eq!(
                Delivery::from_status(status, "no"),
                Delivery::Failed(format!("Error {status}: no"))
            );
        }
    }

    #[test]
    fn settings_reader_names_the_key_at_fault() {
        let settings = serde_json::json!({"a": {"b": "x"}, "n": "12", "f": 1.5, "t": null});
        let reader = SettingsReader::new("north 'n1'", &settings);
        assert_eq!(reader.required_string("a.b").unwrap(), "x");
        assert_eq!(reader.u64_or("n", 0).unwrap(), 12);
        assert_eq!(reader.u64_or("f", 0).unwrap(), 1);
        assert_eq!(reader.u64_or("t", 7).unwrap(), 7);
        let err = reader.bool_or("a.b", false).unwrap_err().to_string();
        assert!(err.contains("settings.a.b must be true or false"), "{err}");
        let err = reader.required_string("a.c").unwrap_err().to_string();
        assert!(err.contains("settings.a.c is required"), "{err}");
    }
}
