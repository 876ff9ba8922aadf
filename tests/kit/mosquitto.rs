//! A Debian `mosquitto` broker for the MQTT tests: 127.0.0.1, an ephemeral port, anonymous,
//! persistence on (a restart keeps sessions and queued QoS 1 messages), stoppable and
//! restartable on the same port. `scripts/setup.sh` installs it.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rumqttc::{Client, Connection, Event, MqttOptions, Packet, QoS};

use super::agent::free_port;
use super::wait_until;

pub struct Mosquitto {
    /// The listener the agent connects to (TLS with [`Mosquitto::start_tls`]).
    pub port: u16,
    /// A plain listener for the tests' own clients (the same as `port` without TLS).
    pub plain_port: u16,
    /// With TLS: the PEM files of the broker's CA, of a client certificate it signed and of
    /// that certificate's key, and of another CA that signed nothing here.
    pub tls: Option<BrokerTls>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

pub struct BrokerTls {
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

/// A CA (certificate and key pair).
fn test_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate().expect("key generation");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    (params.self_signed(&key).expect("self-signed CA"), key)
}

/// A certificate for `names` signed by `ca`, written as `<file>.pem` and `<file>-key.pem`.
fn signed(
    dir: &std::path::Path,
    file: &str,
    names: &[&str],
    ca: &(rcgen::Certificate, rcgen::KeyPair),
) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key generation");
    let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let params = rcgen::CertificateParams::new(names).expect("SANs");
    let cert = params.signed_by(&key, &ca.0, &ca.1).expect("the CA signs");
    let (cert_path, key_path) = (
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}-key.pem")),
    );
    std::fs::write(&cert_path, cert.pem()).expect("write a certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write a key");
    (cert_path, key_path)
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::start_with(false)
    }

    /// A broker whose agent listener is TLS with a test CA and asks for a client certificate
    /// signed by it; the plain listener stays for the tests' publisher.
    pub fn start_tls() -> Mosquitto {
        Mosquitto::start_with(true)
    }

    fn start_with(tls: bool) -> Mosquitto {
        let dir = tempfile::tempdir().expect("a broker folder");
        let plain_port = free_port();
        let common = format!(
            "allow_anonymous true\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\n\
             # Stay root when started as root, so the persistence folder stays writable.\nuser root\n",
            dir.path().display()
        );
        let (port, files, listeners) = if tls {
            let port = free_port();
            let ca = test_ca("oibus-agent broker CA");
            let other = test_ca("oibus-agent unrelated CA");
            let ca_path = dir.path().join("ca.pem");
            let other_ca = dir.path().join("other-ca.pem");
            std::fs::write(&ca_path, ca.0.pem()).expect("write the CA");
            std::fs::write(&other_ca, other.0.pem()).expect("write the other CA");
            let (server_cert, server_key) =
                signed(dir.path(), "server", &["127.0.0.1", "localhost"], &ca);
            let (client_cert, client_key) = signed(dir.path(), "client", &["oibus-agent"], &ca);
            let listeners = format!(
                "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                 require_certificate true\nlistener {plain_port} 127.0.0.1\n",
                ca_path.display(),
                server_cert.display(),
                server_key.display()
            );
            let files = BrokerTls {
                ca: ca_path,
                client_cert,
                client_key,
                other_ca,
            };
            (port, Some(files), listeners)
        } else {
            (
                plain_port,
                None,
                format!("listener {plain_port} 127.0.0.1\n"),
            )
        };
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!("{listeners}{common}"),
        )
        .expect("the broker config");
        let mut broker = Mosquitto {
            port,
            plain_port,
            tls: files,
            dir,
            child: None,
        };
        broker.resume();
        broker
    }

    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("mqtts://127.0.0.1:{}", self.port),
            None => format!("mqtt://127.0.0.1:{}", self.port),
        }
    }

    /// Start again (same port, same persistence) after [`Mosquitto::stop`].
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.log_path()).expect("the broker log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto runs (scripts/setup.sh installs it)");
        self.child = Some(child);
        let (port, plain_port) = (self.port, self.plain_port);
        let up = wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && TcpStream::connect(("127.0.0.1", plain_port)).is_ok()
        });
        assert!(up, "mosquitto did not listen:\n{}", self.logs());
    }

    /// SIGTERM, which saves the persistence file, and wait for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A client of the plain listener, its id `<role>-<a free port number>` (unique enough).
    fn client(&self, role: &str) -> (Client, Connection) {
        let id = format!("{role}-{}", free_port());
        let mut options = MqttOptions::new(id, "127.0.0.1", self.plain_port);
        options.set_keep_alive(Duration::from_secs(5));
        Client::new(options, 64)
    }

    /// Publish each payload on `topic` at QoS 1 and wait for every PUBACK.
    pub fn publish(&self, topic: &str, payloads: &[String]) {
        let (client, mut connection) = self.client("test-publisher");
        for payload in payloads {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes())
                .expect("queued");
        }
        let mut acked = 0;
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    if acked == payloads.len() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("publishing on {topic}: {e}\n{}", self.logs()),
            }
        }
        let _ = client.disconnect();
    }
}

/// A client subscribed to a filter on the plain listener, keeping what arrives.
pub struct Subscriber {
    pub received: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    client: Client,
}

impl Subscriber {
    /// (topic, payload) of every message so far.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

impl Mosquitto {
    /// Subscribe to `filter` at QoS 1; returns once the broker acknowledged the subscription.
    pub fn subscribe(&self, filter: &str) -> Subscriber {
        let (client, mut connection) = self.client("test-subscriber");
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .expect("subscription queued");
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (subscribed, ready) = std::sync::mpsc::channel();
        let kept = received.clone();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = String::from_utf8_lossy(&p.payload).into_owned();
                        kept.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((p.topic.clone(), payload));
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("the broker acknowledges the subscription");
        Subscriber { received, client }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
