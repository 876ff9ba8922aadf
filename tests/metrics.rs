//! Metrics end to end: what the agent counts is what the simulator saw, across a restart.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::kit::agent::{cli, AgentHome};
use crate::kit::http::Client;
use crate::kit::sim::{Sim, SimOpts};
use crate::kit::wait_until;

/// The summed HOURS total of MetricsApi documents for `api` and `method`, read with the CLI.
fn api_count(home: &AgentHome, api: &str, method: &str) -> u64 {
    let api_address = home.api.to_string();
    let (code, out, err) = cli(
        &[
            "metrics",
            "--window",
            "HOURS",
            "--family",
            "MetricsApi",
            "--format",
            "json",
            "--api",
            &api_address,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    let docs: Value = serde_json::from_str(&out).unwrap();
    docs.as_array()
        .unwrap()
        .iter()
        .map(|d| &d["TimeSerie"])
        .filter(|t| t["api"] == api && t["operationType"] == method)
        .map(|t| {
            t["values"]["v"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum::<u64>()
        })
        .sum()
}

/// `promtool check metrics` (scripts/setup.sh installs it) finds nothing to say of `text`.
fn promtool_accepts(text: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/setup.sh installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{text}"
    );
}

#[test]
fn api_counts_match_the_simulator_and_survive_a_graceful_restart() {
    let sim = Sim::start(SimOpts::default());
    let home = AgentHome::with_sim(&sim, "");
    std::fs::write(
        home.config_path(),
        std::fs::read_to_string(home.config_path()).unwrap()
            + "actors:\n  metrics_aggregator: { flush_interval: 1s }\n",
    )
    .unwrap();
    let mut agent = home.start();
    let code = agent.activation_code();
    std::thread::sleep(Duration::from_secs(3)); // a few completion checks
    sim.complete(&code);
    agent.wait_registration("REGISTERED");

    // Let the command poller run a few cycles (command_refresh is 1s).
    let ok = wait_until(Duration::from_secs(30), || {
        sim.requests_on("commands-pending") >= 3
    });
    assert!(ok, "{}", agent.logs());

    // Stop gracefully: the final flush writes every count.
    agent.stop(Duration::from_secs(10));
    let checks = sim.requests_on("check-registration");
    let polls_before_stop = sim.requests_on("commands-pending");
    assert!(checks >= 2, "several checks were made ({checks})");

    let agent = home.start();
    agent.wait_healthy(Duration::from_secs(20));
    assert_eq!(api_count(&home, "registration/check", "GET"), checks);
    assert_eq!(
        api_count(&home, "registration", "POST"),
        sim.requests_on("registration")
    );
    // Every poll of the first run was counted and survived the restart; the restarted engine
    // polls again at once, and those polls are counted too once flushed.
    let pending = api_count(&home, "commands/pending", "GET");
    let seen = sim.requests_on("commands-pending");
    assert!(
        pending >= polls_before_stop && pending <= seen,
        "agent counted {pending}; simulator saw {polls_before_stop} before the stop, {seen} now"
    );

    // The documents have the Onesait shape.
    let (code, body) = agent
        .get("/api/metrics/documents?window=DAYS&family=MetricsOperation")
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let docs: Value = serde_json::from_str(&body).unwrap();
    let doc = &docs[0]["TimeSerie"];
    assert_eq!(doc["values"]["v"].as_object().unwrap().len(), 24);
    assert_eq!(doc["windowType"], "DAYS");
    assert_eq!(doc["windowFrecuency"], 1);
    assert_eq!(doc["windowFrecuencyUnit"], "HOURS");
    assert!(doc["timestamp"]["$date"]
        .as_str()
        .unwrap()
        .ends_with("T00:00:00.000Z"));

    let (code, text) = agent.get("/metrics").unwrap();
    assert_eq!(code, 200);
    for family in [
        "oibus_agent_oia_requests_total{route=",
        "oibus_agent_oia_request_duration_seconds_bucket{le=",
        "oibus_agent_poll_cycles_total{result=",
        "oibus_agent_build_info{version=",
        "oibus_agent_status_reports_pending ",
        "process_start_time_seconds ",
    ] {
        assert!(text.contains(family), "{family} missing from {text}");
    }
    assert!(
        text.contains("oibus_agent_actor_restarts_total{actor=\"registration\"} 0"),
        "{text}"
    );
    // What `curl` gets: Prometheus' text format, which promtool lints.
    promtool_accepts(&text);
    // What Prometheus gets, asking for OpenMetrics first.
    let scrape = Client::new()
        .get(&format!("http://{}/metrics", home.api))
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .unwrap();
    assert_eq!(
        scrape.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(scrape.text().ends_with("# EOF\n"), "{}", scrape.text());

    let (code, body) = agent.get("/api/metrics/series?window=FORTNIGHTS").unwrap();
    assert_eq!(code, 400, "a bad window is a clear error: {body}");
}
