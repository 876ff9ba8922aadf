//! `oibus-agent`: one binary, several roles (see `oibus-agent --help` and DESIGN.md).
//!
//! This file is the binary's edge: it parses the command line, sets up logging and turns every
//! error into a readable message and an exit code. The work lives in the modules below and in the
//! `oibus-actors` crate.

mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Agent for OIAnalytics on Linux industrial gateways.
#[derive(Debug, Parser)]
#[command(name = "oibus-agent", version = oibus_actors::VERSION, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the OIAnalytics simulator (server side of the protocol, with an admin API).
    Sim(sim::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => sim::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[allow(dead_code)]
fn _unused(_: PathBuf) {}
