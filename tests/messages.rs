//! Configuration messages (E6 full-config, E7 history-queries), end to end against the
//! simulator: what is pushed and when, secrets kept out, retries, drops, restarts, coalescing.

use std::time::Duration;

use serde_json::{json, Value};

use crate::commands::{run_completed, scan_mode};
use crate::kit::agent::{Agent, AgentHome};
use crate::kit::sim::Sim;
use crate::kit::{command, wait_until};
use oibus_actors::key_vault::encrypt_for;

const WAIT: Duration = Duration::from_secs(30);
const FULL: &str = "full-config";
const HISTORY: &str = "history-queries";

/// A simulator and an agent of it, registered once its first messages arrived; the completed
/// registration as the simulator lists it.
fn start() -> (Sim, AgentHome, Agent, Value) {
    let sim = Sim::auto_completing("500ms");
    let home = AgentHome::with_sim(&sim, "");
    let agent = home.start();
    let registration = registered(&sim, &agent);
    (sim, home, agent, registration)
}

fn bodies(sim: &Sim, kind: &str) -> Vec<Value> {
    sim.admin_get(&format!("/admin/messages?kind={kind}"))["messages"]
        .as_array()
        .expect("messages is an array")
        .iter()
        .map(|m| m["body"].clone())
        .collect()
}

/// Waits until a message of `kind` satisfies `check`; returns it.
fn wait_message(sim: &Sim, agent: &Agent, kind: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut found = None;
    let ok = wait_until(WAIT, || {
        found = bodies(sim, kind).into_iter().rev().find(&check);
        found.is_some()
    });
    assert!(
        ok,
        "no matching {kind} message; received {:#?}\nagent log:\n{}",
        bodies(sim, kind).last(),
        agent.logs()
    );
    found.unwrap()
}

fn registered(sim: &Sim, agent: &Agent) -> Value {
    wait_message(sim, agent, FULL, |_| true);
    wait_message(sim, agent, HISTORY, |_| true);
    sim.agents()
        .into_iter()
        .find(|a| a["status"] == "COMPLETED")
        .expect("a completed registration")
}

/// Queues one command and waits until it is COMPLETED.
fn run_one(sim: &Sim, agent: &Agent, id: &str, command_type: &str, extra: Value) {
    run_completed(sim, agent, &json!([command(id, command_type, extra)]));
}

fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|e| e["settings"]["name"] == name)
}

fn mssql_south(name: &str, password: &str) -> Value {
    json!({"name": name, "type": "mssql", "description": "e2e", "enabled": false,
        "settings": {"host": "127.0.0.1", "port": 1433, "connectionTimeout": 5000,
            "database": "plant", "encryption": false, "trustServerCertificate": false,
            "username": "reader", "password": password, "domain": null, "requestTimeout": 15000},
        "items": [{"id": null, "name": "item-1", "enabled": true,
            "settings": {"query": "SELECT 1", "dateTimeFields": [], "serialization": null},
            "scanModeId": "subscription", "scanModeName": null, "groupId": null, "groupName": null}],
        "groups": []})
}

fn caching(scan_mode_id: &str) -> Value {
    json!({"trigger": {"scanModeId": scan_mode_id, "scanModeName": null, "numberOfElements": 1000,
            "numberOfFiles": 1},
        "throttling": {"runMinDelay": 200, "maxSize": 0, "maxNumberOfElements": 10000},
        "error": {"retryInterval": 5000, "retryCount": 3, "retentionDuration": 72},
        "archive": {"enabled": false, "retentionDuration": 72}})
}

