//! A Debian `mosquitto` broker for the MQTT tests: 127.0.0.1, an ephemeral port, anonymous,
//! persistence on (a restart keeps sessions and queued QoS 1 messages), stoppable and
//! restartable on the same port. `scripts/setup.sh` installs it.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use super::agent::free_port;
use super::wait_until;

pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("a broker folder");
        let port = free_port();
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\n\
             # Stay root when started as root, so the persistence folder stays writable.\nuser root\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), config).expect("the broker config");
        let mut broker = Mosquitto {
            port,
            dir,
            child: None,
        };
        broker.resume();
        broker
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
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
        let port = self.port;
        let up = wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
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

    /// Publish each payload on `topic` at QoS 1 and wait for every PUBACK.
    pub fn publish(&self, topic: &str, payloads: &[String]) {
        let mut options = MqttOptions::new(
            format!("test-publisher-{}", free_port()),
            "127.0.0.1",
            self.port,
        );
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(options, 64);
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

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
