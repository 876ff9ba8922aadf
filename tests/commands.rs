//! The command channel end to end: commands queued in the simulator, executed by the engine,
//! their statuses reported back; entity effects checked through `GET /api/entities`.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::kit::agent::{sim_section, Agent, AgentHome};
pub(crate) use crate::kit::command;
use crate::kit::load::is_terminal;
use crate::kit::sim::{array, Sim};
use crate::kit::{bench_figure, procfs, wait_until};

pub(crate) const WAIT: Duration = Duration::from_secs(30);
/// The OIBus version OIA is told and targets (not the agent's own).
const VERSION: &str = oibus_actors::COMPATIBLE_OIBUS_VERSION;

/// A simulator that completes registrations at once.
pub(crate) fn sim() -> Sim {
    Sim::auto_completing("10ms")
}

/// Start the agent and wait until it is registered.
pub(crate) fn registered(home: &AgentHome, env: &[(&str, &str)]) -> Agent {
    let agent = home.start_with_env(env);
    agent.wait_registration("REGISTERED");
    agent
}

/// A simulator and an agent of it (`env` added to its environment), registered.
pub(crate) fn started(env: &[(&str, &str)]) -> (Sim, AgentHome, Agent) {
    let sim = sim();
    let home = AgentHome::with_sim(&sim, "");
    let agent = registered(&home, env);
    (sim, home, agent)
}

/// The statuses the simulator received for command `id`, in arrival order.
pub(crate) fn statuses(sim: &Sim, id: &str) -> Vec<Value> {
    sim.admin_get(&format!("/admin/statuses?id={id}"))["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r["record"].clone())
        .collect()
}

/// The statuses reported for command `id`, in the order they reached the simulator.
fn status_sequence(sim: &Sim, id: &str) -> Vec<Value> {
    statuses(sim, id)
        .iter()
        .map(|r| r["status"].clone())
        .collect()
}

/// Wait for the terminal record of command `id` and return it.
pub(crate) fn terminal(sim: &Sim, agent: &Agent, id: &str) -> Value {
    let mut found = None;
    let ok = wait_until(WAIT, || {
        found = statuses(sim, id)
            .into_iter()
            .find(|r| is_terminal(r["status"].as_str().unwrap_or_default()));
        found.is_some()
    });
    assert!(
        ok,
        "no final status for {id}: {:?}\n{}",
        statuses(sim, id),
        agent.logs()
    );
    found.unwrap_or_default()
}

pub(crate) fn completed(sim: &Sim, agent: &Agent, id: &str) -> Value {
    let record = terminal(sim, agent, id);
    assert_eq!(
        record["status"],
        "COMPLETED",
        "{id}: {record}\n{}",
        agent.logs()
    );
    record
}

/// Queue `commands` (a JSON array) in one batch and wait until each has COMPLETED.
pub(crate) fn run_completed(sim: &Sim, agent: &Agent, commands: &Value) {
    sim.queue(commands);
    for command in commands.as_array().into_iter().flatten() {
        completed(sim, agent, command["id"].as_str().unwrap_or_default());
    }
}

/// The COMPLETED result of command `id`, which is JSON (tests, cache searches).
pub(crate) fn completed_json(sim: &Sim, agent: &Agent, id: &str) -> Value {
    let result = completed(sim, agent, id)["result"].clone();
    serde_json::from_str(result.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{id}: the result is not JSON ({e}): {result}"))
}

pub(crate) fn entities(agent: &Agent) -> Value {
    let (code, body) = agent.get("/api/entities").expect("the local API answers");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

pub(crate) fn named<'a>(list: &'a Value, name: &str) -> Vec<&'a Value> {
    list.as_array()
        .map(|l| l.iter().filter(|e| e["name"] == name).collect())
        .unwrap_or_default()
}

pub(crate) fn scan_mode(id: &str, name: &str) -> Value {
    command(
        id,
        "create-scan-mode",
        json!({"commandContent": {"name": name, "description": "", "cron": "0 * * * * *"}}),
    )
}

/// `n` scan mode creations, id and name `<prefix><i>`.
fn scan_modes(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| scan_mode(&format!("{prefix}{i}"), &format!("{prefix}{i}")))
        .collect()
}

