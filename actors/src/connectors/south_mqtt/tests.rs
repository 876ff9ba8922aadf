use serde_json::json;

use super::*;
use crate::entities::{Audit, SouthItem};

fn item(id: &str, topic: &str, enabled: bool) -> SouthItem {
    SouthItem {
        id: id.into(),
        name: format!("{id}-name"),
        enabled,
        settings: json!({"topic": topic}),
        scan_mode_id: Some("subscription".into()),
        group_id: None,
        other: Default::default(),
        audit: Audit::new("", ""),
    }
}

fn south(settings: Value, items: Vec<SouthItem>) -> SouthConnector {
    SouthConnector {
        id: "s1".into(),
        name: "broker".into(),
        connector_type: "mqtt".into(),
        description: String::new(),
        enabled: true,
        settings,
        items,
        groups: vec![],
        secret_paths: vec![],
        audit: Audit::new("", ""),
    }
}

#[test]
fn wildcards_match_as_mqtt_defines_them() {
    assert!(matches("a/b", "a/b"));
    assert!(!matches("a/b", "a/b/c"));
    assert!(matches("a/+/c", "a/x/c"));
    assert!(!matches("a/+/c", "a/x/y/c"));
    assert!(matches("a/#", "a/x/y"));
    assert!(matches("a/#", "a"));
    assert!(matches("#", "anything/at/all"));
    assert!(!matches("a/+", "a"));
    assert!(matches("+/+", "/x"));
}

#[test]
fn a_topic_resolves_to_its_one_enabled_item() {
    let s = south(
        json!({}),
        vec![
            item("temp", "plant/+/temperature", true),
            item("all", "plant/#", false),
            item("press", "plant/line1/pressure", true),
        ],
    );
    let topics = Topics::new(&s);
    assert_eq!(
        topics.item_of("plant/line2/temperature").unwrap().id,
        "temp"
    );
    assert_eq!(topics.item_of("plant/line1/pressure").unwrap().id, "press");
    assert_eq!(
        topics.item_of("plant/line1/flow").unwrap_err(),
        TopicError::NoItem("plant/line1/flow".into())
    );
}

#[test]
fn a_topic_two_items_match_is_an_error_naming_them() {
    let s = south(
        json!({}),
        vec![item("a", "x/+", true), item("b", "x/#", true)],
    );
    let error = Topics::new(&s).item_of("x/y").unwrap_err().to_string();
    assert!(
        error.contains("a-name") && error.contains("b-name"),
        "{error}"
    );
}

#[test]
fn a_message_becomes_oibus_any_content() {
    let it = TopicItem {
        id: "i1".into(),
        name: "temp".into(),
        topic: "plant/+/t".into(),
    };
    assert_eq!(
        any_content(&it, br#"{"v":1}"#, "2026-01-01T00:00:00.000Z"),
        json!({"message": "{\"v\":1}", "timestamp": "2026-01-01T00:00:00.000Z",
               "item": {"id": "i1", "name": "temp", "topic": "plant/+/t"}})
    );
    // Not UTF-8: kept, lossily, as Node's toString() does.
    assert_eq!(
        any_content(&it, &[0xff, b'a'], "t")["message"],
        json!("\u{fffd}a")
    );
}

#[test]
fn settings_default_as_the_manifest_and_urls_give_host_port_and_tls() {
    let s = Settings::read("south 'b'", &json!({"url": "mqtt://10.0.0.5"})).unwrap();
    assert_eq!((s.host.as_str(), s.port, s.tls), ("10.0.0.5", 1883, false));
    assert_eq!(s.qos, QoS::AtLeastOnce);
    assert_eq!(s.reconnect_period, Duration::from_secs(10));
    assert_eq!(
        (s.max_messages, s.flush_timeout),
        (1000, Duration::from_secs(1))
    );
    let s = Settings::read(
        "south 'b'",
        &json!({"url": "mqtts://user@broker.example:9883/x", "qos": "2", "persistent": true}),
    )
    .unwrap();
    assert_eq!(
        (s.host.as_str(), s.port, s.tls),
        ("broker.example", 9883, true)
    );
    assert!(s.persistent);
    // No session to keep at QoS 0.
    let s = Settings::read(
        "s",
        &json!({"url": "tcp://h:1", "qos": "0", "persistent": true}),
    );
    assert!(!s.unwrap().persistent);
}

#[test]
fn a_bad_url_or_qos_names_the_setting() {
    for (settings, key) in [
        (json!({"url": "http://h"}), "settings.url"),
        (json!({"url": "mqtt://h:99999"}), "settings.url"),
        (json!({"url": "ws://h"}), "settings.url"),
        (json!({}), "settings.url"),
        (json!({"url": "mqtt://h", "qos": "3"}), "settings.qos"),
        (
            json!({"url": "mqtt://h", "authentication": {"type": "kerberos"}}),
            "settings.authentication.type",
        ),
    ] {
        let error = Settings::read("south 'b'", &settings)
            .unwrap_err()
            .to_string();
        assert!(error.contains(key), "{settings}: {error}");
    }
}

#[test]
fn certificate_files_that_are_missing_or_unpaired_name_the_setting() {
    let read = |auth: Value| {
        let s = Settings::read(
            "south 'b'",
            &json!({"url": "mqtts://h", "authentication": auth}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        tls_config("south 'b'", &s.auth, true).map(|_| ())
    };
    let error = read(json!({"type": "cert", "caFilePath": "/nonexistent/ca.pem"})).unwrap_err();
    assert!(
        error.contains("caFilePath") && error.contains("/nonexistent/ca.pem"),
        "{error}"
    );
    let error = read(json!({"type": "cert", "certFilePath": "/x/cert.pem"})).unwrap_err();
    assert!(error.contains("go together"), "{error}");
    // Without files: the system's CAs, no client certificate.
    read(json!({"type": "cert", "certFilePath": null, "keyFilePath": "", "caFilePath": ""}))
        .unwrap_or_else(|e| panic!("{e}"));
}
