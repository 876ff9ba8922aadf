//! Target `config`: an input is the text of `agent.yaml`, given to `config::parse` (what
//! `check-config`, the start and SIGHUP use).
//!
//! Invariants: no panic; a refused file has at least one problem, each with a message and, when
//! located, a line inside the text; an accepted file passes its own validation and survives a
//! YAML round trip (unless it holds inline secrets, which serialise as `""` by design).

use oibus_actors::config::{self, Config};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // `config::load` reads the file as UTF-8 text first
    };
    match config::parse(text) {
        Ok(config) => {
            assert!(config.validate().is_empty());
            if !has_inline_secret(&config) {
                let yaml = serde_norway::to_string(&config).expect("a config serialises");
                let again = config::parse(&yaml)
                    .unwrap_or_else(|problems| panic!("{yaml}\nis refused: {problems:?}"));
                assert_eq!(again, config, "round trip through\n{yaml}");
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "a refusal says why");
            // `lines()` drops a last empty line; an error may point just past the end.
            let lines = text.lines().count() + 1;
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

fn has_inline_secret(config: &Config) -> bool {
    let oia = &config.oianalytics;
    oia.proxy.as_ref().is_some_and(|p| p.password.is_some())
        || oia
            .api_gateway
            .as_ref()
            .is_some_and(|g| g.header_value.is_some())
}
