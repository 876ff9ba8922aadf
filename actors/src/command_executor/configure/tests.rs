use serde_json::json;

use super::fixture::fixture;
use super::*;
use crate::commands::CommandType::*;
use crate::entities::EngineSettingsRecord;

fn scan_mode_cc(name: &str, cron: &str) -> Value {
    json!({"commandContent": {"name": name, "description": "d", "cron": cron}})
}

#[test]
fn creating_a_scan_mode_twice_under_one_command_id_makes_one_entity() {
    let f = fixture();
    let applied = f
        .run("cmd-1", CreateScanMode, scan_mode_cc("fast", "* * * * * *"))
        .unwrap();
    assert_eq!(applied.result, "Scan mode created successfully");
    assert_eq!(applied.ontology, Some((EntityKind::ScanMode, Op::Insert)));
    assert!(applied.effects.full_config);
    // The same command re-run after a crash overwrites what it made.
    f.run("cmd-1", CreateScanMode, scan_mode_cc("fast", "* * * * * *"))
        .unwrap();
    let fast: Vec<_> = f
        .entities
        .list::<ScanMode>()
        .unwrap()
        .into_iter()
        .filter(|m| m.name == "fast")
        .collect();
    assert_eq!(fast.len(), 1);
    assert_eq!(fast[0].id, derive_id("cmd-1", "scan-mode"));
    assert_eq!(fast[0].audit.created_by, BY_OIANALYTICS);
}

#[test]
fn scan_mode_names_are_unique_and_crons_are_checked() {
    let f = fixture();
    f.run("a", CreateScanMode, scan_mode_cc("fast", "* * * * * *"))
        .unwrap();
    assert_eq!(
        f.run("b", CreateScanMode, scan_mode_cc("fast", "* * * * * *")),
        Err("Scan mode name \"fast\" already exists".into())
    );
    let err = f
        .run("c", CreateScanMode, scan_mode_cc("slow", "* * * * *"))
        .unwrap_err();
    assert!(err.contains("must have 6 fields"), "{err}");
    let err = f
        .run("d", CreateScanMode, json!({"commandContent": {"name": 3}}))
        .unwrap_err();
    assert_eq!(
        err,
        "commandContent.name: invalid type: integer `3`, expected a string"
    );
    let err = f
        .run("e", CreateScanMode, scan_mode_cc(" ", "* * * * * *"))
        .unwrap_err();
    assert_eq!(err, "commandContent.name: must not be empty");
}

#[test]
fn updating_and_deleting_a_scan_mode_checks_that_it_exists_and_is_free() {
    let f = fixture();
    f.run("a", CreateScanMode, scan_mode_cc("fast", "* * * * * *"))
        .unwrap();
    let id = derive_id("a", "scan-mode");
    let mut update = scan_mode_cc("faster", "*/2 * * * * *");
    update["scanModeId"] = json!(id);
    assert_eq!(
        f.run("b", UpdateScanMode, update).unwrap().result,
        "Scan mode updated successfully"
    );
    assert_eq!(f.stored::<ScanMode>(&id).cron, "*/2 * * * * *");

    let mut missing = scan_mode_cc("x", "* * * * * *");
    missing["scanModeId"] = json!("nope");
    assert_eq!(
        f.run("c", UpdateScanMode, missing),
        Err("Scan mode \"nope\" not found".into())
    );
    assert!(f
        .run("d", DeleteScanMode, json!({"scanModeId": "subscription"}))
        .is_err());

    // A north connector whose cache triggers on the scan mode keeps it alive.
    let north = json!({"northConnectorId": "", "commandContent": {
        "name": "n", "type": "console", "description": "", "enabled": true, "settings": {},
        "caching": {"trigger": {"scanModeId": null, "scanModeName": "faster", "numberOfElements": 1, "numberOfFiles": 1}},
        "transformers": []}});
    f.run("e", CreateNorth, north).unwrap();
    let stored = f.stored::<NorthConnector>(&derive_id("e", "north"));
    assert_eq!(
        stored.caching["trigger"]["scanModeId"],
        json!(id),
        "the name is resolved to the id"
    );
    assert_eq!(stored.caching["trigger"]["scanModeName"], Value::Null);
    assert_eq!(
        f.run("f", DeleteScanMode, json!({"scanModeId": id})),
        Err("Scan mode \"faster\" is used by north connector \"n\"".into())
    );
    f.run("g", DeleteNorth, json!({"northConnectorId": stored.id}))
        .unwrap();
    assert_eq!(
        f.run("h", DeleteScanMode, json!({"scanModeId": id}))
            .unwrap()
            .result,
        "Scan mode deleted successfully"
    );
    assert_eq!(f.entities.id_by_name::<ScanMode>("faster").unwrap(), None);
}

