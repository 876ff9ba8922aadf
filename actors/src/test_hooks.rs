//! The test hooks: environment variables the end-to-end tests set to inject faults
//! (`OIBUS_AGENT_FAILPOINT`) or to scale time (`OIBUS_AGENT_TEST_*`). Without the `test-hooks`
//! feature nothing here reads the environment, so no variable can kill or slow a release
//! binary. The test suite turns the feature on through the agent's dev-dependencies; a plain
//! `cargo build`, and so `scripts/release-zip.sh`, leaves it off.

use std::time::Duration;

/// The value of a hook variable; without `test-hooks`, `None` and the name is not even compiled
/// in (`scripts/test.sh` checks a release build for these names).
macro_rules! read {
    ($var:literal) => {{
        #[cfg(feature = "test-hooks")]
        let value = std::env::var($var).ok();
        #[cfg(not(feature = "test-hooks"))]
        let value: Option<String> = None;
        value
    }};
}

/// Whether `OIBUS_AGENT_FAILPOINT` names `name`: the launcher then SIGKILLs itself there (or,
/// for `north:panic-once`, the first north to send panics).
pub fn failpoint_armed(name: &str) -> bool {
    read!("OIBUS_AGENT_FAILPOINT").is_some_and(|v| v == name)
}

/// `OIBUS_AGENT_TEST_EXEC_DELAY_MS` slows every command execution down, so tests can catch
/// commands while they wait (cancellation, crashes).
pub fn exec_delay() -> Option<Duration> {
    millis(read!("OIBUS_AGENT_TEST_EXEC_DELAY_MS"))
}

/// `OIBUS_AGENT_TEST_LOG_SECOND_MS`: how long one second of `logger.oia.interval` lasts, so
/// end-to-end tests can use OIAnalytics' minimum (10 s) quickly. One second otherwise.
pub fn log_second() -> Duration {
    millis(read!("OIBUS_AGENT_TEST_LOG_SECOND_MS")).unwrap_or(Duration::from_secs(1))
}

/// A positive number of milliseconds.
fn millis(value: Option<String>) -> Option<Duration> {
    value
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(feature = "test-hooks"))]
    fn a_build_without_test_hooks_ignores_the_hook_variables() {
        std::env::set_var("OIBUS_AGENT_FAILPOINT", "after:swap");
        std::env::set_var("OIBUS_AGENT_TEST_EXEC_DELAY_MS", "500");
        std::env::set_var("OIBUS_AGENT_TEST_LOG_SECOND_MS", "100");
        assert!(!failpoint_armed("after:swap"));
        assert_eq!(exec_delay(), None);
        assert_eq!(log_second(), Duration::from_secs(1));
    }

    #[test]
    #[cfg(feature = "test-hooks")]
    fn a_build_with_test_hooks_reads_positive_milliseconds_and_the_armed_failpoint() {
        std::env::set_var("OIBUS_AGENT_FAILPOINT", "after:swap");
        std::env::set_var("OIBUS_AGENT_TEST_EXEC_DELAY_MS", "500");
        std::env::set_var("OIBUS_AGENT_TEST_LOG_SECOND_MS", "0");
        assert!(failpoint_armed("after:swap"));
        assert!(!failpoint_armed("after:backup"));
        assert_eq!(exec_delay(), Some(Duration::from_millis(500)));
        assert_eq!(log_second(), Duration::from_secs(1));
    }
}
