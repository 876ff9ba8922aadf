//! The opcua south end to end, through OIAnalytics commands only, against a real OPC UA server
//! in the test process (`kit::opcua_server`): polled and subscribed values reach the simulator
//! at the timestamps the server gave; the history reaches it whole, without holes or
//! duplicates, across a 10 s server outage and across an agent restart (the trackedInstant is
//! durable); a bad node id is reported with its item and node id while the other items flow.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::commands::{command, completed_json, registered, run_completed, started};
use crate::data_plane::{every_second, oia_north};
use crate::kit::agent::{Agent, AgentHome};
use crate::kit::connectors::{
    errored_naming, recent_values, south_status, tested_south_connection, write_setpoints,
};
use crate::kit::opcua_server::{counter_value, history_value, OpcuaServer, PASSWORD, USER};
use crate::kit::sim::Sim;
use crate::kit::wait_until;

const WAIT: Duration = Duration::from_secs(40);
const NORTH: &str = "to-oia";

fn opcua_south(id: &str, name: &str, url: &str, auth: Value, items: Vec<Value>) -> Value {
    secure_south(id, name, url, ("none", "none"), auth, items)
}

/// An opcua south with `security`: (securityMode, securityPolicy).
fn secure_south(
    id: &str,
    name: &str,
    url: &str,
    security: (&str, &str),
    auth: Value,
    items: Vec<Value>,
) -> Value {
    command(
        id,
        "create-south",
        json!({"retrieveSecretsFromSouth": null, "commandContent": {
            "name": name, "type": "opcua", "description": "", "enabled": true,
            "settings": {"url": url, "keepSessionAlive": false, "readTimeout": 5000,
                         "retryInterval": 1000, "maxNumberOfMessages": 1000,
                         "flushMessageTimeout": 200, "securityMode": security.0,
                         "securityPolicy": security.1, "maxParallelRun": 1,
                         "authentication": auth},
            "items": items, "groups": []}}),
    )
}

fn da_item(name: &str, node: &str, scan: &str) -> Value {
    let (scan_id, scan_name) = if scan == "subscription" {
        (json!("subscription"), Value::Null)
    } else {
        (Value::Null, json!(scan))
    };
    json!({"id": null, "name": name, "enabled": true, "scanModeId": scan_id,
           "scanModeName": scan_name,
           "settings": {"nodeId": node, "mode": "da", "timestampOrigin": "point"}})
}

fn ha_item(name: &str, node: &str, max_read_interval: u64) -> Value {
    json!({"id": null, "name": name, "enabled": true, "scanModeId": null,
           "scanModeName": "every-second", "syncWithGroup": false,
           "maxReadInterval": max_read_interval, "readDelay": 0,
           "settings": {"nodeId": node, "mode": "ha", "timestampOrigin": "point",
                        "haMode": {"aggregate": "raw", "resampling": "none"}}})
}

/// A registered agent with the scan mode, the OIA north and the south `south(sim)` gives
/// (after registration, so it can encrypt secrets for the agent).
fn flow(south: impl FnOnce(&Sim) -> Value) -> (Sim, AgentHome, Agent) {
    let (sim, home, agent) = started(&[]);
    let south = south(&sim);
    let commands = json!([every_second("m1"), oia_north("m2", NORTH, 3), south]);
    run_completed(&sim, &agent, &commands);
    (sim, home, agent)
}

/// Everything the simulator received, accumulated across polls (it keeps the latest 100
/// values; the tests poll often enough to see each): (pointId, timestamp) → value.
#[derive(Default)]
struct Seen {
    values: BTreeMap<(String, String), String>,
}

impl Seen {
    fn poll(&mut self, sim: &Sim) {
        for (point, at, value) in recent_values(sim) {
            self.values.insert((point, at), value);
        }
    }

    /// The timestamps of `point`, as whole seconds.
    fn seconds(&self, point: &str) -> BTreeSet<i64> {
        self.values
            .keys()
            .filter(|(p, _)| p == point)
            .filter_map(|(_, t)| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp())
            .collect()
    }

