//! Start the real `oibus-agent` engine on loopback in a temporary directory, talk to its local
//! API, signal it, and always kill it on drop.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const REGISTRATION_WAIT: Duration = Duration::from_secs(30);

pub const BIN: &str = env!("CARGO_BIN_EXE_oibus-agent");

/// Run `oibus-agent args…` (with `env` added) to its end: (exit code, stdout, stderr).
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run oibus-agent");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A free loopback port (bound then released: a small race, fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A temporary agent home: config file, data dir, logs.
pub struct AgentHome {
    pub dir: tempfile::TempDir,
    pub api: SocketAddr,
}

impl AgentHome {
    /// A home whose config has a fresh API port, fast intervals, and `extra` YAML sections
    /// appended (top-level keys other than `engine`).
    pub fn new(extra: &str) -> AgentHome {
        let dir = tempfile::tempdir().expect("temp dir");
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let home = AgentHome { dir, api };
        home.write_config(extra);
        home
    }

    /// A home whose agent talks to `sim`, with fast intervals and small keys; `oia_extra` is
    /// appended inside the `oianalytics:` section (two-space indented lines).
    pub fn with_sim(sim: &super::sim::Sim, oia_extra: &str) -> AgentHome {
        AgentHome::new(&sim_section(sim, oia_extra))
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.yaml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn write_config(&self, extra: &str) {
        let yaml = format!(
            "engine:\n  name: test-agent\n  data_dir: {}\n  api: {{ listen: {} }}\n  log: {{ console: debug, oia: silent }}\n{extra}",
            self.data_dir().display(),
            self.api
        );
        std::fs::write(self.config_path(), yaml).expect("write config");
    }

    /// Start `oibus-agent run` on this home.
    pub fn start(&self) -> Agent {
        self.start_with_env(&[])
    }

    /// Start `oibus-agent run` on this home with extra environment variables (test hooks).
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Agent {
        Agent::spawn_with_env(
            &["run", "--config"],
            &self.config_path(),
            self.dir.path(),
            self.api,
            env,
        )
    }
}

/// The `oianalytics:` section for an agent of `sim`.
pub fn sim_section(sim: &super::sim::Sim, oia_extra: &str) -> String {
    format!(
        "oianalytics:\n  host: {}\n  key_size: 2048\n  intervals: {{ command_refresh: 1s, command_retry: 1s, message_retry: 1s, registration_check: 1s }}\n{oia_extra}",
        sim.url
    )
}

pub struct Agent {
    child: Child,
    pub api: SocketAddr,
    pub log: PathBuf,
    /// The home folder (`data/` below it is the engine's data folder).
    dir: PathBuf,
}

impl Agent {
    pub fn spawn_with_env(
        args: &[&str],
        config: &Path,
        dir: &Path,
        api: SocketAddr,
        env: &[(&str, &str)],
    ) -> Agent {
        Agent::spawn_binary(Path::new(BIN), args, config, dir, api, env)
    }

