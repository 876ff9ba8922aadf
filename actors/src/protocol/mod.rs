//! Wire types shared by several actors, named and shaped as OIAnalytics expects them (protocol
//! spec §2–§3), and the platform strings OIBus reports.

use serde::{Deserialize, Serialize};

/// The API prefix of every OIAnalytics route (`P` in the spec).
pub const API: &str = "/api/oianalytics/oibus";

/// E1 body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRequest {
    pub activation_code: String,
    pub oibus_id: String,
    pub oibus_name: String,
    pub oibus_version: String,
    pub oibus_os: String,
    pub oibus_arch: String,
    pub public_key: String,
}

/// E1 answer (other fields ignored, as OIBus does).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponse {
    pub redirect_url: String,
    pub expiration_date: String,
}

/// E2 answer.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationCheck {
    pub status: String,
    #[serde(default)]
    pub expired: Option<bool>,
    #[serde(default)]
    pub access_token: Option<String>,
}

/// `oibusOs` as OIBus builds it: `"<os.type()> <os.release()>"`, e.g. `Linux 6.1.0-18-amd64`.
pub fn os_string() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {}",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy()
        ),
        Err(_) => "Linux unknown".to_string(),
    }
}

/// `oibusArch` with Node's names (`x64`, `arm64`, `ia32`, `arm`).
pub fn arch_string() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        "x86" => "ia32",
        "arm" => "arm",
        other => other,
    }
}

/// ISO-8601 UTC with milliseconds, as OIBus writes dates.
pub fn iso_now() -> String {
    iso(chrono::Utc::now())
}

pub fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_request_has_the_wire_field_names() {
        let body = RegistrationRequest {
            activation_code: "ldliZx".into(),
            oibus_id: "id".into(),
            oibus_name: "n".into(),
            oibus_version: "1.0.0".into(),
            oibus_os: os_string(),
            oibus_arch: arch_string().into(),
            public_key: "pem".into(),
        };
        let json = serde_json::to_value(&body).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "activationCode",
                "oibusArch",
                "oibusId",
                "oibusName",
                "oibusOs",
                "oibusVersion",
                "publicKey"
            ]
        );
        assert!(body.oibus_os.starts_with("Linux "));
    }

    #[test]
    fn iso_dates_have_milliseconds_and_z() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-23T19:10:26.49Z").unwrap();
        assert_eq!(iso(t.into()), "2026-11-23T19:10:26.490Z");
    }
}