    fn value(&self, point: &str, second: i64) -> Option<&str> {
        let at = chrono::DateTime::from_timestamp(second, 0)?
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.values.get(&(point.to_owned(), at)).map(String::as_str)
    }

    /// Each value of `point` is the one `f` gives for its second, as OIBus writes numbers.
    fn assert_values(&self, point: &str, f: fn(i64) -> f64) {
        for t in self.seconds(point) {
            let expected = oibus_actors::connectors::south_modbus::js_number(f(t));
            assert_eq!(
                self.value(point, t),
                Some(expected.as_str()),
                "{point} at {t}"
            );
        }
    }

    /// Poll until `condition` holds.
    fn until(
        &mut self,
        sim: &Sim,
        timeout: Duration,
        mut condition: impl FnMut(&Seen) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll(sim);
            if condition(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

fn duplicates(sim: &Sim) -> u64 {
    sim.admin_get("/admin/data")["duplicates"]
        .as_u64()
        .unwrap_or(0)
}

/// Every second of `points` from `from` to its newest is there, with the value `f` gives.
fn assert_whole(seen: &Seen, point: &str, from: i64, f: fn(i64) -> f64, agent: &Agent) {
    let seconds = seen.seconds(point);
    let last = seconds.iter().max().copied().unwrap_or(from);
    let missing: Vec<i64> = (from..=last).filter(|t| !seconds.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "{point}: {} seconds missing between {from} and {last}: {missing:?}\n{}",
        missing.len(),
        agent.logs()
    );
    let extra: Vec<&i64> = seconds.iter().filter(|t| **t < from).collect();
    assert!(extra.is_empty(), "{point}: before the history: {extra:?}");
    seen.assert_values(point, f);
}

#[test]
fn polled_and_subscribed_values_reach_oianalytics_at_the_server_timestamps() {
    let server = OpcuaServer::start(20);
    let south = |sim: &Sim| {
        opcua_south(
            "m3",
            "plant",
            &server.url(),
            json!({"type": "basic", "username": USER, "password": sim.encrypt(PASSWORD)}),
            vec![
                da_item("counter-polled", &server.node("Counter"), "every-second"),
                da_item("temperature", &server.node("Temperature"), "every-second"),
                da_item("ghost", &server.node("DoesNotExist"), "every-second"),
                da_item("counter-pushed", &server.node("Counter"), "subscription"),
                da_item("ghost-pushed", "ns=2;x=nonsense", "subscription"),
            ],
        )
    };
    let (sim, _home, agent) = flow(south);
    let mut seen = Seen::default();
    let ok = seen.until(&sim, WAIT, |s| {
        s.seconds("counter-polled").len() >= 3
            && s.seconds("counter-pushed").len() >= 5
            && !s.seconds("temperature").is_empty()
    });
    assert!(ok, "values missing: {:?}\n{}", seen.values, agent.logs());
    for point in ["counter-polled", "counter-pushed"] {
        seen.assert_values(point, counter_value);
    }
    assert!(seen.seconds("ghost").is_empty());

    let status = south_status(&agent, "plant");
    let logs = agent.logs();
    assert!(status["errors"].as_u64().unwrap_or(0) >= 1, "{status}");
    assert!(
        logs.contains("'ghost'") && logs.contains("DoesNotExist"),
        "the bad node id is not named\n{logs}"
    );
    assert!(
        logs.contains("'ghost-pushed'") && logs.contains("ns=2;x=nonsense"),
        "the unparsable node id is not named\n{logs}"
    );

    let tested = tested_south_connection(&sim, &agent, "plant", "opcua");
    let keys: Vec<&str> = tested["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"State") && keys.contains(&"SecurityMode"),
        "{tested}"
    );
}

#[test]
fn sign_and_encrypt_with_basic256sha256_and_a_password_reads_values() {
    let server = OpcuaServer::start(5);
    let south = |sim: &Sim| {
        secure_south(
            "m3",
            "secure",
            &server.url(),
            ("sign-and-encrypt", "basic256-sha256"),
            json!({"type": "basic", "username": USER, "password": sim.encrypt(PASSWORD)}),
            vec![
                da_item("counter", &server.node("Counter"), "every-second"),
                da_item("pushed", &server.node("Counter"), "subscription"),
            ],
        )
    };
    let (sim, _home, agent) = flow(south);
    let mut seen = Seen::default();
    let ok = seen.until(&sim, WAIT, |s| {
        s.seconds("counter").len() >= 2 && s.seconds("pushed").len() >= 2
    });
    assert!(ok, "{:?}\n{}", seen.values, agent.logs());
    let tested = tested_south_connection(&sim, &agent, "secure", "opcua");
    let items = tested["items"].as_array().cloned().unwrap_or_default();
    assert!(
        items.contains(&json!({"key": "SecurityMode", "value": "SignAndEncrypt"}))
            && items.contains(&json!({"key": "SecurityPolicy", "value": "Basic256Sha256"})),
        "{tested}"
    );
}

#[test]
fn a_wrong_password_is_reported_clearly() {
    let server = OpcuaServer::start(5);
    let south = |sim: &Sim| {
        opcua_south(
            "m3",
            "locked",
            &server.url(),
            json!({"type": "basic", "username": USER, "password": sim.encrypt("wrong")}),
            vec![da_item("counter", &server.node("Counter"), "every-second")],
        )
    };
    let (_sim, _home, agent) = flow(south);
    let ok = wait_until(WAIT, || {
        // A scan before the first attempt ends says "connecting"; then the reason.
        south_status(&agent, "locked")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&server.url()) && e.contains("BadIdentityTokenRejected"))
    });
    let status = south_status(&agent, "locked");
    assert!(ok, "{status}\n{}", agent.logs());
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("BadIdentityTokenRejected") && error.contains("username and password"),
        "{error}"
    );
    assert!(status["errors"].as_u64().unwrap_or(0) >= 1, "{status}");
}

