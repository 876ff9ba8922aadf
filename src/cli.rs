//! The small commands that talk to a running engine through its local API, and `check-config`.

use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use oibus_actors::config;

mod unix_socket;

use unix_socket::UnixConnector;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print the engine's whole status as JSON, for machines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// The agent's configuration, to find its local API address.
    #[arg(
        long,
        short,
        env = "OIBUS_AGENT_CONFIG",
        default_value = "/etc/oibus-agent/agent.yaml"
    )]
    pub config: PathBuf,
    /// The local API address (overrides the one the engine recorded in its data folder, and the
    /// configuration's `engine.api.listen`).
    #[arg(long)]
    pub api: Option<SocketAddr>,
}

impl ApiArgs {
    fn address(&self) -> anyhow::Result<SocketAddr> {
        if let Some(a) = self.api {
            return Ok(a);
        }
        let config = config::load(&self.config)?;
        // The engine records where it listens (OIAnalytics may have moved the port).
        Ok(oibus_actors::api_address::current(
            &config.engine.data_dir,
            config.engine.api.listen,
        ))
    }
}

pub fn check_config(path: &Path) -> anyhow::Result<i32> {
    match config::load(path) {
        Ok(c) => {
            println!("{}: valid", path.display());
            println!(
                "{}",
                serde_norway::to_string(&c).context("cannot render the configuration")?
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(oibus_actors::exit::CONFIG)
        }
    }
}

/// `status [--json]`: a short summary (or the engine's JSON), and the LSB exit code: 0 healthy,
/// 1 degraded (with why), 3 not running, 4 unknown (the configuration, which says where the
/// engine listens, cannot be read: not in the service's group?).
pub fn status(args: &StatusArgs) -> anyhow::Result<i32> {
    let address = match args.api.address() {
        Ok(address) => address,
        Err(e) => {
            eprintln!("status unknown: {e:#} (run as the service user or a member of its group, or pass --api)");
            return Ok(4);
        }
    };
    let body = match request(address, "GET", "/status", "") {
        Ok(body) => body,
        Err(e) => {
            eprintln!("not running: {e:#}");
            return Ok(3);
        }
    };
    let value: serde_json::Value =
        serde_json::from_str(&body).context("the agent answered something that is not JSON")?;
    let problems = health_problems(&value);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", summary(&value, &problems));
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// Why the engine is degraded: not registered, an actor not running, a rejected reload, a
/// connector failing.
fn health_problems(status: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let registration = status["registration"]["status"]
        .as_str()
        .unwrap_or("unknown");
    if registration != "REGISTERED" {
        problems.push(format!("registration is {registration}"));
    }
    for actor in status["actors"].as_array().into_iter().flatten() {
        if actor["state"] != "running" {
            problems.push(format!(
                "actor {} is {}",
                actor["name"].as_str().unwrap_or("?"),
                actor["state"].as_str().unwrap_or("?")
            ));
        }
    }
    if status["config"]["last_reload"]["applied"] == false {
        problems.push("the last configuration reload was rejected".to_owned());
    }
    let flow = &status["data_flow"];
    for (kind, list) in [("south", &flow["souths"]), ("north", &flow["norths"])] {
        for c in list.as_array().into_iter().flatten() {
            if matches!(c["state"].as_str(), Some("error" | "retrying")) {
                let error = c["last_error"].as_str().unwrap_or("");
                problems.push(format!(
                    "{kind} {} is {}: {error}",
                    c["name"].as_str().unwrap_or("?"),
                    c["state"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    problems
}

fn summary(status: &serde_json::Value, problems: &[String]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let health = if problems.is_empty() {
        "healthy"
    } else {
        "degraded"
    };
    let _ = writeln!(
        out,
        "oibus-agent {} ({}), pid {}, up {} s: {health}",
        status["version"].as_str().unwrap_or("?"),
        status["name"].as_str().unwrap_or("?"),
        status["pid"],
        status["uptime_s"],
    );
    for problem in problems {
        let _ = writeln!(out, "  ! {problem}");
    }
    let registration = &status["registration"];
    let _ = writeln!(
        out,
        "registration: {}",
        registration["status"].as_str().unwrap_or("?")
    );
    if let Some(code) = registration["activation_code"].as_str() {
        let _ = writeln!(out, "  activation code: {code}");
    }
    let actors = status["actors"].as_array().map_or(0, Vec::len);
    let _ = writeln!(out, "actors: {actors}");
    let logs = &status["logs"];
    if !logs.is_null() {
        let n = |k: &str| logs[k].as_u64().unwrap_or(0);
        let dropped = n("dropped_channel") + n("dropped_cap") + n("dropped_store");
        let _ = writeln!(
            out,
            "log shipping: {}, backlog {} records ({} KiB), {} delivered, {} dropped{}",
            if logs["shipping"] == true {
                "on"
            } else {
                "off"
            },
            n("queue_len"),
            n("queue_bytes") / 1024,
            n("delivered"),
            dropped,
            logs["last_error"]
                .as_str()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default(),
        );
    }
    let flow = &status["data_flow"];
    for south in flow["souths"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "south {} ({}): {}, {} read, {} skipped",
            south["name"].as_str().unwrap_or("?"),
            south["type"].as_str().unwrap_or("?"),
            south["state"].as_str().unwrap_or("?"),
            south["read_elements"],
            south["skipped"],
        );
    }
    for north in flow["norths"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "north {} ({}): {}, {} sent, {} cached, {} in error",
            north["name"].as_str().unwrap_or("?"),
            north["type"].as_str().unwrap_or("?"),
            north["state"].as_str().unwrap_or("?"),
            north["sent_elements"].as_u64().unwrap_or(0)
                + north["sent_files"].as_u64().unwrap_or(0),
            north["cache_entries"],
            north["error_entries"],
        );
    }
    for other in flow["not_running"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{} {} ({}): not running: {}",
            other["kind"].as_str().unwrap_or("?"),
            other["name"].as_str().unwrap_or("?"),
            other["type"].as_str().unwrap_or("?"),
            other["reason"].as_str().unwrap_or("?"),
        );
    }
    let settings = status["settings"].as_array().cloned().unwrap_or_default();
    if !settings.is_empty() {
        let _ = writeln!(
            out,
            "settings in force (from the YAML or from OIAnalytics):"
        );
        for s in &settings {
            let _ = writeln!(
                out,
                "  {:<30} {:<22} {} {}",
                s["name"].as_str().unwrap_or("?"),
                s["value"].as_str().unwrap_or("?"),
                s["source"].as_str().unwrap_or("?"),
                s["key"].as_str().unwrap_or("?"),
            );
        }
    }
    out
}

/// `register [--force]`: start a registration and print the activation code to enter in
/// OIAnalytics.
pub fn register(args: &ApiArgs, force: bool) -> anyhow::Result<i32> {
    let body = change(
        args,
        "POST",
        "/api/registration",
        &serde_json::json!({ "force": force }).to_string(),
    )?;
    let view: serde_json::Value = serde_json::from_str(&body)?;
    println!("registration: {}", view["status"].as_str().unwrap_or("?"));
    // The code exists once OIAnalytics answered the registration request: wait a little.
    let address = args.address()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let code = loop {
        let status: Option<serde_json::Value> = request(address, "GET", "/status", "")
            .ok()
            .and_then(|b| serde_json::from_str(&b).ok());
        if let Some(code) = status
            .as_ref()
            .and_then(|s| s["registration"]["activation_code"].as_str())
        {
            break Some(code.to_owned());
        }
        if std::time::Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    let host = config::load(&args.config)
        .ok()
        .and_then(|c| c.oianalytics.host.clone());
    match (code, host) {
        (Some(code), Some(host)) => {
            println!("activation code: {code}");
            println!("enter it in OIAnalytics at {host} to accept this agent");
        }
        (Some(code), None) => println!("activation code: {code}"),
        (None, _) => println!(
            "no activation code yet: OIAnalytics has not answered; see `oibus-agent status`"
        ),
    }
    Ok(0)
}

/// `unregister`: local only; authenticated calls stop until `register`.
pub fn unregister(args: &ApiArgs) -> anyhow::Result<i32> {
    change(args, "DELETE", "/api/registration", "")?;
    println!("unregistered: the agent no longer calls OIAnalytics; `oibus-agent register` to start again");
    Ok(0)
}

/// One request to the local API (or the simulator, for the demo); the body of a 2xx answer.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
    send(Route::Tcp(addr, None), method, path, body)
}

/// How a call reaches the local API.
enum Route<'a> {
    /// TCP, with the token of the data folder for the routes that change state.
    Tcp(SocketAddr, Option<&'a oibus_actors::Secret<String>>),
    /// The engine's Unix socket (its path, and a connection to it), where no token is needed.
    Unix(&'a Path, UnixStream),
}

/// A request that changes the agent: through the engine's Unix socket when it has one this
/// user may connect to (no token needed), else over TCP with the token of the data folder.
fn change(args: &ApiArgs, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
    if args.api.is_none() {
        if let Ok(config) = config::load(&args.config) {
            if let Some(socket) = oibus_actors::api_address::read_socket(&config.engine.data_dir) {
                if let Ok(stream) = UnixStream::connect(&socket) {
                    return send(Route::Unix(&socket, stream), method, path, body);
                }
            }
        }
    }
    let addr = args.address()?;
    let token = api_token(args)?;
    send(Route::Tcp(addr, Some(&token)), method, path, body)
}

fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| "unknown".to_string(), |u| u.name)
}

/// The token the routes that change state need, from the engine's data folder.
fn api_token(args: &ApiArgs) -> anyhow::Result<oibus_actors::Secret<String>> {
    let config = config::load(&args.config).with_context(|| {
        format!(
            "reading {} to find the agent's data folder",
            args.config.display()
        )
    })?;
    let path = oibus_actors::api_token::path(&config.engine.data_dir);
    oibus_actors::api_token::read(&config.engine.data_dir).with_context(|| {
        format!(
            "cannot read the local API token {}: run this as the service user or a member of its group (or start the engine once to create it)",
            path.display()
        )
    })
}

fn send(route: Route<'_>, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(3)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(30)))
        .build();
    let (agent, url, token, place) = match route {
        Route::Tcp(addr, token) => (
            ureq::Agent::new_with_config(config),
            format!("http://{addr}{path}"),
            token,
            format!("at {addr}"),
        ),
        Route::Unix(socket, stream) => (
            ureq::Agent::with_parts(
                config,
                UnixConnector::new(stream),
                ureq::unversioned::resolver::DefaultResolver::default(),
            ),
            format!("http://localhost{path}"),
            None,
            format!("through {}", socket.display()),
        ),
    };
    let user = current_user();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("X-Oibus-User", user)
        .header("Content-Type", "application/json");
    let request = match token {
        Some(token) => request.header("Authorization", format!("Bearer {}", token.expose())),
        None => request,
    };
    let sent = if body.is_empty() {
        agent.run(request.body(())?)
    } else {
        agent.run(request.body(body)?)
    };
    let mut response = sent.with_context(|| format!("cannot reach the agent's local API {place}; is the engine running (systemctl status oibus-agent)?"))?;
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .context("reading the agent's answer")?;
    if !status.is_success() {
        anyhow::bail!("the agent answered {}: {body}", status.as_u16());
    }
    Ok(body)
}

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The window: hours (one slot per minute), days (per hour) or months (per day).
    #[arg(long, value_enum, ignore_case = true, default_value = "hours")]
    pub window: Window,
    /// One family (default: all). The Onesait names (MetricsApi, …) are accepted too.
    #[arg(long, value_enum, ignore_case = true)]
    pub family: Option<MetricsFamily>,
    /// Flatten to one value per slot, summed over tags, instead of the stored documents.
    #[arg(long)]
    pub series: bool,
    /// ISO-8601 start (default: the start of the current window).
    #[arg(long)]
    pub from: Option<String>,
    /// ISO-8601 end (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// A table for people, or the local API's JSON.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// `--family`: the five metrics families.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MetricsFamily {
    /// Agent operations (registration, polls, commands, pushes, log posts).
    #[value(alias = "MetricsOperation")]
    Operation,
    /// Calls to OIAnalytics, per route and method.
    #[value(alias = "MetricsApi")]
    Api,
    /// Changes to the stored entities.
    #[value(alias = "MetricsOntology")]
    Ontology,
    /// Local API calls that change the agent.
    #[value(alias = "MetricsControlPanel")]
    ControlPanel,
    /// Local API queries.
    #[value(alias = "MetricsQueriesControlPanel")]
    QueriesControlPanel,
}

impl MetricsFamily {
    /// The family as the local API and the Onesait documents name it.
    fn as_api(self) -> &'static str {
        match self {
            MetricsFamily::Operation => "MetricsOperation",
            MetricsFamily::Api => "MetricsApi",
            MetricsFamily::Ontology => "MetricsOntology",
            MetricsFamily::ControlPanel => "MetricsControlPanel",
            MetricsFamily::QueriesControlPanel => "MetricsQueriesControlPanel",
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Window {
    Hours,
    Days,
    Months,
}

impl Window {
    /// The window type as the local API and the Onesait documents spell it.
    fn as_api(self) -> &'static str {
        match self {
            Window::Hours => "HOURS",
            Window::Days => "DAYS",
            Window::Months => "MONTHS",
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Json,
    Table,
}

pub fn metrics(args: &MetricsArgs) -> anyhow::Result<i32> {
    let body = request(args.api.address()?, "GET", &metrics_path(args), "")?;
    let value: serde_json::Value =
        serde_json::from_str(&body).context("the agent answered something that is not JSON")?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Format::Table if args.series => {
            println!("{:<26} {:>10}", "timestamp", "value");
            for p in value.as_array().into_iter().flatten() {
                println!(
                    "{:<26} {:>10}",
                    p["timestamp"].as_str().unwrap_or(""),
                    p["value"]
                );
            }
        }
        Format::Table => print_documents(&value),
    }
    Ok(0)
}

/// The local API path for `args`, its query percent-encoded (an ISO offset `+01:00` stays a `+`).
fn metrics_path(args: &MetricsArgs) -> String {
    let route = if args.series { "series" } else { "documents" };
    let mut query = vec![("window", args.window.as_api())];
    if let Some(family) = args.family {
        query.push(("family", family.as_api()));
    }
    for (name, value) in [("from", &args.from), ("to", &args.to)] {
        if let Some(v) = value {
            query.push((name, v));
        }
    }
    oibus_actors::client::with_query(&format!("/api/metrics/{route}"), &query)
}

/// One line per document: window start, tags, and the total of its slots.
fn print_documents(docs: &serde_json::Value) {
    const FIXED: [&str; 5] = [
        "values",
        "timestamp",
        "propertyName",
        "windowType",
        "windowFrecuency",
    ];
    println!("{:<26} {:>8}  tags", "window start", "total");
    for doc in docs.as_array().into_iter().flatten() {
        let ts = &doc["TimeSerie"];
        let total: u64 = ts["values"]["v"]
            .as_object()
            .map(|v| v.values().filter_map(|n| n.as_u64()).sum())
            .unwrap_or(0);
        let tags: Vec<String> = ts
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !FIXED.iter().any(|f| k.starts_with(f)))
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        println!(
            "{:<26} {:>8}  {}",
            ts["timestamp"]["$date"].as_str().unwrap_or(""),
            total,
            tags.join(" ")
        );
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        metrics: MetricsArgs,
    }

    #[test]
    fn the_window_reads_in_any_case_and_is_sent_as_the_api_spells_it() {
        for given in ["days", "DAYS", "Days"] {
            let cli = Cli::parse_from(["metrics", "--window", given]);
            assert!(
                metrics_path(&cli.metrics).contains("window=DAYS"),
                "{given}"
            );
        }
        assert!(Cli::try_parse_from(["metrics", "--window", "weeks"]).is_err());
    }

    #[test]
    fn the_family_is_a_lower_case_value_and_the_onesait_name_is_accepted() {
        for given in ["control-panel", "MetricsControlPanel", "CONTROL-PANEL"] {
            let cli = Cli::parse_from(["metrics", "--family", given]);
            assert!(
                metrics_path(&cli.metrics).contains("family=MetricsControlPanel"),
                "{given}"
            );
        }
        assert!(Cli::try_parse_from(["metrics", "--family", "MetricsBogus"]).is_err());
    }

    #[test]
    fn metrics_query_percent_encodes_an_iso_offset() {
        let cli = Cli::parse_from([
            "metrics",
            "--series",
            "--from",
            "2026-11-23T00:00:00+01:00",
            "--family",
            "MetricsApi",
        ]);
        assert_eq!(
            metrics_path(&cli.metrics),
            "/api/metrics/series?window=HOURS&family=MetricsApi&from=2026-11-23T00%3A00%3A00%2B01%3A00"
        );
    }
}
