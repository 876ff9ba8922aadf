//! Certificates made by the commands, read back from their DER: subject, validity, key.

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::der::asn1::AnyRef;
use rsa::pkcs8::der::{Encode, Reader, SliceReader};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

use super::super::derive_id;
use super::super::fixture::{Fixture, SEALED};
use super::*;
use crate::commands::CommandType::*;
use crate::message_sender::snapshot::{full_config, EngineInfo};

const NOW: &str = "2026-03-15T10:20:30.000Z";

/// The shared fixture, its commands run at [`NOW`].
fn fixture() -> Fixture {
    let mut f = super::super::fixture::fixture();
    f.now = NOW;
    f
}

impl Fixture {
    /// Command `c1` creates the certificate `name` for `common_name`, valid 10 days; its id.
    fn created(&self, name: &str, common_name: &str) -> String {
        self.run(
            "c1",
            CreateCertificate,
            create(name, options(common_name, 10)),
        )
        .expect("created");
        derive_id("c1", "certificate")
    }
}

fn options(common_name: &str, days: i64) -> Value {
    json!({"commonName": common_name, "countryName": "FR", "stateOrProvinceName": "Savoie",
           "localityName": "Chambery", "organizationName": "Optimistik", "keySize": 2048,
           "daysBeforeExpiry": days})
}

fn create(name: &str, options: Value) -> Value {
    json!({"commandContent": {"name": name, "description": "d", "regenerateCertificate": false,
                              "options": options}})
}

fn update(id: &str, name: &str, regenerate: bool, options: Value) -> Value {
    json!({"certificateId": id, "commandContent": {"name": name, "description": "d2",
           "regenerateCertificate": regenerate, "options": options}})
}

// --- A small DER walk: enough of X.509 to check what the tests need. ---

/// The TLVs inside a constructed value.
fn children(content: &[u8]) -> Vec<AnyRef<'_>> {
    let mut reader = SliceReader::new(content).expect("DER length");
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(reader.decode::<AnyRef<'_>>().expect("DER element"));
    }
    out
}

struct Parsed {
    issuer: Vec<(Vec<u8>, String)>,
    subject: Vec<(Vec<u8>, String)>,
    not_before: String,
    not_after: String,
    spki_der: Vec<u8>,
}

/// The (OID bytes, text) pairs of a Name.
fn name(rdns: &AnyRef<'_>) -> Vec<(Vec<u8>, String)> {
    children(rdns.value())
        .iter()
        .flat_map(|set| children(set.value()))
        .map(|attribute| {
            let parts = children(attribute.value());
            let text = String::from_utf8(parts[1].value().to_vec()).expect("UTF-8 value");
            (parts[0].value().to_vec(), text)
        })
        .collect()
}

fn parse(pem_text: &str) -> Parsed {
    let der = pem_der(pem_text, "CERTIFICATE");
    let certificate = children(&der);
    assert_eq!(certificate.len(), 1, "one certificate");
    let parts = children(certificate[0].value());
    assert_eq!(
        parts.len(),
        3,
        "tbsCertificate, signatureAlgorithm, signature"
    );
    let tbs = children(parts[0].value());
    // [0] version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo, [3] ext
    let validity = children(tbs[4].value());
    let time = |t: &AnyRef<'_>| String::from_utf8(t.value().to_vec()).expect("ASCII time");
    Parsed {
        issuer: name(&tbs[3]),
        subject: name(&tbs[5]),
        not_before: time(&validity[0]),
        not_after: time(&validity[1]),
        spki_der: tbs[6].to_der().expect("re-encode SPKI"),
    }
}

/// The DER inside a PEM block with `label`.
fn pem_der(text: &str, label: &str) -> Vec<u8> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body: String = text
        .lines()
        .skip_while(|l| *l != begin)
        .skip(1)
        .take_while(|l| *l != end)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM base64")
}

const CN: [u8; 3] = [0x55, 0x04, 0x03];
const O: [u8; 3] = [0x55, 0x04, 0x0a];

fn unsealed_key(certificate: &Certificate) -> RsaPrivateKey {
    let sealed = certificate
        .private_key
        .as_deref()
        .expect("a sealed private key");
    let pem = sealed.strip_prefix(SEALED).expect("stored sealed");
    RsaPrivateKey::from_pkcs1_pem(pem).expect("PKCS#1 PEM")
}

