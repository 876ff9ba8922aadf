//! systemd notifications (`Type=notify`, `WatchdogSec=`) through the `sd-notify` crate: readiness,
//! status, stopping, reloading and the watchdog ping. Without `$NOTIFY_SOCKET` (not under
//! systemd) nothing is sent. Failures are logged, never fatal: the service works without them.

use std::time::Duration;

pub use sd_notify::NotifyState;

/// Tell the service manager `states`, if there is one.
pub fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

/// `RELOADING=1` with the monotonic time systemd requires alongside it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(e) => tracing::debug!(error = %e, "cannot read the monotonic clock for RELOADING=1"),
    }
}

/// How often to ping the watchdog: half the `WatchdogSec=` systemd gave, if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;

    /// The crate's datagram, as systemd reads it (one test: it sets the process environment).
    #[test]
    fn states_reach_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        // SAFETY: no other test of this binary reads NOTIFY_SOCKET.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        super::notify(&[
            super::NotifyState::Ready,
            super::NotifyState::Status("engine running"),
        ]);
        let mut buf = [0u8; 128];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=engine running\n");
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    }
}