#[test]
fn configuration_commands_change_the_entities_and_report_completed() {
    let (sim, _home, agent) = started(&[]);
    let secret = sim.encrypt("db-password");
    let mut permissions = serde_json::Map::new();
    for flag in oibus_actors::config::PERMISSION_FLAGS {
        permissions.insert(flag.to_owned(), json!(flag != "setpoint"));
    }
    let south = json!({"name": "plc", "type": "mssql", "description": "", "enabled": false,
        "settings": {"host": "h", "password": secret},
        "items": [{"id": null, "name": "i1", "enabled": true, "settings": {},
                   "scanModeId": null, "scanModeName": "fast"}],
        "groups": []});
    let history = json!({"name": "backfill", "description": "", "queryTimeRange": {},
        "caching": null, "northTransformers": [], "southType": "mssql",
        "southSettings": {"password": ""}, "items": [], "northType": "console", "northSettings": {}});
    sim.queue(&json!([
        scan_mode("c1", "fast"),
        command("c2", "create-ip-filter", json!({"commandContent": {"address": "10.0.0.1", "description": ""}})),
        command("c3", "create-certificate", json!({"commandContent":
            {"name": "cert", "description": "", "regenerateCertificate": false, "options": {
                "commonName": "agent", "countryName": "FR", "stateOrProvinceName": "Savoie",
                "localityName": "Chambery", "organizationName": "Optimistik", "keySize": 2048,
                "daysBeforeExpiry": 30}}})),
        command("c4", "create-south", json!({"retrieveSecretsFromSouth": null, "commandContent": south})),
        command("c5", "create-north", json!({"retrieveSecretsFromNorth": null, "commandContent":
            {"name": "out", "type": "console", "description": "", "enabled": true, "settings": {},
             "caching": {"trigger": {"scanModeId": null, "scanModeName": "fast"}}, "transformers": []}})),
        command("c6", "create-history-query", json!({"retrieveSecretsFromSouth": null,
            "retrieveSecretsFromNorth": null, "retrieveSecretsFromHistoryQuery": null, "commandContent": history})),
        command("c7", "update-engine-general", json!({"commandContent": {"name": "renamed"}})),
        command("c8", "update-engine-logger", json!({"commandContent": {
            "console": {"level": "info"}, "file": {"level": "info"}, "database": {"level": "info"},
            "loki": {"level": "silent", "password": ""}, "oia": {"level": "silent"}, "syslog": {"level": "silent"}}})),
        command("c9", "update-registration-settings", json!({"commandContent": {"commandRefreshInterval": 1,
            "commandRetryInterval": 1, "messageRetryInterval": 2, "commandPermissions": permissions}})),
        command("c10", "regenerate-cipher-keys", json!({})),
    ]));
    // The result texts are fidelity::rows_7_and_8_every_result_text_is_oibus_sentence's.
    for id in ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10"] {
        completed(&sim, &agent, id);
    }
    let e = entities(&agent);
    assert_eq!(named(&e["scanModes"], "fast").len(), 1);
    assert_eq!(
        named(&e["scanModes"], "fast")[0]["createdBy"],
        "oianalytics"
    );
    assert_eq!(
        e["scanModes"].as_array().unwrap().len(),
        8,
        "7 seeded + 1: {e}"
    );
    assert_eq!(e["ipFilters"][0]["address"], "10.0.0.1");
    assert_eq!(named(&e["certificates"], "cert").len(), 1);
    assert_eq!(named(&e["southConnectors"], "plc")[0]["items"], 1);
    assert_eq!(named(&e["northConnectors"], "out").len(), 1);
    assert_eq!(
        named(&e["historyQueries"], "backfill")[0]["status"],
        "PENDING"
    );
    assert_eq!(e["engine"]["general"]["name"], "renamed");
    assert_eq!(e["registration"]["messageRetryInterval"], 2);
    assert_eq!(e["registration"]["commandPermissions"]["setpoint"], false);

    // Updates and deletes address what the creates made (ids from the entity listing).
    let mode_id = named(&e["scanModes"], "fast")[0]["id"].clone();
    let filter_id = e["ipFilters"][0]["id"].clone();
    let history_id = named(&e["historyQueries"], "backfill")[0]["id"].clone();
    let north_id = named(&e["northConnectors"], "out")[0]["id"].clone();
    sim.queue(&json!([
        command(
            "d1",
            "update-scan-mode",
            json!({"scanModeId": mode_id,
            "commandContent": {"name": "faster", "description": "", "cron": "*/5 * * * * *"}})
        ),
        command("d2", "delete-ip-filter", json!({"ipFilterId": filter_id})),
        command(
            "d3",
            "update-history-query-status",
            json!({"historyId": history_id, "historyQueryStatus": "RUNNING"})
        ),
        command("d4", "delete-north", json!({"northConnectorId": north_id})),
        command(
            "d5",
            "setpoint",
            json!({"northConnectorId": "x", "commandContent": []})
        ),
    ]));
    for id in ["d1", "d2", "d3", "d4"] {
        completed(&sim, &agent, id);
    }
    assert_eq!(
        terminal(&sim, &agent, "d5")["result"],
        "Command d5 of type setpoint is not authorized",
        "the remote settings switched setpoint off"
    );
    let e = entities(&agent);
    assert_eq!(named(&e["scanModes"], "faster").len(), 1);
    assert!(e["ipFilters"].as_array().unwrap().is_empty());
    assert!(e["northConnectors"].as_array().unwrap().is_empty());
    // Started, then ended by the data plane: no south type here reads history yet.
    let ended = wait_until(WAIT, || {
        named(&entities(&agent)["historyQueries"], "backfill")[0]["status"] == "ERRORED"
    });
    assert!(ended, "{}", entities(&agent)["historyQueries"]);
    // The history query records the local name of the id field.
    assert_eq!(statuses(&sim, "d3")[0]["historyQueryId"], history_id);
    sim.assert_no_violations();
}

