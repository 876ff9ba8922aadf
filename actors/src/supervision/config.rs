//! The `restart` section: one supervised actor's restart policy (also the launcher's for the
//! engine), and its checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{units, Problems};

/// Restart policy of one supervised actor (or of the engine, for the launcher).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartPolicy {
    /// At most this many restarts within `within`; one more escalates.
    pub max_restarts: u32,
    #[serde(with = "units::duration")]
    pub within: Duration,
    #[serde(with = "units::duration")]
    pub backoff_initial: Duration,
    #[serde(with = "units::duration")]
    pub backoff_max: Duration,
    /// Running this long without failing resets the backoff.
    #[serde(with = "units::duration")]
    pub reset_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            within: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// Checks of a policy written at `at` (e.g. `actors.defaults.restart`).
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        if self.backoff_initial.is_zero() {
            problems.add(format!("{at}.backoff_initial"), "must be greater than 0");
        }
        if self.backoff_max < self.backoff_initial {
            problems.add(
                format!("{at}.backoff_max"),
                "must be at least backoff_initial",
            );
        }
        if self.within.is_zero() {
            problems.add(format!("{at}.within"), "must be greater than 0");
        }
        for (name, value) in [
            ("within", self.within),
            ("backoff_initial", self.backoff_initial),
            ("backoff_max", self.backoff_max),
            ("reset_after", self.reset_after),
        ] {
            problems.at_most_a_year(&format!("{at}.{name}"), value);
        }
    }
}
