//! "One in flight, run again when done": the guard an actor keeps around work it spawns, so that
//! rounds never overlap and a request that arrives during a round is not lost but coalesced into
//! one more round.

/// Whether a round runs, and whether another was asked for meanwhile.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SingleFlight {
    running: bool,
    again: bool,
}

impl SingleFlight {
    /// Asks for a round: `true` when the caller starts it now; `false` when one is running,
    /// which then runs again once done.
    pub fn try_start(&mut self) -> bool {
        if self.running {
            self.again = true;
            return false;
        }
        self.start();
        true
    }

    /// Marks a round as started whatever was asked before (for callers that decided already).
    pub fn start(&mut self) {
        self.running = true;
        self.again = false;
    }

    /// The round ended: whether another was asked for while it ran (then start it).
    pub fn finish(&mut self) -> bool {
        self.running = false;
        std::mem::take(&mut self.again)
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Forgets the round in flight (its result will be ignored) and any request for another.
    pub fn clear(&mut self) {
        *self = SingleFlight::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_while_idle_starts_a_round() {
        let mut f = SingleFlight::default();
        assert!(f.try_start());
        assert!(f.is_running());
        assert!(!f.finish(), "nobody asked for another round");
        assert!(!f.is_running());
    }

    #[test]
    fn requests_during_a_round_coalesce_into_one_more() {
        let mut f = SingleFlight::default();
        assert!(f.try_start());
        assert!(!f.try_start());
        assert!(!f.try_start());
        assert!(f.finish(), "run once more");
        assert!(f.try_start());
        assert!(!f.finish(), "only once");
    }

    #[test]
    fn clear_forgets_the_round_and_the_request() {
        let mut f = SingleFlight::default();
        f.try_start();
        f.try_start();
        f.clear();
        assert!(!f.is_running());
        assert!(f.try_start());
        assert!(!f.finish());
    }
}
