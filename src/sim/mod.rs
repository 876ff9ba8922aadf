//! OIAnalytics simulator (placeholder until the simulator lands).
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on, e.g. 127.0.0.1:0 for an ephemeral port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
}

pub fn run(_args: SimArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the simulator is not built yet")
}
