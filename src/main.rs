//! `oibus-agent`: one binary, several roles (see `oibus-agent --help` and DESIGN.md).
//!
//! This file is the binary's edge: it parses the command line and turns every error into a
//! readable message and an exit code. The work lives in the modules below and in the
//! `oibus-actors` crate.

mod api;
mod cli;
mod engine;
mod launch;
mod logging;
mod shared;
mod status_page;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// OIAnalytics agent for Linux industrial gateways: registration, remote commands, configuration
/// pushes, durable log shipping, data connectors and self-upgrade, in one binary.
///
/// Under systemd the service runs `launch`, which runs the engine (`run`); the other commands
/// talk to a running engine through its local API (`status`, `register`, `unregister`,
/// `metrics`) or only read the configuration (`check-config`). Every command takes `--config`
/// (or `OIBUS_AGENT_CONFIG`), by default /etc/oibus-agent/agent.yaml.
///
/// Engine exit codes: 0 stopped on request, 70 supervision gave up, 75 restart requested,
/// 76 upgrade staged, 78 configuration invalid.
#[derive(Debug, Parser)]
#[command(
    name = "oibus-agent",
    version = oibus_actors::VERSION,
    about = "OIAnalytics agent for Linux industrial gateways",
    long_about
)]
struct Cli {
    /// Console log format, over `engine.log.format` (the launcher passes it to the engine).
    #[arg(long, global = true, value_enum, env = "OIBUS_AGENT_LOG_FORMAT")]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    /// Lines for people (syslog priorities under the journal).
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the launcher: the service's main process, which runs the engine.
    ///
    /// It runs `<launcher.install_dir>/bin/oibus-agent` (an upgrade from OIAnalytics, once there
    /// is one), else this executable; restarts it with backoff; applies upgrades with rollback,
    /// and hands over to a committed one at start. Exit codes: 0 stopped, 70 the engine
    /// crash-looped, 78 configuration invalid.
    Launch(ConfigArg),
    /// Run the engine: the supervised actors and the local API.
    ///
    /// Normally started by `launch`; alone, for development.
    Run(ConfigArg),
    /// Validate a configuration file; exit 0 when valid, 78 with every problem when not.
    CheckConfig(ConfigArg),
    /// Show the running engine's health: exit 0 healthy, 1 degraded, 3 not running, 4 unknown (the YAML is unreadable).
    ///
    /// The summary says why it is degraded and lists the settings in force with where each
    /// comes from (the YAML or OIAnalytics); `--json` prints the engine's whole status. Exit 4
    /// when the configuration (which says where the engine listens) cannot be read.
    Status(cli::StatusArgs),
    /// Start a registration with OIAnalytics (a new activation code and key pair).
    Register {
        #[command(flatten)]
        api: cli::ApiArgs,
        /// Register again even when already registered (new keys, new code).
        #[arg(long)]
        force: bool,
    },
    /// Forget the registration locally; authenticated calls stop until `register`.
    Unregister(cli::ApiArgs),
    /// Print the agent's own operation counts (hourly, daily or monthly time-series windows).
    Metrics(cli::MetricsArgs),
    /// Watch an agent register with a simulated OIAnalytics and execute commands (start here).
    #[cfg(feature = "sim")]
    Demo(oibus_sim::demo::DemoArgs),
    /// Run the OIAnalytics simulator (server side of the protocol, with an admin API).
    #[cfg(feature = "sim")]
    Sim(oibus_sim::SimArgs),
}

/// `--config`, the configuration file of `launch`, `run` and `check-config`.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    #[arg(
        long,
        short,
        env = "OIBUS_AGENT_CONFIG",
        default_value = "/etc/oibus-agent/agent.yaml"
    )]
    config: PathBuf,
}

/// The short-lived commands die quietly on a closed pipe (`check-config | head -1`), with the
/// usual 141, instead of panicking in `println!`. The daemons keep SIGPIPE ignored, as Rust
/// sets it, so a peer closing a socket is an error to handle, not a death.
fn quiet_on_closed_pipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: restores the default disposition before any other thread exists.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(format) = cli.log_format {
        // Read by `logging::init` here and inherited by the engine the launcher starts; set
        // before any thread exists.
        let value = match format {
            LogFormatArg::Text => "text",
            LogFormatArg::Json => "json",
        };
        std::env::set_var(logging::FORMAT_ENV, value);
    }
    if matches!(
        cli.command,
        Command::CheckConfig(_)
            | Command::Status(_)
            | Command::Register { .. }
            | Command::Unregister(_)
            | Command::Metrics(_)
    ) {
        quiet_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Launch(args) => launch::run(&args.config),
        Command::Run(args) => engine::run(&args.config),
        Command::CheckConfig(args) => cli::check_config(&args.config),
        Command::Status(args) => cli::status(&args),
        Command::Register { api, force } => cli::register(&api, force),
        Command::Unregister(args) => cli::unregister(&args),
        Command::Metrics(args) => cli::metrics(&args),
        #[cfg(feature = "sim")]
        Command::Demo(args) => oibus_sim::demo::run(args, cli::request),
        #[cfg(feature = "sim")]
        Command::Sim(args) => oibus_sim::run(args).map(|_| 0),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