#[test]
fn csv_item_imports_merge_items_into_a_south_and_a_history_query() {
    let (sim, _home, agent) = started(&[]);
    let south = json!({"name": "broker", "type": "mqtt", "description": "", "enabled": false,
        "settings": {}, "items": [], "groups": []});
    let history = json!({"name": "backfill", "description": "", "queryTimeRange": {},
        "caching": null, "northTransformers": [], "southType": "opcua", "southSettings": {},
        "items": [], "northType": "console", "northSettings": {}});
    sim.queue(&json!([
        command("k1", "create-south", json!({"retrieveSecretsFromSouth": null, "commandContent": south})),
        command("k2", "create-history-query", json!({"retrieveSecretsFromSouth": null,
            "retrieveSecretsFromNorth": null, "retrieveSecretsFromHistoryQuery": null, "commandContent": history})),
    ]));
    completed(&sim, &agent, "k1");
    completed(&sim, &agent, "k2");
    let e = entities(&agent);
    let south_id = named(&e["southConnectors"], "broker")[0]["id"].clone();
    let history_id = named(&e["historyQueries"], "backfill")[0]["id"].clone();
    // The CSV fields travel at the top level of the element (protocol §4.6).
    sim.queue(&json!([
        command("k3", "create-or-update-south-items-from-csv", json!({"southConnectorId": south_id,
            "deleteItemsNotPresent": false, "delimiter": ";",
            "csvContent": "name;enabled;scanMode;settings_topic\n\"a;1\";true;Subscription;plant/a\nb;false;Subscription;plant/b\n"})),
        command("k4", "create-or-update-history-query-south-items-from-csv", json!({"historyId": history_id,
            "deleteItemsNotPresent": true, "delimiter": ",",
            "csvContent": "name,enabled,settings_nodeId,settings_mode,settings_timestampOrigin\nh,true,ns=1,da,point\n"})),
        command("k5", "create-or-update-south-items-from-csv", json!({"southConnectorId": south_id,
            "deleteItemsNotPresent": false, "delimiter": ";",
            "csvContent": "name;scanMode;settings_topic\nb;nope;t\n"})),
    ]));
    assert_eq!(
        completed(&sim, &agent, "k3")["result"],
        "2 items imported on South connector broker"
    );
    assert_eq!(
        completed(&sim, &agent, "k4")["result"],
        "1 items imported on History query backfill"
    );
    let errored = terminal(&sim, &agent, "k5");
    assert_eq!(errored["status"], "ERRORED");
    assert_eq!(
        errored["result"],
        "Error when checking csv items:\nb: Scan mode \"nope\" not found for item \"b\""
    );
    // The local record keeps the CSV fields in its commandContent, as OIBus stores them.
    assert_eq!(statuses(&sim, "k3")[0]["commandContent"]["delimiter"], ";");
    let e = entities(&agent);
    assert_eq!(named(&e["southConnectors"], "broker")[0]["items"], 2);
    assert_eq!(named(&e["historyQueries"], "backfill")[0]["items"], 1);
    sim.assert_no_violations();
}

