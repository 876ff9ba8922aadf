//! Conformance with OIBus 3.8.8 on the OIAnalytics wire: one test per row of
//! `shared/spec/oibus-fidelity.md` §1, named after the row it proves. The simulator checks every
//! body it receives, with the agent's own record types for E5, and refuses what OIBus would not
//! send (another User-Agent, an id twice in one PUT, a status record in another shape), so every
//! end-to-end test also proves rows 2, 4 and 6. Each test here ends with no protocol violation.
//!
//! Rows proven where their feature lives:
//!
//! | row | test |
//! |---|---|
//! | 3 transformers in E6 | `messages::transformers_are_listed_in_full_config_and_a_north_may_use_them`; `snapshot::tests::full_config_equals_the_oibus_sample_field_by_field`, `…::e6_lists_the_15_standard_transformers_with_the_same_ids_after_reopening_the_store` |
//! | 4 an id at most once per PUT | `commands::after_failed_puts_the_retry_lists_each_command_once_at_its_latest_status`; `sim::validate::tests::a_put_listing_a_command_id_twice_is_a_bad_request` |
//! | 11 OIBus asset layout | `launcher::genuine_oibus_asset_is_errored_and_the_old_version_keeps_running`, `launcher::agent_script_at_binaries_oibus_is_installed_and_put_on_probation` |
//! | 12 settings that take effect | `engine_settings::update_engine_web_server_moves_the_local_api_to_the_new_port_live`, `engine_settings::update_engine_logger_sets_the_log_shipping_interval` |
//! | 13 E8 scope fields | `logs::the_engine_queues_its_logs_until_registered_then_ships_them_in_order`; `log_shipper::layer::tests::empty_scope_item_and_group_fields_are_null_and_an_internal_scope_id_is_kept` |
//! | 17 north transformers normalised | `messages::transformers_are_listed_in_full_config_and_a_north_may_use_them`; `apply::transformer::tests::north_transformers_without_an_id_get_one_and_a_rerun_gives_the_same`, `…::a_north_with_an_unknown_transformer_id_is_refused` |

use nix::sys::signal::Signal;
use serde_json::{json, Map, Value};

use crate::commands::{
    command, completed, entities, named, registered, run_completed, scan_mode, sim, started,
    statuses, terminal, WAIT,
};
use crate::kit::agent::{sim_section, AgentHome};
use crate::kit::load::last_message;
use crate::kit::sim::Sim;
use crate::kit::wait_until;

/// `update-registration-settings` content with every flag on but those in `off`.
fn registration_settings(off: &[&str]) -> Value {
    let permissions: Map<String, Value> = oibus_actors::config::PERMISSION_FLAGS
        .iter()
        .map(|flag| (flag.to_string(), json!(!off.contains(flag))))
        .collect();
    json!({"commandContent": {"commandRefreshInterval": 1, "commandRetryInterval": 1,
        "messageRetryInterval": 1, "commandPermissions": permissions}})
}

/// The newest E6 whose `registration` block says `flag` is `granted`, if one comes.
fn full_config_with_permission(sim: &Sim, flag: &str, granted: bool) -> bool {
    wait_until(WAIT, || {
        last_message(sim, "full-config").is_some_and(|body| {
            body["registration"]["settings"]["commandPermissions"][flag] == json!(granted)
        })
    })
}

