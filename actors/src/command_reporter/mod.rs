//! The CommandReporter: tells OIAnalytics each status a command reached (E5, protocol §4.5).
//!
//! It owns the flush of the report queue that the journal fills (every journal write that
//! reports queues one record per command). While REGISTERED, a flush reads the waiting reports
//! in batches of [`REPORT_BATCH`] and sends one PUT per batch, listing each command once at its
//! latest status. A report is deleted only once OIAnalytics acknowledged it (2xx, or `404 - `:
//! it does not know the command, so there is nothing more to tell) or a later one of the same
//! command. A batch refused with 400 is sent again one record at a time, so that only the
//! refused record is dropped. Any other failure ends the flush; it is retried after
//! `command_retry`.
//!
//! This file holds the decisions; `actor.rs` the timers and the HTTP calls.

pub mod actor;

use crate::client::ClientError;

pub use actor::{CommandReporter, ReportsPending};

/// Most reports read for one E5 PUT (fewer records when a command has several).
pub const REPORT_BATCH: usize = 500;

/// What an E5 answer means for the reports it carried.
#[derive(Debug)]
pub enum Answer {
    /// 2xx: the reports are acknowledged.
    Acknowledged,
    /// `404 - `: OIAnalytics does not know these commands; counted as acknowledged.
    Unknown(ClientError),
    /// 400: OIAnalytics refuses one of the records, and so the whole PUT.
    Refused(ClientError),
    /// Anything else (network, 5xx, …): try again later.
    Failed(ClientError),
}

impl Answer {
    pub fn of(outcome: Result<(), ClientError>) -> Answer {
        match outcome {
            Ok(()) => Answer::Acknowledged,
            Err(e) if e.is_not_found() => Answer::Unknown(e),
            Err(e) if e.status() == Some(400) => Answer::Refused(e),
            Err(e) => Answer::Failed(e),
        }
    }
}

/// Whether a flush that acknowledged a batch of `read` reports goes on reading: a short batch
/// means the queue is empty.
pub fn more_may_wait(read: usize) -> bool {
    read >= REPORT_BATCH
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> Result<(), ClientError> {
        Err(ClientError::Status {
            status,
            body: String::new(),
        })
    }

    #[test]
    fn a_404_answer_acknowledges_and_a_400_refuses_and_others_fail() {
        assert!(matches!(Answer::of(Ok(())), Answer::Acknowledged));
        assert!(matches!(Answer::of(status(404)), Answer::Unknown(_)));
        assert!(matches!(Answer::of(status(400)), Answer::Refused(_)));
        assert!(matches!(Answer::of(status(503)), Answer::Failed(_)));
    }

    #[test]
    fn a_flush_stops_after_a_short_batch() {
        assert!(more_may_wait(REPORT_BATCH));
        assert!(!more_may_wait(REPORT_BATCH - 1));
    }
}