#[test]
fn refused_and_malformed_commands_end_errored_with_the_reason() {
    let sim = sim();
    let home = AgentHome::with_sim(&sim, "  permissions: { createIpFilter: false }\n");
    let agent = registered(&home, &[]);
    let mut wrong_version = scan_mode("v1", "never");
    wrong_version["targetVersion"] = json!("0.0.1");
    let garbage_secret = json!({"name": "bad", "type": "mssql", "description": "", "enabled": false,
        "settings": {"password": "bm90IGNpcGhlcnRleHQ="}, "items": [], "groups": []});
    sim.queue(&json!([
        wrong_version,
        command("p1", "create-ip-filter", json!({"commandContent": {"address": "1.2.3.4", "description": ""}})),
        command("u1", "test-history-query-north-connection", json!({"historyId": "h", "northConnectorId": "n", "commandContent": {}})),
        command("t1", "brew-coffee", json!({})),
        command("m1", "update-scan-mode", json!({"scanModeId": 7, "commandContent": {}})),
        {"type": "restart-engine", "targetVersion": VERSION},
        "not even an object",
        command("s1", "create-south", json!({"retrieveSecretsFromSouth": null, "commandContent": garbage_secret})),
        command("k1", "create-scan-mode", json!({"commandContent": {"name": "k", "description": "", "cron": "* * *"}})),
        command("x1", "update-version", json!({"commandContent": {"version": "v9.9.9", "assetId": "a",
            "updateLauncher": false, "backupFoldersPattern": "cache/*"}})),
        scan_mode("ok", "fine"),
    ]));
    let expect = [
        (
            "v1",
            format!("Wrong target version: 0.0.1 for OIBus version {VERSION}"),
        ),
        (
            "p1",
            "Command p1 of type create-ip-filter is not authorized".into(),
        ),
        (
            "u1",
            "test-history-query-north-connection is not supported by oibus-agent".into(),
        ),
        (
            "t1",
            "Malformed command: unknown command type 'brew-coffee'".into(),
        ),
        (
            "m1",
            "Malformed command: field 'scanModeId': invalid type: integer `7`, expected a string"
                .into(),
        ),
        ("x1", "OIBus is not set up to execute remote update".into()),
    ];
    for (id, result) in &expect {
        let record = terminal(&sim, &agent, id);
        assert_eq!(record["status"], "ERRORED", "{id}: {record}");
        assert_eq!(record["result"], result.as_str(), "{id}");
        assert_eq!(record["completedDate"], Value::Null);
    }
    let s1 = terminal(&sim, &agent, "s1");
    assert_eq!(s1["status"], "ERRORED");
    assert!(
        s1["result"]
            .as_str()
            .unwrap()
            .contains("Cannot decrypt secret"),
        "{s1}"
    );
    assert_eq!(
        s1["commandContent"]["settings"]["password"], "bm90IGNpcGhlcnRleHQ=",
        "the report carries the command as received"
    );
    assert!(terminal(&sim, &agent, "k1")["result"]
        .as_str()
        .unwrap()
        .contains("must have 6 fields"));
    completed(&sim, &agent, "ok");
    let e = entities(&agent);
    assert!(named(&e["scanModes"], "never").is_empty());
    assert!(e["ipFilters"].as_array().unwrap().is_empty());
    // The element without an id is skipped and logged, and did not stop the rest.
    assert!(
        agent.logs().contains("without a usable id"),
        "{}",
        agent.logs()
    );
    sim.assert_no_violations();
}

