//! The CommandExecutor: runs journaled commands strictly one at a time, oldest retrieval first
//! (protocol §4.3), and records each outcome, which the journal queues for the CommandReporter.
//!
//! It is the only actor that changes a journaled command after intake. Before running a
//! RETRIEVED command it checks the target version, then the permission flag (YAML ceiling AND
//! remote settings), then whether the agent supports the type; a refused command ends ERRORED
//! and is never run. A command found RUNNING at start was interrupted by a crash: see
//! [`recover`]. Configuration commands ([`configure`]) stage their entity writes into the same
//! atomic batch as the command's outcome; `update-version` goes through
//! [`crate::upgrade::stager`].
//!
//! This file holds the decisions; `actor.rs` the pump and the I/O.

mod config;
pub use config::CommandExecutorConfig;
pub mod actor;
pub mod configure;

use crate::commands::{CommandRecord, CommandType, Reporting};
use crate::store::Durability;

pub use actor::{CancelCommands, CommandExecutor, CommandsReady};

/// A command started this many times without finishing is not started again: it probably
/// crashes the engine.
pub const MAX_RUNS: u32 = 3;

/// Why a RETRIEVED command will not run, checked in this order (protocol §4.3): the target
/// version against `reported_version` (the OIBus version OIA was told, as OIBus compares it
/// with its stored version), the permission flag, then support by the agent. `Ok` gives its
/// type.
pub fn precheck(
    record: &CommandRecord,
    reported_version: &str,
    permitted: impl Fn(&str) -> bool,
) -> Result<CommandType, String> {
    let Some(command_type) = CommandType::parse(&record.command_type) else {
        return Err(format!(
            "Malformed command: unknown command type '{}'",
            record.command_type
        ));
    };
    if record.target_version != reported_version {
        return Err(format!(
            "Wrong target version: {} for OIBus version {reported_version}",
            record.target_version
        ));
    }
    if !command_type.permission_flag().is_some_and(&permitted) {
        return Err(format!(
            "Command {} of type {} is not authorized",
            record.id, record.command_type
        ));
    }
    if !command_type.is_supported() {
        return Err(match command_type {
            // Stored transformers exist; running one is what is missing (data-plane issue).
            CommandType::TestTransformer | CommandType::TestCustomTransformer => format!(
                "{} needs a transformer runtime, which oibus-agent does not have yet",
                record.command_type
            ),
            _ => format!("{} is not supported by oibus-agent", record.command_type),
        });
    }
    Ok(command_type)
}

/// How a command's start is journaled. Commands that end the process are journaled RUNNING
/// durably first (the stop must not lose it); an upgrade reports RUNNING too, since it lasts.
pub fn start_journaling(command_type: CommandType) -> (Durability, Reporting) {
    let durability = match command_type {
        CommandType::RestartEngine | CommandType::UpdateVersion => Durability::Sync,
        _ => Durability::Buffered,
    };
    let reporting = match command_type {
        CommandType::UpdateVersion => Reporting::Report,
        _ => Reporting::Silent,
    };
    (durability, reporting)
}

/// Whether a command may store a secret even when its content shows none (connector and
/// history commands keep secrets recorded for earlier versions; the proxy passwords arrive in
/// clear; certificates seal the private key they generate).
fn may_seal(command_type: CommandType) -> bool {
    use CommandType::*;
    matches!(
        command_type,
        CreateCertificate
            | UpdateCertificate
            | CreateSouth
            | UpdateSouth
            | CreateNorth
            | UpdateNorth
            | CreateHistoryQuery
            | UpdateHistoryQuery
            | UpdateEngineProxy
            | UpdateEngineLogger
    )
}

/// Commands whose apply generates an RSA key (seconds of CPU).
fn generates_keys(command_type: CommandType) -> bool {
    matches!(
        command_type,
        CommandType::CreateCertificate | CommandType::UpdateCertificate
    )
}

/// What to do with a command found RUNNING when the executor starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Run it again: its effect is idempotent.
    Rerun,
    /// End it with this outcome.
    Finish(Result<String, String>),
    /// An `update-version` whose outcome the launcher has not decided yet (the new engine is on
    /// probation): keep it RUNNING, never run it again, and ask [`crate::upgrade::settle`] later.
    AwaitUpgrade,
}

