//! Engine settings that take effect (issue "OIBus fidelity" §1 #12): `update-engine-web-server`
//! moves the local API live, `update-engine-logger` sets the E8 interval.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::commands::{completed, registered, run_completed, sim, started};
use crate::kit::agent::{cli, free_port, http, AgentHome};
use crate::kit::{command, wait_until};

const WAIT: Duration = Duration::from_secs(30);

fn status_at(addr: SocketAddr) -> Option<Value> {
    let (code, body) = http(addr, "GET", "/status", "")?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

fn web_server(id: &str, port: u16) -> Value {
    command(
        id,
        "update-engine-web-server",
        json!({"commandContent": {"port": port, "authTokenDuration": "7d"}}),
    )
}

fn answers(addr: SocketAddr) -> bool {
    matches!(http(addr, "GET", "/health", ""), Some((200, _)))
}

#[test]
fn update_engine_web_server_moves_the_local_api_to_the_new_port_live() {
    let (sim, home, agent) = started(&[]);
    let old = home.api;

    let new: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    run_completed(&sim, &agent, &json!([web_server("w1", new.port())]));
    assert!(
        wait_until(WAIT, || answers(new)),
        "the local API does not answer on {new}:\n{}",
        agent.logs()
    );
    // The old listener is closed once the new one serves.
    assert!(
        wait_until(WAIT, || http(old, "GET", "/health", "").is_none()),
        "the old port {old} still answers:\n{}",
        agent.logs()
    );
    let status = status_at(new).expect("/status on the new port");
    // Same IP as engine.api.listen (loopback): only the port moved.
    assert_eq!(status["api"]["listen"], new.to_string(), "{status}");
    assert_eq!(status["api"]["error"], Value::Null, "{status}");
    assert_eq!(
        oibus_actors::api_address::read(&home.data_dir()),
        Some(new),
        "the address recorded for the launcher and the CLI"
    );

    // A port that cannot be bound: the command completes, the API stays where it is and says why.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    run_completed(&sim, &agent, &json!([web_server("w2", taken_port)]));
    let mut status = Value::Null;
    let reported = wait_until(WAIT, || {
        status = status_at(new).unwrap_or_default();
        status["api"]["error"].is_string()
    });
    assert!(reported, "{status}\n{}", agent.logs());
    let error = status["api"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("cannot move the local API to port {taken_port}"))
            && error.contains(&format!("keeps listening on {new}")),
        "{error}"
    );
    assert!(answers(new));
    assert!(agent
        .logs()
        .contains(&format!("cannot move the local API to port {taken_port}")));
}

#[test]
fn the_port_set_by_oianalytics_is_used_again_after_a_restart() {
    let (sim, home, mut agent) = started(&[]);
    let new: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    run_completed(&sim, &agent, &json!([web_server("w1", new.port())]));
    assert!(wait_until(WAIT, || answers(new)), "{}", agent.logs());

    agent.stop(WAIT);
    let agent = home.start();
    assert!(
        wait_until(WAIT, || answers(new)),
        "the stored webServer.port is not used after a restart:\n{}",
        agent.logs()
    );
    assert!(http(home.api, "GET", "/health", "").is_none());
}

#[test]
fn update_engine_logger_sets_the_log_shipping_interval() {
    let sim = sim();
    // YAML interval 60 s (the longest), batches never full: before the command no E8 post can
    // happen for a minute.
    let home = AgentHome::with_sim(&sim, "");
    let yaml = std::fs::read_to_string(home.config_path()).unwrap();
    let yaml = yaml.replace("oia: silent", "oia: debug")
        + "actors:\n  log_shipper: { interval: 60s, batch_max: 10000 }\n";
    std::fs::write(home.config_path(), yaml).unwrap();
    // One second of logger.oia.interval lasts 100 ms: OIAnalytics' minimum of 10 s becomes 1 s.
    let agent = registered(&home, &[("OIBUS_AGENT_TEST_LOG_SECOND_MS", "100")]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        sim.requests_on("logs"),
        0,
        "the YAML interval (60 s) applies before the command"
    );

    sim.queue(&json!([command(
        "l1",
        "update-engine-logger",
        json!({"commandContent": {"console": {"level": "debug"}, "file": {"level": "info"},
               "database": {"level": "info"}, "loki": {"level": "silent", "password": ""},
               "oia": {"level": "debug", "interval": 10}, "syslog": {"level": "silent"}}})
    )]));
    completed(&sim, &agent, "l1");
    let applied = Instant::now();
    // At the 60 s YAML interval there could be at most one post in this window; at 1 s, several.
    let several = wait_until(Duration::from_secs(40), || sim.requests_on("logs") >= 3);
    assert!(
        several,
        "{} E8 posts within {:?} of the command:\n{}",
        sim.requests_on("logs"),
        applied.elapsed(),
        agent.logs()
    );
    assert!(agent.logs().contains("log shipping interval changed"));
}

/// `oibus-agent status` lists the settings in force and where each comes from: the YAML until
/// OIAnalytics sets it, then OIAnalytics (`config/agent.yaml` promises it).
#[test]
fn status_shows_each_setting_in_force_and_where_it_comes_from() {
    let (sim, home, agent) = started(&[]);
    let api = home.api.to_string();
    let status_text = || cli(&["status", "--api", &api], &[]).1;
    let line = |text: &str, name: &str| -> String {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let before = status_text();
    assert!(before.contains("settings in force"), "{before}");
    assert_eq!(
        line(&before, "console log level"),
        "console log level debug yaml engine.log.console"
    );
    assert_eq!(
        line(&before, "command refresh interval"),
        "command refresh interval 1s yaml oianalytics.intervals.command_refresh"
    );

    let permissions: serde_json::Map<String, Value> = oibus_actors::config::PERMISSION_FLAGS
        .iter()
        .map(|flag| (flag.to_string(), json!(*flag != "restartEngine")))
        .collect();
    sim.queue(&json!([
        command(
            "l1",
            "update-engine-logger",
            json!({"commandContent": {
            "console": {"level": "warn"}, "file": {"level": "info"}, "database": {"level": "info"},
            "loki": {"level": "silent", "password": ""}, "oia": {"level": "error", "interval": 20},
            "syslog": {"level": "silent"}}})
        ),
        command(
            "r1",
            "update-registration-settings",
            json!({"commandContent": {
            "commandRefreshInterval": 2, "commandRetryInterval": 3, "messageRetryInterval": 4,
            "commandPermissions": permissions}})
        ),
    ]));
    completed(&sim, &agent, "l1");
    completed(&sim, &agent, "r1");
    let after = status_text();
    for (name, in_force) in [
        ("console log level", "warn oianalytics logger.console.level"),
        (
            "OIAnalytics log level",
            "error oianalytics logger.oia.level",
        ),
        (
            "log shipping interval",
            "20s oianalytics logger.oia.interval",
        ),
        (
            "command refresh interval",
            "2s oianalytics commandRefreshInterval",
        ),
        ("engine name", "test-agent yaml engine.name"),
        (
            "command permissions (ceiling)",
            "all 42 allowed yaml oianalytics.permissions",
        ),
    ] {
        assert_eq!(line(&after, name), format!("{name} {in_force}"));
    }
    assert!(
        after
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .any(
                |l| l == "command permissions denied: restartEngine oianalytics commandPermissions"
            ),
        "{after}"
    );
    let json: Value =
        serde_json::from_str(&cli(&["status", "--json", "--api", &api], &[]).1).unwrap();
    assert!(json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["key"] == "logger.console.level" && s["source"] == "oianalytics"));
}