#[test]
fn a_duplicate_id_is_run_once_and_does_not_stall_the_queue() {
    let (sim, _home, agent) = started(&[]);
    sim.queue(&json!([
        scan_mode("dup", "first"),
        scan_mode("dup", "second"),
        scan_mode("after", "third")
    ]));
    completed(&sim, &agent, "after");
    let dup = completed(&sim, &agent, "dup");
    assert_eq!(dup["commandContent"]["name"], "first");
    let e = entities(&agent);
    assert_eq!(named(&e["scanModes"], "first").len(), 1);
    assert!(named(&e["scanModes"], "second").is_empty());
    let finals = statuses(&sim, "dup")
        .iter()
        .filter(|r| is_terminal(r["status"].as_str().unwrap()))
        .count();
    assert_eq!(finals, 1);
}

#[test]
fn a_long_answer_is_journaled_in_parts_each_command_once() {
    // More than one intake part (`INTAKE_CHUNK`), with an id repeated in the second part.
    let n = oibus_actors::command_poller::INTAKE_CHUNK + 200;
    let (sim, _home, agent) = started(&[]);
    let mut batch = scan_modes("long-", n);
    batch.insert(n - 100, scan_mode("long-7", "a repeat of long-7"));
    sim.queue(&Value::Array(batch));
    let last = format!("long-{}", n - 1);
    completed(&sim, &agent, &last);
    let ok = wait_until(WAIT, || {
        let latest = sim.admin_get("/admin/statuses?limit=1")["latest"].clone();
        latest
            .as_object()
            .is_some_and(|l| l.values().filter(|v| v["status"] == "COMPLETED").count() == n)
    });
    assert!(ok, "not every command completed:\n{}", agent.logs());
    let e = entities(&agent);
    assert_eq!(e["scanModes"].as_array().map(|m| m.len() >= n), Some(true));
    assert!(named(&e["scanModes"], "a repeat of long-7").is_empty());
    assert_eq!(named(&e["scanModes"], "long-7").len(), 1);
    sim.assert_no_violations();
}

#[test]
fn a_backlog_over_the_answer_limit_says_which_key_to_raise_and_drains_once_raised() {
    // 1,000 commands make an answer of about 130 KiB.
    let n = 1_000;
    let sim = sim();
    let home = AgentHome::with_sim(&sim, "  max_answer_bytes: 64KiB\n");
    let agent = registered(&home, &[]);
    let batch = scan_modes("big-", n);
    sim.queue(&Value::Array(batch));
    let hint = "raise oianalytics.max_answer_bytes";
    assert!(
        wait_until(WAIT, || agent.logs().contains(hint)),
        "no hint at the key to raise:\n{}",
        agent.logs()
    );
    assert!(statuses(&sim, "big-0").is_empty(), "nothing journaled");

    home.write_config(&sim_section(&sim, "  max_answer_bytes: 1MiB\n"));
    agent.signal(Signal::SIGHUP);
    completed(&sim, &agent, &format!("big-{}", n - 1));
    sim.assert_no_violations();
}

#[test]
fn a_retrieved_command_cancelled_by_oianalytics_never_runs() {
    // Each command waits 2 s before it runs, so the second one sits RETRIEVED for a while.
    let (sim, _home, agent) = started(&[("OIBUS_AGENT_TEST_EXEC_DELAY_MS", "2000")]);
    sim.queue(&json!([
        scan_mode("slow", "slow"),
        scan_mode("victim", "victim")
    ]));
    let ok = wait_until(WAIT, || {
        statuses(&sim, "victim")
            .iter()
            .any(|r| r["status"] == "RETRIEVED")
    });
    assert!(ok, "{}", agent.logs());
    sim.admin_post("/admin/commands/victim/cancel", &json!({}));
    assert_eq!(terminal(&sim, &agent, "victim")["status"], "CANCELLED");
    completed(&sim, &agent, "slow");
    assert!(named(&entities(&agent)["scanModes"], "victim").is_empty());
}