#[test]
fn full_config_and_history_queries_are_pushed_on_registration() {
    let (sim, _home, agent, registration) = start();
    let full = wait_message(&sim, &agent, FULL, |_| true);

    let engine = &full["engine"];
    assert_eq!(engine["oIBusInternalId"], registration["oibusId"]);
    assert_eq!(engine["name"], "test-agent");
    assert_eq!(
        engine["softwareVersion"],
        oibus_actors::COMPATIBLE_OIBUS_VERSION
    );
    assert_eq!(
        engine["launcherVersion"],
        oibus_actors::COMPATIBLE_OIBUS_VERSION
    );
    assert_eq!(engine["ignoreRemoteUpdate"], false);
    assert!(engine["binaryFolder"]
        .as_str()
        .unwrap()
        .ends_with("oibus-agent"));
    assert_eq!(engine["settings"]["proxyServer"]["password"], Value::Null);
    assert_eq!(full["registration"]["publicKey"], registration["publicKey"]);
    let settings = &full["registration"]["settings"];
    assert_eq!(
        settings["messageRetryInterval"], 1,
        "the YAML intervals, in seconds"
    );
    assert_eq!(
        settings["commandPermissions"].as_object().unwrap().len(),
        42
    );
    assert_eq!(
        full["scanModes"].as_array().unwrap().len(),
        7,
        "the seeded scan modes"
    );
    for key in [
        "ipFilters",
        "certificates",
        "southConnectors",
        "northConnectors",
    ] {
        assert_eq!(full[key], json!([]), "{key}");
    }
    assert_eq!(full["users"][0]["settings"]["login"], "admin");
    let history = wait_message(&sim, &agent, HISTORY, |_| true);
    assert_eq!(history, json!({"historyQueries": []}));

    // Registering again (new keys) pushes both again, with the new public key.
    let (code, body) = agent
        .request("POST", "/api/registration", r#"{"force": true}"#)
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let ok = wait_until(WAIT, || {
        sim.agents()
            .iter()
            .filter(|a| a["status"] == "COMPLETED")
            .count()
            == 2
    });
    assert!(ok, "no second registration:\n{}", agent.logs());
    let second = sim
        .agents()
        .into_iter()
        .filter(|a| a["status"] == "COMPLETED")
        .find(|a| a["publicKey"] != registration["publicKey"])
        .expect("a registration with a new key");
    wait_message(&sim, &agent, FULL, |m| {
        m["registration"]["publicKey"] == second["publicKey"]
    });
    sim.assert_no_violations();
}

#[test]
fn each_kind_of_change_pushes_a_snapshot_that_shows_it() {
    let (sim, _home, agent, registration) = start();
    let key = registration["publicKey"].as_str().unwrap().to_owned();

    run_completed(&sim, &agent, &json!([scan_mode("c-scan", "e2e-scan")]));
    let full = wait_message(&sim, &agent, FULL, |m| {
        named(&m["scanModes"], "e2e-scan").is_some()
    });
    let scan_id = named(&full["scanModes"], "e2e-scan").unwrap()["oIBusInternalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        named(&full["scanModes"], "e2e-scan").unwrap()["oIBusCreatedBy"],
        "oianalytics"
    );

    run_one(
        &sim,
        &agent,
        "c-ip",
        "create-ip-filter",
        json!({"commandContent": {"address": "10.0.0.1", "description": "e2e"}}),
    );
    wait_message(&sim, &agent, FULL, |m| {
        m["ipFilters"][0]["settings"]["address"] == "10.0.0.1"
    });

    let south = mssql_south("e2e-south", &encrypt_for(&key, "south-password").unwrap());
    run_one(
        &sim,
        &agent,
        "c-south",
        "create-south",
        json!({"southConnectorId": "", "retrieveSecretsFromSouth": null, "commandContent": south}),
    );
    let full = wait_message(&sim, &agent, FULL, |m| {
        m["southConnectors"].as_array().unwrap().len() == 1
    });
    let south = &full["southConnectors"][0];
    assert_eq!(south["type"], "mssql");
    assert_eq!(south["settings"]["settings"]["password"], "");
    assert_eq!(south["settings"]["settings"]["username"], "reader");
    let item = &south["settings"]["items"][0];
    assert_eq!(item["name"], "item-1");
    assert_eq!(item["scanModeName"], Value::Null);
    assert!(item["oIBusCreatedAt"].is_string());

    let north = json!({"name": "e2e-north", "type": "console", "description": "e2e", "enabled": false,
        "settings": {"verbose": false}, "caching": caching(&scan_id), "transformers": []});
    run_one(
        &sim,
        &agent,
        "c-north",
        "create-north",
        json!({"retrieveSecretsFromNorth": null, "commandContent": north}),
    );
    let full = wait_message(&sim, &agent, FULL, |m| {
        m["northConnectors"].as_array().unwrap().len() == 1
    });
    let north = &full["northConnectors"][0]["settings"];
    assert_eq!(north["caching"]["trigger"]["scanModeId"], scan_id.as_str());

    run_one(
        &sim,
        &agent,
        "c-engine",
        "update-engine-general",
        json!({"commandContent": {"name": "renamed-by-oia"}}),
    );
    wait_message(&sim, &agent, FULL, |m| {
        m["engine"]["name"] == "renamed-by-oia"
    });

    let mut permissions = full["registration"]["settings"]["commandPermissions"].clone();
    permissions["setpoint"] = json!(false);
    run_one(
        &sim,
        &agent,
        "c-registration",
        "update-registration-settings",
        json!({"commandContent": {"commandRefreshInterval": 1, "commandRetryInterval": 2,
            "messageRetryInterval": 1, "commandPermissions": permissions}}),
    );
    wait_message(&sim, &agent, FULL, |m| {
        let s = &m["registration"]["settings"];
        s["commandRetryInterval"] == 2 && s["commandPermissions"]["setpoint"] == false
    });

    let history = json!({"name": "e2e-history", "description": "e2e",
        "queryTimeRange": {"startTime": "2026-01-01T00:00:00.000Z", "endTime": "2026-01-02T00:00:00.000Z",
            "maxReadInterval": 3600, "readDelay": 200},
        "caching": caching(&scan_id), "northTransformers": [],
        "southType": "mssql", "southSettings": mssql_south("x", &encrypt_for(&key, "history-password").unwrap())["settings"],
        "items": [{"id": null, "name": "h-item", "enabled": true, "settings": {"query": "SELECT 2"}}],
        "northType": "file-writer", "northSettings": {"outputFolder": "out", "prefix": "p-", "suffix": "-s"}});
    run_one(
        &sim,
        &agent,
        "c-history",
        "create-history-query",
        json!({"retrieveSecretsFromSouth": null, "retrieveSecretsFromNorth": null,
            "retrieveSecretsFromHistoryQuery": null, "commandContent": history}),
    );
    let queries = wait_message(&sim, &agent, HISTORY, |m| {
        m["historyQueries"].as_array().unwrap().len() == 1
    });
    let query = &queries["historyQueries"][0]["settings"];
    assert_eq!(query["name"], "e2e-history");
    assert_eq!(query["southSettings"]["password"], "");
    assert_eq!(
        query["northSettings"]["password"], "",
        "the file-writer secret is added blank"
    );
    assert_eq!(query["items"][0]["name"], "h-item");

    run_one(&sim, &agent, "c-keys", "regenerate-cipher-keys", json!({}));
    wait_message(&sim, &agent, FULL, |m| {
        m["registration"]["publicKey"]
            .as_str()
            .is_some_and(|k| k.starts_with("-----BEGIN PUBLIC KEY") && k != key)
    });
    sim.assert_no_violations();
}

#[test]
fn a_planted_secret_never_reaches_the_simulator() {
    const PLANTED: &str = "planted-e2e-Secret-7f3a";
    let (sim, _home, agent, registration) = start();
    let key = registration["publicKey"].as_str().unwrap().to_owned();
    let south = mssql_south("secret-south", &encrypt_for(&key, PLANTED).unwrap());
    run_one(
        &sim,
        &agent,
        "s-south",
        "create-south",
        json!({"southConnectorId": "", "retrieveSecretsFromSouth": null, "commandContent": south}),
    );
    // An update with an empty secret keeps it: still stored, still never sent.
    let mut update = mssql_south("secret-south-2", "");
    update["settings"]["port"] = json!(1434);
    let full = wait_message(&sim, &agent, FULL, |m| {
        named(&m["southConnectors"], "secret-south").is_some()
    });
    let south_id = full["southConnectors"][0]["oIBusInternalId"].clone();
    run_one(
        &sim,
        &agent,
        "s-update",
        "update-south",
        json!({"southConnectorId": south_id, "commandContent": update}),
    );
    wait_message(&sim, &agent, FULL, |m| {
        named(&m["southConnectors"], "secret-south-2").is_some()
    });

    for path in [
        "/admin/messages",
        "/admin/statuses",
        "/admin/logs",
        "/admin/requests",
        "/admin/commands",
    ] {
        let raw = sim.admin("GET", path, None).text();
        assert!(!raw.contains(PLANTED), "{path} holds the secret");
    }
    assert!(
        !agent.logs().contains(PLANTED),
        "the agent logged the secret"
    );
    sim.assert_no_violations();
}

#[test]
fn a_503_is_retried_until_oianalytics_recovers() {
    let (sim, _home, agent, _) = start();
    let before = bodies(&sim, FULL).len();
    sim.fault(
        "configuration",
        3,
        json!({"status": 503, "body": "Service Unavailable"}),
    );
    run_completed(&sim, &agent, &json!([scan_mode("r-scan", "retried-scan")]));
    wait_message(&sim, &agent, FULL, |m| {
        named(&m["scanModes"], "retried-scan").is_some()
    });
    let requests = &sim.admin_get("/admin/requests")["routes"]["configuration"]["recent"];
    let faulted = requests
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == 503)
        .count();
    assert_eq!(faulted, 3, "three answers of 503, then delivered");
    assert_eq!(bodies(&sim, FULL).len(), before + 1, "delivered once");
    assert!(agent.logs().contains("it will be retried"));
    sim.assert_no_violations();
}

