//! The `oianalytics` section: where OIAnalytics is and how to reach it (proxy, gateway), the
//! cadences of the calls, answer size, key size, the permission ceiling and the OIBus version
//! announced. Read by the client, registration, the poller and the message sender alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{units, ByteSize, Problems};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OiaConfig {
    /// When set and not registered, registration starts.
    pub host: Option<String>,
    pub accept_unauthorized: bool,
    pub proxy: Option<ProxyConfig>,
    pub api_gateway: Option<GatewayConfig>,
    pub intervals: Intervals,
    /// Largest answer read from OIAnalytics; `commands/pending` returns every pending command
    /// at once (about 300 bytes each).
    pub max_answer_bytes: ByteSize,
    pub key_size: u32,
    /// Ceiling for the 42 command permissions; omitted flags are `true`.
    pub permissions: BTreeMap<String, bool>,
    /// The OIBus version reported to OIAnalytics and matched against `targetVersion`
    /// (`X.Y.Z`); defaults to [`crate::COMPATIBLE_OIBUS_VERSION`].
    pub oibus_version: String,
}

impl Default for OiaConfig {
    fn default() -> Self {
        OiaConfig {
            host: None,
            accept_unauthorized: false,
            proxy: None,
            api_gateway: None,
            intervals: Intervals::default(),
            max_answer_bytes: ByteSize(crate::client::DEFAULT_MAX_BODY_BYTES as u64),
            key_size: 4096,
            permissions: BTreeMap::new(),
            oibus_version: crate::COMPATIBLE_OIBUS_VERSION.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the proxy password (first line, trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Inline password; prefer `password_file`.
    #[serde(default)]
    pub password: Option<Secret<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub base_endpoint: String,
    pub header_key: String,
    #[serde(default)]
    pub header_value_file: Option<PathBuf>,
    #[serde(default)]
    pub header_value: Option<Secret<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Intervals {
    #[serde(with = "units::duration")]
    pub command_refresh: Duration,
    #[serde(with = "units::duration")]
    pub command_retry: Duration,
    #[serde(with = "units::duration")]
    pub message_retry: Duration,
    #[serde(with = "units::duration")]
    pub registration_check: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            command_refresh: Duration::from_secs(60),
            command_retry: Duration::from_secs(5),
            message_retry: Duration::from_secs(5),
            registration_check: Duration::from_secs(10),
        }
    }
}

/// The 42 command permission flags of OIAnalytics (protocol §4.4), in OIBus's order.
pub const PERMISSION_FLAGS: [&str; 42] = [
    "updateVersion",
    "restartEngine",
    "regenerateCipherKeys",
    "updateEngineSettings",
    "updateRegistrationSettings",
    "createScanMode",
    "updateScanMode",
    "deleteScanMode",
    "createIpFilter",
    "updateIpFilter",
    "deleteIpFilter",
    "createCertificate",
    "updateCertificate",
    "deleteCertificate",
    "createHistoryQuery",
    "updateHistoryQuery",
    "deleteHistoryQuery",
    "createOrUpdateHistoryItemsFromCsv",
    "testHistoryNorthConnection",
    "testHistorySouthConnection",
    "testHistorySouthItem",
    "createSouth",
    "updateSouth",
    "deleteSouth",
    "createOrUpdateSouthItemsFromCsv",
    "testSouthConnection",
    "testSouthItem",
    "createNorth",
    "updateNorth",
    "deleteNorth",
    "testNorthConnection",
    "setpoint",
    "searchHistoryCacheContent",
    "getHistoryCacheFileContent",
    "updateHistoryCacheContent",
    "searchNorthCacheContent",
    "getNorthCacheFileContent",
    "updateNorthCacheContent",
    "createCustomTransformer",
    "updateCustomTransformer",
    "deleteCustomTransformer",
    "testCustomTransformer",
];

impl OiaConfig {
    /// The YAML ceiling for one permission flag (omitted = allowed).
    pub fn permission_ceiling(&self, flag: &str) -> bool {
        self.permissions.get(flag).copied().unwrap_or(true)
    }

    /// The proxy password from `password` or `password_file`.
    pub fn proxy_password(&self) -> Result<Option<Secret<String>>, std::io::Error> {
        match &self.proxy {
            Some(p) => read_secret(p.password.as_ref(), p.password_file.as_deref()),
            None => Ok(None),
        }
    }

    /// The gateway header value from `header_value` or `header_value_file`.
    pub fn gateway_header_value(&self) -> Result<Option<Secret<String>>, std::io::Error> {
        match &self.api_gateway {
            Some(g) => read_secret(g.header_value.as_ref(), g.header_value_file.as_deref()),
            None => Ok(None),
        }
    }
}

fn read_secret(
    inline: Option<&Secret<String>>,
    file: Option<&Path>,
) -> Result<Option<Secret<String>>, std::io::Error> {
    if let Some(v) = inline {
        return Ok(Some(v.clone()));
    }
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)?;
            Ok(Some(Secret::new(
                text.trim_end_matches(['\r', '\n']).to_string(),
            )))
        }
        None => Ok(None),
    }
}

