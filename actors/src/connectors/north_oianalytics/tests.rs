//! OiaNorth against the client's test server, which records what it is sent.
use std::io::Read as _;

use base64::Engine as _;
use tokio::sync::watch;

use super::*;
use crate::client::tests::{Reply, Seen, TestServer};
use crate::key_vault::{KeySize, Vault};
use crate::registration::{RegistrationChanged, RegistrationStatus};

/// The client's test server, answering every request with `(status, body)`.
async fn answering(status: u16, body: &'static str) -> TestServer {
    TestServer::start(move |_| Reply::new(status, body)).await
}

/// A context whose OIA host is `host`, registered with token `tok` when `registered`.
struct Fixture {
    _dir: tempfile::TempDir,
    ctx: AgentContext,
    _registration: watch::Sender<RegistrationChanged>,
}

fn fixture(host: &str, registered: bool) -> Fixture {
    let (dir, store) = crate::store::temp();
    let mut config = Config::default();
    config.oianalytics.host = Some(host.to_owned());
    let mut ctx = AgentContext::for_tests(store, config);
    let state = if registered {
        RegistrationChanged {
            status: RegistrationStatus::Registered,
            token: Some(Secret::new("tok".to_owned())),
        }
    } else {
        RegistrationChanged::default()
    };
    let (sender, receiver) = watch::channel(state);
    ctx.registration = receiver;
    Fixture {
        _dir: dir,
        ctx,
        _registration: sender,
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

const VALUES: &str =
    r#"[{"pointId":"p1","timestamp":"2026-01-01T00:00:00.000Z","data":{"value":"1"}}]"#;

/// What `north` makes of [`VALUES`] sent as time values.
async fn send_values(north: &OiaNorth) -> Delivery {
    north
        .send(ContentType::TimeValues, "v.json", Bytes::from(VALUES))
        .await
}

#[actix_rt::test]
async fn values_are_posted_as_json_with_the_data_source_and_bearer_token() {
    let server = answering(204, "").await;
    let f = fixture(&server.url(), true);
    let north = OiaNorth::new("My North", &json!({}), &f.ctx).unwrap();
    assert_eq!(send_values(&north).await, Delivery::Sent);
    let seen = server.only_request();
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.target,
        "/api/oianalytics/oibus/time-values?dataSourceId=My%20North"
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.header("authorization"), Some("Bearer tok"));
    assert_eq!(seen.header("content-encoding"), None);
    assert_eq!(seen.body, VALUES.as_bytes());
}

#[actix_rt::test]
async fn compressed_values_go_gzipped_to_the_compressed_route() {
    let server = answering(200, "").await;
    let f = fixture(&server.url(), true);
    let north = OiaNorth::new("n", &json!({"compress": true}), &f.ctx).unwrap();
    let delivery = north
        .send(ContentType::Oianalytics, "v.json", Bytes::from(VALUES))
        .await;
    assert_eq!(delivery, Delivery::Sent);
    let seen = server.only_request();
    assert_eq!(
        seen.target,
        "/api/oianalytics/oibus/time-values/compressed?dataSourceId=n"
    );
    assert_eq!(seen.header("content-encoding"), None);
    assert_eq!(gunzip(&seen.body), VALUES.as_bytes());
}

/// The one part of a multipart body: (boundary from the header, filename, bytes).
fn one_part(seen: &Seen) -> (String, String, Vec<u8>) {
    let content_type = seen.header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap()
        .to_owned();
    assert!(boundary.starts_with("OIBusBoundary"), "{boundary}");
    let head_end = seen.body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = std::str::from_utf8(&seen.body[..head_end]).unwrap();
    let filename = head
        .split("filename=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        head,
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    assert!(seen.body.ends_with(tail.as_bytes()));
    let bytes = seen.body[head_end..seen.body.len() - tail.len()].to_vec();
    (boundary, filename, bytes)
}

#[actix_rt::test]
async fn files_are_one_multipart_part_gzipped_with_gz_appended_when_compressing() {
    let server = answering(201, "").await;
    let f = fixture(&server.url(), true);
    let north = OiaNorth::new("n", &json!({"compress": true}), &f.ctx).unwrap();
    let delivery = north
        .send(
            ContentType::Any,
            "data.csv",
            Bytes::from_static(b"a,b\n1,2\n"),
        )
        .await;
    assert_eq!(delivery, Delivery::Sent);
    let seen = server.only_request();
    assert_eq!(seen.target, "/api/oianalytics/file-uploads?dataSourceId=n");
    let (_, filename, bytes) = one_part(&seen);
    assert_eq!(filename, "data.csv.gz");
    assert_eq!(gunzip(&bytes), b"a,b\n1,2\n");
}

#[actix_rt::test]
async fn files_go_as_they_are_without_compress_or_when_already_gz() {
    let server = answering(200, "").await;
    let f = fixture(&server.url(), true);
    let plain = OiaNorth::new("n", &json!({"compress": false}), &f.ctx).unwrap();
    let compressing = OiaNorth::new("n", &json!({"compress": true}), &f.ctx).unwrap();
    assert_eq!(
        plain
            .send(ContentType::Any, "a.txt", Bytes::from_static(b"x"))
            .await,
        Delivery::Sent
    );
    assert_eq!(
        compressing
            .send(ContentType::Any, "b.gz", Bytes::from_static(b"gz"))
            .await,
        Delivery::Sent
    );
    let seen = server.seen();
    let parts: Vec<_> = seen.iter().map(one_part).map(|(_, n, b)| (n, b)).collect();
    assert_eq!(
        parts,
        vec![
            ("a.txt".into(), b"x".to_vec()),
            ("b.gz".into(), b"gz".to_vec())
        ]
    );
}

#[actix_rt::test]
async fn specific_settings_use_basic_auth_with_the_opened_secret_key() {
    let server = answering(200, "").await;
    let f = fixture("http://127.0.0.1:9", false);
    let vault_dir = tempfile::tempdir().unwrap();
    let cipher = Vault::open(vault_dir.path().join("vault"), KeySize::Bits2048)
        .unwrap()
        .cipher();
    let settings = json!({
        "useOiaModule": false,
        "timeout": 5,
        "specificSettings": {
            "host": server.url(),
            "acceptUnauthorized": false,
            "authentication": "basic",
            "accessKey": "user",
            "secretKey": cipher.seal(b"p:ss"),
            "useProxy": false
        }
    });
    let north = OiaNorth::new("n", &settings, &f.ctx)
        .unwrap()
        .with_cipher(cipher);
    assert_eq!(send_values(&north).await, Delivery::Sent);
    let expected = base64::engine::general_purpose::STANDARD.encode("user:p:ss");
    assert_eq!(
        server.only_request().header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
}

#[actix_rt::test]
async fn azure_ad_authentication_is_refused_at_construction() {
    let f = fixture("http://127.0.0.1:9", true);
    for kind in ["aad-client-secret", "aad-certificate"] {
        let settings = json!({"useOiaModule": false,
            "specificSettings": {"host": "https://x", "authentication": kind}});
        let err = OiaNorth::new("n", &settings, &f.ctx)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("Azure AD authentication is not supported by this agent"),
            "{err}"
        );
    }
}

#[actix_rt::test]
async fn answers_are_classified_as_oibus_does() {
    for (status, expected) in [
        (500, Delivery::Retry("Error 500: boom".into())),
        (401, Delivery::Retry("Error 401: boom".into())),
        (400, Delivery::Failed("Error 400: boom".into())),
        (413, Delivery::Failed("Error 413: boom".into())),
    ] {
        let server = answering(status, "boom").await;
        let f = fixture(&server.url(), true);
        let north = OiaNorth::new("n", &json!({}), &f.ctx).unwrap();
        assert_eq!(send_values(&north).await, expected, "status {status}");
    }
}

#[actix_rt::test]
async fn an_unreachable_host_is_retried_forever() {
    // Nothing listens on the discard port of the loopback in the test environment.
    let f = fixture("http://127.0.0.1:9", true);
    let north = OiaNorth::new("n", &json!({"timeout": 2}), &f.ctx).unwrap();
    match north
        .send(ContentType::Any, "a.txt", Bytes::from_static(b"x"))
        .await
    {
        Delivery::Retry(text) => assert!(
            text.starts_with("Fail to reach file endpoint /api/oianalytics/file-uploads."),
            "{text}"
        ),
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[actix_rt::test]
async fn not_registered_is_retried_without_a_call() {
    let server = answering(200, "").await;
    let f = fixture(&server.url(), false);
    let north = OiaNorth::new("n", &json!({}), &f.ctx).unwrap();
    let delivery = send_values(&north).await;
    assert_eq!(delivery, Delivery::Retry(NOT_REGISTERED.into()));
    assert!(server.seen().is_empty());
    assert_eq!(north.test_connection().await, Err(NOT_REGISTERED.into()));
}

#[actix_rt::test]
async fn other_content_types_are_not_supported() {
    let f = fixture("http://127.0.0.1:9", true);
    let north = OiaNorth::new("n", &json!({}), &f.ctx).unwrap();
    match north
        .send(ContentType::Setpoint, "s.json", Bytes::from_static(b"[]"))
        .await
    {
        Delivery::Failed(text) => {
            assert!(
                text.ends_with("not supported by north oianalytics"),
                "{text}"
            )
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[actix_rt::test]
async fn test_connection_reads_the_status_route() {
    let server = answering(200, "").await;
    let f = fixture(&server.url(), true);
    let north = OiaNorth::new("n", &json!({}), &f.ctx).unwrap();
    assert_eq!(north.test_connection().await, Ok(json!({"items": []})));
    let seen = server.only_request();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/api/oianalytics/oibus/status")
    );

    let failing = answering(503, "down").await;
    let f = fixture(&failing.url(), true);
    let north = OiaNorth::new("n", &json!({}), &f.ctx).unwrap();
    assert_eq!(
        north.test_connection().await,
        Err("HTTP request failed with status code 503 and message: down".into())
    );
}
