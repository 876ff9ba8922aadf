//! The MQTT south end to end, through OIAnalytics commands only, against a real mosquitto:
//! JSON messages become values in OIAnalytics through `json-to-oianalytics`; QoS 1 messages
//! published while the agent is down arrive after its restart (persistent session, acknowledged
//! only once cached); a broker outage is ridden out with a reconnection and a new subscription.

use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::commands::{
    command, completed, completed_json, named, registered, run_completed, started,
};
use crate::data_plane::{every_second, oia_north, oia_north_content};
use crate::kit::agent::{Agent, AgentHome};
use crate::kit::connectors::{
    connector_id, errored_naming, south_status, standard_transformer, test_south_connection,
    tested_south_connection, write_setpoints,
};
use crate::kit::mosquitto::Mosquitto;
use crate::kit::sim::Sim;
use crate::kit::wait_until;

const WAIT: Duration = Duration::from_secs(30);
const NORTH: &str = "to-oia";
pub(crate) const TOPIC: &str = "plant/line1/temperature";

/// The settings of an MQTT south on `broker` without authentication.
fn south_settings(broker: &Mosquitto, persistent: bool) -> Value {
    json!({"url": broker.url(), "qos": "1", "persistent": persistent,
        "authentication": {"type": "none"}, "rejectUnauthorized": false,
        "reconnectPeriod": 1000, "connectTimeout": 5000,
        "maxNumberOfMessages": 1000, "flushMessageTimeout": 200})
}

/// A `create-south` of an MQTT south `name` with `settings` and one item on `topic`.
fn create_mqtt_south(id: &str, name: &str, settings: Value, topic: &str) -> Value {
    command(
        id,
        "create-south",
        json!({"retrieveSecretsFromSouth": null, "commandContent": {
        "name": name, "type": "mqtt", "description": "", "enabled": true,
        "settings": settings,
        "items": [{"id": null, "name": "temperature", "enabled": true,
            "settings": {"topic": topic},
            "scanModeId": "subscription", "scanModeName": null}],
        "groups": []}}),
    )
}

/// Scan mode, an OIA north turning the south's messages into values, and an MQTT south
/// `broker` with `settings` and one item on `plant/+/temperature`.
fn mqtt_flow(sim: &Sim, agent: &Agent, settings: Value) {
    let transformer = standard_transformer(sim, agent, "json-to-oianalytics");
    let south = create_mqtt_south("m3", "broker", settings, "plant/+/temperature");
    let commands = json!([every_second("m1"), oia_north("m2", NORTH, 3), south]);
    run_completed(sim, agent, &commands);
    let south = connector_id(agent, "southConnectors", "broker");
    let north = connector_id(agent, "northConnectors", NORTH);
    let transformers = json!([{"id": null, "transformerId": transformer,
        "options": {"rowIteratorPath": "$[*]", "pointId": "$[*].message.point",
                    "value": "$[*].message.v", "timestamp": "$[*].timestamp"},
        "inputType": "any-content",
        "source": {"type": "south", "southId": south, "items": []}}]);
    sim.queue(&json!([command(
        "m4",
        "update-north",
        json!({"northConnectorId": north,
        "retrieveSecretsFromNorth": north,
        "commandContent": oia_north_content(NORTH, 3, transformers)})
    )]));
    completed(sim, agent, "m4");
}

/// JSON payloads `{point, v}` for each value.
pub(crate) fn payloads(values: impl IntoIterator<Item = u64>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| json!({"point": "temperature", "v": v}).to_string())
        .collect()
}

