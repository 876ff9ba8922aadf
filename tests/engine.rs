//! The engine process: configuration checks, signals, supervision visible from outside.

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::kit::agent::{cli, AgentHome, BIN};

const DEFAULT_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/agent.yaml");

#[test]
fn check_config_accepts_the_documented_default() {
    let (code, _, err) = cli(&["check-config", "--config", DEFAULT_CONFIG], &[]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn check_config_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(BIN)
        .args(["check-config", "--config", DEFAULT_CONFIG])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before anything is written, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.status.code() == Some(0) || out.status.signal() == Some(13),
        "{:?} {err}",
        out.status
    );
}

/// `oibus-agent status --api <addr> [extra]`: (exit code, stdout).
fn status_cli(api: std::net::SocketAddr, extra: &[&str]) -> (Option<i32>, String) {
    let api = api.to_string();
    let (code, out, _) = cli(&[&["status", "--api", &api], extra].concat(), &[]);
    (code, out)
}

#[test]
fn status_exits_0_healthy_1_degraded_3_not_running() {
    let nobody = std::net::SocketAddr::from(([127, 0, 0, 1], crate::kit::agent::free_port()));
    assert_eq!(status_cli(nobody, &[]).0, Some(3));
    // A configuration it cannot read: where the engine listens is unknown (LSB 4).
    let (code, _, err) = cli(&["status", "--config", "/nonexistent/agent.yaml"], &[]);
    assert_eq!(code, Some(4));
    assert!(err.contains("status unknown"));

    // No OIAnalytics configured: running, but never registered.
    let home = AgentHome::new("");
    let agent = home.start();
    agent.wait_healthy(Duration::from_secs(20));
    let (code, text) = status_cli(agent.api, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(": degraded"), "{text}");
    assert!(text.contains("! registration is"), "{text}");

    let (_sim, _home, agent) = crate::commands::started(&[]);
    let (code, text) = status_cli(agent.api, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(": healthy") && text.contains("registration: REGISTERED"),
        "{text}"
    );
    let (code, json) = status_cli(agent.api, &["--json"]);
    assert_eq!(code, Some(0));
    let value: serde_json::Value = serde_json::from_str(&json).expect("--json prints JSON");
    assert_eq!(value["registration"]["status"], "REGISTERED");
}

#[test]
fn register_prints_the_activation_code_and_where_to_enter_it() {
    // A simulator that waits for an operator: the code stays pending.
    let sim = crate::kit::sim::Sim::start(crate::kit::sim::SimOpts::default());
    let home = AgentHome::with_sim(&sim, "");
    let agent = home.start();
    agent.wait_healthy(Duration::from_secs(20));
    let config = home.config_path().display().to_string();
    let (exit, text, _) = cli(
        &["register", "--force", "--api", &agent.api.to_string()],
        &[("OIBUS_AGENT_CONFIG", &config)],
    );
    assert_eq!(exit, Some(0), "{text}");
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("activation code: "))
        .unwrap_or_else(|| panic!("no code in {text}"));
    assert_eq!(code.len(), 6, "{text}");
    assert!(
        text.contains(&format!("enter it in OIAnalytics at {}", sim.host())),
        "{text}"
    );
}

#[test]
fn check_config_reports_every_problem_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "oianalytics:\n  key_size: 1000\n  intervals:\n    message_retry: 0s\n",
    )
    .unwrap();
    let (code, _, err) = cli(
        &["check-config", "--config", &path.display().to_string()],
        &[],
    );
    assert_eq!(code, Some(78));
    assert!(
        err.contains("oianalytics.key_size: must be one of 2048, 3072, 4096, got 1000 at 2:13"),
        "{err}"
    );
    assert!(
        err.contains("oianalytics.intervals.message_retry: must be at least 1s, got 0s at 4:20"),
        "{err}"
    );
}

#[test]
fn engine_with_an_invalid_config_exits_78() {
    let home = AgentHome::new("oianalytics:\n  nope: 1\n");
    let mut agent = home.start();
    assert_eq!(
        agent.wait_exit(Duration::from_secs(10)),
        Some(78),
        "{}",
        agent.logs()
    );
}

#[test]
fn sigterm_stops_the_engine_in_order_with_exit_0() {
    let home = AgentHome::new("launcher:\n  shutdown_timeout: 5s\n");
    let mut agent = home.start();
    agent.wait_healthy(Duration::from_secs(20));
    let status = agent.status();
    assert_eq!(status["version"], oibus_actors::VERSION);
    let start = Instant::now();
    agent.stop(Duration::from_secs(10));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "stopped within the shutdown timeout"
    );
    assert!(agent.logs().contains("oibus-agent engine stopped"));
}

