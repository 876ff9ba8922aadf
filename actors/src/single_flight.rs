//! "One round in flight, one more when it ends": the state an actor keeps for a job that must
//! not overlap itself (a poll cycle, a report flush) but must not miss a request that came
//! while it ran.
//!
//! It owns only the two flags; the actor still spawns the round, and asks [`SingleFlight::finish`]
//! whether to run another. Requests made while a round runs collapse into one rerun, because the
//! next round reads the current state and so covers all of them.

/// Whether a round runs, and whether another was asked for meanwhile.
#[derive(Debug, Default)]
pub struct SingleFlight {
    running: bool,
    again: bool,
}

impl SingleFlight {
    /// Starts a round if none runs and returns `true`; otherwise records that another round is
    /// wanted and returns `false`.
    pub fn try_start(&mut self) -> bool {
        if self.running {
            self.again = true;
            return false;
        }
        self.running = true;
        // The round about to run covers any earlier request.
        self.again = false;
        true
    }

    /// Asks for another round once the current one ends, without starting one.
    pub fn request_again(&mut self) {
        self.again = true;
    }

    /// Ends the round; `true` if another was asked for while it ran.
    pub fn finish(&mut self) -> bool {
        self.running = false;
        std::mem::take(&mut self.again)
    }

    pub fn is_running(&self) -> bool {
        self.running
    }
}

#[cfg(test)]
mod tests {
    use super::SingleFlight;

    #[test]
    fn an_idle_flight_starts_a_round() {
        let mut flight = SingleFlight::default();
        assert!(!flight.is_running());
        assert!(flight.try_start());
        assert!(flight.is_running());
    }

    #[test]
    fn a_round_without_requests_asks_for_no_rerun() {
        let mut flight = SingleFlight::default();
        flight.try_start();
        assert!(!flight.finish());
        assert!(!flight.is_running());
    }

    #[test]
    fn a_start_while_running_is_refused_and_becomes_a_rerun() {
        let mut flight = SingleFlight::default();
        flight.try_start();
        assert!(!flight.try_start());
        assert!(flight.is_running());
        assert!(flight.finish());
        assert!(!flight.is_running());
    }

    #[test]
    fn many_requests_while_running_make_one_rerun() {
        let mut flight = SingleFlight::default();
        flight.try_start();
        flight.try_start();
        flight.request_again();
        flight.try_start();
        assert!(flight.finish());
        assert!(flight.try_start());
        assert!(!flight.finish());
    }

    #[test]
    fn request_again_does_not_start_a_round() {
        let mut flight = SingleFlight::default();
        flight.try_start();
        flight.request_again();
        assert!(flight.is_running());
        assert!(flight.finish());
        assert!(!flight.is_running());
    }

    #[test]
    fn starting_a_round_covers_a_request_made_while_idle() {
        let mut flight = SingleFlight::default();
        flight.request_again();
        assert!(flight.try_start());
        assert!(!flight.finish());
    }

    #[test]
    fn a_rerun_is_reported_once() {
        let mut flight = SingleFlight::default();
        flight.try_start();
        flight.request_again();
        assert!(flight.finish());
        assert!(!flight.finish());
    }
}