#[test]
fn history_catches_up_whole_after_a_server_outage_and_subscriptions_come_back() {
    let mut server = OpcuaServer::start(15);
    let from = server.history_from();
    let south = |_: &Sim| {
        opcua_south(
            "m3",
            "historian",
            &server.url(),
            json!({"type": "none"}),
            vec![
                ha_item("history", &server.node("History"), 60),
                da_item("pushed", &server.node("Counter"), "subscription"),
            ],
        )
    };
    let (sim, _home, agent) = flow(south);
    let mut seen = Seen::default();
    let ok = seen.until(&sim, WAIT, |s| {
        s.seconds("history").len() >= 18 && s.seconds("pushed").len() >= 2
    });
    assert!(ok, "{:?}\n{}", seen.values, agent.logs());

    server.stop();
    let down = chrono::Utc::now().timestamp();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        seen.poll(&sim);
        std::thread::sleep(Duration::from_millis(200));
    }
    let during = south_status(&agent, "historian");
    assert!(during["last_error"].as_str().is_some(), "{during}");
    server.restart();
    let up = chrono::Utc::now().timestamp();

    let ok = seen.until(&sim, WAIT, |s| {
        s.seconds("history").iter().any(|t| *t >= up + 2)
            && s.seconds("pushed").iter().any(|t| *t >= up + 2)
    });
    assert!(
        ok,
        "nothing after the server came back at {up} (down at {down})\n{}",
        agent.logs()
    );
    assert_whole(&seen, "history", from, history_value, &agent);
    assert_eq!(duplicates(&sim), 0, "{}", agent.logs());
}

#[test]
fn an_agent_restart_resumes_history_from_the_durable_tracked_instant() {
    let server = OpcuaServer::start(10);
    let from = server.history_from();
    let south = |_: &Sim| {
        opcua_south(
            "m3",
            "historian",
            &server.url(),
            json!({"type": "none"}),
            vec![ha_item("history", &server.node("History"), 60)],
        )
    };
    let (sim, home, mut agent) = flow(south);
    let mut seen = Seen::default();
    assert!(
        seen.until(&sim, WAIT, |s| s.seconds("history").len() >= 12),
        "{}",
        agent.logs()
    );
    agent.stop(Duration::from_secs(10));
    drop(agent);
    let killed = chrono::Utc::now().timestamp();
    std::thread::sleep(Duration::from_secs(3));
    let agent = registered(&home, &[]);
    let ok = seen.until(&sim, WAIT, |s| {
        s.seconds("history").iter().any(|t| *t >= killed + 5)
    });
    assert!(ok, "{}", agent.logs());
    assert_whole(&seen, "history", from, history_value, &agent);
    // Re-reading from the beginning would send the first seconds again.
    assert_eq!(duplicates(&sim), 0, "{}", agent.logs());
}