impl OiaConfig {
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        if let Some(host) = &self.host {
            if !(host.starts_with("http://") || host.starts_with("https://")) {
                problems.add(
                    format!("{at}.host"),
                    format!("must start with http:// or https://, got {host:?}"),
                );
            } else if let Err(e) = host.parse::<awc::http::Uri>() {
                problems.add(format!("{at}.host"), format!("is not a valid URL: {e}"));
            }
        }
        self.intervals
            .validate(&format!("{at}.intervals"), problems);
        if !(64 * 1024..=1 << 30).contains(&self.max_answer_bytes.0) {
            problems.add(
                format!("{at}.max_answer_bytes"),
                format!(
                    "must be between 64KiB and 1GiB, got {}",
                    self.max_answer_bytes
                ),
            );
        }
        if ![2048, 3072, 4096].contains(&self.key_size) {
            problems.add(
                format!("{at}.key_size"),
                format!("must be one of 2048, 3072, 4096, got {}", self.key_size),
            );
        }
        if !crate::is_release_version(self.oibus_version.as_bytes()) {
            problems.add(
                format!("{at}.oibus_version"),
                format!(
                    "must be an OIBus release version X.Y.Z (e.g. {}), got {:?}",
                    crate::COMPATIBLE_OIBUS_VERSION,
                    self.oibus_version
                ),
            );
        }
        for flag in self.permissions.keys() {
            if !PERMISSION_FLAGS.contains(&flag.as_str()) {
                problems.add(
                    format!("{at}.permissions.{flag}"),
                    "is not a known command permission (see config/agent.yaml for the 42 flags)",
                );
            }
        }
        if let Some(proxy) = &self.proxy {
            proxy.validate(&format!("{at}.proxy"), problems);
        }
        if let Some(gateway) = &self.api_gateway {
            gateway.validate(&format!("{at}.api_gateway"), problems);
        }
    }
}

impl Intervals {
    fn validate(&self, at: &str, problems: &mut Problems) {
        for (name, value) in [
            ("command_refresh", self.command_refresh),
            ("command_retry", self.command_retry),
            ("message_retry", self.message_retry),
            ("registration_check", self.registration_check),
        ] {
            let path = format!("{at}.{name}");
            if value < Duration::from_secs(1) {
                problems.add(
                    path.clone(),
                    format!(
                        "must be at least 1s, got {}",
                        humantime::format_duration(value)
                    ),
                );
            }
            problems.at_most_a_year(&path, value);
        }
    }
}

impl ProxyConfig {
    fn validate(&self, at: &str, problems: &mut Problems) {
        if !self.url.starts_with("http://") {
            problems.add(
                format!("{at}.url"),
                format!("must be an http:// proxy URL, got {:?}", self.url),
            );
        }
        if self.password.is_some() && self.password_file.is_some() {
            problems.add(
                format!("{at}.password"),
                "give either password or password_file, not both",
            );
        }
        problems.readable(&format!("{at}.password_file"), &self.password_file);
    }
}

impl GatewayConfig {
    fn validate(&self, at: &str, problems: &mut Problems) {
        if !self.base_endpoint.is_empty() && !self.base_endpoint.starts_with('/') {
            problems.add(
                format!("{at}.base_endpoint"),
                format!("must start with '/', got {:?}", self.base_endpoint),
            );
        }
        if self.header_key.trim().is_empty() {
            problems.add(format!("{at}.header_key"), "must not be empty");
        }
        if self.header_value.is_some() && self.header_value_file.is_some() {
            problems.add(
                format!("{at}.header_value"),
                "give either header_value or header_value_file, not both",
            );
        }
        problems.readable(&format!("{at}.header_value_file"), &self.header_value_file);
    }
}