#[test]
fn a_bad_request_answer_drops_the_message() {
    let (sim, _home, agent, _) = start();
    let before = bodies(&sim, FULL).len();
    let answer = json!({"timestamp": "2026-01-01T00:00:00Z", "status": 400, "error": "Bad Request",
        "message": "rejected by the test", "path": "/api/oianalytics/oibus/configuration"});
    sim.fault("configuration", 1, json!({"status": 400, "body": answer}));
    run_completed(
        &sim,
        &agent,
        &json!([scan_mode("b-scan-1", "dropped-scan")]),
    );
    let dropped = wait_until(WAIT, || agent.logs().contains("it is dropped"));
    assert!(dropped, "{}", agent.logs());
    // No retry: nothing arrives within several retry intervals.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        bodies(&sim, FULL).len(),
        before,
        "the rejected message is not retried"
    );

    // The next change is pushed as a full snapshot, which includes the earlier change.
    run_completed(
        &sim,
        &agent,
        &json!([scan_mode("b-scan-2", "after-drop-scan")]),
    );
    let full = wait_message(&sim, &agent, FULL, |m| {
        named(&m["scanModes"], "after-drop-scan").is_some()
    });
    assert!(named(&full["scanModes"], "dropped-scan").is_some());
    assert_eq!(bodies(&sim, FULL).len(), before + 1);
}