/// The values OIAnalytics received from the north (the simulator keeps the latest 100).
fn received(sim: &Sim) -> BTreeSet<u64> {
    sim.admin_get("/admin/data")["recentValues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["dataSourceId"] == NORTH)
        .filter_map(|r| r["value"]["data"]["value"].as_u64())
        .collect()
}

fn wait_received(
    sim: &Sim,
    agent: &Agent,
    broker: &Mosquitto,
    wanted: impl IntoIterator<Item = u64>,
) {
    let wanted: BTreeSet<u64> = wanted.into_iter().collect();
    let ok = wait_until(WAIT, || received(sim).is_superset(&wanted));
    assert!(
        ok,
        "wanted {wanted:?}, OIAnalytics has {:?}\nagent:\n{}\nbroker:\n{}",
        received(sim),
        agent.logs(),
        broker.logs()
    );
}

/// A broker, the simulator and a registered agent whose MQTT south (`persistent` or a clean
/// session) delivers through a north `oianalytics`, once a first value went through (the
/// subscription exists only once the south has connected).
pub(crate) fn flowing(persistent: bool) -> (Mosquitto, Sim, AgentHome, Agent) {
    let broker = Mosquitto::start();
    let settings = south_settings(&broker, persistent);
    flowing_with(broker, settings)
}

fn flowing_with(broker: Mosquitto, settings: Value) -> (Mosquitto, Sim, AgentHome, Agent) {
    let (sim, home, agent) = started(&[]);
    mqtt_flow(&sim, &agent, settings);
    let first = wait_until(WAIT, || {
        broker.publish(TOPIC, &payloads([0]));
        wait_until(Duration::from_secs(1), || received(&sim).contains(&0))
    });
    assert!(
        first,
        "no value arrived\n{}\n{}",
        agent.logs(),
        broker.logs()
    );
    (broker, sim, home, agent)
}

#[test]
fn mqtt_json_messages_reach_oianalytics_as_values_through_commands_only() {
    let (broker, sim, _home, agent) = flowing(true);
    broker.publish(TOPIC, &payloads(1..=20));
    wait_received(&sim, &agent, &broker, 0..=20);
    let sample = sim.admin_get("/admin/data")["recentValues"][0]["value"].clone();
    assert_eq!(sample["pointId"], "temperature", "{sample}");

    let tested = tested_south_connection(&sim, &agent, "broker", "mqtt");
    assert_eq!(tested["items"][0]["key"], "SessionPresent", "{tested}");
}

#[test]
fn qos1_messages_published_while_the_agent_is_killed_arrive_after_its_restart() {
    let (broker, sim, home, agent) = flowing(true);
    agent.signal(Signal::SIGKILL);
    let mut agent = agent;
    agent.wait_exit(Duration::from_secs(10));
    drop(agent);
    // The broker holds these for the agent's persistent session.
    broker.publish(TOPIC, &payloads(1..=30));
    let agent = registered(&home, &[]);
    wait_received(&sim, &agent, &broker, 0..=30);
}

#[test]
fn the_south_reconnects_and_subscribes_again_after_a_broker_outage() {
    // A clean session: the broker forgets the subscription, so only a new one brings messages.
    let (mut broker, sim, _home, agent) = flowing(false);
    broker.stop();
    std::thread::sleep(Duration::from_secs(10));
    broker.resume();
    let mut probe = 1000;
    let back = wait_until(WAIT, || {
        probe += 1;
        broker.publish(TOPIC, &payloads([probe]));
        wait_until(Duration::from_secs(1), || received(&sim).contains(&probe))
    });
    assert!(
        back,
        "nothing arrived after the broker came back\n{}\n{}",
        agent.logs(),
        broker.logs()
    );
    broker.publish(TOPIC, &payloads(1..=10));
    wait_received(&sim, &agent, &broker, 1..=10);
}

/// `oibus_agent_data_dropped_total` of the north `NORTH` for transformer failures.
fn dropped_by_transformer(agent: &Agent) -> u64 {
    let (_, text) = agent.get("/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("oibus_agent_data_dropped_total{"))
        .filter(|l| l.contains(&format!("connector=\"{NORTH}\"")) && l.contains("transformer"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|n| n as u64)
        .sum()
}

#[test]
fn a_malformed_payload_is_dropped_named_and_counted_while_the_subscription_goes_on() {
    let (broker, sim, _home, agent) = flowing(true);
    // In one flush with good messages: only the malformed ones are lost.
    let mut batch = payloads([1, 2]);
    batch.insert(1, "{\"point\": \"temperature\", \"v\": ".to_owned());
    batch.push("not json at all".to_owned());
    batch.extend(payloads([3]));
    broker.publish(TOPIC, &batch);
    wait_received(&sim, &agent, &broker, 1..=3);
    let counted = wait_until(WAIT, || dropped_by_transformer(&agent) >= 2);
    assert!(counted, "{}", agent.get("/metrics").unwrap_or_default().1);
    let south = south_status(&agent, "broker");
    assert!(south["errors"].as_u64().unwrap_or(0) >= 2, "{south}");
    // Logged with the item and the topic it came on.
    let logs = agent.logs();
    let clear = logs.lines().any(|l| {
        l.contains("is not JSON")
            && l.contains("'temperature'")
            && l.contains("plant/+/temperature")
    });
    assert!(clear, "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
    // The subscription goes on.
    broker.publish(TOPIC, &payloads(4..=6));
    wait_received(&sim, &agent, &broker, 4..=6);
}

#[test]
fn over_tls_a_client_certificate_gets_through_and_a_ca_that_does_not_match_is_named() {
    let broker = Mosquitto::start_tls();
    let Some(tls) = &broker.tls else {
        panic!("a TLS broker has its files")
    };
    let cert_settings = |ca: &std::path::Path| {
        let mut settings = south_settings(&broker, false);
        settings["authentication"] = json!({"type": "cert",
            "certFilePath": tls.client_cert, "keyFilePath": tls.client_key, "caFilePath": ca});
        settings["rejectUnauthorized"] = json!(true);
        settings
    };
    let (right, wrong) = (cert_settings(&tls.ca), cert_settings(&tls.other_ca));
    // The broker's CA and a client certificate it signed: values flow over TLS.
    let (broker, sim, _home, agent) = flowing_with(broker, right);
    broker.publish(TOPIC, &payloads(1..=5));
    wait_received(&sim, &agent, &broker, 1..=5);

    // A CA that did not sign the broker's certificate: a clear error, counted, no panic.
    sim.queue(&json!([create_mqtt_south(
        "c1",
        "wrong-ca",
        wrong,
        "plant/+/pressure"
    )]));
    completed(&sim, &agent, "c1");
    let named_error = wait_until(WAIT, || {
        south_status(&agent, "wrong-ca")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid peer certificate") && e.contains("caFilePath"))
    });
    assert!(
        named_error,
        "{}\n{}",
        south_status(&agent, "wrong-ca"),
        agent.logs()
    );
    assert!(
        south_status(&agent, "wrong-ca")["errors"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    let south = connector_id(&agent, "southConnectors", "wrong-ca");
    sim.queue(&json!([test_south_connection("c2", &south, "mqtt")]));
    errored_naming(
        &sim,
        &agent,
        "c2",
        &["invalid peer certificate", "caFilePath"],
    );
    // The right south was not disturbed.
    broker.publish(TOPIC, &payloads(6..=8));
    wait_received(&sim, &agent, &broker, 6..=8);
    assert!(!agent.logs().contains("panicked"));
}

#[test]
fn test_south_item_waits_for_a_message_with_a_client_of_its_own() {
    let (broker, sim, _home, agent) = flowing(true);
    let south = connector_id(&agent, "southConnectors", "broker");
    let transformer = standard_transformer(&sim, &agent, "json-to-oianalytics");
    sim.queue(&json!([command(
        "i1",
        "test-south-item",
        json!({"southConnectorId": south, "itemId": "x", "commandContent": {
            "southCommand": {"name": "broker", "type": "mqtt", "settings": south_settings(&broker, true)},
            "itemCommand": {"name": "temperature", "enabled": true,
                            "settings": {"topic": "plant/+/temperature"}},
            "testingSettings": {"transformer": {"transformerId": transformer, "options": {
                "rowIteratorPath": "$[*]", "pointId": "$[*].message.point",
                "value": "$[*].message.v", "timestamp": "$[*].timestamp"}}}}})
    )]));
    // The test's subscription exists once it connected: publish until it got one.
    let done = std::sync::atomic::AtomicBool::new(false);
    let tested: Value = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 500;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                broker.publish(TOPIC, &payloads([n]));
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let tested = completed_json(&sim, &agent, "i1");
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        tested
    });
    let raw = &tested["raw"];
    assert_eq!(raw["type"], "any-content", "{tested}");
    let messages: Value =
        serde_json::from_str(raw["content"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!(
        messages[0]["item"]["topic"], "plant/+/temperature",
        "{tested}"
    );
    assert!(messages[0]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("temperature"));
    let transformed = &tested["transformed"];
    assert_eq!(transformed["type"], "oianalytics", "{tested}");
    assert_eq!(
        transformed["content"][0]["pointId"], "temperature",
        "{tested}"
    );
    assert!(
        transformed["content"][0]["data"]["value"]
            .as_u64()
            .unwrap_or(0)
            > 500
    );

    // The live persistent session was not taken over: it still delivers.
    broker.publish(TOPIC, &payloads([900, 901]));
    wait_received(&sim, &agent, &broker, [900, 901]);

    // The history form: the same connection test on the history's south settings.
    sim.queue(&json!([command(
        "i2",
        "test-history-query-south-connection",
        json!({"historyId": "create", "southConnectorId": south, "commandContent": {
            "southType": "mqtt", "southSettings": south_settings(&broker, false)}})
    )]));
    let tested: Value = completed_json(&sim, &agent, "i2");
    assert_eq!(tested["items"][0]["key"], "SessionPresent", "{tested}");
}

#[test]
fn setpoints_are_published_to_the_broker_through_setpoint_to_mqtt() {
    let broker = Mosquitto::start();
    let subscriber = broker.subscribe("plant/#");
    let (sim, _home, agent) = started(&[]);
    let mapping = json!([
        {"reference": "speed", "topic": "plant/line1/speed/set"},
        {"reference": "mode", "topic": "plant/line1/mode/set"}
    ]);
    let mut settings = south_settings(&broker, false);
    settings.as_object_mut().map(|s| {
        s.remove("maxNumberOfMessages");
        s.remove("flushMessageTimeout")
    });
    let setpoints = json!([{"reference": "speed", "value": 1500}, {"reference": "mode", "value": "auto"},
                           {"reference": "unmapped", "value": 7}]);
    let record = write_setpoints(
        &sim,
        &agent,
        ("mqtt", "to-broker"),
        settings,
        mapping,
        setpoints,
    );
    assert!(
        record["result"].as_str().is_some_and(
            |r| r.starts_with("Setpoint ") && r.contains("properly sent into the cache of")
        ),
        "{record}"
    );
    let wanted = vec![
        ("plant/line1/speed/set".to_owned(), "1500".to_owned()),
        ("plant/line1/mode/set".to_owned(), "auto".to_owned()),
    ];
    let ok = wait_until(WAIT, || subscriber.messages().len() >= 2);
    assert!(
        ok,
        "{:?}\n{}\n{}",
        subscriber.messages(),
        agent.logs(),
        broker.logs()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(subscriber.messages(), wanted);
    let status = agent.status();
    let north = named(&status["data_flow"]["norths"], "to-broker")[0].clone();
    assert!(north["last_error"].is_null(), "{north}");

    sim.queue(&json!([command(
        "w4",
        "test-north-connection",
        json!({"northConnectorId": north["id"], "commandContent": {"type": "mqtt", "settings": {}}})
    )]));
    let tested: Value = completed_json(&sim, &agent, "w4");
    assert_eq!(tested["items"][0]["key"], "SessionPresent", "{tested}");
}
