//! The end-to-end test kit: start the simulator and the agent, wait on conditions, clean up.

pub mod agent;

use std::time::{Duration, Instant};

/// Poll `cond` every 50 ms until it holds or `timeout` passes; whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