#[test]
fn create_certificate_generates_a_self_signed_x509_from_the_options() {
    let f = fixture();
    let applied = f
        .run(
            "c1",
            CreateCertificate,
            create("opcua", options("plant-a", 365)),
        )
        .expect("created");
    assert_eq!(applied.result, "Certificate created successfully");
    assert_eq!(
        applied.ontology,
        Some((EntityKind::Certificate, Op::Insert))
    );
    assert!(applied.effects.full_config);

    let stored = f.stored::<Certificate>(&derive_id("c1", "certificate"));
    assert_eq!(
        (stored.name.as_str(), stored.description.as_str()),
        ("opcua", "d")
    );
    // From the start of the command's day (UTC) to the same hour `daysBeforeExpiry` later.
    assert_eq!(stored.expiry.as_deref(), Some("2027-03-15T00:00:00.000Z"));
    let parsed = parse(stored.certificate.as_deref().expect("certificate"));
    assert_eq!(parsed.not_before, "260315000000Z");
    assert_eq!(parsed.not_after, "270315000000Z");
    let subject_cn: Vec<_> = parsed
        .subject
        .iter()
        .filter(|(oid, _)| oid[..] == CN)
        .collect();
    assert_eq!(subject_cn.len(), 1);
    assert_eq!(subject_cn[0].1, "plant-a");
    assert!(parsed
        .subject
        .iter()
        .any(|(oid, v)| oid[..] == O && v == "Optimistik"));
    assert_eq!(parsed.issuer, parsed.subject, "self-signed");

    // The certificate, the reported public key and the sealed private key are one key pair.
    let private = unsealed_key(&stored);
    assert_eq!(private.size() * 8, 2048);
    let public_der = RsaPublicKey::from(&private)
        .to_public_key_der()
        .expect("SPKI");
    assert_eq!(parsed.spki_der, public_der.as_bytes());
    let reported = stored.public_key.as_deref().expect("public key");
    assert!(reported.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(
        RsaPublicKey::from_public_key_pem(reported).expect("SPKI PEM"),
        RsaPublicKey::from(&private)
    );
}

#[test]
fn create_certificate_rerun_after_a_crash_makes_one_certificate() {
    let f = fixture();
    for _ in 0..2 {
        let applied = f
            .run("c1", CreateCertificate, create("opcua", options("a", 10)))
            .expect("created");
        assert_eq!(applied.result, "Certificate created successfully");
    }
    let all = f.entities.list::<Certificate>().expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, derive_id("c1", "certificate"));
}

#[test]
fn update_certificate_with_regenerate_replaces_certificate_and_key() {
    let f = fixture();
    let id = f.created("opcua", "old");
    let before = f.stored::<Certificate>(&id);
    let applied = f
        .run(
            "c2",
            UpdateCertificate,
            update(&id, "renamed", true, options("new", 20)),
        )
        .expect("updated");
    assert_eq!(applied.result, "Certificate updated successfully");
    let after = f.stored::<Certificate>(&id);
    assert_eq!(after.name, "renamed");
    assert_eq!(after.description, "d2");
    assert_ne!(after.certificate, before.certificate);
    assert_ne!(after.public_key, before.public_key);
    assert_ne!(unsealed_key(&after), unsealed_key(&before));
    assert_eq!(after.expiry.as_deref(), Some("2026-04-04T00:00:00.000Z"));
    let parsed = parse(after.certificate.as_deref().expect("certificate"));
    assert!(parsed
        .subject
        .iter()
        .any(|(oid, v)| oid[..] == CN && v == "new"));
    assert_eq!(after.audit.created_at, before.audit.created_at);
}

#[test]
fn update_certificate_without_regenerate_keeps_certificate_and_key() {
    let f = fixture();
    let id = f.created("opcua", "kept");
    let before = f.stored::<Certificate>(&id);
    // OIBus ignores the options unless asked to regenerate; null is what OIAnalytics sends.
    for (command, opts) in [("c2", Value::Null), ("c3", json!({"keySize": 1}))] {
        let applied = f
            .run(
                command,
                UpdateCertificate,
                update(&id, "renamed", false, opts),
            )
            .expect("updated");
        assert_eq!(applied.result, "Certificate updated successfully");
    }
    let after = f.stored::<Certificate>(&id);
    assert_eq!(
        (after.name.as_str(), after.description.as_str()),
        ("renamed", "d2")
    );
    assert_eq!(after.certificate, before.certificate);
    assert_eq!(after.public_key, before.public_key);
    assert_eq!(after.expiry, before.expiry);
    assert_eq!(after.private_key, before.private_key);
}

#[test]
fn updating_a_missing_certificate_says_not_found_with_the_id_quoted() {
    let f = fixture();
    assert_eq!(
        f.run(
            "c1",
            UpdateCertificate,
            update("nope", "n", false, Value::Null)
        ),
        Err("Certificate \"nope\" not found".into())
    );
    assert_eq!(
        f.run(
            "c2",
            UpdateCertificate,
            update("nope", "n", true, options("x", 1))
        ),
        Err("Certificate \"nope\" not found".into())
    );
}