#[test]
fn setpoints_are_written_to_the_opcua_server_through_setpoint_to_opcua() {
    let server = OpcuaServer::start(5);
    let (sim, _home, agent) = started(&[]);
    let mapping = json!([
        {"reference": "speed", "nodeId": server.node("Setpoint")},
        {"reference": "nowhere", "nodeId": server.node("DoesNotExist")}
    ]);
    let settings = json!({"url": server.url(), "keepSessionAlive": false, "retryInterval": 1000,
                          "securityMode": "none", "securityPolicy": "none",
                          "authentication": {"type": "none"}});
    let setpoints = json!([{"reference": "nowhere", "value": 1},
                           {"reference": "speed", "value": "1500.5"},
                           {"reference": "unmapped", "value": 7}]);
    write_setpoints(
        &sim,
        &agent,
        ("opcua", "to-plc"),
        settings,
        mapping,
        setpoints,
    );
    let ok = wait_until(WAIT, || server.written("Setpoint") == Some(1500.5));
    assert!(ok, "{:?}\n{}", server.written("Setpoint"), agent.logs());
    let logs = agent.logs();
    assert!(
        logs.contains("DoesNotExist") && logs.contains("not written"),
        "{logs}"
    );
}

#[test]
fn test_south_item_reads_a_da_node_and_an_ha_window_on_a_session_of_its_own_and_names_a_bad_node() {
    let server = OpcuaServer::start(5);
    let (sim, _home, agent) = started(&[]);
    let settings = opcua_south("x", "plc", &server.url(), json!({"type": "none"}), vec![])
        ["commandContent"]["settings"]
        .clone();
    let test = |id: &str, item: Value| {
        command(
            id,
            "test-south-item",
            json!({"southConnectorId": "create", "itemId": "create", "commandContent": {
                "southCommand": {"name": "plc", "type": "opcua", "settings": settings},
                "itemCommand": item, "testingSettings": {}}}),
        )
    };
    sim.queue(&json!([test(
        "t1",
        da_item("temperature", &server.node("Temperature"), "every-second")
    )]));
    let tested: Value = completed_json(&sim, &agent, "t1");
    let raw = &tested["raw"];
    assert_eq!(raw["type"], "time-values", "{tested}");
    assert_eq!(raw["content"][0]["pointId"], "temperature", "{tested}");
    let value: f64 = raw["content"][0]["data"]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!((20.0..21.0).contains(&value), "{tested}");

    // An HA item: its history over testingSettings.history, of which OIBus shows the last.
    let from = server.history_from();
    let iso = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let mut ha = test("t3", ha_item("history", &server.node("History"), 0));
    ha["commandContent"]["testingSettings"] =
        json!({"history": {"startTime": iso(from), "endTime": iso(from + 3)}});
    sim.queue(&json!([ha]));
    let tested: Value = completed_json(&sim, &agent, "t3");
    let last = &tested["raw"]["content"][0];
    let at = chrono::DateTime::parse_from_rfc3339(last["timestamp"].as_str().unwrap_or_default())
        .map(|t| t.timestamp())
        .unwrap_or_default();
    assert!((from..=from + 3).contains(&at), "{tested}");
    assert_eq!(
        last["data"]["value"]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok()),
        Some(history_value(at)),
        "{tested}"
    );
    assert_eq!(
        tested["raw"]["content"].as_array().map(Vec::len),
        Some(1),
        "{tested}"
    );

    sim.queue(&json!([test(
        "t2",
        da_item("ghost", &server.node("DoesNotExist"), "every-second")
    )]));
    errored_naming(&sim, &agent, "t2", &["'ghost'", "DoesNotExist"]);
}