// Certificates: `apply/certificate/tests.rs`.

fn south(name: &str, password: &str) -> Value {
    json!({"name": name, "type": "mssql", "description": "", "enabled": false,
        "settings": {"host": "h", "password": password},
        "items": [
            {"id": null, "name": "i1", "enabled": true, "settings": {"query": "q"},
             "scanModeId": null, "scanModeName": "Every minute", "groupId": null, "groupName": "g",
             "syncWithGroup": false, "maxReadInterval": 0},
            {"id": null, "name": "i2", "enabled": true, "settings": {}, "scanModeId": "subscription"}
        ],
        "groups": [{"id": null, "standardSettings": {"name": "g", "scanModeId": "subscription"}}]})
}

#[test]
fn a_south_connector_is_stored_with_sealed_secrets_resolved_references_and_stable_ids() {
    let f = fixture();
    let applied = f
        .run(
            "s1",
            CreateSouth,
            json!({"southConnectorId": "", "commandContent": south("plc", "pw")}),
        )
        .unwrap();
    assert_eq!(applied.result, "South connector created successfully");
    let stored = f.stored::<SouthConnector>(&derive_id("s1", "south"));
    assert_eq!(stored.settings["password"], "sealed:pw");
    assert_eq!(stored.secret_paths, ["password"]);
    let every_minute = f.entities.id_by_name::<ScanMode>("Every minute").unwrap();
    assert_eq!(stored.items[0].scan_mode_id, every_minute);
    assert_eq!(
        stored.items[0].group_id.as_deref(),
        Some(stored.groups[0].id.as_str())
    );
    assert_eq!(stored.items[0].other["syncWithGroup"], false);
    assert!(!stored.items[0].other.contains_key("scanModeName"));
    assert_ne!(stored.items[0].id, stored.items[1].id);

    // Update: an empty secret keeps the sealed value; item ids sent back keep their audit.
    let mut cc = south("plc", "");
    cc["items"][0]["id"] = json!(stored.items[0].id);
    f.run(
        "s2",
        UpdateSouth,
        json!({"southConnectorId": stored.id, "commandContent": cc}),
    )
    .unwrap();
    let updated = f.stored::<SouthConnector>(&stored.id);
    assert_eq!(updated.settings["password"], "sealed:pw");
    assert_eq!(updated.items[0].id, stored.items[0].id);

    // A copy made with retrieveSecretsFromSouth takes the secrets of the source.
    f.run(
        "s3",
        CreateSouth,
        json!({"southConnectorId": stored.id, "commandContent": south("copy", "")}),
    )
    .unwrap();
    let copy = f.stored::<SouthConnector>(&derive_id("s3", "south"));
    assert_eq!(copy.settings["password"], "sealed:pw");

    assert_eq!(
        f.run(
            "s4",
            CreateSouth,
            json!({"southConnectorId": "", "commandContent": south("copy", "x")})
        ),
        Err("South connector name \"copy\" already exists".into())
    );
    assert_eq!(
        f.run(
            "s5",
            CreateSouth,
            json!({"southConnectorId": "gone", "commandContent": south("new", "x")})
        ),
        Err("Could not find south connector gone to retrieve secrets from".into())
    );
    let mut bad_mode = south("other", "x");
    bad_mode["items"][0]["scanModeName"] = json!("never");
    let err = f
        .run(
            "s6",
            CreateSouth,
            json!({"southConnectorId": "", "commandContent": bad_mode}),
        )
        .unwrap_err();
    assert_eq!(
        err,
        "commandContent.items[0]: scan mode \"never\" not found"
    );
    let mut blank_item = south("other", "x");
    blank_item["items"][1]["name"] = json!("");
    assert_eq!(
        f.run(
            "s7",
            CreateSouth,
            json!({"southConnectorId": "", "commandContent": blank_item})
        ),
        Err("commandContent.items[1].name: must not be empty".into())
    );
}

