//! `oibus-agent demo`: a newcomer's first look. Starts a simulated OIAnalytics and an agent on
//! loopback in a temporary folder, registers, sends a few remote commands as OIAnalytics would,
//! narrates what happens, and stops both cleanly on Ctrl-C (or at once with `--no-wait`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

/// One HTTP/1.1 request, answering the body of a 2xx (the binary's local-API client): the demo
/// talks to the agent the way an operator's CLI does.
pub type Request = fn(SocketAddr, &str, &str, &str) -> anyhow::Result<String>;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Stop as soon as the scripted run is over instead of waiting for Ctrl-C.
    #[arg(long)]
    pub no_wait: bool,
    /// Keep the demo folder (config, data, logs) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    fn stop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!("   ({} did not stop in 15 s; killing it)", self.name);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

fn step(n: u32, text: &str) {
    println!("\n{n}. {text}");
}

fn say(text: &str) {
    println!("   {text}");
}

pub fn run(args: DemoArgs, request: Request) -> anyhow::Result<i32> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        sigaction(Signal::SIGINT, &action).context("installing the Ctrl-C handler")?;
        sigaction(Signal::SIGTERM, &action).context("installing the SIGTERM handler")?;
    }
    let dir = tempfile::Builder::new()
        .prefix("oibus-agent-demo-")
        .tempdir()?;
    let exe = std::env::current_exe().context("locating the oibus-agent binary")?;
    println!("oibus-agent demo: an agent and a simulated OIAnalytics, on this machine only.");
    println!(
        "Everything lives in {} and is removed at the end.",
        dir.path().display()
    );

    step(
        1,
        "Starting a simulated OIAnalytics (the server the agent reports to)",
    );
    let (sim, sim_url) = start_sim(&exe, dir.path())?;
    let sim_addr: SocketAddr = sim_url.trim_start_matches("http://").parse()?;
    say(&format!(
        "listening on {sim_url}; it accepts registration codes by itself after 2 s"
    ));

    step(
        2,
        "Starting the agent (launcher and engine, as systemd would)",
    );
    let api = free_port()?;
    let config = dir.path().join("agent.yaml");
    std::fs::write(&config, agent_yaml(dir.path(), &sim_url, api))?;
    let log = std::fs::File::create(dir.path().join("agent.log"))?;
    let mut agent = Process {
        name: "agent",
        child: Command::new(&exe)
            .arg("launch")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the agent")?,
    };
    say(&format!(
        "configuration: {} (its log: agent.log)",
        config.display()
    ));
    say(&format!("local API: http://{api}/status"));
    say("the launcher supervises the engine; the engine has no identity in OIAnalytics yet, so it starts a registration");

    step(3, "Registering with a 6-character activation code");
    let code = wait_for(Duration::from_secs(60), || {
        let status = local_status(request, api)?;
        Some(
            status["registration"]["activation_code"]
                .as_str()?
                .to_string(),
        )
    })
    .context("the agent did not start a registration; see agent.log")?;
    say(&format!(
        "activation code: {code}  (an operator would type it into OIAnalytics)"
    ));
    wait_for(Duration::from_secs(60), || {
        (local_status(request, api)?["registration"]["status"] == "REGISTERED").then_some(())
    })
    .context("the registration did not complete; see agent.log")?;
    say("OIAnalytics accepted it: the agent is REGISTERED and now polls for commands");

    step(4, "OIAnalytics sends six commands");
    let public_key = admin(request, sim_addr, "GET", "/admin/agents", "")?["agents"][0]
        ["publicKey"]
        .as_str()
        .context("the simulator has no public key for the agent")?
        .to_string();
    let secret = "demo-Passw0rd!";
    let encrypted =
        oibus_actors::key_vault::encrypt_for(&public_key, secret).map_err(anyhow::Error::msg)?;
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox)?;
    let commands = demo_commands(&encrypted, &inbox);
    for c in &commands {
        say(&format!(
            "{:<22} {}",
            c["type"].as_str().unwrap_or(""),
            describe(c)
        ));
    }
    admin(
        request,
        sim_addr,
        "POST",
        "/admin/commands",
        &Value::Array(commands.clone()).to_string(),
    )?;

    step(5, "The agent executes them and reports every result");
    let mut reported = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while reported.len() < commands.len()
        && Instant::now() < deadline
        && !STOP.load(Ordering::SeqCst)
    {
        let statuses = admin(request, sim_addr, "GET", "/admin/statuses", "")?;
        for c in &commands {
            let id = c["id"].as_str().unwrap_or_default();
            let latest = &statuses["latest"][id];
            let status = latest["status"].as_str().unwrap_or("");
            if matches!(status, "COMPLETED" | "ERRORED") && reported.insert(id.to_string()) {
                say(&format!(
                    "{:<22} {:<9} {}",
                    c["type"].as_str().unwrap_or(""),
                    status,
                    latest["record"]["result"].as_str().unwrap_or("")
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    if reported.len() < commands.len() {
        say("(some results did not arrive within 60 s; see agent.log)");
    }

    step(6, "Data: files dropped in a folder reach OIAnalytics");
    for i in 1..=3 {
        let name = format!("line-3-{i}.csv");
        let body = format!("timestamp,temperature\n2026-01-01T00:00:0{i}Z,2{i}.5\n");
        // Written aside, then renamed: the folder scanner never sees half a file.
        let part = inbox.join(format!(".{name}.part"));
        std::fs::write(&part, body)?;
        std::fs::rename(&part, inbox.join(&name))?;
        say(&format!("dropped {name} into {}", inbox.display()));
    }
    let arrived = wait_for(Duration::from_secs(30), || {
        let files = admin(request, sim_addr, "GET", "/admin/data/files", "").ok()?;
        let files = files["files"].as_array()?.clone();
        (files.len() >= 3).then_some(files)
    });
    match arrived {
        Ok(files) => {
            for f in &files {
                say(&format!(
                    "OIAnalytics received {} ({} copy, sha256 {}…)",
                    f["name"].as_str().unwrap_or("?"),
                    f["copies"],
                    &f["sha256"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(12)
                        .collect::<String>()
                ));
            }
            say("each file was committed (fsync) to the north's cache before it left the folder");
        }
        Err(e) => say(&format!(
            "the files did not all arrive ({e}); see agent.log"
        )),
    }

    step(7, "What OIAnalytics now knows");
    std::thread::sleep(Duration::from_secs(2));
    let messages = admin(
        request,
        sim_addr,
        "GET",
        "/admin/messages?kind=full-config",
        "",
    )?;
    let count = messages["count"].as_u64().unwrap_or(0);
    say(&format!("{count} full-config message(s) received (the agent's configuration, pushed after each change)"));
    let raw = messages.to_string();
    if let Some(last) = messages["messages"].as_array().and_then(|m| m.last()) {
        let body = &last["body"];
        say(&format!(
            "latest: {} scan modes, {} south connector(s), software version {}",
            body["scanModes"].as_array().map_or(0, Vec::len),
            body["southConnectors"].as_array().map_or(0, Vec::len),
            body["engine"]["softwareVersion"].as_str().unwrap_or("?"),
        ));
    }
    let secret_leaked = raw.contains(secret);
    if count > 0 {
        say(if secret_leaked {
            "WARNING: the connector password appears in what OIAnalytics received"
        } else {
            "the connector password was stored sealed (AES-256-GCM) and sent back blanked: it never leaves the agent"
        });
    }
    let logs = admin(request, sim_addr, "GET", "/admin/logs?limit=1", "")?;
    say(&format!(
        "{} log record(s) shipped (the OIA log level was raised to info by a command)",
        logs["count"].as_u64().unwrap_or(0)
    ));
    let violations = admin(request, sim_addr, "GET", "/admin/violations", "")?;
    say(&format!(
        "protocol violations recorded by the simulator: {}",
        violations["count"].as_u64().unwrap_or(0)
    ));

    println!(
        "\nSummary: registered; {} of {} commands reported; {count} configuration push(es){}.",
        reported.len(),
        commands.len(),
        if count > 0 && !secret_leaked {
            ", none carrying a secret"
        } else {
            ""
        }
    );
    println!(
        "Try: oibus-agent status --api {api}   |   oibus-agent metrics --api {api} --window hours"
    );
    if !args.no_wait {
        println!("\nThe agent keeps running. Press Ctrl-C to stop both.");
        while !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!("\nStopping the agent (ordered shutdown) and the simulator...");
    agent.stop();
    drop(sim);
    if args.keep {
        let kept = dir.keep();
        println!("Kept {}.", kept.display());
    }
    println!("Done.");
    Ok(0)
}

fn start_sim(exe: &Path, dir: &Path) -> anyhow::Result<(Process, String)> {
    let mut child = Command::new(exe)
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--auto-complete",
            "2s",
            "--data",
        ])
        .arg(dir.join("sim"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("sim.log"))?)
        .spawn()
        .context("starting the simulator")?;
    let stdout = child.stdout.take().context("simulator stdout")?;
    let process = Process {
        name: "simulator",
        child,
    };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(url) = line.trim().strip_prefix("listening on ") else {
        bail!("the simulator did not start (see sim.log): {line:?}");
    };
    Ok((process, url.to_string()))
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

fn agent_yaml(dir: &Path, sim_url: &str, api: SocketAddr) -> String {
    format!(
        "engine:
  name: demo-gateway
  data_dir: {data}
  api: {{ listen: {api} }}
  log: {{ console: info, oia: silent }}
oianalytics:
  host: {sim_url}
  # 2048-bit keys keep the demo quick; the default is 4096.
  key_size: 2048
  intervals: {{ command_refresh: 2s, command_retry: 2s, message_retry: 2s, registration_check: 1s }}
  # The YAML is the ceiling for what OIAnalytics may do: no remote restarts here.
  permissions: {{ restartEngine: false }}
actors:
  log_shipper: {{ interval: 2s }}
launcher:
  install_dir: {install}
  shutdown_timeout: 10s
",
        data = dir.join("data").display(),
        install = dir.join("install").display(),
    )
}

fn demo_commands(encrypted_password: &str, inbox: &Path) -> Vec<Value> {
    // OIA targets the OIBus version it was told, not the agent's own.
    let v = oibus_actors::COMPATIBLE_OIBUS_VERSION;
    vec![
        json!({"id": "demo-1", "type": "create-scan-mode", "targetVersion": v,
               "commandContent": {"name": "Every 5 seconds", "description": "created by the demo", "cron": "*/5 * * * * *"}}),
        json!({"id": "demo-2", "type": "create-south", "targetVersion": v, "retrieveSecretsFromSouth": null,
               "commandContent": {"name": "line-3-mssql", "type": "mssql", "description": "created by the demo", "enabled": false,
                   "settings": {"host": "10.0.0.12", "port": 1433, "connectionTimeout": 5000, "database": "plant",
                                "encryption": false, "trustServerCertificate": false, "username": "reader",
                                "password": encrypted_password, "domain": null, "requestTimeout": 15000},
                   "items": [], "groups": []}}),
        json!({"id": "demo-3", "type": "update-engine-logger", "targetVersion": v,
               "commandContent": {"console": {"level": "info"}, "file": {"level": "info", "maxFileSize": 50, "numberOfFiles": 5},
                   "database": {"level": "info", "maxNumberOfLogs": 100000},
                   "loki": {"level": "silent", "interval": 60, "address": "", "username": "", "password": ""},
                   "oia": {"level": "info", "interval": 10},
                   "syslog": {"level": "silent", "host": "", "port": 514, "protocol": "udp4"}}}),
        json!({"id": "demo-4", "type": "create-north", "targetVersion": v, "retrieveSecretsFromNorth": null,
               "commandContent": {"name": "to-oianalytics", "type": "oianalytics", "description": "created by the demo", "enabled": true,
                   "settings": {"useOiaModule": true, "timeout": 30, "compress": false},
                   "caching": {"trigger": {"scanModeId": null, "scanModeName": "Every 5 seconds", "numberOfElements": 1, "numberOfFiles": 1},
                               "throttling": {"runMinDelay": 200, "maxSize": 0, "maxNumberOfElements": 10000},
                               "error": {"retryInterval": 5000, "retryCount": 3, "retentionDuration": 0},
                               "archive": {"enabled": false, "retentionDuration": 72}},
                   "transformers": []}}),
        json!({"id": "demo-5", "type": "create-south", "targetVersion": v, "retrieveSecretsFromSouth": null,
               "commandContent": {"name": "line-3-exports", "type": "folder-scanner", "description": "created by the demo", "enabled": true,
                   "settings": {"inputFolder": inbox, "compression": false},
                   "items": [{"id": null, "name": "csv exports", "enabled": true,
                              "settings": {"regex": ".*\\.csv", "minAge": 0, "preserveFiles": false},
                              "scanModeId": null, "scanModeName": "Every 5 seconds"}],
                   "groups": []}}),
        json!({"id": "demo-6", "type": "restart-engine", "targetVersion": v}),
    ]
}

fn describe(command: &Value) -> &'static str {
    match command["type"].as_str() {
        Some("create-scan-mode") => "a schedule for connectors to read on",
        Some("create-south") if command["commandContent"]["type"] == "folder-scanner" => {
            "a folder scanner for CSV exports, read every 5 seconds"
        }
        Some("create-south") => "a SQL Server connector whose password travels RSA-encrypted",
        Some("update-engine-logger") => "ship the agent's logs to OIAnalytics from now on",
        Some("create-north") => "a north that sends what it receives to OIAnalytics",
        Some("restart-engine") => "a restart, which this agent's YAML does not permit",
        _ => "",
    }
}

fn local_status(request: Request, api: SocketAddr) -> Option<Value> {
    serde_json::from_str(&request(api, "GET", "/status", "").ok()?).ok()
}

fn admin(
    request: Request,
    sim: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<Value> {
    let text =
        request(sim, method, path, body).with_context(|| format!("simulator {method} {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("simulator {path} answered non-JSON"))
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if STOP.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
