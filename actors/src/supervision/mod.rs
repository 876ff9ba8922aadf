//! Supervision on top of actix (DESIGN.md "Actors"): actix's own `Supervisor` only restarts an
//! actor that stops itself, has no budget and no backoff, so we keep our own.
//!
//! - [`RestartTracker`] is the pure policy: jittered exponential backoff, a restart budget per
//!   time window, reset after a stable period. Tested without a clock or actix.
//! - [`actor::Supervisor`] starts children in order, restarts a failed child alone (a panic in a
//!   handler drops the actor, which its [`ChildGuard`] reports), escalates when the budget is
//!   spent (ordered shutdown, exit code 70), and stops children in reverse order within a
//!   deadline on [`Shutdown`].
//! - [`Peers`] is the directory of current addresses: a restarted actor has a new address, so
//!   actors look their peers up at the moment they send.

mod config;
pub use config::RestartPolicy;
pub mod actor;
mod peers;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use actor::{
    failed_start, ChildExited, ChildGuard, ChildSpec, ChildState, ChildStatus, GetChildren,
    Shutdown, Stop, Supervisor,
};
pub use peers::Peers;

use crate::backoff::Backoff;

/// The engine's exit code when supervision gives up.
pub const EXIT_ESCALATED: i32 = crate::exit::ESCALATED;

/// What to do about a failed child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after this delay; `attempt` counts consecutive failures (1 = first).
    Restart { after: Duration, attempt: u32 },
    /// The budget is spent: `failures` failures happened within the policy's window.
    Escalate { failures: usize },
}

/// Restart bookkeeping for one child.
#[derive(Debug)]
pub struct RestartTracker {
    policy: RestartPolicy,
    failures: VecDeque<Instant>,
    backoff: Backoff,
    started_at: Instant,
}

impl RestartTracker {
    pub fn new(policy: RestartPolicy, now: Instant) -> Self {
        RestartTracker {
            backoff: Backoff::new(policy.backoff_initial, policy.backoff_max),
            policy,
            failures: VecDeque::new(),
            started_at: now,
        }
    }

    pub fn set_policy(&mut self, policy: RestartPolicy) {
        self.backoff
            .set_limits(policy.backoff_initial, policy.backoff_max);
        self.policy = policy;
    }

    /// The child (re)started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.started_at = now;
    }

    /// The child failed at `now`. The delay is jittered (see [`Backoff`]) so siblings that fail
    /// together do not restart in lockstep.
    pub fn on_failure(&mut self, now: Instant) -> Decision {
        if now.saturating_duration_since(self.started_at) >= self.policy.reset_after {
            self.backoff.reset();
        }
        let within = self.policy.within;
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= within)
        {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        if self.failures.len() > self.policy.max_restarts as usize {
            return Decision::Escalate {
                failures: self.failures.len(),
            };
        }
        let after = self.backoff.on_failure();
        Decision::Restart {
            after,
            attempt: self.backoff.failures(),
        }
    }
}

#[cfg(test)]
mod tests;
