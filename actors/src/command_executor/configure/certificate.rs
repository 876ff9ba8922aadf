//! `create-certificate` and `update-certificate`: the `options` OIBus sends, the self-signed
//! X.509 certificate and RSA key made from them, and the entity write.
//!
//! OIBus generates on every create and, on an update, only when `regenerateCertificate` is
//! true; otherwise it changes the name and description and keeps the rest
//! (`OIBus: backend/src/service/certificate.service.ts`). The private key is sealed with the
//! local cipher before it reaches the entity, and the plaintext only lives in a [`Secret`].
//!
//! Generating a 4096-bit key takes seconds: the executor runs these commands off the actor
//! thread (`command_executor::actor`).

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use rcgen::{
    date_time_ymd, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    Ia5String, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_RSA_SHA256,
};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::der::zeroize::Zeroizing;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use serde_json::Value;

use super::{
    audit_for, check_unique_name, invalid, target, typed, Applied, ApplyError, Env, Name, Op,
};
use crate::commands::catalogue::CONTENT;
use crate::entities::{Certificate, EntityKind};
use crate::store::Batch;
use crate::Secret;

/// Key sizes accepted. OIBus takes any size; the signer (ring) needs 2048 to 8192 bits, and
/// 8192-bit generation takes minutes, so the agent keeps to the usual sizes.
pub const KEY_SIZES: [u32; 3] = [2048, 3072, 4096];
/// About a thousand years: keeps the expiry within X.509's four-digit years.
pub const MAX_DAYS: i64 = 365_000;

/// `commandContent.options` (`OIBus: backend/shared/model/certificate.model.ts`,
/// `CertificateOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateOptions {
    pub common_name: String,
    pub country_name: String,
    pub state_or_province_name: String,
    pub locality_name: String,
    pub organization_name: String,
    pub key_size: u32,
    /// Signed so that a negative count is refused with a range message, not a type error.
    pub days_before_expiry: i64,
}

impl CertificateOptions {
    /// Read and check `value`, found at `path` (`commandContent.options`). The checks are
    /// OIBus's (`certificateSchema`: required non-empty strings, days at least 1) plus the key
    /// sizes the agent can sign with.
    pub fn parse(value: &Value, path: &str) -> Result<CertificateOptions, ApplyError> {
        if value.is_null() {
            return invalid(format!(
                "{path} must be an object with the certificate options, found null"
            ));
        }
        let options: CertificateOptions = typed(value, path)?;
        for (key, text) in [
            ("commonName", &options.common_name),
            ("countryName", &options.country_name),
            ("stateOrProvinceName", &options.state_or_province_name),
            ("localityName", &options.locality_name),
            ("organizationName", &options.organization_name),
        ] {
            if text.is_empty() {
                return invalid(format!("{path}.{key} must not be empty"));
            }
        }
        if !KEY_SIZES.contains(&options.key_size) {
            return invalid(format!(
                "{path}.keySize must be one of 2048, 3072, 4096, found {}",
                options.key_size
            ));
        }
        if !(1..=MAX_DAYS).contains(&options.days_before_expiry) {
            return invalid(format!(
                "{path}.daysBeforeExpiry must be an integer from 1 to {MAX_DAYS}, found {}",
                options.days_before_expiry
            ));
        }
        Ok(options)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot generate the RSA key: {0}")]
    Key(String),
    #[error("the expiry date is out of range")]
    Expiry,
    #[error("cannot build the certificate: {0}")]
    Build(#[from] rcgen::Error),
}

/// What [`generate`] makes. `Debug` shows the private key as `***`.
#[derive(Debug)]
pub struct Generated {
    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as OIBus reports it.
    pub public_key: String,
    /// The certificate, PEM.
    pub certificate: String,
    /// ISO date of the end of validity: the start of `today` plus `daysBeforeExpiry`.
    pub expiry: String,
    /// PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), the form OIBus stores (encrypted).
    pub private_key: Secret<Zeroizing<String>>,
}

/// A self-signed certificate for `options`, valid from the start of `today` (UTC) to the start
/// of `today + daysBeforeExpiry`; the stored expiry and the certificate's notAfter agree.
/// CPU-heavy: seconds for 4096 bits.
pub fn generate(
    options: &CertificateOptions,
    today: NaiveDate,
) -> Result<Generated, CertificateError> {
    let days = u64::try_from(options.days_before_expiry).map_err(|_| CertificateError::Expiry)?;
    let expiry = today
        .checked_add_days(Days::new(days))
        .filter(|d| d.year() <= 9999)
        .ok_or(CertificateError::Expiry)?;

    // ring signs RSA but cannot generate RSA keys: the key comes from `rsa`, handed over as
    // PKCS#8 DER.
    let bits =
        usize::try_from(options.key_size).map_err(|e| CertificateError::Key(e.to_string()))?;
    let private =
        RsaPrivateKey::new(&mut OsRng, bits).map_err(|e| CertificateError::Key(e.to_string()))?;
    let pkcs8 = private
        .to_pkcs8_der()
        .map_err(|e| CertificateError::Key(e.to_string()))?;
    let key_pair =
        KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_bytes().into(), &PKCS_RSA_SHA256)?;

    // Midnight UTC of a date within year 9999 (checked above), so `date_time_ymd` cannot panic.
    let midnight = |d: NaiveDate| date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(options);
    params.not_before = midnight(today);
    params.not_after = midnight(expiry);
    // OIBus: "01" followed by 19 random bytes.
    let mut serial = [0u8; 20];
    OsRng.fill_bytes(&mut serial[1..]);
    serial[0] = 1;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    // The extensions OIBus sets, for OPC UA application certificates.
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DataEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.subject_alt_names = alt_names();
    let certificate = params.self_signed(&key_pair)?;

    let public_key = RsaPublicKey::from(&private)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| CertificateError::Key(e.to_string()))?;
    let private_key = private
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| CertificateError::Key(e.to_string()))?;
    Ok(Generated {
        public_key,
        certificate: certificate.pem(),
        expiry: crate::protocol::iso(expiry.and_time(NaiveTime::MIN).and_utc()),
        private_key: Secret::new(private_key),
    })
}

