//! Registration and the OIAnalytics client, end to end against the simulator.

use std::time::Duration;

use serde_json::json;

use crate::kit::agent::{Agent, AgentHome};
use crate::kit::proxy::Proxy;
use crate::kit::sim::{Sim, SimOpts};
use crate::kit::wait_until;

const WAIT: Duration = Duration::from_secs(30);

/// Wait for the activation code, complete it in the simulator, wait for REGISTERED.
fn complete_registration(agent: &Agent, sim: &Sim) -> String {
    let code = agent.complete_registration(sim);
    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
    code
}

/// A simulator and an agent of it whose registration was completed by hand.
fn registered_by_hand() -> (Sim, AgentHome, Agent) {
    let sim = Sim::start(SimOpts::default());
    let home = AgentHome::with_sim(&sim, "");
    let agent = home.start();
    complete_registration(&agent, &sim);
    (sim, home, agent)
}

#[test]
fn registration_completes_and_survives_a_restart() {
    let (sim, home, agent) = registered_by_hand();

    let agents = sim.admin_get("/admin/agents");
    let registered = &agents["agents"][0];
    assert_eq!(registered["oibusName"], "test-agent");
    assert_eq!(
        registered["oibusVersion"],
        oibus_actors::COMPATIBLE_OIBUS_VERSION
    );
    assert!(registered["publicKey"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    let engine_id = registered["oibusId"].as_str().unwrap().to_string();
    assert_eq!(agent.status()["engine_id"], engine_id.as_str());
    drop(agent);

    let agent = home.start();
    agent.wait_healthy(WAIT);
    let reg = agent.wait_registration("REGISTERED");
    assert!(reg["activation_date"].is_string());
    assert_eq!(
        agent.status()["engine_id"],
        engine_id.as_str(),
        "the engine id is stable"
    );
    assert_eq!(
        sim.admin_get("/admin/agents")["count"],
        1,
        "no second registration"
    );
    sim.assert_no_violations();
}

#[test]
fn a_restart_while_pending_resumes_polling() {
    let sim = Sim::start(SimOpts::default());
    let home = AgentHome::with_sim(&sim, "");
    let agent = home.start();
    let code = agent.activation_code();
    drop(agent);

    let agent = home.start();
    agent.wait_healthy(WAIT);
    let reg = agent.wait_registration("PENDING");
    assert_eq!(
        reg["activation_code"], code,
        "the same registration resumes"
    );
    sim.complete(&code);
    agent.wait_registration("REGISTERED");
    assert_eq!(sim.admin_get("/admin/agents")["count"], 1);
    sim.assert_no_violations();
}

#[test]
fn an_expired_code_starts_a_fresh_registration() {
    let sim = Sim::start(SimOpts {
        registration_ttl: Some("2s".into()),
        ..Default::default()
    });
    let home = AgentHome::with_sim(&sim, "");
    let agent = home.start();
    let first = agent.activation_code();
    let renewed = wait_until(WAIT, || {
        let code = &agent.registration()["activation_code"];
        code.is_string() && *code != first.as_str()
    });
    assert!(renewed, "no new code after expiry: {}", agent.logs());
    complete_registration(&agent, &sim);
    sim.assert_no_violations();
}

#[test]
fn a_state_changing_call_without_the_token_gets_401_and_changes_nothing() {
    let (_sim, _home, agent) = registered_by_hand();
    for (method, body) in [("DELETE", ""), ("POST", r#"{"force": true}"#)] {
        let (code, answer) =
            crate::kit::agent::http(agent.api, method, "/api/registration", body).unwrap();
        assert_eq!(code, 401, "{method}: {answer}");
        assert!(answer.contains("api-token"), "{answer}");
        let (code, _) = crate::kit::agent::http_as(
            agent.api,
            Some("not-the-token"),
            method,
            "/api/registration",
            body,
        )
        .unwrap();
        assert_eq!(code, 401, "{method} with a wrong token");
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.registration()["status"], "REGISTERED");
    // Read routes stay open on loopback.
    let (code, _) = crate::kit::agent::http(agent.api, "GET", "/status", "").unwrap();
    assert_eq!(code, 200);
}

/// The local API's Unix socket (mode 0660): what comes through it needs no token, since only
/// the service user and its group may connect; `oibus-agent unregister` uses it, so an
/// operator in the group needs no token file. TCP without the token still gets 401.
#[test]
fn the_unix_socket_changes_the_agent_without_a_token_and_the_cli_uses_it() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let (sim, home, mut agent) = registered_by_hand();
    let socket = home.data_dir().join("api.sock");
    let recorded = std::fs::read_to_string(home.data_dir().join("api-socket")).unwrap();
    assert_eq!(recorded.trim(), socket.display().to_string());
    let meta = std::fs::metadata(&socket).expect("the socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    // The token file out of reach, as for an operator who is in the group but cannot read it.
    let token = home.data_dir().join("api-token");
    std::fs::rename(&token, home.data_dir().join("api-token.away")).unwrap();
    let (code, answer) =
        crate::kit::agent::http(agent.api, "DELETE", "/api/registration", "").unwrap();
    assert_eq!(code, 401, "{answer}");
    let config = home.config_path().display().to_string();
    let (code, out, err) = crate::kit::agent::cli(&["unregister", "--config", &config], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    agent.wait_registration("NOT_REGISTERED");

    // A raw request through the socket, as curl --unix-socket would send it.
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    use std::io::{Read as _, Write as _};
    let body = r#"{"force": false}"#;
    write!(
        stream,
        "POST /api/registration HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    complete_registration(&agent, &sim);

    // A graceful stop removes the socket and its record.
    agent.stop(WAIT);
    assert!(!socket.exists() && !home.data_dir().join("api-socket").exists());
}

#[test]
fn unregister_is_local_and_sticks_until_register() {
    let (sim, home, agent) = registered_by_hand();

    // Registered: the poller calls commands/pending with the token.
    let polls = || sim.requests_on("commands-pending");
    assert!(
        wait_until(WAIT, || polls() >= 2),
        "the token is used: {}",
        agent.logs()
    );

    let (code, body) = agent.request("DELETE", "/api/registration", "").unwrap();
    assert_eq!(code, 200, "{body}");
    agent.wait_registration("NOT_REGISTERED");
    std::thread::sleep(Duration::from_secs(2)); // let a poll in flight finish
    let after = polls();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(polls(), after, "no authenticated call after unregister");
    let registrations = sim.admin_get("/admin/agents")["count"].clone();
    drop(agent);

    let agent = home.start();
    agent.wait_healthy(WAIT);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        agent.registration()["status"],
        "NOT_REGISTERED",
        "no silent re-registration"
    );
    assert_eq!(sim.admin_get("/admin/agents")["count"], registrations);

    // Registering while registered needs --force.
    let (code, _) = agent.request("POST", "/api/registration", "{}").unwrap();
    assert_eq!(code, 200);
    complete_registration(&agent, &sim);
    let (code, body) = agent.request("POST", "/api/registration", "{}").unwrap();
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("--force"), "{body}");
    sim.assert_no_violations();
}

#[test]
fn gateway_prefix_and_header_are_sent() {
    let sim = Sim::start(SimOpts {
        gateway_prefix: Some("/gw".into()),
        gateway_header: Some(("x-gw".into(), "open-sesame".into())),
        ..Default::default()
    });
    let home = AgentHome::with_sim(
        &sim,
        "  api_gateway: { base_endpoint: /gw, header_key: x-gw, header_value: open-sesame }\n",
    );
    let agent = home.start();
    complete_registration(&agent, &sim);
    sim.assert_no_violations();
}

#[test]
fn registration_works_through_a_proxy_with_and_without_auth() {
    for credentials in [None, Some(("ops", "s3cret"))] {
        let sim = Sim::start(SimOpts::default());
        let proxy = Proxy::start(credentials);
        let auth = credentials
            .map(|(u, p)| format!(", username: {u}, password: {p}"))
            .unwrap_or_default();
        let home = AgentHome::with_sim(&sim, &format!("  proxy: {{ url: {}{auth} }}\n", proxy.url));
        let agent = home.start();
        complete_registration(&agent, &sim);
        assert!(proxy.tunnels() >= 1, "calls went through the proxy");
        sim.assert_no_violations();
    }
}

#[test]
fn a_wrong_proxy_password_fails_clearly() {
    let sim = Sim::start(SimOpts::default());
    let proxy = Proxy::start(Some(("ops", "s3cret")));
    let home = AgentHome::with_sim(
        &sim,
        &format!(
            "  proxy: {{ url: {}, username: ops, password: wrong }}\n",
            proxy.url
        ),
    );
    let agent = home.start();
    let ok = wait_until(WAIT, || {
        agent.registration()["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("407"))
    });
    assert!(ok, "{}\n{}", agent.registration(), agent.logs());
    let error = agent.registration()["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("oianalytics.proxy"),
        "says what to fix: {error}"
    );
    assert_eq!(agent.registration()["status"], "NOT_REGISTERED");
}

#[test]
fn tls_verification_rejects_a_self_signed_sim_unless_told_otherwise() {
    let sim = Sim::start(SimOpts {
        tls: true,
        ..Default::default()
    });
    let strict = AgentHome::with_sim(&sim, "");
    let agent = strict.start();
    let ok = wait_until(WAIT, || agent.registration()["last_error"].is_string());
    assert!(ok, "{}", agent.logs());
    assert_eq!(agent.registration()["status"], "NOT_REGISTERED");
    assert_eq!(sim.admin_get("/admin/agents")["count"], 0);
    drop(agent);

    let lax = AgentHome::with_sim(&sim, "  accept_unauthorized: true\n");
    let agent = lax.start();
    complete_registration(&agent, &sim);
    assert!(
        agent.logs().contains("accept_unauthorized"),
        "a warning is logged at start"
    );
}

#[test]
fn a_check_url_answering_garbage_never_crashes_the_actor() {
    let sim = Sim::start(SimOpts::default());
    let home = AgentHome::with_sim(&sim, "");
    let agent = home.start();
    agent.activation_code();
    for kind in [
        json!({"status": 200, "body": "{not json"}),
        json!({"status": 200, "body": "<html>maintenance</html>"}),
        json!({"status": 500, "body": "boom"}),
        json!({"status": 302, "body": ""}),
    ] {
        sim.fault("check-registration", 1, kind);
    }
    let ok = wait_until(WAIT, || sim.requests_on("check-registration") >= 6);
    assert!(ok, "polling goes on after bad answers: {}", agent.logs());
    let restarts: u64 = agent.status()["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["restarts"].as_u64().unwrap())
        .sum();
    assert_eq!(restarts, 0, "no actor crashed");
    complete_registration(&agent, &sim);
}
