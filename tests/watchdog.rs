//! The systemd contract of the launcher, against a notify socket the test binds: READY=1, the
//! watchdog ping only while the engine answers its health check, RELOADING=1 then READY=1
//! around SIGHUP.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::kit::service::Service;

/// The notifications received during `window`, one string per datagram.
fn received(socket: &UnixDatagram, window: Duration) -> Vec<String> {
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    out
}

fn pings(messages: &[String]) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

#[test]
fn the_watchdog_is_fed_only_while_the_engine_is_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut service = Service::new("silent", "{}", "");
    // A 1 s watchdog: a ping every 500 ms.
    service.launch(&[
        ("NOTIFY_SOCKET", path.to_str().unwrap()),
        ("WATCHDOG_USEC", "1000000"),
    ]);
    let healthy = received(&socket, Duration::from_secs(4));
    assert!(
        healthy.iter().any(|m| m.contains("READY=1")),
        "{healthy:?}\n{}",
        service.log_text()
    );
    assert!(pings(&healthy) >= 3, "{healthy:?}\n{}", service.log_text());

    // A hung engine: the pings stop, so systemd would restart the service.
    let engine = service.engine_pid().expect("an engine runs");
    service.signal_engine(Signal::SIGSTOP);
    let _ = received(&socket, Duration::from_secs(3)); // the checks in flight time out
    let hung = received(&socket, Duration::from_secs(3));
    assert_eq!(
        pings(&hung),
        0,
        "pinged for a stopped engine (pid {engine}): {hung:?}"
    );
    service.signal_engine(Signal::SIGCONT);
    let back = received(&socket, Duration::from_secs(5));
    assert!(pings(&back) >= 1, "{back:?}\n{}", service.log_text());

    // SIGHUP: RELOADING=1 with its monotonic time, then READY=1.
    service.signal_launcher(Signal::SIGHUP);
    let reload = received(&socket, Duration::from_secs(2));
    let reloading = reload
        .iter()
        .position(|m| m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC="));
    let ready = reload.iter().rposition(|m| m.contains("READY=1"));
    assert!(
        matches!((reloading, ready), (Some(r), Some(d)) if r < d),
        "{reload:?}"
    );
    service.stop(Duration::from_secs(20));
}
