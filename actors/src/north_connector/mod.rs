//! One running north connector: it sends its cache's head to the target and decides what an
//! answer means (data-plane §2, §3 "Sending"). One batch in flight at a time. A 2xx removes it;
//! a forced retry (the listed codes, network errors) keeps it at the head and retries with
//! backoff capped at `error.retryInterval`, forever; any other failure counts toward
//! `error.retryCount`, past which the batch moves to the error area and the queue moves on.
//!
//! This file holds the decisions; `actor.rs` the actix shell; `driver.rs` the targets.

pub mod actor;
pub mod driver;

use std::time::Duration;

use crate::connectors::Delivery;
use crate::north_cache::{CacheStats, CachingSettings};

pub use actor::{CacheGrew, GetNorthStatus, NorthConnectorActor, NorthStatus, Tick};
pub use driver::NorthDriver;

/// What to do after one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterDelivery {
    /// Sent: take it out of the cache, then send the next batch if a trigger still holds.
    Sent,
    /// Keep it at the head; try again after the backoff (capped at the retry interval).
    RetryForced(String),
    /// Keep it at the head; try again after the retry interval (`failures` so far).
    RetryCounted { error: String, failures: u64 },
    /// Move it to the error area and go on.
    GiveUp(String),
}

/// Judge one delivery, given the failures the head already had and the settings.
pub fn after_delivery(
    delivery: Delivery,
    failures: u64,
    settings: &CachingSettings,
) -> AfterDelivery {
    match delivery {
        Delivery::Sent => AfterDelivery::Sent,
        Delivery::Retry(error) => AfterDelivery::RetryForced(error),
        Delivery::Failed(error) => {
            let failures = failures + 1;
            // OIBus retries `retryCount` times after the first failure, then gives up.
            if failures > settings.error.retry_count {
                AfterDelivery::GiveUp(error)
            } else {
                AfterDelivery::RetryCounted { error, failures }
            }
        }
    }
}

/// Whether the cache holds enough to send without waiting for the scan mode (OIBus's
/// thresholds: elements ≥ `numberOfElements` or files ≥ `numberOfFiles`; 0 disables one).
pub fn threshold_reached(stats: &CacheStats, settings: &CachingSettings) -> bool {
    let trigger = &settings.trigger;
    (trigger.number_of_elements > 0 && stats.cache_elements >= trigger.number_of_elements)
        || (trigger.number_of_files > 0 && stats.cache_files >= trigger.number_of_files)
}

/// The wait before retrying a counted failure.
pub fn retry_interval(settings: &CachingSettings) -> Duration {
    Duration::from_millis(settings.error.retry_interval.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(retry_count: u64) -> CachingSettings {
        let mut s = CachingSettings::from_value(&serde_json::json!({})).unwrap();
        s.error.retry_count = retry_count;
        s
    }

    #[test]
    fn forced_retries_never_give_up() {
        let s = settings(0);
        assert_eq!(
            after_delivery(Delivery::Retry("Error 503: down".into()), 1000, &s),
            AfterDelivery::RetryForced("Error 503: down".into())
        );
    }

    #[test]
    fn counted_failures_give_up_after_retry_count_retries() {
        let s = settings(2);
        let bad = || Delivery::Failed("Error 400: bad".into());
        assert!(matches!(
            after_delivery(bad(), 0, &s),
            AfterDelivery::RetryCounted { failures: 1, .. }
        ));
        assert!(matches!(
            after_delivery(bad(), 1, &s),
            AfterDelivery::RetryCounted { failures: 2, .. }
        ));
        assert_eq!(
            after_delivery(bad(), 2, &s),
            AfterDelivery::GiveUp("Error 400: bad".into())
        );
    }
}
