use std::io::Write as _;

use actix_web::http::StatusCode;
use actix_web::{test as atest, web};

use super::*;
use crate::state::tests::e1;
use crate::state::Selector;
use crate::{lock, Sim};

const USER_AGENT: &str = "OIBus/3.8.8 (https://oibus.optimistik.com/)";
const VALUES: &str = r#"[{"pointId":"p1","timestamp":"2026-01-01T00:00:00.000Z","data":{"value":"1","quality":"Good"}},{"pointId":"p2","timestamp":"2026-01-01T00:00:00.000Z","data":{"value":2}}]"#;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn multipart(boundary: &str, filename: &str, content: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[test]
fn values_are_read_plain_or_gzipped() {
    assert_eq!(parse_values(VALUES.as_bytes(), false).unwrap().len(), 2);
    assert_eq!(
        parse_values(&gzip(VALUES.as_bytes()), true).unwrap().len(),
        2
    );
    assert!(parse_values(VALUES.as_bytes(), true)
        .unwrap_err()
        .contains("not a gzip stream"));
}

#[test]
fn malformed_values_name_the_element_and_field() {
    let err = parse_values(
        br#"[{"pointId":"p","timestamp":"yesterday","data":{"value":1}},{"pointId":1}]"#,
        false,
    )
    .unwrap_err();
    assert_eq!(
        err,
        "body[0].timestamp: expected an ISO 8601 date; body[1].pointId: expected a non-empty string"
    );
    assert!(parse_values(b"{}", false)
        .unwrap_err()
        .contains("JSON array"));
    let err = parse_values(
        br#"[{"pointId":"p","timestamp":"2026-01-01T00:00:00Z","data":{}}]"#,
        false,
    )
    .unwrap_err();
    assert!(err.contains("body[0].data"), "{err}");
}

#[test]
fn the_one_file_part_is_read_and_gunzipped_when_named_gz() {
    let content_type = "multipart/form-data; boundary=OIBusBoundary1";
    let (name, bytes) = parse_upload(
        content_type,
        &multipart("OIBusBoundary1", "a.csv", b"x\r\ny"),
    )
    .unwrap();
    assert_eq!((name.as_str(), bytes.as_slice()), ("a.csv", &b"x\r\ny"[..]));
    let gz = multipart("OIBusBoundary1", "a.csv.gz", &gzip(b"inside"));
    let (name, bytes) = parse_upload(content_type, &gz).unwrap();
    assert_eq!(
        (name.as_str(), bytes.as_slice()),
        ("a.csv.gz", &b"inside"[..])
    );
}

#[test]
fn malformed_uploads_say_why() {
    let body = multipart("B", "a.csv", b"x");
    assert!(parse_upload("application/json", &body)
        .unwrap_err()
        .contains("multipart/form-data"));
    assert!(parse_upload("multipart/form-data; boundary=C", &body)
        .unwrap_err()
        .contains("boundary"));
    let other = String::from_utf8(body)
        .unwrap()
        .replace("name=\"file\"", "name=\"other\"");
    assert!(
        parse_upload("multipart/form-data; boundary=B", other.as_bytes())
            .unwrap_err()
            .contains("exactly one part named \"file\"")
    );
    assert!(parse_upload(
        "multipart/form-data; boundary=B",
        &multipart("B", "a.gz", b"no")
    )
    .unwrap_err()
    .contains("not a gzip stream"));
}