/// CN, C, ST, L, O in OIBus's order; blank values are left out, as OIBus does.
fn subject(options: &CertificateOptions) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (kind, value) in [
        (DnType::CommonName, &options.common_name),
        (DnType::CountryName, &options.country_name),
        (DnType::StateOrProvinceName, &options.state_or_province_name),
        (DnType::LocalityName, &options.locality_name),
        (DnType::OrganizationName, &options.organization_name),
    ] {
        if !value.trim().is_empty() {
            dn.push(kind, value.as_str());
        }
    }
    dn
}

/// `urn:<hostname>:OIBus` and the host name, as OIBus sets them. A host name that is not
/// ASCII cannot be an IA5String: it is left out rather than failing the command.
fn alt_names() -> Vec<SanType> {
    let host = nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_default();
    if host.is_empty() {
        return Vec::new();
    }
    let mut names = Vec::new();
    if let Ok(uri) = Ia5String::try_from(format!("urn:{host}:OIBus")) {
        names.push(SanType::URI(uri));
    }
    if let Ok(dns) = Ia5String::try_from(host) {
        names.push(SanType::DnsName(dns));
    }
    names
}

/// The day `now` (the command's ISO timestamp) falls on, in UTC.
fn today(now: &str) -> NaiveDate {
    DateTime::parse_from_rfc3339(now)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
        .date_naive()
}

/// `commandContent` of create- and update-certificate; `options` is read by
/// [`CertificateOptions::parse`] when a certificate is generated.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(expecting = "an object")]
struct CertificateCommand {
    name: Name,
    description: Option<String>,
    regenerate_certificate: Option<bool>,
    #[serde(default)]
    options: Value,
}

/// Create or update a certificate. `update_id` is `None` for a create.
pub(super) fn put(
    update_id: Option<String>,
    content: &Value,
    env: &Env<'_>,
    batch: &mut Batch,
) -> Result<Applied, ApplyError> {
    let is_update = update_id.is_some();
    let cc: CertificateCommand = typed(content, CONTENT)?;
    let name = cc.name.0;
    let description = cc.description.unwrap_or_default();
    let regenerate = !is_update || cc.regenerate_certificate.unwrap_or(false);
    // Checked before the lookup, as OIBus validates the command before finding the entity.
    let options = if regenerate {
        Some(CertificateOptions::parse(
            &cc.options,
            &format!("{CONTENT}.options"),
        )?)
    } else {
        None
    };
    // A create re-run after a crash finds what it made under the same derived id.
    let (id, previous) = target::<Certificate>(update_id, env)?;
    check_unique_name::<Certificate>(&name, &id, env)?;

    let audit = audit_for(previous.as_ref(), env);
    let mut certificate = Certificate {
        id,
        name,
        description,
        public_key: None,
        certificate: None,
        expiry: None,
        private_key: None,
        audit,
    };
    match options {
        Some(options) => {
            let generated = generate(&options, today(env.now))
                .or_else(|e| invalid(format!("Cannot generate the certificate: {e}")))?;
            certificate.private_key = Some(env.seal(generated.private_key.expose())?);
            certificate.public_key = Some(generated.public_key);
            certificate.certificate = Some(generated.certificate);
            certificate.expiry = Some(generated.expiry);
        }
        None => {
            if let Some(p) = &previous {
                certificate.public_key = p.public_key.clone();
                certificate.certificate = p.certificate.clone();
                certificate.expiry = p.expiry.clone();
                certificate.private_key = p.private_key.clone();
            }
        }
    }
    env.entities
        .stage_put(batch, previous.as_ref(), &certificate)?;
    let op = if is_update { Op::Update } else { Op::Insert };
    Ok(Applied::entity(EntityKind::Certificate, op))
}

#[cfg(test)]
mod tests;
