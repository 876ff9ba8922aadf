//! The `actors.command_executor` section: how long finished commands stay in the journal.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{units, Problems, RestartPolicy};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandExecutorConfig {
    /// Finished commands whose final status OIAnalytics acknowledged are removed from the
    /// journal this long after they ended. Until then a copy of the same id is ignored.
    #[serde(with = "units::duration")]
    pub journal_retention: Duration,
    pub restart: Option<RestartPolicy>,
}

impl Default for CommandExecutorConfig {
    fn default() -> Self {
        CommandExecutorConfig {
            journal_retention: Duration::from_secs(7 * 24 * 3600),
            restart: None,
        }
    }
}

impl CommandExecutorConfig {
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        if self.journal_retention < Duration::from_secs(3600) {
            problems.add(
                format!("{at}.journal_retention"),
                "must be at least 1h: a finished command is remembered that long so that a \
                 copy of it is not run again",
            );
        }
    }
}
