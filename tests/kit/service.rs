//! The agent as the service manager runs it: `oibus-agent launch` (the launcher) spawning the
//! engine, in a temporary install. The launcher can be started again after it exits (what
//! systemd would do), signalled, or its engine signalled; `Drop` kills both.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oibus_actors::upgrade::Layout;
use serde_json::Value;

use super::agent::{free_port, http, BIN};

pub struct Service {
    pub dir: tempfile::TempDir,
    pub api: SocketAddr,
    launcher: Option<Child>,
    /// The output of every launcher started here and of its engines, appended.
    log: PathBuf,
    /// How many times a launcher was started.
    pub launches: u32,
}

impl Service {
    /// A fresh install whose YAML has `engine:` (console `info`, OIA logs at `oia_level`) and
    /// `launcher:` (restart policy `restart`, a flow mapping) sections, then `tail` (the other
    /// top-level sections, e.g. `oianalytics:` and `actors:`).
    pub fn new(oia_level: &str, restart: &str, tail: &str) -> Service {
        let dir = tempfile::tempdir().expect("temp dir for the service");
        let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = dir.path().join("service.log");
        let service = Service {
            dir,
            api,
            launcher: None,
            log,
            launches: 0,
        };
        std::fs::create_dir_all(service.install_dir()).expect("install dir");
        let yaml = format!(
            "engine:\n  name: service-test\n  data_dir: {data}\n  api: {{ listen: {api} }}\n  log: {{ console: info, oia: {oia_level} }}\n\
             launcher:\n  install_dir: {inst}\n  health_grace: 1s\n  shutdown_timeout: 10s\n  restart: {restart}\n{tail}",
            data = service.data_dir().display(),
            inst = service.install_dir().display(),
        );
        std::fs::write(service.config_path(), yaml).expect("write agent.yaml");
        service
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.yaml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `launcher.install_dir`: without `bin/oibus-agent` the launcher runs itself as the engine.
    pub fn install_dir(&self) -> PathBuf {
        self.dir.path().join("inst")
    }

    /// `name` in the service's temporary folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn layout(&self) -> Layout {
        Layout::new(self.install_dir(), self.data_dir())
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts a launcher (none may be running) with `env` added to its environment; its
    /// engines inherit it.
    pub fn launch(&mut self, env: &[(&str, &str)]) {
        assert!(
            self.launcher.is_none(),
            "a launcher is already running here"
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("service log");
        let child = Command::new(BIN)
            .args(["launch", "--config"])
            .arg(self.config_path())
            // The test runner's own NOTIFY_SOCKET never leaks in; a test may set one in `env`.
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log"))
            .stderr(log)
            .spawn()
            .expect("spawn oibus-agent launch");
        self.launcher = Some(child);
        self.launches += 1;
    }

    /// The running launcher's pid (`None` when it exited and was reaped, or was never started).
    pub fn launcher_pid(&self) -> Option<u32> {
        self.launcher.as_ref().map(Child::id)
    }

    /// The engine's pid, from the launcher's pid file, if that process is alive.
    pub fn engine_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.layout().pid_file())
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .filter(|&pid| super::procfs::alive(pid))
    }

    /// Reaps the launcher if it exited; its exit status then.
    pub fn launcher_exited(&mut self) -> Option<ExitStatus> {
        let status = self.launcher.as_mut()?.try_wait().ok()??;
        self.launcher = None;
        Some(status)
    }

    pub fn signal_launcher(&self, signal: Signal) -> bool {
        self.launcher_pid()
            .is_some_and(|pid| kill(Pid::from_raw(pid as i32), signal).is_ok())
    }

    pub fn signal_engine(&self, signal: Signal) -> bool {
        self.engine_pid()
            .is_some_and(|pid| kill(Pid::from_raw(pid as i32), signal).is_ok())
    }

    /// `GET path` on the engine's local API as JSON (a 200 answer only).
    pub fn get_json(&self, path: &str) -> Option<Value> {
        match http(self.api, "GET", path, "")? {
            (200, body) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// The engine's `/status`, if it answers.
    pub fn status(&self) -> Option<Value> {
        self.get_json("/status")
    }

    /// `key` of the engine's `/status` (null while it does not answer).
    pub fn status_of(&self, key: &str) -> Value {
        self.status()
            .map(|status| status[key].clone())
            .unwrap_or_default()
    }

    /// Completes, in the simulator, the registration whose activation code the engine shows in
    /// `/status`, as a person entering the code would, until the engine is REGISTERED or
    /// `timeout` passes; `tick` runs every 500 ms with the registration as `/status` shows it.
    pub fn register_by_hand(
        &mut self,
        sim: &super::Sim,
        timeout: Duration,
        mut tick: impl FnMut(&mut Service, &Value),
    ) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut completed: Option<String> = None;
        loop {
            let registration = self.status_of("registration");
            if registration["status"] == "REGISTERED" {
                return true;
            }
            if let Some(code) = registration["activation_code"].as_str() {
                if completed.as_deref() != Some(code) {
                    // Refused (409) while this code's registration has not reached the simulator.
                    let answer = sim.admin(
                        "POST",
                        "/admin/registrations/complete",
                        Some(&serde_json::json!({"activationCode": code})),
                    );
                    if answer.status == 200 {
                        completed = Some(code.to_owned());
                    }
                }
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tick(self, &registration);
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// SIGTERM to the launcher, then waits up to `timeout` for it to exit.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal_launcher(Signal::SIGTERM);
        self.wait_exit(timeout)
    }

    /// Waits up to `timeout` for the launcher to exit; its exit status then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        super::wait_until(timeout, || {
            status = self.launcher_exited();
            status.is_some()
        });
        status
    }

    /// Everything the launchers and engines wrote, without terminal colour codes.
    pub fn log_text(&self) -> String {
        super::plain(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The last `lines` lines of [`Service::log_text`], for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let engine = self.engine_pid();
        if let Some(mut child) = self.launcher.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = engine {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}
