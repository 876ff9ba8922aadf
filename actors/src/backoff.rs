//! The one retry backoff of the agent: supervision restarts, configuration messages, log batches
//! and status reports all wait with it after a failure.
//!
//! The step doubles from `initial` up to `cap`, and each delay is drawn in 50–100 % of its step,
//! so agents (or siblings) failing together spread out, and no delay exceeds the cap: once the far
//! end recovers, the next attempt comes within one cap. The delays come from `backon`'s
//! [`ExponentialBuilder`]; its jitter adds 0–100 % of the step, so it is given half the step to
//! land in 50–100 % of ours.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The first retry delay of the network actors (log shipper, message sender, status reports);
/// lowered to the cap when the configured interval is shorter.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Jittered exponential backoff between consecutive failures.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    failures: u32,
    delays: <ExponentialBuilder as BackoffBuilder>::Backoff,
}

impl Backoff {
    /// Steps from `initial` (at most `cap`) doubling up to `cap`.
    pub fn new(initial: Duration, cap: Duration) -> Self {
        let initial = initial.min(cap);
        Backoff {
            initial,
            cap,
            failures: 0,
            delays: delays(initial, cap),
        }
    }

    /// Records a failure; the delay before the next attempt.
    pub fn on_failure(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        // Unbounded iterator (no max_times): `None` cannot happen; the cap is the safe answer.
        self.delays.next().unwrap_or(self.cap).min(self.cap)
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How many of the consecutive failures so far were met with a step at the cap.
    pub fn failures_at_cap(&self) -> u32 {
        let mut step = self.initial;
        let mut below = 0;
        while step < self.cap && below < self.failures {
            step = step.saturating_mul(2);
            below += 1;
        }
        self.failures - below
    }

    /// A success: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.delays = delays(self.initial, self.cap);
    }

    /// Takes new limits (e.g. a reloaded interval), keeping the count of failures.
    pub fn set_limits(&mut self, initial: Duration, cap: Duration) {
        let initial = initial.min(cap);
        if (initial, cap) == (self.initial, self.cap) {
            return;
        }
        (self.initial, self.cap) = (initial, cap);
        self.delays = delays(initial, cap);
        for _ in 0..self.failures.min(64) {
            self.delays.next();
        }
    }
}

fn delays(initial: Duration, cap: Duration) -> <ExponentialBuilder as BackoffBuilder>::Backoff {
    ExponentialBuilder::new()
        .with_min_delay(initial / 2)
        .with_max_delay(cap / 2)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn each_delay_falls_in_the_upper_half_of_a_step_doubling_up_to_the_cap() {
        let mut b = Backoff::new(ms(100), ms(1000));
        for step in [100, 200, 400, 800, 1000, 1000, 1000] {
            let d = b.on_failure();
            assert!(
                d >= ms(step / 2) && d <= ms(step),
                "{d:?} for step {step} ms"
            );
        }
        assert_eq!(b.failures(), 7);
    }

    #[test]
    fn no_delay_exceeds_the_cap_even_after_many_failures() {
        let mut b = Backoff::new(ms(100), ms(700));
        for _ in 0..1000 {
            assert!(b.on_failure() <= ms(700));
        }
    }

    #[test]
    fn an_initial_delay_above_the_cap_is_lowered_to_it() {
        let mut b = Backoff::new(Duration::from_secs(1), ms(300));
        assert!(b.on_failure() <= ms(300));
        assert_eq!(b.failures_at_cap(), 1);
    }

    #[test]
    fn reset_starts_again_from_the_initial_step() {
        let mut b = Backoff::new(ms(100), ms(10_000));
        for _ in 0..6 {
            b.on_failure();
        }
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.on_failure() <= ms(100));
    }

    #[test]
    fn failures_at_cap_counts_only_the_steps_that_reached_the_cap() {
        let mut b = Backoff::new(ms(100), ms(400));
        let counted: Vec<u32> = (0..5)
            .map(|_| {
                b.on_failure();
                b.failures_at_cap()
            })
            .collect();
        // Steps 100, 200, 400, 400, 400.
        assert_eq!(counted, [0, 0, 1, 2, 3]);
    }

    #[test]
    fn new_limits_keep_the_failure_count_and_apply_the_new_cap() {
        let mut b = Backoff::new(ms(100), Duration::from_secs(60));
        for _ in 0..8 {
            b.on_failure();
        }
        b.set_limits(ms(100), ms(500));
        assert_eq!(b.failures(), 8);
        let d = b.on_failure();
        assert!(d >= ms(250) && d <= ms(500), "{d:?}");
    }
}
