//! The `actors.log_shipper` section: batch size, cadence and the durable queue's cap.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{units, ByteSize, Problems, RestartPolicy};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogShipperConfig {
    pub batch_max: usize,
    #[serde(with = "units::duration")]
    pub interval: Duration,
    pub queue_max_bytes: ByteSize,
    pub restart: Option<RestartPolicy>,
}

impl Default for LogShipperConfig {
    fn default() -> Self {
        LogShipperConfig {
            batch_max: 500,
            interval: Duration::from_secs(10),
            queue_max_bytes: ByteSize(64 * 1024 * 1024),
            restart: None,
        }
    }
}

impl LogShipperConfig {
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        if self.batch_max == 0 || self.batch_max > 10_000 {
            problems.add(
                format!("{at}.batch_max"),
                format!("must be between 1 and 10000, got {}", self.batch_max),
            );
        }
        if self.interval < Duration::from_secs(1) || self.interval > Duration::from_secs(60) {
            problems.add(format!("{at}.interval"), "must be between 1s and 60s");
        }
        if self.queue_max_bytes.0 < 64 * 1024 {
            problems.add(format!("{at}.queue_max_bytes"), "must be at least 64KiB");
        }
    }
}
