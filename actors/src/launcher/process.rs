//! The engine process: spawn, reap, signal, and find an orphan left by a killed launcher.
//!
//! The engine inherits the launcher's stdout and stderr: its log lines reach the journal as they
//! are written, in order, and keep flowing if the launcher dies while the engine shuts down.
//! It gets `PR_SET_PDEATHSIG=SIGTERM`, so a launcher killed with SIGKILL still has its engine
//! shut down in order; a restarted launcher also finds it through `engine.pid` and waits for it
//! before touching the store.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::EngineExit;
use crate::atomic_file;
use crate::upgrade::{LAUNCHER_ENV, LAUNCHER_VERSION_ENV};

/// Start `binary run --config config`, its stdio inherited, `OIBUS_AGENT_LAUNCHER=1` and the
/// launcher's version (`OIBUS_AGENT_LAUNCHER_VERSION`) set.
///
/// Call it from the thread that lives as long as the launcher (the actix system thread): the
/// parent-death signal fires when the *thread* that forked exits.
pub fn spawn_engine(binary: &Path, config: &Path) -> io::Result<Pid> {
    let launcher = nix::unistd::getpid();
    let mut command = Command::new(binary);
    command
        .arg("run")
        .arg("--config")
        .arg(config)
        .env(LAUNCHER_ENV, "1")
        .env(LAUNCHER_VERSION_ENV, crate::VERSION)
        .stdin(Stdio::null());
    // SAFETY: the closure runs between fork and exec; it only makes two raw system calls
    // (prctl, getppid) and builds an io::Error from an errno, none of which allocate or lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
                .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
            // The launcher may have died before the prctl: then nobody would stop this engine.
            if nix::unistd::getppid() != launcher {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    // The pid fits: Linux pids are below 2^22. The `Child` handle is dropped without waiting;
    // the launcher reaps the pid itself with `waitpid`.
    Ok(Pid::from_raw(child.id() as i32))
}

/// `Some(exit)` once the engine has ended (and is reaped), `None` while it runs.
pub fn try_reap(pid: Pid) -> Option<EngineExit> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(EngineExit::Code(code)),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(EngineExit::Signal(signal as i32)),
        Ok(_) => None,
        Err(Errno::EINTR) => None,
        // Not our child any more: it was reaped elsewhere; it is gone in any case.
        Err(_) => Some(EngineExit::Signal(0)),
    }
}

/// Send `signal`; a process that is already gone is not an error.
pub fn signal(pid: Pid, signal: Signal) {
    match kill(pid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(%pid, ?signal, error = %e, "cannot signal the engine"),
    }
}

/// Record the running engine's pid (`engine.pid` in the install folder).
pub fn write_pid_file(path: &Path, pid: Pid) {
    if let Err(e) = atomic_file::write(path, format!("{pid}\n").as_bytes()) {
        tracing::warn!(error = %e, "cannot record the engine pid; a restarted launcher would not find this engine");
    }
}

pub fn remove_pid_file(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the engine pid file");
        }
    }
}

/// An engine left running by a launcher that was killed: stop it (SIGTERM, then SIGKILL after
/// `timeout`) and wait until it is gone, so that the store and the port are free. Returns its
/// pid if there was one.
pub fn stop_orphan(pid_file: &Path, config: &Path, timeout: Duration) -> Option<Pid> {
    let text = fs::read_to_string(pid_file).ok()?;
    remove_pid_file(pid_file);
    let pid = Pid::from_raw(text.trim().parse().ok()?);
    if !is_our_engine(pid, config) {
        return None;
    }
    tracing::warn!(%pid, "an engine from a previous launcher is still running; stopping it first");
    signal(pid, Signal::SIGTERM);
    if !wait_gone(pid, timeout) {
        tracing::warn!(%pid, "it did not stop within the shutdown timeout; killing it");
        signal(pid, Signal::SIGKILL);
        if !wait_gone(pid, Duration::from_secs(5)) {
            tracing::error!(%pid, "the previous engine survives SIGKILL; the new one may fail to open the store");
        }
    }
    Some(pid)
}

/// A live process whose command line is `… run --config <config>` (guards against pid reuse).
fn is_our_engine(pid: Pid, config: &Path) -> bool {
    // A process in the middle of `execve` has an empty command line for a moment (its parent
    // may already see the exec as done), so an empty one is read again, briefly.
    let mut cmdline = Vec::new();
    for _ in 0..100 {
        if !is_alive(pid) {
            return false;
        }
        match fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(bytes) if !bytes.is_empty() => {
                cmdline = bytes;
                break;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return false,
        }
    }
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let config = config.as_os_str().as_encoded_bytes();
    args.windows(3)
        .any(|w| w[0] == b"run" && w[1] == b"--config" && w[2] == config)
}

/// Alive and not a zombie (an orphan's zombie lingers until its new parent reaps it).
pub fn is_alive(pid: Pid) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name, which may contain spaces.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

fn wait_gone(pid: Pid, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !is_alive(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_engine_is_reaped_with_its_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("engine");
        fs::write(
            &bin,
            "#!/bin/sh\n[ \"$OIBUS_AGENT_LAUNCHER\" = 1 ] && [ \"$1\" = run ] && exit 42\nexit 1\n",
        )
        .unwrap();
        fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let pid = spawn_engine(&bin, Path::new("/x.yaml")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(exit) = try_reap(pid) {
                break exit;
            }
            assert!(Instant::now() < deadline, "the child never exited");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(exit, EngineExit::Code(42));
    }

    #[test]
    fn orphan_engine_is_found_by_its_command_line_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.yaml");
        let mut child = Command::new("/bin/sh")
            .args([
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 0.05; done",
                "sh",
            ])
            .spawn()
            .unwrap();
        // `sh -c script sh` has the command line `/bin/sh -c <script> sh`: not ours.
        let pid_file = dir.path().join("engine.pid");
        fs::write(&pid_file, child.id().to_string()).unwrap();
        assert_eq!(
            stop_orphan(&pid_file, &config, Duration::from_secs(1)),
            None
        );
        assert!(!pid_file.exists());
        child.kill().unwrap();
        child.wait().unwrap();

        let mut engine = Command::new("/bin/sh")
            .args([
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 0.05; done",
                "sh",
                "run",
                "--config",
            ])
            .arg(&config)
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(engine.id() as i32);
        fs::write(&pid_file, engine.id().to_string()).unwrap();
        // The test process is the parent here, so reap in the background to let it vanish.
        let waiter = std::thread::spawn(move || engine.wait());
        assert_eq!(
            stop_orphan(&pid_file, &config, Duration::from_secs(5)),
            Some(pid)
        );
        waiter.join().unwrap().unwrap();
        assert!(!is_alive(pid));
    }

    #[test]
    fn missing_pid_file_means_no_orphan() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            stop_orphan(
                &dir.path().join("none"),
                Path::new("/c"),
                Duration::from_secs(1)
            ),
            None
        );
    }
}
