//! Target `config`: an input is the text of `agent.yaml`, given to `config::parse` (what
//! `check-config`, the start and SIGHUP use).
//!
//! Invariants: no panic; a refused file has at least one problem, each with a message and, when
//! located, a line inside the text; an accepted file passes its own validation, survives a YAML
//! round trip (unless it holds inline secrets, which serialise as `""` by design), and its
//! durations can be used as the agent uses them (retry backoffs, restart backoffs, deadlines).

use std::time::Instant;

use crate::backoff::{Backoff, FIRST_RETRY};
use crate::config::{self, Config};
use crate::supervision::{Decision, RestartTracker};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // `config::load` reads the file as UTF-8 text first
    };
    match config::parse(text) {
        Ok(config) => {
            assert!(config.validate().is_empty());
            use_durations(&config);
            if !has_inline_secret(&config) {
                let yaml = serde_norway::to_string(&config).expect("a config serialises");
                let again = config::parse(&yaml)
                    .unwrap_or_else(|problems| panic!("{yaml}\nis refused: {problems:?}"));
                assert_eq!(again, config, "round trip through\n{yaml}");
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "a refusal says why");
            // The scanner puts the end of a text without a final newline on the next line.
            let lines = yaml_lines(text) + 1;
            for problem in &problems {
                assert!(!problem.message.is_empty());
                let _ = problem.to_string();
                if let Some((line, column)) = problem.location {
                    assert!(
                        (1..=lines).contains(&line) && column >= 1,
                        "{problem} points outside the {lines} lines of the text"
                    );
                }
            }
        }
    }
}

/// What the agent does with the durations of an accepted file; none of it may panic.
fn use_durations(config: &Config) {
    let intervals = &config.oianalytics.intervals;
    let caps = [
        intervals.message_retry,
        intervals.command_retry,
        config.actors.log_shipper.interval,
    ];
    for cap in caps {
        let mut backoff = Backoff::new(FIRST_RETRY, cap);
        for _ in 0..40 {
            assert!(backoff.on_failure() <= cap);
        }
    }
    let now = Instant::now();
    let actors = [
        "registration",
        "key_vault",
        "command_poller",
        "command_executor",
        "message_sender",
        "log_shipper",
        "metrics_aggregator",
    ];
    let policies = actors
        .iter()
        .map(|actor| config.actors.restart_policy(actor))
        .chain([config.launcher.restart.clone()]);
    for policy in policies {
        let mut tracker = RestartTracker::new(policy, now);
        for _ in 0..40 {
            if let Decision::Escalate { .. } = tracker.on_failure(now) {
                break;
            }
        }
    }
    // Deadlines on the clock: the engine's ordered stop and the launcher's wait for the engine
    // (`shutdown_timeout`), probation (`health_grace`), the next command or retry.
    let launcher = &config.launcher;
    for (name, duration) in [
        ("launcher.shutdown_timeout", launcher.shutdown_timeout),
        ("launcher.health_grace", launcher.health_grace),
        ("command_refresh", intervals.command_refresh),
        ("command_retry", intervals.command_retry),
        ("registration_check", intervals.registration_check),
    ] {
        assert!(
            now.checked_add(duration).is_some(),
            "{name} of {duration:?} overflows the clock"
        );
    }
}

fn has_inline_secret(config: &Config) -> bool {
    let oia = &config.oianalytics;
    oia.proxy.as_ref().is_some_and(|p| p.password.is_some())
        || oia
            .api_gateway
            .as_ref()
            .is_some_and(|g| g.header_value.is_some())
}

/// Lines as the YAML scanner counts them: a break is `\r\n`, `\n`, `\r`, NEL, LS or PS (so an
/// old Mac file with lone `\r` has more lines than `str::lines` sees).
fn yaml_lines(text: &str) -> usize {
    let mut lines = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => lines += 1,
            _ => {}
        }
    }
    lines
}