#[test]
fn duplicates_are_counted_per_point_and_timestamp() {
    let mut data = Data::default();
    let now = Utc::now();
    let values = parse_values(VALUES.as_bytes(), false).unwrap();
    data.record_values("n1", values.clone(), now);
    data.record_values("n2", values, now);
    data.record_file("n1", "a.csv", b"abc", now);
    let view = data.view();
    assert_eq!(view["values"], 4);
    assert_eq!(view["duplicates"], 2);
    assert_eq!(view["requests"], 3);
    assert_eq!(view["bySource"]["n1"], json!({"values": 2, "files": 1}));
    assert_eq!(
        view["recentFiles"][0]["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    data.reset();
    assert_eq!(data.view()["values"], 0);
}

/// A simulator with one completed registration, and its token.
fn registered_sim() -> (web::Data<Sim>, String) {
    let sim = web::Data::new(Sim::for_tests());
    let token = {
        let mut store = lock(&sim.store);
        let registration = store.register(e1("code01", "agent-1"), Utc::now()).unwrap();
        let selector = Selector {
            id: Some(registration.id),
            activation_code: None,
        };
        store
            .complete(&selector, Utc::now())
            .unwrap()
            .token
            .unwrap()
    };
    (sim, token)
}

#[actix_web::test]
async fn data_routes_store_what_arrives_and_admin_shows_it() {
    let (sim, token) = registered_sim();
    let app = atest::init_service(Sim::app(sim)).await;
    let post = |uri: &str, content_type: &str, body: Vec<u8>| {
        atest::TestRequest::post()
            .uri(uri)
            .insert_header(("User-Agent", USER_AGENT))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Content-Type", content_type.to_owned()))
            .set_payload(body)
            .to_request()
    };
    // Plain values, compressed values, a file.
    for (uri, content_type, body) in [
        (
            "/api/oianalytics/oibus/time-values?dataSourceId=north",
            "application/json",
            VALUES.as_bytes().to_vec(),
        ),
        (
            "/api/oianalytics/oibus/time-values/compressed?dataSourceId=north",
            "application/json",
            gzip(VALUES.as_bytes()),
        ),
        (
            "/api/oianalytics/file-uploads?dataSourceId=north",
            "multipart/form-data; boundary=OIBusBoundary7",
            multipart("OIBusBoundary7", "a.csv.gz", &gzip(b"abc")),
        ),
    ] {
        let response = atest::call_service(&app, post(uri, content_type, body)).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{uri}");
    }
    let malformed = post(
        "/api/oianalytics/oibus/time-values?dataSourceId=north",
        "application/json",
        b"[{\"pointId\":\"p\"}]".to_vec(),
    );
    let response = atest::call_service(&app, malformed).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = atest::read_body_json(response).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("body[0].timestamp"),
        "{body}"
    );
    let anonymous = atest::TestRequest::post()
        .uri("/api/oianalytics/oibus/time-values?dataSourceId=north")
        .insert_header(("User-Agent", USER_AGENT))
        .insert_header(("Content-Type", "application/json"))
        .set_payload(VALUES)
        .to_request();
    assert_eq!(
        atest::call_service(&app, anonymous).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let view: Value = atest::call_and_read_body_json(
        &app,
        atest::TestRequest::get().uri("/admin/data").to_request(),
    )
    .await;
    assert_eq!(view["values"], 4);
    assert_eq!(view["files"], 1);
    assert_eq!(view["duplicates"], 2);
    assert_eq!(view["requests"], 3);
    assert_eq!(view["bySource"]["north"], json!({"values": 4, "files": 1}));
    assert_eq!(view["recentFiles"][0]["name"], "a.csv.gz");
    assert_eq!(view["recentFiles"][0]["size"], 3);
    let cleared = atest::TestRequest::delete().uri("/admin/data").to_request();
    assert_eq!(
        atest::call_service(&app, cleared).await.status(),
        StatusCode::OK
    );
}

#[actix_web::test]
async fn data_routes_take_faults_and_status_answers_an_empty_object() {
    let (sim, token) = registered_sim();
    let app = atest::init_service(Sim::app(sim)).await;
    let fault = atest::TestRequest::post()
        .uri("/admin/faults")
        .set_json(json!({"route": "file-uploads", "kind": {"status": 503, "body": "busy"}}))
        .to_request();
    assert_eq!(
        atest::call_service(&app, fault).await.status(),
        StatusCode::OK
    );
    let upload = atest::TestRequest::post()
        .uri("/api/oianalytics/file-uploads?dataSourceId=n")
        .insert_header(("User-Agent", USER_AGENT))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .to_request();
    assert_eq!(
        atest::call_service(&app, upload).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let status = atest::TestRequest::get()
        .uri("/api/oianalytics/oibus/status")
        .insert_header(("User-Agent", USER_AGENT))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .to_request();
    let response = atest::call_service(&app, status).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(atest::read_body(response).await, "{}");
}
