//! The simulator as a child process: `Sim::start` spawns `oibus-agent sim` on 127.0.0.1:0,
//! reads its `listening on ...` line, and `Drop` kills and reaps it.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::http::{Client, Response};

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// `P` of the protocol spec.
pub const OIA_BASE: &str = "/api/oianalytics/oibus";

#[derive(Clone, Debug, Default)]
pub struct SimOpts {
    /// `--data`: persist in this folder (kept by the caller, e.g. a `tempfile::TempDir`).
    pub data: Option<PathBuf>,
    /// `--auto-complete`, e.g. `"1s"`.
    pub auto_complete: Option<String>,
    /// `--registration-ttl`, e.g. `"2s"`.
    pub registration_ttl: Option<String>,
    /// `--gateway-prefix`, e.g. `"/gw"`.
    pub gateway_prefix: Option<String>,
    /// `--gateway-header` as `(name, value)`.
    pub gateway_header: Option<(String, String)>,
    /// Serve HTTPS with a certificate made for 127.0.0.1 and localhost by a fresh test CA.
    pub tls: bool,
    /// Anything else, passed as is.
    pub extra_args: Vec<String>,
}

/// A test CA and the server certificate it signed, as PEM files.
pub struct TestTls {
    pub ca_pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestTls {
    pub fn generate(dir: &Path) -> TestTls {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("key generation");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "oibus-agent test CA");
        let ca = ca_params.self_signed(&ca_key).expect("self-signed CA");
        let key = KeyPair::generate().expect("key generation");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("SANs");
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("CA signs the server certificate");
        let cert_path = dir.join("sim-cert.pem");
        let key_path = dir.join("sim-key.pem");
        std::fs::write(&cert_path, cert.pem()).expect("write the test certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write the test key");
        TestTls {
            ca_pem: ca.pem(),
            cert_path,
            key_path,
        }
    }
}

pub struct Sim {
    child: Child,
    /// `http://127.0.0.1:PORT` or `https://...`.
    pub url: String,
    /// Gateway prefix (`""` without one).
    pub prefix: String,
    /// The gateway header the OIA routes need, if any.
    pub gateway_header: Option<(String, String)>,
    /// PEM of the CA that signed the server certificate (with `tls`).
    pub ca_pem: Option<String>,
    client: Client,
    stderr_path: PathBuf,
    _files: tempfile::TempDir,
}