#[test]
fn an_unknown_connector_type_keeps_secrets_found_by_their_ciphertext_shape() {
    let ciphertext = format!("{}=", "A".repeat(683));
    let cc = json!({"type": "future-thing", "settings": {"token": ciphertext, "plain": "x"}});
    let plan = secret_plan(CreateSouth, &cc, 512);
    assert_eq!(
        plan.parts,
        [SecretPart {
            pointer: "/settings".into(),
            paths: vec!["token".into()]
        }]
    );
    let known = secret_plan(
        UpdateNorth,
        &json!({"type": "console", "settings": {}}),
        512,
    );
    assert!(known.parts.is_empty(), "console has no secrets");
    let history = secret_plan(
        UpdateHistoryQuery,
        &json!({"historyQuery": {"southType": "mssql", "northType": "file-writer"}}),
        512,
    );
    let pointers: Vec<_> = history.parts.iter().map(|p| p.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        ["/historyQuery/southSettings", "/historyQuery/northSettings"]
    );
}

#[test]
fn history_queries_take_secrets_per_side_and_their_status_is_checked() {
    let f = fixture();
    f.run(
        "s",
        CreateSouth,
        json!({"southConnectorId": "", "commandContent": south("plc", "south-pw")}),
    )
    .unwrap();
    let south_id = derive_id("s", "south");
    let cc = json!({"name": "h", "description": "", "queryTimeRange": {"startTime": "a", "endTime": "b"},
        "caching": {"trigger": {"scanModeId": "subscription"}}, "northTransformers": [],
        "southType": "mssql", "southSettings": {"password": ""},
        "items": [{"id": null, "name": "i", "enabled": true, "settings": {}}],
        "northType": "file-writer", "northSettings": {"password": "north-pw"}});
    let applied = f
        .run(
            "h1",
            CreateHistoryQuery,
            json!({"southConnectorId": south_id,
            "northConnectorId": "", "historyQueryId": "", "commandContent": cc}),
        )
        .unwrap();
    assert!(applied.effects.history_queries && !applied.effects.full_config);
    let id = derive_id("h1", "history-query");
    let stored = f.stored::<HistoryQuery>(&id);
    assert_eq!(stored.status, "PENDING");
    assert_eq!(stored.south_settings["password"], "sealed:south-pw");
    assert_eq!(stored.north_settings["password"], "sealed:north-pw");

    assert_eq!(
        f.run(
            "h2",
            UpdateHistoryQueryStatus,
            json!({"historyQueryId": id, "commandContent": {"historyQueryStatus": "DONE"}})
        ),
        Err(format!(
            "History query status of {id} can not be updated to DONE"
        ))
    );
    let started = f.run(
        "h3",
        UpdateHistoryQueryStatus,
        json!({"historyQueryId": id, "commandContent": {"historyQueryStatus": "RUNNING"}}),
    );
    assert_eq!(
        started.map(|a| a.result),
        Ok("History query started".into())
    );
    assert_eq!(f.stored::<HistoryQuery>(&id).status, "RUNNING");
}

#[test]
fn engine_logger_settings_are_validated_and_the_loki_password_sealed() {
    let f = fixture();
    let logger = json!({"commandContent": {
        "console": {"level": "debug"}, "file": {"level": "info", "maxFileSize": 10},
        "database": {"level": "warn"}, "loki": {"level": "silent", "password": "loki-pw"},
        "oia": {"level": "info", "interval": 10}, "syslog": {"level": "error", "protocol": "tcp"}}});
    let applied = f.run("l1", UpdateEngineLogger, logger.clone()).unwrap();
    assert!(applied.effects.engine && applied.effects.full_config);
    let record: EngineSettingsRecord = f.entities.engine_settings().unwrap().unwrap();
    assert!(record.remote.logger);
    let effective = record.effective(&f.config);
    assert_eq!(effective.logger.console.level, LogLevel::Debug);
    assert_eq!(effective.logger.oia.level, LogLevel::Info);
    assert_eq!(effective.logger.file.max_file_size, 10);
    assert_eq!(
        effective.logger.loki.password.as_deref(),
        Some("sealed:loki-pw")
    );
    assert_eq!(effective.logger.syslog.protocol, SyslogProtocol::Tcp);

    let mut keep = logger.clone();
    keep["commandContent"]["loki"]["password"] = json!("");
    f.run("l2", UpdateEngineLogger, keep).unwrap();
    let record = f.entities.engine_settings().unwrap().unwrap();
    assert_eq!(
        record.settings.logger.loki.password.as_deref(),
        Some("sealed:loki-pw")
    );

    let mut bad = logger;
    bad["commandContent"]["console"]["level"] = json!("loud");
    assert_eq!(
        f.run("l3", UpdateEngineLogger, bad),
        Err("commandContent.console.level: unknown variant `loud`, expected one of `silent`, `error`, `warn`, `info`, `debug`, `trace`".into())
    );
}

