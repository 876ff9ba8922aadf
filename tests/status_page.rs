//! The status page at `/` of the local API, in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `scripts/setup.sh`) loads it from an engine registered with the
//! simulator, with an MQTT south delivering values and a command the simulator queued; the
//! dumped DOM (after the page's script ran) shows the registration state and that command's
//! result, and a screenshot is saved (`<target>/tmp/status-page.png`; with
//! `OIBUS_AGENT_UPDATE_SCREENSHOT=1`, `docs/status-page.png`, the one the README shows).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::commands::{completed, scan_mode};
use crate::kit::wait_until;
use crate::protocols_mqtt::{flowing, payloads, TOPIC};

const WAIT: Duration = Duration::from_secs(40);

/// Headless Chromium on `url`, with `args` (`--dump-dom`, `--screenshot=…`); its stdout. Virtual
/// time lets the page's script fetch and render before the dump.
fn chromium(url: &str, args: &[&str], profile: &Path) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run chromium ({e}): scripts/setup.sh installs Debian's chromium")
        });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn status_page_shows_registration_and_a_queued_command_result_in_chromium() {
    let (broker, sim, _home, agent) = flowing(true);
    sim.queue(&serde_json::json!([scan_mode(
        "from-the-page",
        "shown-in-the-browser"
    )]));
    let result = completed(&sim, &agent, "from-the-page")["result"]
        .as_str()
        .expect("a COMPLETED record has a result")
        .to_owned();

    // The overview the page reads: the command, and both series with something in them
    // (documents are flushed every 10 s; values are sampled every 5 s), while values flow.
    let started = Instant::now();
    let mut next = 1;
    let mut overview = Value::Null;
    let ready = wait_until(WAIT, || {
        broker.publish(TOPIC, &payloads(next..next + 20));
        next += 20;
        let Some((200, body)) = agent.get("/api/overview") else {
            return false;
        };
        overview = serde_json::from_str(&body).expect("/api/overview is JSON");
        let series = |name: &str| {
            overview["sparklines"][name]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        overview["commands"]["recent"][0]["id"] == "from-the-page"
            && series("commands_per_minute")
                .iter()
                .any(|p| p["v"].as_u64() > Some(0))
            && series("values_per_second")
                .iter()
                .filter(|p| p["v"].as_f64() > Some(0.0))
                .count()
                >= 2
            && started.elapsed() > Duration::from_secs(12)
    });
    assert!(ready, "{overview:#}\n{}", agent.logs());
    assert_eq!(overview["registration"]["status"], "REGISTERED");
    assert!(
        overview["last_poll"].is_string() && overview["last_ack"].is_string(),
        "{overview}"
    );
    assert_eq!(
        overview["connectors"]["souths"][0]["name"], "broker",
        "{overview}"
    );

    let (code, page) = agent.get("/").expect("the local API answers");
    assert_eq!(code, 200);
    assert!(page.contains("<title>oibus-agent status</title>"), "{page}");
    // Nothing loaded from elsewhere (the SVG namespace is a name, not a load).
    for load in ["src=", "href=", "@import", "url("] {
        assert!(!page.contains(load), "{load} in the page");
    }

    let url = format!("http://{}/", agent.api);
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(&url, &["--dump-dom"], profile.path());
    assert!(
        dom.contains(r#"id="registration-status">REGISTERED</span>"#),
        "the registration state is not shown:\n{dom}"
    );
    let row_at = dom
        .find(r#"<tr id="command-from-the-page">"#)
        .unwrap_or_else(|| panic!("the command is not listed:\n{dom}"));
    let row = &dom[row_at..row_at + dom[row_at..].find("</tr>").unwrap()];
    assert!(row.contains(">COMPLETED<"), "{row}");
    assert!(
        row.contains(&escape(&result)),
        "result {result:?} not in {row}"
    );
    assert!(dom.contains("<polyline"), "no sparkline drawn:\n{dom}");

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &url,
        &[&format!("--screenshot={}", shot.display())],
        profile.path(),
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
    if std::env::var_os("OIBUS_AGENT_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
        std::fs::write(&docs, &png).unwrap();
        eprintln!("updated {}", docs.display());
    }
}