#[test]
fn certificate_options_missing_or_invalid_are_refused_naming_the_field() {
    let f = fixture();
    // The options with `key` set to `value`, or removed when `value` is null.
    let with = |key: &str, value: Value| {
        let mut o = options("cn", 10);
        if let Some(map) = o.as_object_mut() {
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.to_owned(), value);
            }
        }
        o
    };
    let cases = [
        (
            create("c", Value::Null),
            "commandContent.options must be an object with the certificate options, found null",
        ),
        (
            create("c", json!("cn=x")),
            "commandContent.options: invalid type: string \"cn=x\", expected struct CertificateOptions",
        ),
        (
            create("c", with("commonName", Value::Null)),
            "commandContent.options: missing field `commonName`",
        ),
        (
            create("c", with("organizationName", json!(""))),
            "commandContent.options.organizationName must not be empty",
        ),
        (
            create("c", with("keySize", json!(1024))),
            "commandContent.options.keySize must be one of 2048, 3072, 4096, found 1024",
        ),
        (
            create("c", with("keySize", json!("4096"))),
            "commandContent.options.keySize: invalid type: string \"4096\", expected u32",
        ),
        (
            create("c", with("daysBeforeExpiry", json!(-5))),
            "commandContent.options.daysBeforeExpiry must be an integer from 1 to 365000, found -5",
        ),
        (
            create("c", with("daysBeforeExpiry", json!(0))),
            "commandContent.options.daysBeforeExpiry must be an integer from 1 to 365000, found 0",
        ),
    ];
    for (i, (fields, expected)) in cases.into_iter().enumerate() {
        let command = format!("bad-{i}");
        assert_eq!(
            f.run(&command, CreateCertificate, fields),
            Err(expected.to_owned()),
            "case {i}"
        );
    }
    // An update asked to regenerate needs options too.
    let id = f.created("ok", "cn");
    assert_eq!(
        f.run(
            "c2",
            UpdateCertificate,
            update(&id, "ok", true, Value::Null)
        ),
        Err(
            "commandContent.options must be an object with the certificate options, found null"
                .into()
        )
    );
    assert_eq!(f.entities.list::<Certificate>().expect("list").len(), 1);
}

#[test]
fn the_private_key_is_in_neither_e6_nor_debug_output() {
    let f = fixture();
    let stored = f.stored::<Certificate>(&f.created("opcua", "cn"));
    let sealed = stored.private_key.clone().expect("sealed key");

    let e6 = full_config(
        &f.entities,
        &f.config,
        &EngineInfo::current(&f.config),
        None,
    )
    .expect("E6");
    let body = serde_json::to_value(&e6).expect("serialise");
    let settings = &body["certificates"][0]["settings"];
    // Sorted: serde_json's Map keeps its keys sorted.
    let keys: Vec<_> = settings
        .as_object()
        .expect("settings")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        ["certificate", "description", "expiry", "name", "publicKey"]
    );
    assert_eq!(settings["expiry"], "2026-03-25T00:00:00.000Z");
    assert!(settings["certificate"]
        .as_str()
        .is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----")));
    let text = body.to_string();
    assert!(!text.contains("PRIVATE KEY") && !text.contains(SEALED));

    let debug = format!("{stored:?}");
    assert!(
        !debug.contains(&sealed) && !debug.contains("PRIVATE KEY"),
        "{debug}"
    );
    assert!(debug.contains("private_key: Some(\"***\")"), "{debug}");
}

#[test]
fn an_older_certificate_record_without_private_key_still_reads() {
    let record = json!({"id": "x", "name": "n", "description": "", "publicKey": null,
        "certificate": null, "expiry": null,
        "audit": {"createdBy": "oianalytics", "updatedBy": "oianalytics",
                  "createdAt": "t", "updatedAt": "t"}});
    let certificate: Certificate = serde_json::from_value(record).expect("old record");
    assert_eq!(certificate.private_key, None);
}

/// How long generation takes (not a check): `cargo nextest run -p oibus-actors
/// generation_time --run-ignored only --no-capture`.
#[test]
#[ignore]
fn generation_time_per_key_size() {
    let today = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    for bits in KEY_SIZES {
        let mut o: CertificateOptions =
            serde_json::from_value(options("cn", 365)).expect("options");
        o.key_size = bits;
        for _ in 0..3 {
            let started = std::time::Instant::now();
            generate(&o, today).expect("generated");
            println!("{bits} bits: {:?}", started.elapsed());
        }
    }
}