#[test]
fn a_pending_message_is_sent_after_a_restart() {
    let (sim, home, mut agent, _) = start();
    sim.fault(
        "configuration",
        1000,
        json!({"status": 503, "body": "down"}),
    );
    run_completed(&sim, &agent, &json!([scan_mode("p-scan", "pending-scan")]));
    let failing = wait_until(WAIT, || {
        agent.logs().matches("it will be retried").count() >= 2
    });
    assert!(failing, "{}", agent.logs());
    agent.stop(WAIT);
    sim.admin_delete("/admin/faults");

    let agent = home.start();
    wait_message(&sim, &agent, FULL, |m| {
        named(&m["scanModes"], "pending-scan").is_some()
    });
    assert!(
        agent
            .logs()
            .contains("configuration messages left pending by the previous run"),
        "{}",
        agent.logs()
    );
    sim.assert_no_violations();
}

#[test]
fn a_burst_of_changes_goes_out_in_few_messages() {
    let (sim, _home, agent, _) = start();
    let before = bodies(&sim, FULL).len();
    let burst: Vec<Value> = (0..10)
        .map(|i| scan_mode(&format!("burst-{i}"), &format!("burst-scan-{i}")))
        .collect();
    run_completed(&sim, &agent, &json!(burst));
    let all_in =
        |m: &Value| (0..10).all(|i| named(&m["scanModes"], &format!("burst-scan-{i}")).is_some());
    wait_message(&sim, &agent, FULL, all_in);
    // Let anything still queued go out, then count.
    std::thread::sleep(Duration::from_secs(2));
    let after = bodies(&sim, FULL);
    let sent = after.len() - before;
    assert!(
        (1..=3).contains(&sent),
        "{sent} messages for a burst of 10 changes"
    );
    assert!(
        all_in(after.last().unwrap()),
        "the last message reflects every change"
    );
    sim.assert_no_violations();
}

