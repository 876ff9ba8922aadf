//! The `launcher` section: install folder, upgrade probation, stop deadline and the engine's
//! crash-loop policy.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{units, Problems, RestartPolicy};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LauncherConfig {
    /// The launcher's upgrade area: `bin/oibus-agent` (an upgrade from OIAnalytics, once there
    /// is one), `update/` (staging), `backup/` and `upgrade.json`. Under the state directory,
    /// so that the packaged binary's folder stays read-only.
    pub install_dir: PathBuf,
    /// A new version must stay healthy this long before an upgrade is committed.
    #[serde(with = "units::duration")]
    pub health_grace: Duration,
    /// SIGTERM to the engine, then SIGKILL after this long.
    #[serde(with = "units::duration")]
    pub shutdown_timeout: Duration,
    /// Engine crash-loop policy: backoff between restarts, and the limit that keeps it down.
    pub restart: RestartPolicy,
}

impl Default for LauncherConfig {
    fn default() -> Self {
        LauncherConfig {
            install_dir: PathBuf::from("/var/lib/oibus-agent/upgrade"),
            health_grace: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            restart: RestartPolicy {
                max_restarts: 10,
                within: Duration::from_secs(600),
                backoff_initial: Duration::from_secs(1),
                backoff_max: Duration::from_secs(60),
                reset_after: Duration::from_secs(300),
            },
        }
    }
}

impl LauncherConfig {
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        if self.install_dir.as_os_str().is_empty() {
            problems.add(format!("{at}.install_dir"), "must not be empty");
        }
        for (name, value) in [
            ("health_grace", self.health_grace),
            ("shutdown_timeout", self.shutdown_timeout),
        ] {
            if value < Duration::from_secs(1) {
                problems.add(format!("{at}.{name}"), "must be at least 1s");
            }
            problems.at_most_a_year(&format!("{at}.{name}"), value);
        }
        self.restart.validate(&format!("{at}.restart"), problems);
    }
}