    /// [`Agent::spawn_with_env`] with another copy of the binary (an installed one).
    pub fn spawn_binary(
        bin: &Path,
        args: &[&str],
        config: &Path,
        dir: &Path,
        api: SocketAddr,
        env: &[(&str, &str)],
    ) -> Agent {
        // One log per process started by this test binary: a later start never truncates it.
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let log = dir.join(format!("agent-{n}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        // `JOURNAL_STREAM=stderr` asks for what systemd does: name the stderr file by its
        // device and inode, so the agent logs as it would into the journal.
        let journal = env
            .iter()
            .any(|(k, v)| *k == "JOURNAL_STREAM" && *v == "stderr");
        let stream = {
            use std::os::unix::fs::MetadataExt;
            let meta = out.metadata().expect("log file metadata");
            format!("{}:{}", meta.dev(), meta.ino())
        };
        let env = env.iter().map(|&(k, v)| {
            (
                k,
                if journal && k == "JOURNAL_STREAM" {
                    stream.as_str()
                } else {
                    v
                },
            )
        });
        // `AGENT_WRAPPER="valgrind --tool=massif"` runs the agent under a profiler.
        let wrapper = std::env::var("AGENT_WRAPPER").unwrap_or_default();
        let mut command = match wrapper.split_whitespace().collect::<Vec<_>>().split_first() {
            Some((program, words)) => {
                let mut command = Command::new(program);
                command.args(words).arg(bin);
                command
            }
            None => Command::new(bin),
        };
        let child = command
            .args(args)
            .arg(config)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("spawn oibus-agent");
        Agent {
            child,
            api,
            log,
            dir: dir.to_path_buf(),
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("signal the agent");
    }

    /// SIGTERM, then waits up to `timeout` for the exit, which must be code 0.
    pub fn stop(&mut self, timeout: Duration) {
        self.signal(Signal::SIGTERM);
        assert_eq!(self.wait_exit(timeout), Some(0), "{}", self.logs());
    }

    /// Wait for the process to exit; its exit code, or `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let mut code = None;
        super::wait_until(timeout, || {
            code = self
                .child
                .try_wait()
                .expect("try_wait")
                .map(|s| s.code().unwrap_or(-1));
            code.is_some()
        });
        code
    }

    /// `GET path` on the local API: (status, body), or `None` if it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request("GET", path, "")
    }

    /// Any request on the local API: (status, body), or `None` if it does not answer.
    /// A local API call with the engine's token (`<data_dir>/api-token`), as the CLI sends it.
    pub fn request(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        let token = std::fs::read_to_string(self.dir.join("data").join("api-token")).ok();
        http_as(self.api, token.as_deref(), method, path, body)
    }

    /// `/status` as JSON, waiting up to 20 s for the local API to come up.
    pub fn status(&self) -> serde_json::Value {
        let mut answer = None;
        super::wait_until(Duration::from_secs(20), || {
            answer = self.get("/status");
            answer.is_some()
        });
        let (code, body) = answer.unwrap_or_else(|| {
            panic!(
                "the local API does not answer /status; log:\n{}",
                self.logs()
            )
        });
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("/status is JSON")
    }

    /// `registration` of `/status`.
    pub fn registration(&self) -> serde_json::Value {
        self.status()["registration"].clone()
    }

    /// Waits up to 30 s for the registration to reach `status`; the registration then.
    pub fn wait_registration(&self, status: &str) -> serde_json::Value {
        let ok = super::wait_until(REGISTRATION_WAIT, || {
            self.registration()["status"] == status
        });
        let shown = self.registration();
        assert!(
            ok,
            "registration never reached {status}: {shown}\n{}",
            self.logs()
        );
        shown
    }

    /// Waits up to 30 s for the activation code the agent shows.
    pub fn activation_code(&self) -> String {
        let ok = super::wait_until(REGISTRATION_WAIT, || {
            self.registration()["activation_code"].is_string()
        });
        let shown = self.registration();
        assert!(ok, "no activation code: {shown}\n{}", self.logs());
        shown["activation_code"].as_str().unwrap().to_owned()
    }

    /// Completes the registration in `sim` with the code shown, as a person entering it would,
    /// then waits for REGISTERED; the code.
    pub fn complete_registration(&self, sim: &super::Sim) -> String {
        let code = self.activation_code();
        sim.complete(&code);
        self.wait_registration("REGISTERED");
        code
    }

    /// Wait until `/health` answers 200.
    pub fn wait_healthy(&self, timeout: Duration) {
        let ok = super::wait_until(timeout, || matches!(self.get("/health"), Some((200, _))));
        assert!(
            ok,
            "agent not healthy within {timeout:?}; log:\n{}",
            self.logs()
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request to a local API, through the kit's HTTP client: (status, body), or `None` when
/// nothing answers.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    http_as(addr, None, method, path, body)
}

/// `http` with `Authorization: Bearer <token>` when a token is given.
pub fn http_as(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> Option<(u16, String)> {
    let client = super::http::Client::new();
    let mut request = client
        .request(method, &format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(10));
    if let Some(token) = token {
        request = request.bearer(token.trim());
    }
    if !body.is_empty() {
        request = request.body(body.as_bytes().to_vec(), "application/json");
    }
    let response = request.send().ok()?;
    Some((response.status, response.text()))
}