#[test]
fn transformers_are_listed_in_full_config_and_a_north_may_use_them() {
    let (sim, _home, agent, _) = start();
    let full = wait_message(&sim, &agent, FULL, |m| {
        m["transformers"].as_array().is_some_and(|t| t.len() == 15)
    });
    let iso = full["transformers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["settings"]["functionName"] == "iso")
        .expect("the iso transformer")["oIBusInternalId"]
        .clone();

    run_one(
        &sim,
        &agent,
        "ct1",
        "create-custom-transformer",
        json!({"commandContent": {"type": "custom", "name": "scale", "description": "",
            "inputType": "time-values", "outputType": "any", "language": "javascript",
            "timeout": 1000, "customCode": "function transform() {}",
            "customManifest": {"type": "object", "key": "options"}}}),
    );
    let full = wait_message(&sim, &agent, FULL, |m| {
        m["transformers"].as_array().is_some_and(|t| t.len() == 16)
    });
    let custom = &full["transformers"][15];
    assert_eq!(custom["type"], "custom");
    assert_eq!(custom["settings"]["name"], "scale");

    let north = |id: &str, transformer_id: &Value| {
        command(
            id,
            "create-north",
            json!({"retrieveSecretsFromNorth": null, "commandContent": {
                "name": id, "type": "console", "description": "", "enabled": false,
                "settings": {"verbose": false}, "caching": caching("subscription"),
                "transformers": [{"transformerId": transformer_id, "options": {},
                    "source": {"type": "oianalytics-setpoint"}}]}}),
        )
    };
    run_completed(&sim, &agent, &json!([north("n-iso", &iso)]));
    let full = wait_message(&sim, &agent, FULL, |m| {
        named(&m["northConnectors"], "n-iso").is_some()
    });
    let entry = &named(&full["northConnectors"], "n-iso").unwrap()["settings"]["transformers"][0];
    assert_eq!(entry["transformerId"], iso);
    assert!(
        entry["id"].as_str().is_some_and(|id| id.len() == 6),
        "{entry}"
    );

    sim.queue(&json!([
        north("n-bad", &json!("nope00")),
        command(
            "tt1",
            "test-custom-transformer",
            json!({"commandContent": {}})
        ),
    ]));
    for (id, result) in [
        ("n-bad", "Could not find OIBus transformer \"nope00\""),
        (
            "tt1",
            "test-custom-transformer needs a transformer runtime, which oibus-agent does not have yet",
        ),
    ] {
        let last = crate::commands::terminal(&sim, &agent, id);
        assert_eq!(last["status"], "ERRORED", "{id}");
        assert_eq!(last["result"], result, "{id}");
    }
    sim.assert_no_violations();
}

#[test]
fn a_created_certificate_reaches_e6_with_its_public_parts_only() {
    let (sim, _home, agent, _) = start();
    let options = json!({"commonName": "e2e", "countryName": "FR", "stateOrProvinceName": "Savoie",
        "localityName": "Chambery", "organizationName": "Optimistik", "keySize": 2048,
        "daysBeforeExpiry": 30});
    run_one(
        &sim,
        &agent,
        "c-cert",
        "create-certificate",
        json!({"commandContent": {"name": "e2e-cert", "description": "e2e",
            "regenerateCertificate": false, "options": options}}),
    );
    let full = wait_message(&sim, &agent, FULL, |m| {
        named(&m["certificates"], "e2e-cert").is_some()
    });
    let settings = &named(&full["certificates"], "e2e-cert").unwrap()["settings"];
    let public_key = settings["publicKey"].as_str().unwrap();
    <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_pem(public_key)
        .expect("an SPKI PEM public key");
    assert!(settings["certificate"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(settings["expiry"]
        .as_str()
        .unwrap()
        .ends_with("T00:00:00.000Z"));
    assert!(!full.to_string().contains("PRIVATE KEY"));
    assert!(settings.get("privateKey").is_none());
    sim.assert_no_violations();
}