#[test]
fn under_journald_lines_carry_their_priority_and_no_timestamp_or_colour() {
    let home = AgentHome::new("");
    let agent = home.start_with_env(&[
        ("JOURNAL_STREAM", "stderr"),
        // RUST_LOG refines the level per target: actix's server lines are silenced.
        ("RUST_LOG", "actix_server=error"),
    ]);
    agent.wait_healthy(Duration::from_secs(20));
    std::fs::write(home.config_path(), "engine: [this is not: a mapping\n").unwrap();
    agent.signal(Signal::SIGHUP);
    let logged = crate::kit::wait_until(Duration::from_secs(10), || {
        agent
            .logs()
            .lines()
            .any(|l| l.starts_with("<3>") && l.contains("configuration reload rejected"))
    });
    assert!(logged, "no error line at priority 3:\n{}", agent.logs());
    let logs = agent.logs();
    assert!(logs.lines().any(|l| l.starts_with("<6>")), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escapes in the journal:\n{logs}"
    );
    // The journal stamps each line itself: none starts with a date.
    assert!(!logs.lines().any(|l| l.starts_with("20")), "{logs}");
    // actix-server's own info lines ("starting 1 workers", …) are gone; the agent's are not.
    assert!(!logs.contains("starting 1 workers"), "{logs}");
    assert!(logs.contains("local API listening"), "{logs}");
}

/// `--log-format json`: one JSON object per line with level, target, message and fields;
/// under the journal the priority prefix stays in front of it. The launcher passes the format
/// on to its engine.
#[test]
fn json_log_format_writes_one_object_per_line_with_its_priority_under_the_journal() {
    let objects = |logs: &str, prefix: &str| -> Vec<serde_json::Value> {
        logs.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|l| {
                let start = l.find('{').unwrap_or(0);
                serde_json::from_str(&l[start..])
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    };
    let home = AgentHome::new("");
    let plain = crate::kit::agent::Agent::spawn_with_env(
        &["--log-format", "json", "run", "--config"],
        &home.config_path(),
        home.dir.path(),
        home.api,
        &[],
    );
    plain.wait_healthy(Duration::from_secs(20));
    let lines = objects(&plain.logs(), "");
    let listening = lines
        .iter()
        .find(|o| o["message"] == "local API listening")
        .unwrap_or_else(|| panic!("{}", plain.logs()));
    assert_eq!(listening["level"], "INFO", "{listening}");
    assert!(listening["timestamp"].is_string(), "{listening}");
    assert_eq!(listening["listen"], home.api.to_string(), "{listening}");
    drop(plain);

    // The YAML's engine.log.format, under the journal, through the launcher to its engine.
    let yaml = std::fs::read_to_string(home.config_path()).unwrap();
    std::fs::write(
        home.config_path(),
        yaml.replace("oia: silent }", "oia: silent, format: json }"),
    )
    .unwrap();
    let journal = crate::kit::agent::Agent::spawn_with_env(
        &["launch", "--config"],
        &home.config_path(),
        home.dir.path(),
        home.api,
        &[("JOURNAL_STREAM", "stderr")],
    );
    journal.wait_healthy(Duration::from_secs(20));
    let logs = journal.logs();
    let info = objects(&logs, "<6>");
    assert!(
        info.iter()
            .any(|o| o["message"] == "oibus-agent launcher starting")
            && info.iter().any(|o| o["message"] == "local API listening"),
        "launcher and engine lines at priority 6:\n{logs}"
    );
    assert!(
        info.iter().all(|o| o.get("timestamp").is_none()),
        "the journal stamps lines itself:\n{logs}"
    );
    assert!(
        logs.lines().all(|l| l.starts_with('<')),
        "every line has its priority:\n{logs}"
    );
}

#[test]
fn sighup_with_a_broken_file_keeps_the_running_config() {
    let home = AgentHome::new("");
    let agent = home.start();
    agent.wait_healthy(Duration::from_secs(20));

    std::fs::write(home.config_path(), "engine: [this is not: a mapping\n").unwrap();
    agent.signal(Signal::SIGHUP);
    let rejected = crate::kit::wait_until(Duration::from_secs(10), || {
        agent.status()["config"]["last_reload"]["applied"] == false
    });
    assert!(rejected, "{}", agent.logs());
    let status = agent.status();
    assert!(status["config"]["last_reload"]["error"]
        .as_str()
        .unwrap()
        .contains("agent.yaml is invalid"));
    assert_eq!(status["name"], "test-agent", "the running config is kept");
    assert_eq!(status["config"]["console_level"], "debug");

    // A valid file is applied live.
    home.write_config("");
    std::fs::write(
        home.config_path(),
        std::fs::read_to_string(home.config_path())
            .unwrap()
            .replace("console: debug", "console: warn"),
    )
    .unwrap();
    agent.signal(Signal::SIGHUP);
    let applied = crate::kit::wait_until(Duration::from_secs(10), || {
        agent.status()["config"]["console_level"] == "warn"
    });
    assert!(applied, "{}", agent.logs());
}