fn is_oibus_id(id: &Value) -> bool {
    id.as_str()
        .is_some_and(|id| id.len() == 6 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[test]
fn row_5_a_permission_switched_off_remotely_stays_off_until_a_local_edit() {
    let (sim, home, mut agent) = started(&[]);
    let setpoint = |id: &str| {
        command(
            id,
            "setpoint",
            json!({"northConnectorId": "n", "commandContent": []}),
        )
    };
    sim.queue(&json!([
        command(
            "off",
            "update-registration-settings",
            registration_settings(&["setpoint"])
        ),
        command(
            "on",
            "update-registration-settings",
            registration_settings(&[])
        ),
        setpoint("sp1"),
    ]));
    completed(&sim, &agent, "off");
    completed(&sim, &agent, "on");
    assert_eq!(
        terminal(&sim, &agent, "sp1")["result"],
        "Command sp1 of type setpoint is not authorized",
        "a later command cannot switch a permission back on"
    );
    assert!(full_config_with_permission(&sim, "setpoint", false));

    // A restart is not a local edit.
    agent.stop(WAIT);
    let agent = registered(&home, &[]);
    sim.queue(&json!([setpoint("sp2")]));
    assert_eq!(
        terminal(&sim, &agent, "sp2")["result"],
        "Command sp2 of type setpoint is not authorized"
    );

    // The operator grants it again in the YAML and reloads.
    home.write_config(&sim_section(&sim, "  permissions: { setpoint: true }\n"));
    agent.signal(Signal::SIGHUP);
    assert!(
        full_config_with_permission(&sim, "setpoint", true),
        "{}",
        agent.logs()
    );
    sim.queue(&json!([setpoint("sp3")]));
    let result = terminal(&sim, &agent, "sp3")["result"].clone();
    assert_ne!(result, "Command sp3 of type setpoint is not authorized");
    sim.assert_no_violations();
}

#[test]
fn row_6_history_query_status_is_reported_in_the_command_content() {
    let (sim, _home, agent) = started(&[]);
    let history = json!({"name": "backfill", "description": "", "queryTimeRange": {},
        "caching": null, "northTransformers": [], "southType": "mssql",
        "southSettings": {}, "items": [], "northType": "console", "northSettings": {}});
    sim.queue(&json!([command(
        "h1",
        "create-history-query",
        json!({"retrieveSecretsFromSouth": null, "retrieveSecretsFromNorth": null,
            "retrieveSecretsFromHistoryQuery": null, "commandContent": history})
    )]));
    completed(&sim, &agent, "h1");
    let id = named(&entities(&agent)["historyQueries"], "backfill")[0]["id"].clone();
    sim.queue(&json!([
        command(
            "run",
            "update-history-query-status",
            json!({"historyId": id, "historyQueryStatus": "RUNNING"})
        ),
        command(
            "pause",
            "update-history-query-status",
            json!({"historyId": id, "historyQueryStatus": "PAUSED"})
        ),
        command(
            "finish",
            "update-history-query-status",
            json!({"historyId": id, "historyQueryStatus": "FINISHED"})
        ),
    ]));
    let run = completed(&sim, &agent, "run");
    assert_eq!(run["result"], "History query started");
    assert_eq!(run["historyQueryId"], id);
    assert_eq!(
        run["commandContent"],
        json!({"historyQueryStatus": "RUNNING"})
    );
    assert!(run.get("historyQueryStatus").is_none(), "{run}");
    assert_eq!(
        completed(&sim, &agent, "pause")["result"],
        "History query paused"
    );
    let finish = terminal(&sim, &agent, "finish");
    assert_eq!(finish["status"], "ERRORED");
    assert_eq!(
        finish["result"],
        format!(
            "History query status of {} can not be updated to FINISHED",
            id.as_str().unwrap_or_default()
        )
    );
    sim.assert_no_violations();
}

#[test]
fn row_9_full_config_lists_the_admin_user_with_an_id_that_survives_a_restart() {
    let (sim, home, mut agent) = started(&[]);
    let users = |sim: &Sim| {
        let mut users = Value::Null;
        let ok = wait_until(WAIT, || {
            users = last_message(sim, "full-config").map_or(Value::Null, |b| b["users"].clone());
            !users.is_null()
        });
        assert!(ok, "no full config");
        users
    };
    let before = users(&sim);
    let admin = &before[0];
    assert_eq!(before.as_array().map(Vec::len), Some(1), "{before}");
    assert!(is_oibus_id(&admin["oIBusInternalId"]), "{admin}");
    assert_eq!(
        admin["settings"],
        json!({"login": "admin", "firstName": null, "lastName": null, "email": null,
            "language": "en", "timezone": "Europe/Paris"})
    );
    agent.stop(WAIT);
    let count = sim.admin_get("/admin/messages?limit=0")["count"].clone();
    let _agent = registered(&home, &[]);
    let ok = wait_until(WAIT, || {
        sim.admin_get("/admin/messages?limit=0")["count"] != count
    });
    assert!(ok, "no full config after the restart");
    assert_eq!(users(&sim)[0]["oIBusInternalId"], admin["oIBusInternalId"]);
    sim.assert_no_violations();
}

#[test]
fn row_10_registration_settings_queue_a_full_config_and_the_history_queries() {
    let (sim, _home, agent) = started(&[]);
    let kinds = |sim: &Sim| {
        sim.admin_get("/admin/messages?limit=0")["count"]
            .as_u64()
            .unwrap_or(0)
    };
    // Let the start-up pushes settle, so the ones counted below are the command's.
    let ok = wait_until(WAIT, || {
        last_message(&sim, "full-config").is_some()
            && last_message(&sim, "history-queries").is_some()
    });
    assert!(ok, "no start-up messages:\n{}", agent.logs());
    let before = kinds(&sim);
    sim.queue(&json!([command(
        "rs",
        "update-registration-settings",
        registration_settings(&[])
    )]));
    completed(&sim, &agent, "rs");
    let since = |kind: &str| {
        sim.admin_get(&format!("/admin/messages?kind={kind}&since={before}"))["messages"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let ok = wait_until(WAIT, || {
        since("full-config") >= 1 && since("history-queries") >= 1
    });
    assert!(ok, "E6 and E7 after the command:\n{}", agent.logs());
    sim.assert_no_violations();
}

#[test]
fn row_14_created_entities_get_six_character_ids_of_oibus_alphabet() {
    let (sim, _home, agent) = started(&[]);
    run_completed(&sim, &agent, &json!([scan_mode("m1", "hourly-2")]));
    let modes = named(&entities(&agent)["scanModes"], "hourly-2")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(modes.len(), 1);
    assert!(is_oibus_id(&modes[0]["id"]), "{}", modes[0]);
    assert!(statuses(&sim, "m1")
        .iter()
        .all(|r| r["status"] != "ERRORED"));
    sim.assert_no_violations();
}

/// Every result text the agent writes, success and failure, next to the command that produces it.
/// Rows 7 and 8 of §1 and the §3 table: each sentence is OIBus's own.
#[test]
fn rows_7_and_8_every_result_text_is_oibus_sentence() {
    let sim = sim();
    let home = AgentHome::with_sim(
        &sim,
        "  permissions: { createIpFilter: true, deleteCertificate: false }\n",
    );
    let agent = registered(&home, &[]);
    let version = oibus_actors::COMPATIBLE_OIBUS_VERSION;
    let south = |name: &str| {
        json!({"name": name, "type": "mssql", "description": "", "enabled": false,
            "settings": {}, "items": [], "groups": []})
    };
    let north = |name: &str| {
        json!({"name": name, "type": "console", "description": "", "enabled": false,
            "settings": {}, "caching": null, "transformers": []})
    };
    let history = json!({"name": "hq", "description": "", "queryTimeRange": {}, "caching": null,
        "northTransformers": [], "southType": "mssql", "southSettings": {}, "items": [],
        "northType": "console", "northSettings": {}});
    let web = |port: u16| json!({"commandContent": {"port": port, "authTokenDuration": "7d"}});
    let logger = json!({"commandContent": {"console": {"level": "info"}, "file": {"level": "info"},
        "database": {"level": "info"}, "loki": {"level": "silent", "password": ""},
        "oia": {"level": "silent"}, "syslog": {"level": "silent"}}});

    let row = |id: &str, command_type: &str, extra: Value, text: &str| {
        (command(id, command_type, extra), text.to_owned())
    };
    // Creations first: the updates and deletes below address what they made.
    let creations: Vec<(Value, String)> = vec![
        (
            scan_mode("c-mode", "texts"),
            "Scan mode created successfully".into(),
        ),
        (
            scan_mode("c-mode-2", "texts"),
            "Scan mode name \"texts\" already exists".into(),
        ),
        row(
            "c-ip",
            "create-ip-filter",
            json!({"commandContent": {"address": "10.0.0.9", "description": ""}}),
            "IP Filter created successfully",
        ),
        row(
            "c-south",
            "create-south",
            json!({"retrieveSecretsFromSouth": null, "commandContent": south("s")}),
            "South connector created successfully",
        ),
        row(
            "c-south-2",
            "create-south",
            json!({"retrieveSecretsFromSouth": null, "commandContent": south("s")}),
            "South connector name \"s\" already exists",
        ),
        row(
            "c-north",
            "create-north",
            json!({"retrieveSecretsFromNorth": null, "commandContent": north("n")}),
            "North connector created successfully",
        ),
        row(
            "c-history",
            "create-history-query",
            json!({"retrieveSecretsFromSouth": null, "retrieveSecretsFromNorth": null,
                "retrieveSecretsFromHistoryQuery": null, "commandContent": history}),
            "History query created successfully",
        ),
    ];
    sim.queue(&Value::Array(
        creations.iter().map(|(c, _)| c.clone()).collect(),
    ));
    let mut table: Vec<(String, String)> = creations
        .iter()
        .map(|(c, text)| {
            (
                c["id"].as_str().unwrap_or_default().to_owned(),
                text.to_string(),
            )
        })
        .collect();
    for (id, _) in &table {
        terminal(&sim, &agent, id);
    }
    let e = entities(&agent);
    let id_of = |list: &str, name: &str| named(&e[list], name)[0]["id"].clone();
    let (mode, ip) = (id_of("scanModes", "texts"), e["ipFilters"][0]["id"].clone());
    let (s, n, h) = (
        id_of("southConnectors", "s"),
        id_of("northConnectors", "n"),
        id_of("historyQueries", "hq"),
    );
    let h_text = h.as_str().unwrap_or_default().to_owned();

    let mut wrong_version = scan_mode("t-version", "other");
    wrong_version["targetVersion"] = json!("0.0.1");
    let rest: Vec<(Value, String)> = vec![
        row("u-mode", "update-scan-mode", json!({"scanModeId": mode,
            "commandContent": {"name": "texts", "description": "", "cron": "0 * * * * *"}}),
            "Scan mode updated successfully"),
        row("u-mode-x", "update-scan-mode", json!({"scanModeId": "nope",
            "commandContent": {"name": "x", "description": "", "cron": "0 * * * * *"}}),
            "Scan mode \"nope\" not found"),
        row("u-ip", "update-ip-filter", json!({"ipFilterId": ip,
            "commandContent": {"address": "10.0.0.8", "description": ""}}),
            "IP Filter updated successfully"),
        row("u-ip-x", "update-ip-filter", json!({"ipFilterId": "nope",
            "commandContent": {"address": "10.0.0.8", "description": ""}}),
            "IP filter \"nope\" not found"),
        row("d-ip", "delete-ip-filter", json!({"ipFilterId": ip}),
            "IP Filter deleted successfully"),
        row("u-south", "update-south", json!({"southConnectorId": s,
            "commandContent": south("s")}), "South connector updated successfully"),
        row("u-south-x", "update-south", json!({"southConnectorId": "nope",
            "commandContent": south("s")}), "South \"nope\" not found"),
        row("u-north", "update-north", json!({"northConnectorId": n,
            "commandContent": north("n")}), "North connector updated successfully"),
        row("u-north-x", "update-north", json!({"northConnectorId": "nope",
            "commandContent": north("n")}), "North \"nope\" not found"),
        row("u-history-x", "update-history-query", json!({"historyId": "nope",
            "commandContent": {"resetCache": false, "historyQuery": {}}}),
            "History query \"nope\" not found"),
        row("s-run", "update-history-query-status", json!({"historyId": h,
            "historyQueryStatus": "RUNNING"}), "History query started"),
        row("s-pause", "update-history-query-status", json!({"historyId": h,
            "historyQueryStatus": "PAUSED"}), "History query paused"),
        row("s-bad", "update-history-query-status", json!({"historyId": h,
            "historyQueryStatus": "FINISHED"}),
            &format!("History query status of {h_text} can not be updated to FINISHED")),
        row("d-north", "delete-north", json!({"northConnectorId": n}),
            "North connector deleted successfully"),
        row("d-history", "delete-history-query", json!({"historyId": h}),
            "History query deleted successfully"),
        row("d-mode", "delete-scan-mode", json!({"scanModeId": mode}),
            "Scan mode deleted successfully"),
        row("e-general", "update-engine-general", json!({"commandContent": {"name": "renamed"}}),
            "Engine name updated successfully"),
        row("e-proxy", "update-engine-proxy", json!({"commandContent": {"enabled": false,
            "port": 9000}}), "Engine proxy settings updated successfully"),
        row("e-web-x", "update-engine-web-server", web(9000),
            "Web server port and proxy port can not be the same"),
        row("e-logger", "update-engine-logger", logger,
            "Engine logger settings updated successfully"),
        row("r-settings", "update-registration-settings", registration_settings(&[]),
            "Registration settings updated successfully"),
        row("keys", "regenerate-cipher-keys", json!({}), "OIAnalytics keys reloaded"),
        row("d-cert", "delete-certificate", json!({"certificateId": "x"}),
            "Command d-cert of type delete-certificate is not authorized"),
        (wrong_version, format!("Wrong target version: 0.0.1 for OIBus version {version}")),
        row("up", "update-version", json!({"version": "v9.9.9", "assetId": "a",
            "updateLauncher": false, "backupFoldersPattern": null}),
            "OIBus is not set up to execute remote update"),
        row("cert", "create-certificate", json!({"commandContent": {"name": "c", "description": "",
            "regenerateCertificate": false, "options": {"commonName": "gw", "countryName": "FR",
            "stateOrProvinceName": "Savoie", "localityName": "Chambery",
            "organizationName": "Optimistik", "keySize": 2048, "daysBeforeExpiry": 30}}}),
            "Certificate created successfully"),
        row("cert-x", "update-certificate", json!({"certificateId": "nope",
            "commandContent": {"name": "c", "description": "", "regenerateCertificate": false,
            "options": null}}), "Certificate \"nope\" not found"),
        row("tr", "create-custom-transformer", json!({"commandContent": {"name": "scale",
            "description": "", "inputType": "time-values", "outputType": "any",
            "language": "javascript", "timeout": 1000, "customCode": "function transform() {}",
            "customManifest": {"type": "object", "key": "options"}}}),
            "Transformer created successfully"),
        row("tr-x", "delete-custom-transformer", json!({"transformerId": "nope"}),
            "Transformer \"nope\" not found"),
        row("tr-n", "create-north", json!({"retrieveSecretsFromNorth": null,
            "commandContent": {"name": "tn", "type": "console", "description": "",
            "enabled": false, "settings": {}, "caching": null,
            "transformers": [{"transformerId": "nope00", "options": {},
            "source": {"type": "oianalytics-setpoint"}}]}}),
            "Could not find OIBus transformer \"nope00\""),
        row("csv", "create-or-update-south-items-from-csv", json!({"southConnectorId": s,
            "deleteItemsNotPresent": false, "delimiter": ",",
            "csvContent": "name,enabled,settings_query\nrow1,true,SELECT 1\n"}),
            "Error when checking csv items:\nrow1: Scan mode not specified for item \"row1\""),
        row("csv-x", "create-or-update-south-items-from-csv", json!({"southConnectorId": "nope",
            "deleteItemsNotPresent": false, "delimiter": ",", "csvContent": "name\n"}),
            "South \"nope\" not found"),
        row("tt", "test-custom-transformer", json!({"commandContent": {}}),
            "test-custom-transformer needs a transformer runtime, which oibus-agent does not have yet"),
        row("ts", "test-history-query-north-connection", json!({"historyId": "h", "northConnectorId": "n", "commandContent": {}}),
            "test-history-query-north-connection is not supported by oibus-agent"),
        row("d-south", "delete-south", json!({"southConnectorId": s}),
            "South connector deleted successfully"),
    ];
    sim.queue(&Value::Array(rest.iter().map(|(c, _)| c.clone()).collect()));
    table.extend(
        rest.into_iter()
            .map(|(c, text)| (c["id"].as_str().unwrap_or_default().to_owned(), text)),
    );
    let mismatches: Vec<String> = table
        .iter()
        .filter_map(|(id, expected)| {
            let record = terminal(&sim, &agent, id);
            (record["result"] != json!(expected))
                .then(|| format!("{id}: expected {expected:?}, got {}", record["result"]))
        })
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    sim.assert_no_violations();
}

const OIBUS: &str = oibus_actors::COMPATIBLE_OIBUS_VERSION;

#[test]
fn row_1_oia_is_told_the_compatible_oibus_version_and_ops_see_the_agent_version() {
    let (sim, _home, agent) = started(&[]);
    assert_eq!(OIBUS, "3.8.8");
    assert_eq!(sim.agents()[0]["oibusVersion"], OIBUS, "E1");
    let mut engine = Value::Null;
    let ok = wait_until(WAIT, || {
        engine = last_message(&sim, "full-config").map_or(Value::Null, |b| b["engine"].clone());
        !engine.is_null()
    });
    assert!(ok, "no full config");
    assert_eq!(engine["softwareVersion"], OIBUS, "E6");
    assert_eq!(engine["launcherVersion"], OIBUS, "E6");
    assert_eq!(agent.status()["version"], oibus_actors::VERSION, "/status");
    // A command aimed at the agent's own version is refused as OIBus refuses a wrong target.
    let mut own = scan_mode("own", "own-version");
    own["targetVersion"] = json!(oibus_actors::VERSION);
    sim.queue(&json!([own]));
    if oibus_actors::VERSION != OIBUS {
        assert_eq!(
            terminal(&sim, &agent, "own")["result"],
            format!(
                "Wrong target version: {} for OIBus version {OIBUS}",
                oibus_actors::VERSION
            )
        );
    }
    sim.assert_no_violations();
}

/// Every request the simulator recorded, with its route name.
fn recorded_requests(sim: &Sim) -> Vec<(String, Value)> {
    let view = sim.admin_get("/admin/requests");
    view["routes"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(route, traffic)| {
            traffic["recent"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |r| (route.clone(), r.clone()))
        })
        .collect()
}

#[test]
fn rows_2_and_16_every_request_names_oibus_and_the_registration_check_carries_json() {
    let (sim, _home, agent) = started(&[]);
    run_completed(&sim, &agent, &json!([scan_mode("ua", "user-agent")]));
    let requests = recorded_requests(&sim);
    let routes: std::collections::BTreeSet<&str> =
        requests.iter().map(|(route, _)| route.as_str()).collect();
    for route in [
        "registration",
        "check-registration",
        "commands-pending",
        "commands-status",
    ] {
        assert!(routes.contains(route), "no {route} request in {routes:?}");
    }
    let expected = format!("OIBus/{OIBUS} (https://oibus.optimistik.com/)");
    for (route, request) in &requests {
        assert_eq!(
            request["headers"]["user-agent"], expected,
            "{route}: {request}"
        );
    }
    for (_, request) in requests.iter().filter(|(r, _)| r == "check-registration") {
        assert_eq!(
            request["headers"]["content-type"], "application/json",
            "{request}"
        );
    }
    sim.assert_no_violations();
}

#[test]
fn row_15_status_changes_leave_updated_at_at_the_creation_time() {
    let (sim, _home, agent) = started(&[]);
    sim.queue(&json!([scan_mode("upd", "updated-at")]));
    let done = completed(&sim, &agent, "upd");
    assert_eq!(done["updatedAt"], done["createdAt"], "{done}");
    assert!(done["completedDate"].is_string(), "{done}");
    sim.assert_no_violations();
}

#[test]
fn e1_carries_the_fields_of_the_oibus_sample_in_their_shapes() {
    let sample: Value =
        serde_json::from_str(include_str!("../sim/wire-samples/e1-registration.json"))
            .expect("the E1 sample is JSON");
    let (sim, _home, _agent) = started(&[]);
    let agent = sim.agents()[0].clone();
    let sample = sample.as_object().expect("an object");
    for (key, value) in sample {
        let ours = &agent[key];
        match key.as_str() {
            // Ids, names and keys aside: their shape.
            "activationCode" => assert!(is_oibus_id(ours), "{key}: {ours}"),
            "oibusId" | "oibusName" => assert!(ours.as_str().is_some_and(|s| !s.is_empty())),
            "publicKey" => assert!(ours
                .as_str()
                .is_some_and(|k| k.starts_with("-----BEGIN PUBLIC KEY-----\n"))),
            "oibusOs" => assert!(ours.as_str().is_some_and(|os| os.starts_with("Linux "))),
            "oibusArch" if std::env::consts::ARCH == "x86_64" => assert_eq!(ours, value),
            "oibusArch" => assert!(ours.is_string()),
            _ => assert_eq!(ours, value, "{key}"),
        }
    }
    sim.assert_no_violations();
}