impl Sim {
    /// Starts the simulator; panics (with its stderr) if it does not come up within 30 s.
    pub fn start(opts: SimOpts) -> Sim {
        let files = tempfile::tempdir().expect("temp dir for the simulator");
        let mut args: Vec<String> = vec!["sim".into(), "--listen".into(), "127.0.0.1:0".into()];
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(name.into());
                args.push(value);
            }
        };
        flag(
            "--data",
            opts.data.as_ref().map(|path| path.display().to_string()),
        );
        flag("--auto-complete", opts.auto_complete.clone());
        flag("--registration-ttl", opts.registration_ttl.clone());
        flag("--gateway-prefix", opts.gateway_prefix.clone());
        flag(
            "--gateway-header",
            opts.gateway_header
                .as_ref()
                .map(|(name, value)| format!("{name}:{value}")),
        );
        let tls = opts.tls.then(|| TestTls::generate(files.path()));
        if let Some(tls) = &tls {
            flag("--tls-cert", Some(tls.cert_path.display().to_string()));
            flag("--tls-key", Some(tls.key_path.display().to_string()));
        }
        args.extend(opts.extra_args.iter().cloned());

        let stderr_path = files.path().join("sim.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_oibus-agent"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn oibus-agent sim");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = sender.send(reader.read_line(&mut line).map(|_| line));
            // Keep the pipe open (and drained) for the life of the process.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match receiver.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!("the simulator did not start ({other:?}); stderr:\n{stderr}");
            }
        };
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first line from the simulator: {line:?}");
        };
        let client = match &tls {
            Some(tls) => Client::trusting(&tls.ca_pem),
            None => Client::new(),
        };
        Sim {
            child,
            url: url.to_owned(),
            prefix: opts.gateway_prefix.clone().unwrap_or_default(),
            gateway_header: opts.gateway_header.clone(),
            ca_pem: tls.map(|tls| tls.ca_pem),
            client,
            stderr_path,
            _files: files,
        }
    }

    /// A simulator that completes each registration `after` it starts (e.g. `"10ms"`).
    pub fn auto_completing(after: &str) -> Sim {
        Sim::start(SimOpts {
            auto_complete: Some(after.into()),
            ..SimOpts::default()
        })
    }

    /// A client that can reach this simulator (trusts its CA with `tls`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The URL of an OIA route, e.g. `oia_url("commands/pending")`, with the gateway prefix.
    pub fn oia_url(&self, route: &str) -> String {
        format!("{}{}{OIA_BASE}/{route}", self.url, self.prefix)
    }

    /// The host an agent should be configured with (no path).
    pub fn host(&self) -> &str {
        &self.url
    }

    /// Any admin call; `path` starts with `/admin/`.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let request = self.client.request(method, &format!("{}{path}", self.url));
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        request
            .send()
            .unwrap_or_else(|err| panic!("admin {method} {path}: {err}"))
    }

    /// An admin call that must succeed; returns its JSON.
    pub fn admin_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let response = self.admin(method, path, body);
        assert!(
            (200..300).contains(&response.status),
            "admin {method} {path} answered {}: {}",
            response.status,
            response.text()
        );
        response.json()
    }

    pub fn admin_get(&self, path: &str) -> Value {
        self.admin_ok("GET", path, None)
    }

    pub fn admin_post(&self, path: &str, body: &Value) -> Value {
        self.admin_ok("POST", path, Some(body))
    }

    pub fn admin_delete(&self, path: &str) -> Value {
        self.admin_ok("DELETE", path, None)
    }

    /// Reads the admin listing `name` (`logs`, `messages` or `statuses`) from `since` on, `page`
    /// items a request, handing each item to `each`; returns where the next read starts.
    pub fn read_since(
        &self,
        name: &str,
        since: u64,
        page: usize,
        mut each: impl FnMut(&Value),
    ) -> u64 {
        let key = if name == "messages" {
            "messages"
        } else {
            "records"
        };
        let mut next = since;
        loop {
            let answer = self.admin_get(&format!("/admin/{name}?since={next}&limit={page}"));
            let items = answer[key].as_array().cloned().unwrap_or_default();
            items.iter().for_each(&mut each);
            next = answer["next"].as_u64().unwrap_or(next);
            if items.len() < page {
                return next;
            }
        }
    }

    /// Uploads an upgrade asset.
    pub fn put_asset(&self, asset_id: &str, bytes: Vec<u8>) -> Value {
        let response = self
            .client
            .put(&format!("{}/admin/assets/{asset_id}", self.url))
            .body(bytes, "application/octet-stream")
            .send()
            .expect("asset upload");
        assert_eq!(response.status, 200, "asset upload: {}", response.text());
        response.json()
    }

    /// Queues one command (or an array of them) for every agent.
    pub fn queue(&self, commands: &Value) -> Value {
        self.admin_post("/admin/commands", commands)
    }

    /// Queues a fault: `route` is a route name (e.g. `"logs"`), `kind` e.g. `json!({"close": true})`.
    pub fn fault(&self, route: &str, count: u32, kind: Value) {
        self.admin_post(
            "/admin/faults",
            &serde_json::json!({"route": route, "count": count, "kind": kind}),
        );
    }

    pub fn violations(&self) -> Vec<Value> {
        array(&self.admin_get("/admin/violations"), "violations")
    }

    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "the simulator recorded violations: {v:#?}");
    }

    /// How many requests the simulator saw on `route` (a route name, e.g. `"logs"`).
    pub fn requests_on(&self, route: &str) -> u64 {
        self.admin_get("/admin/requests")["routes"][route]["count"]
            .as_u64()
            .unwrap_or(0)
    }

    /// `plain` encrypted for the first registered agent, as OIAnalytics sends a secret.
    pub fn encrypt(&self, plain: &str) -> String {
        let pem = self.agents()[0]["publicKey"].as_str().unwrap().to_owned();
        oibus_actors::key_vault::encrypt_for(&pem, plain).expect("the agent key is SPKI PEM")
    }

    pub fn agents(&self) -> Vec<Value> {
        array(&self.admin_get("/admin/agents"), "agents")
    }

    /// Completes the registration with this activation code; returns it (with `token`).
    pub fn complete(&self, activation_code: &str) -> Value {
        self.admin_post(
            "/admin/registrations/complete",
            &serde_json::json!({ "activationCode": activation_code }),
        )
    }

    /// Registers an OIBus as an agent would (E1: the wire sample with `code` and `oibus_id`),
    /// completes the registration, and returns its token.
    pub fn register_oibus(&self, code: &str, oibus_id: &str) -> String {
        let sample = include_str!("../../sim/wire-samples/e1-registration.json");
        let mut body: Value = serde_json::from_str(sample).expect("the E1 sample is JSON");
        body["activationCode"] = code.into();
        body["oibusId"] = oibus_id.into();
        let mut request = self.client.post(&self.oia_url("registration")).json(&body);
        if let Some((name, value)) = &self.gateway_header {
            request = request.header(name, value);
        }
        let response = request.send().expect("E1");
        assert_eq!(response.status, 200, "E1: {}", response.text());
        self.complete(code)["token"]
            .as_str()
            .expect("a completed registration has a token")
            .to_owned()
    }

    /// CPU time (user + system) the simulator process has used so far, from `/proc`.
    pub fn cpu_time(&self) -> Duration {
        Duration::from_secs_f64(super::procfs::cpu_seconds(self.child.id()))
    }

    /// What the simulator wrote to stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn stop(mut self) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on the simulator") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the simulator ignored SIGTERM for 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `value[key]` as an array; panics with the value otherwise.
pub fn array(value: &Value, key: &str) -> Vec<Value> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array in {value}"))
        .clone()
}