/// Decide about a command interrupted while RUNNING. `upgrade_outcome` tells how an
/// `update-version` ended ([`crate::upgrade::settle`]); it is only called for one.
///
/// - `restart-engine` asked for the stop that interrupted it: COMPLETED "OIBus restarted".
/// - `update-version` ends as the launcher's upgrade journal says, judged on the **running**
///   version (§9, done right), and only once the launcher has committed or rolled back.
/// - Configuration commands are idempotent (what they create is keyed on the command id), and
///   so is key regeneration: they run again, unless they were already started [`MAX_RUNS`]
///   times.
/// - Anything else: ERRORED "interrupted".
pub fn recover(
    record: &CommandRecord,
    upgrade_outcome: impl FnOnce() -> Option<Result<String, String>>,
) -> Recovery {
    use CommandType::*;
    let command_type = CommandType::parse(&record.command_type);
    match command_type {
        Some(RestartEngine) => Recovery::Finish(Ok("OIBus restarted".into())),
        Some(UpdateVersion) => match upgrade_outcome() {
            Some(outcome) => Recovery::Finish(outcome),
            None => Recovery::AwaitUpgrade,
        },
        // A setpoint may have reached the cache before the crash: never sent twice.
        Some(Setpoint) => {
            Recovery::Finish(Err("interrupted: the engine stopped while it ran".into()))
        }
        Some(t) if t.is_supported() && record.runs >= MAX_RUNS => Recovery::Finish(Err(format!(
            "interrupted {} times (the engine stopped while it ran); not started again",
            record.runs
        ))),
        Some(t) if t.is_supported() => Recovery::Rerun,
        _ => Recovery::Finish(Err("interrupted: the engine stopped while it ran".into())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::commands::Transition;

    fn record(command_type: &str, target: &str, fields: Value) -> CommandRecord {
        let fields: Map<String, Value> = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        CommandRecord::retrieved(
            0,
            "c1".into(),
            command_type.into(),
            target.into(),
            fields,
            "t",
        )
    }

    #[test]
    fn checks_come_in_order_version_then_permission_then_support() {
        let allow_all = |_: &str| true;
        let deny_all = |_: &str| false;
        let r = record("test-south-item", "0.9", json!({}));
        assert_eq!(
            precheck(&r, "1.0", deny_all),
            Err("Wrong target version: 0.9 for OIBus version 1.0".into())
        );
        let r = record("test-history-query-north-connection", "1.0", json!({}));
        assert_eq!(
            precheck(&r, "1.0", deny_all),
            Err("Command c1 of type test-history-query-north-connection is not authorized".into())
        );
        assert_eq!(
            precheck(&r, "1.0", allow_all),
            Err("test-history-query-north-connection is not supported by oibus-agent".into())
        );
        let r = record("create-scan-mode", "1.0", json!({}));
        assert_eq!(
            precheck(&r, "1.0", allow_all),
            Ok(CommandType::CreateScanMode)
        );
    }

    #[test]
    fn transformer_tests_end_errored_because_the_agent_has_no_transformer_runtime() {
        for test in ["test-transformer", "test-custom-transformer"] {
            assert_eq!(
                precheck(&record(test, "1.0", json!({})), "1.0", |_: &str| true),
                Err(format!(
                    "{test} needs a transformer runtime, which oibus-agent does not have yet"
                ))
            );
        }
    }

    #[test]
    fn the_permission_checked_is_the_types_flag() {
        let r = record("update-engine-logger", "1", json!({}));
        assert!(precheck(&r, "1", |f| f == "updateEngineSettings").is_ok());
        assert!(precheck(&r, "1", |f| f == "updateEngineLogger").is_err());
    }

    #[test]
    fn an_interrupted_restart_is_completed_and_an_upgrade_waits_for_the_launchers_verdict() {
        let never = || -> Option<Result<String, String>> { panic!("not an upgrade") };
        assert_eq!(
            recover(&record("restart-engine", "1", json!({})), never),
            Recovery::Finish(Ok("OIBus restarted".into()))
        );
        let upgrade = record(
            "update-version",
            "1.0",
            json!({"commandContent": {"version": "v2.0"}}),
        );
        assert_eq!(recover(&upgrade, || None), Recovery::AwaitUpgrade);
        let verdict = Err("OIBus has not been updated. Rollback to version 1.0".into());
        assert_eq!(
            recover(&upgrade, || Some(verdict.clone())),
            Recovery::Finish(verdict)
        );
    }

    #[test]
    fn idempotent_commands_rerun_until_they_look_like_the_cause_of_the_crash() {
        let mut r = record("create-scan-mode", "1", json!({}))
            .transition(Transition::Start, "t")
            .unwrap();
        assert_eq!(recover(&r, || None), Recovery::Rerun);
        r.runs = MAX_RUNS;
        assert!(matches!(recover(&r, || None), Recovery::Finish(Err(_))));
        let r = record("setpoint", "1", json!({}))
            .transition(Transition::Start, "t")
            .unwrap();
        assert_eq!(
            recover(&r, || None),
            Recovery::Finish(Err("interrupted: the engine stopped while it ran".into()))
        );
    }

    #[test]
    fn commands_that_stop_the_engine_start_durably_and_only_an_upgrade_reports_running() {
        use CommandType::*;
        assert_eq!(
            start_journaling(RestartEngine),
            (Durability::Sync, Reporting::Silent)
        );
        assert_eq!(
            start_journaling(UpdateVersion),
            (Durability::Sync, Reporting::Report)
        );
        assert_eq!(
            start_journaling(CreateScanMode),
            (Durability::Buffered, Reporting::Silent)
        );
    }
}