#[test]
fn status_reports_are_retried_through_server_errors() {
    let (sim, _home, agent) = started(&[]);
    sim.fault("commands-status", 4, json!({"status": 500, "body": "boom"}));
    sim.queue(&scan_mode("r1", "retried"));
    completed(&sim, &agent, "r1");
    // The RETRIEVED report may have been superseded by the COMPLETED one while the PUTs
    // failed (then it is acknowledged with it, not sent): what reaches OIA ends COMPLETED.
    let seen = status_sequence(&sim, "r1");
    assert!(
        seen == [json!("COMPLETED")] || seen == [json!("RETRIEVED"), json!("COMPLETED")],
        "the final status reaches OIA in the end, in order: {seen:?}"
    );
    sim.assert_no_violations();
}

#[test]
fn after_failed_puts_the_retry_lists_each_command_once_at_its_latest_status() {
    let (sim, _home, agent) = started(&[]);
    // Every E5 PUT fails until the commands have run: both the RETRIEVED and the COMPLETED
    // report of each then wait for the same retry.
    sim.fault(
        "commands-status",
        10_000,
        json!({"status": 500, "body": "boom"}),
    );
    let ids = ["dup1", "dup2", "dup3", "dup4", "dup5", "dup6"];
    let commands: Vec<Value> = ids.iter().map(|id| scan_mode(id, id)).collect();
    sim.queue(&Value::Array(commands));
    let ran = wait_until(WAIT, || {
        let scan_modes = &entities(&agent)["scanModes"];
        ids.iter().all(|id| !named(scan_modes, id).is_empty())
    });
    assert!(ran, "the commands did not run:\n{}", agent.logs());
    sim.admin_delete("/admin/faults");
    for id in ids {
        completed(&sim, &agent, id);
    }

    // One PUT = the records the simulator received at one instant (its clock, per request).
    let received = array(&sim.admin_get("/admin/statuses"), "records");
    let mut puts: Vec<(Value, Vec<Value>)> = Vec::new();
    for r in received {
        match puts.last_mut() {
            Some((at, records)) if *at == r["at"] => records.push(r["record"].clone()),
            _ => puts.push((r["at"].clone(), vec![r["record"].clone()])),
        }
    }
    for (at, records) in &puts {
        let listed: Vec<&str> = records.iter().filter_map(|r| r["id"].as_str()).collect();
        let mut unique = listed.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            listed.len(),
            "no id twice in one PUT: the PUT at {at} listed {listed:?}"
        );
    }
    let (_, retried) = &puts[0];
    let mut latest: Vec<(&str, &str)> = retried
        .iter()
        .filter_map(|r| Some((r["id"].as_str()?, r["status"].as_str()?)))
        .collect();
    latest.sort_unstable();
    assert_eq!(
        latest,
        ids.map(|id| (id, "COMPLETED")),
        "the first PUT through lists each command once, at its latest status"
    );
    for id in ids {
        let seen = status_sequence(&sim, id);
        assert_eq!(
            seen,
            [json!("COMPLETED")],
            "{id}: the superseded RETRIEVED was acknowledged with it, not sent later"
        );
    }
    sim.assert_no_violations();
}

#[test]
fn a_404_on_status_reports_counts_as_acknowledged() {
    let (sim, _home, agent) = started(&[("OIBUS_AGENT_TEST_EXEC_DELAY_MS", "1500")]);
    // The first report (RETRIEVED of n1) gets a 404: it is not sent again.
    sim.fault(
        "commands-status",
        1,
        json!({"status": 404, "body": "unknown command"}),
    );
    sim.queue(&scan_mode("n1", "not-found"));
    let record = completed(&sim, &agent, "n1");
    assert_eq!(record["commandContent"]["name"], "not-found");
    let seen = status_sequence(&sim, "n1");
    assert_eq!(
        seen,
        [json!("COMPLETED")],
        "the 404'd RETRIEVED report was not retried"
    );
}