#[test]
fn engine_ports_must_differ_and_proxy_passwords_are_sealed() {
    let f = fixture();
    let port_zero = json!({"commandContent": {"port": 0, "authTokenDuration": "7d"}});
    assert_eq!(
        f.run("w0", UpdateEngineWebServer, port_zero),
        Err(
            "commandContent.port: invalid value: integer `0`, expected an integer from 1 to 65535"
                .into()
        )
    );
    let two_hours = json!({"commandContent": {"port": 2223, "authTokenDuration": "2h"}});
    assert!(f
        .run("w1", UpdateEngineWebServer, two_hours)
        .unwrap_err()
        .starts_with("commandContent.authTokenDuration: unknown variant `2h`"));
    let web = json!({"commandContent": {"port": 9000, "authTokenDuration": "7d"}});
    assert_eq!(
        f.run("w", UpdateEngineWebServer, web),
        Err("Web server port and proxy port can not be the same".into())
    );
    let proxy = json!({"commandContent": {"enabled": true, "port": 9100, "username": "u", "password": "p",
        "forward": {"enabled": true, "url": "http://up", "username": "fu", "password": "fp"}}});
    f.run("p", UpdateEngineProxy, proxy).unwrap();
    let s = f.entities.engine_settings().unwrap().unwrap().settings;
    assert_eq!(s.proxy_server.password.as_deref(), Some("sealed:p"));
    assert_eq!(
        s.proxy_server.forward.password.as_deref(),
        Some("sealed:fp")
    );
    assert_eq!(s.proxy_server.port, Some(9100));
    let general = json!({"commandContent": {"name": "renamed"}});
    f.run("g", UpdateEngineGeneral, general).unwrap();
    let record = f.entities.engine_settings().unwrap().unwrap();
    assert_eq!(record.effective(&f.config).general.name, "renamed");
}

#[test]
fn registration_settings_need_every_flag_and_positive_intervals() {
    let f = fixture();
    let mut permissions: Map<String, Value> = PERMISSION_FLAGS
        .iter()
        .map(|f| (f.to_string(), json!(true)))
        .collect();
    permissions.insert("restartEngine".into(), json!(false));
    let cc = json!({"commandContent": {"commandRefreshInterval": 2, "commandRetryInterval": 1,
        "messageRetryInterval": 3, "commandPermissions": permissions}});
    let applied = f.run("r1", UpdateRegistrationSettings, cc.clone()).unwrap();
    assert!(applied.effects.registration);
    let effective = f
        .entities
        .registration_settings()
        .unwrap()
        .unwrap()
        .effective(&f.config.oianalytics);
    assert!(!effective.permitted("restartEngine"));
    assert_eq!(effective.command_refresh, std::time::Duration::from_secs(2));

    let mut zero = cc.clone();
    zero["commandContent"]["commandRetryInterval"] = json!(0);
    assert_eq!(
        f.run("r2", UpdateRegistrationSettings, zero),
        Err(
            "commandContent.commandRetryInterval: invalid value: integer `0`, expected an integer from 1 to 4294967295"
                .into()
        )
    );
    let mut missing = cc;
    missing["commandContent"]["commandPermissions"]
        .as_object_mut()
        .unwrap()
        .remove("setpoint");
    assert_eq!(
        f.run("r3", UpdateRegistrationSettings, missing),
        Err("commandContent.commandPermissions: missing field `setpoint`".into())
    );
}

#[test]
fn derived_ids_are_stable_distinct_and_alphanumeric() {
    let a = derive_id("cmd", "south");
    assert_eq!(a, derive_id("cmd", "south"));
    assert_ne!(a, derive_id("cmd", "north"));
    assert_ne!(a, derive_id("cmd2", "south"));
    assert_eq!(a.len(), 6);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
}
