//! The launcher process (`oibus-agent launch`): the service's main process. This is its edge:
//! configuration, logging, Unix signals turned into messages for the Launcher actor
//! (`oibus_actors::launcher`), the exit code, and the re-execution of a new binary after an
//! upgrade with `updateLauncher`.
//!
//! The engine binary is `<launcher.install_dir>/bin/oibus-agent`. When it does not exist (a
//! fresh install: the packaged `/usr/lib/oibus-agent/current/oibus-agent`; dev mode: `cargo run
//! -- launch`), the launcher runs its own executable as the engine. After a committed upgrade,
//! a launcher started from the packaged binary hands over to the upgraded one
//! ([`LauncherSettings::upgraded_launcher`]).

use std::path::Path;

use actix::prelude::*;
use anyhow::Context as _;
use oibus_actors::config;
use oibus_actors::launcher::{Finished, Launcher, LauncherSettings, LauncherSignal};
use tokio::signal::unix::{signal, SignalKind};

/// Run the launcher until it stops; returns the process exit code.
pub fn run(config_path: &Path) -> anyhow::Result<i32> {
    let config = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(oibus_actors::exit::CONFIG);
        }
    };
    crate::logging::init(config.engine.log.console, config.engine.log.format, None);
    // The engine gets an absolute path: it must not depend on the launcher's working folder.
    let config_path = std::path::absolute(config_path)
        .with_context(|| format!("cannot resolve {}", config_path.display()))?;
    let own_exe = std::env::current_exe().context("cannot find the launcher's own executable")?;
    let mut settings = LauncherSettings::from_config(config_path, &config, own_exe);
    settings.layout.install_dir = std::path::absolute(&settings.layout.install_dir)?;
    settings.layout.data_dir = std::path::absolute(&settings.layout.data_dir)?;
    settings.layout.run_dir = std::path::absolute(&settings.layout.run_dir)?;
    if let Some(binary) = settings.upgraded_launcher() {
        return reexec(&binary);
    }
    tracing::info!(
        version = oibus_actors::VERSION,
        install_dir = %settings.layout.install_dir.display(),
        pid_file = %settings.layout.pid_file().display(),
        engine = %settings.engine_binary().display(),
        "oibus-agent launcher starting"
    );

    let system = System::new();
    let finished = system.block_on(async move {
        // Handlers first: a signal arriving while the first engine starts must not kill us.
        let signals = Signals::install()?;
        let (done, finished) = tokio::sync::oneshot::channel();
        let launcher = Launcher::new(settings, done).start();
        actix_rt::spawn(signals.forward(launcher));
        finished
            .await
            .context("the launcher actor stopped without an outcome")
    })?;
    drop(system);
    match finished {
        Finished { code, reexec: None } => Ok(code),
        Finished {
            reexec: Some(binary),
            ..
        } => reexec(&binary),
    }
}

/// Replace this process with `binary launch …` (same arguments, same pid, so systemd keeps
/// tracking it). Returns only if the exec failed.
fn reexec(binary: &Path) -> anyhow::Result<i32> {
    use std::os::unix::process::CommandExt;
    tracing::info!(binary = %binary.display(), "re-executing the launcher from the new binary");
    let error = std::process::Command::new(binary)
        .args(std::env::args_os().skip(1))
        .exec();
    tracing::error!(error = %error, "cannot re-execute the launcher; exiting so that the service manager restarts it");
    Ok(1)
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    child: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot install the {name} handler"))
        };
        Ok(Signals {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
            usr1: install(SignalKind::user_defined1(), "SIGUSR1")?,
            child: install(SignalKind::child(), "SIGCHLD")?,
        })
    }

    async fn forward(mut self, launcher: Addr<Launcher>) {
        loop {
            let signal = tokio::select! {
                _ = self.term.recv() => LauncherSignal::Terminate,
                _ = self.int.recv() => LauncherSignal::Terminate,
                _ = self.hup.recv() => LauncherSignal::Reload,
                _ = self.usr1.recv() => LauncherSignal::RestartEngine,
                _ = self.child.recv() => LauncherSignal::Child,
            };
            if !launcher.connected() {
                return;
            }
            launcher.do_send(signal);
        }
    }
}
