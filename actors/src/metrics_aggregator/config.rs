//! The `actors.metrics_aggregator` section: flush cadence and how many documents are kept.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Retention;
use crate::config::{units, Problems, RestartPolicy};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsAggregatorConfig {
    #[serde(with = "units::duration")]
    pub flush_interval: Duration,
    /// How many hourly, daily and monthly documents per series are kept. `retention` was its
    /// first name, read it too.
    #[serde(alias = "retention")]
    pub keep: Retention,
    pub restart: Option<RestartPolicy>,
}

impl Default for MetricsAggregatorConfig {
    fn default() -> Self {
        MetricsAggregatorConfig {
            flush_interval: Duration::from_secs(10),
            keep: Retention::default(),
            restart: None,
        }
    }
}

impl MetricsAggregatorConfig {
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        if self.flush_interval < Duration::from_secs(1)
            || self.flush_interval > Duration::from_secs(60)
        {
            problems.add(
                format!("{at}.flush_interval"),
                "must be between 1s and 60s (a minute slot must be flushed within its minute)",
            );
        }
        for (name, n) in [
            ("hours", self.keep.hours),
            ("days", self.keep.days),
            ("months", self.keep.months),
        ] {
            if n == 0 {
                problems.add(format!("{at}.keep.{name}"), "must be at least 1");
            }
        }
    }
}