#[test]
fn restart_engine_exits_for_the_launcher_and_completes_after_the_restart() {
    let (sim, home, mut agent) = started(&[]);
    sim.queue(&command("boot", "restart-engine", json!({})));
    assert_eq!(
        agent.wait_exit(WAIT),
        Some(oibus_actors::exit::RESTART),
        "{}",
        agent.logs()
    );
    let agent = registered(&home, &[]);
    let record = completed(&sim, &agent, "boot");
    assert_eq!(record["result"], "OIBus restarted");
}

/// Throughput of 10,000 queued `create-scan-mode` commands. Run with
/// `cargo test --test main commands::bench -- --ignored --nocapture`.
///
/// Two figures, both on the simulator's clock so the test's own polling does not count:
/// - `commands_per_s`: from the `commands/pending` answer that hands the commands out to the
///   last COMPLETED status received (fetch, journal, execute, report);
/// - `commands_wall_per_s`: from queueing to that last status, so it also holds the wait for
///   the agent's next poll (up to `command_refresh`, 1 s here).
#[test]
#[ignore = "benchmark: prints commands/s"]
fn bench_10k_create_scan_mode() {
    let n: usize = std::env::var("BENCH_COMMANDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let (sim, _home, agent) = started(&[]);
    let batch = scan_modes("bench-", n);
    let pid = agent.status()["pid"].as_u64().unwrap_or_default() as u32;
    // Registration (RSA key generation) is not a command cost.
    let cpu_before = procfs::cpu_seconds(pid);
    sim.queue(&Value::Array(batch));
    // Polled every 250 ms: reading 10,000 statuses is work for the simulator too.
    let mut latest = Value::Null;
    let ok = wait_until(Duration::from_secs(300), || {
        std::thread::sleep(Duration::from_millis(250));
        latest = sim.admin_get("/admin/statuses?limit=1")["latest"].clone();
        latest
            .as_object()
            .is_some_and(|l| l.values().filter(|v| v["status"] == "COMPLETED").count() == n)
    });
    assert!(ok, "not all commands completed:\n{}", agent.logs());
    let cpu = procfs::cpu_seconds(pid) - cpu_before;
    if std::env::var_os("BENCH_KEEP_LOG").is_some() {
        std::fs::copy(&agent.log, "/tmp/bench-agent.log").expect("copy the agent log");
    }

    let queued = sim_time(&sim.admin_get("/admin/commands?limit=1")["commands"][0]["queuedAt"]);
    let handed_out = sim.admin_get("/admin/requests")["routes"]["commands-pending"]["recent"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| sim_time(&r["at"]))
        .filter(|at| *at >= queued)
        .min()
        .expect("a commands/pending request after queueing");
    let last_status = latest
        .as_object()
        .into_iter()
        .flat_map(|l| l.values())
        .map(|v| sim_time(&v["at"]))
        .max()
        .expect("statuses");
    let secs = |from: chrono::DateTime<chrono::Utc>| {
        (last_status - from).num_microseconds().unwrap_or(1).max(1) as f64 / 1e6
    };
    let (channel, wall) = (secs(handed_out), secs(queued));
    eprintln!(
        "{n} create-scan-mode commands: {:.0} commands/s from the fetch to the last COMPLETED \
         ({channel:.2} s), {:.0} commands/s from queueing ({wall:.2} s, with the wait for the \
         next poll); the engine used {cpu:.2} s of CPU meanwhile",
        n as f64 / channel,
        n as f64 / wall,
    );
    bench_figure("commands_per_s", n as f64 / channel, "commands/s");
    bench_figure("commands_wall_per_s", n as f64 / wall, "commands/s");
    bench_figure(
        "command_engine_cpu",
        cpu * 1e6 / n as f64,
        "µs of engine CPU per command",
    );
    let peak = procfs::peak_rss_kib(pid).unwrap_or_default();
    bench_figure(
        "command_engine_peak_rss",
        peak as f64 / 1024.0,
        "MiB engine peak RSS",
    );
}

/// A date the simulator sent (RFC 3339).
fn sim_time(at: &Value) -> chrono::DateTime<chrono::Utc> {
    at.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not a simulator date: {at}"))
        .to_utc()
}
