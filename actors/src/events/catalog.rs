//! The events. Each `emit()` writes the log line (if any), the Prometheus series and the Onesait
//! count of one occurrence; the Onesait source and operation names are the wire's
//! (`spec/metrics-timeseries.md`), the Prometheus labels are snake_case.

use std::fmt::Display;
use std::time::Duration;

use super::registry::{self, LoopName, METRICS};
use super::{onesait, Source};

fn result(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "failed"
    }
}

/// When each loop last succeeded, in Unix seconds (what `/metrics` shows as
/// `oibus_agent_last_success_timestamp_seconds`), for the loops that ever did: `poll_cycle`,
/// `status_report_flush` (OIAnalytics acknowledged status reports), `message_push`,
/// `log_shipping`, `north_send`.
pub fn last_successes() -> Vec<(&'static str, i64)> {
    use LoopName::*;
    [
        (poll_cycle, "poll_cycle"),
        (status_report_flush, "status_report_flush"),
        (message_push, "message_push"),
        (log_shipping, "log_shipping"),
        (north_send, "north_send"),
    ]
    .into_iter()
    .filter_map(|(what, name)| {
        let gauge = METRICS.last_success.get(&registry::Loop { r#loop: what })?;
        Some((name, gauge.get()))
    })
    .collect()
}

fn succeeded(what: LoopName) {
    let now = chrono::Utc::now().timestamp();
    METRICS
        .last_success
        .get_or_create(&registry::Loop { r#loop: what })
        .set(now);
}

/// One HTTP call to OIAnalytics ended; `result` is the status code or the failure kind.
pub struct OiaRequestCompleted<'a> {
    pub route: &'a str,
    pub method: &'static str,
    pub result: &'a str,
    pub elapsed: Duration,
}

impl OiaRequestCompleted<'_> {
    pub fn emit(self) {
        // trace: a debug line here would itself be shipped to OIA by the log shipper's posts.
        tracing::trace!(
            route = self.route,
            method = self.method,
            result = self.result,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "OIAnalytics call"
        );
        let request = registry::Request {
            route: registry::Text(self.route.to_string()),
            method: self.method,
        };
        METRICS
            .oia_request_duration
            .get_or_create(&request)
            .observe(self.elapsed.as_secs_f64());
        METRICS
            .oia_requests
            .get_or_create(&registry::Response {
                route: request.route,
                method: self.method,
                result: self.result.to_string(),
            })
            .inc();
        onesait(|r| r.api(self.route, self.method, self.result));
    }
}

/// A registration step succeeded (`register`, `check-registration`, `registration-completed`).
/// The call site logs what the step means to the user.
pub struct RegistrationStepSucceeded {
    pub step: &'static str,
}

impl RegistrationStepSucceeded {
    pub fn emit(self) {
        registration_step(self.step, true);
    }
}

/// A registration step failed; it is retried after `retry_in`.
pub struct RegistrationStepFailed<'a> {
    pub step: &'static str,
    pub error: &'a str,
    pub retry_in: Duration,
}

impl RegistrationStepFailed<'_> {
    pub fn emit(self) {
        tracing::warn!(operation = self.step, error = self.error, retry_in = ?self.retry_in, "registration step failed; retrying");
        registration_step(self.step, false);
    }
}

fn registration_step(step: &'static str, ok: bool) {
    METRICS
        .registration_steps
        .get_or_create(&registry::Step {
            step,
            result: result(ok),
        })
        .inc();
    onesait(|r| r.operation(Source::Registration, step, ok));
}

/// A command poll cycle (cancellation check, fetch, journal) ended.
pub struct PollCycleFinished<'a> {
    pub error: Option<&'a dyn Display>,
}

impl PollCycleFinished<'_> {
    pub fn emit(self) {
        let ok = self.error.is_none();
        if let Some(e) = self.error {
            tracing::warn!(error = %e, "command cycle failed");
        } else {
            succeeded(LoopName::poll_cycle);
        }
        METRICS
            .poll_cycles
            .get_or_create(&registry::Outcome { result: result(ok) })
            .inc();
        onesait(|r| r.operation(Source::CommandPoller, "poll", ok));
    }
}

/// OIAnalytics' cancellation list was handed to the executor, which cancelled `cancelled`.
pub struct CancellationsChecked {
    pub cancelled: usize,
}

impl CancellationsChecked {
    pub fn emit(self) {
        tracing::info!(
            cancelled = self.cancelled,
            "commands cancelled by OIAnalytics"
        );
        onesait(|r| r.operation(Source::CommandPoller, "cancel-check", true));
    }
}

/// A pending command had no usable id: it is skipped, as it could never be reported.
pub struct CommandWithoutId<'a> {
    pub problem: &'a str,
}

impl CommandWithoutId<'_> {
    pub fn emit(self) {
        tracing::warn!(
            problem = self.problem,
            "pending command without a usable id skipped; it cannot be reported"
        );
        METRICS.commands_without_id.inc();
        onesait(|r| r.operation(Source::CommandPoller, "command-without-id", false));
    }
}

/// One status report batch PUT (E5) ended; a success is a flush that got through.
pub struct StatusReportsPut {
    pub ok: bool,
}

impl StatusReportsPut {
    pub fn emit(self) {
        if self.ok {
            succeeded(LoopName::status_report_flush);
        }
        METRICS
            .status_report_puts
            .get_or_create(&registry::Outcome {
                result: result(self.ok),
            })
            .inc();
        onesait(|r| r.operation(Source::CommandPoller, "report", self.ok));
    }
}

/// OIAnalytics refused one status report on its own (400): it is dropped, i.e. data loss.
pub struct StatusReportRefused<'a> {
    pub error: &'a dyn Display,
    pub record: &'a dyn Display,
}

impl StatusReportRefused<'_> {
    pub fn emit(self) {
        tracing::error!(error = %self.error, record = %self.record,
            "status report refused by OIAnalytics; it is dropped (it would be refused forever)");
        METRICS.status_reports_refused.inc();
        onesait(|r| r.operation(Source::CommandPoller, "report-refused", false));
    }
}

/// One command ended with `status`.
pub struct CommandExecuted<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub status: crate::commands::Status,
    pub result: &'a str,
    pub elapsed: Duration,
}

impl CommandExecuted<'_> {
    pub fn emit(self) {
        tracing::info!(
            id = %self.id,
            r#type = %self.kind,
            status = self.status.as_str(),
            result = self.result,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "command finished"
        );
        let completed = self.status == crate::commands::Status::Completed;
        command(
            self.kind,
            &self.status.as_str().to_ascii_lowercase(),
            completed,
        );
    }
}

/// A command (restart, upgrade) stops the engine with exit `code` for the launcher.
pub struct CommandExitsEngine<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub code: i32,
}

impl CommandExitsEngine<'_> {
    pub fn emit(self) {
        tracing::warn!(id = %self.id, r#type = %self.kind, code = self.code, "stopping the engine as the command asks");
        command(self.kind, "exit", true);
    }
}

fn command(kind: &str, outcome: &str, ok: bool) {
    METRICS
        .commands
        .get_or_create(&registry::Command {
            r#type: registry::Text(kind.to_string()),
            result: outcome.to_string(),
        })
        .inc();
    onesait(|r| r.operation(Source::CommandExecutor, kind, ok));
}

/// OIAnalytics cancelled a command before it ran.
pub struct CommandCancelled<'a> {
    pub id: &'a str,
}

impl CommandCancelled<'_> {
    pub fn emit(self) {
        tracing::info!(id = self.id, "command cancelled by OIAnalytics");
        METRICS.commands_cancelled.inc();
        onesait(|r| r.operation(Source::CommandExecutor, "cancel", true));
    }
}

/// A command changed a stored entity; `op` is INSERT, UPDATE or DELETE.
pub struct EntityChanged {
    pub entity: &'static str,
    pub op: &'static str,
}

impl EntityChanged {
    pub fn emit(self) {
        METRICS
            .entity_changes
            .get_or_create(&registry::Change {
                entity: self.entity,
                op: self.op,
            })
            .inc();
        onesait(|r| r.ontology(Source::CommandExecutor, self.entity, self.op, true));
    }
}

/// A configuration message (E6/E7) ended: delivered or not.
pub struct ConfigPushFinished {
    pub kind: &'static str,
    pub delivered: bool,
}

impl ConfigPushFinished {
    pub fn emit(self) {
        if self.delivered {
            succeeded(LoopName::message_push);
        }
        METRICS
            .config_pushes
            .get_or_create(&registry::Push {
                kind: self.kind,
                result: result(self.delivered),
            })
            .inc();
        onesait(|r| r.operation(Source::MessageSender, self.kind, self.delivered));
    }
}

/// A log batch post (E8) ended. No log line: it would be shipped by the next post. The
/// Prometheus counts of posts and records are the shipper's own (`oibus_agent_log_*`).
pub struct LogBatchPosted {
    pub delivered: bool,
}

impl LogBatchPosted {
    pub fn emit(self) {
        if self.delivered {
            succeeded(LoopName::log_shipping);
        }
        onesait(|r| r.operation(Source::LogShipper, "post-logs", self.delivered));
    }
}

/// A state-changing call on the local API (`register`, `unregister`), by `user`.
pub struct ControlPanelOperation<'a> {
    pub operation: &'a str,
    pub ok: bool,
    pub user: &'a str,
}

impl ControlPanelOperation<'_> {
    pub fn emit(self) {
        local_api(self.operation, self.ok);
        onesait(|r| r.control_panel(self.operation, self.ok, self.user));
    }
}

/// A metrics query on the local API (`prometheus`, `documents`, `series`), by `user`.
pub struct LocalQueryServed<'a> {
    pub resource: &'a str,
    pub ok: bool,
    pub user: &'a str,
}

impl LocalQueryServed<'_> {
    pub fn emit(self) {
        local_api(self.resource, self.ok);
        onesait(|r| r.query(self.resource, self.ok, self.user));
    }
}

fn local_api(operation: &str, ok: bool) {
    METRICS
        .local_api_requests
        .get_or_create(&registry::LocalCall {
            operation: registry::Text(operation.to_string()),
            result: result(ok),
        })
        .inc();
}

/// The supervisor took `actor` in charge: its restart count starts at 0.
pub struct ActorSupervised {
    pub actor: &'static str,
}

impl ActorSupervised {
    pub fn emit(self) {
        // Creating the series is the point: it shows 0 until the first restart.
        drop(
            METRICS
                .actor_restarts
                .get_or_create(&registry::Actor { actor: self.actor }),
        );
    }
}

/// A supervised actor failed and is restarted alone after `after`.
pub struct ActorRestarted {
    pub actor: &'static str,
    pub reason: &'static str,
    pub attempt: u32,
    pub after: Duration,
}

impl ActorRestarted {
    pub fn emit(self) {
        tracing::warn!(
            actor = self.actor,
            reason = self.reason,
            attempt = self.attempt,
            backoff_ms = self.after.as_millis() as u64,
            "actor failed; restarting it alone"
        );
        METRICS
            .actor_restarts
            .get_or_create(&registry::Actor { actor: self.actor })
            .inc();
    }
}

fn connector(name: &str) -> registry::Connector {
    registry::Connector {
        connector: registry::Text(name.to_owned()),
    }
}

fn connector_outcome(name: &str, result: &'static str) -> registry::ConnectorOutcome {
    registry::ConnectorOutcome {
        connector: registry::Text(name.to_owned()),
        result,
    }
}

/// The fan-out committed content to a north's cache: `count` values or messages, or 1 file.
pub struct ContentCached<'a> {
    pub north: &'a str,
    pub count: usize,
}

impl ContentCached<'_> {
    pub fn emit(self) {
        METRICS
            .data_cached
            .get_or_create(&connector(self.north))
            .inc_by(self.count as u64);
    }
}

/// Why content was not cached.
#[derive(Debug, Clone, Copy)]
pub enum DropReason {
    /// The north's cache reached `maxSize` (warned once a minute by the cache).
    CacheFull,
    /// Its transformer has no runtime in this agent.
    Transformer,
}

/// Content for a north was not cached.
pub struct ContentDropped<'a> {
    pub north: &'a str,
    pub source: &'a str,
    pub reason: DropReason,
    pub detail: &'a str,
}

impl ContentDropped<'_> {
    pub fn emit(self) {
        let reason = match self.reason {
            DropReason::CacheFull => "cache_full",
            DropReason::Transformer => {
                tracing::error!(
                    north = self.north,
                    source = self.source,
                    error = self.detail,
                    "content not cached: its transformer cannot run"
                );
                "transformer"
            }
        };
        METRICS
            .data_dropped
            .get_or_create(&connector_outcome(self.north, reason))
            .inc();
    }
}

/// What one send attempt of a north gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendResult {
    Sent,
    /// A forced retry (listed status codes, network errors).
    Retry,
    /// A failure that counts toward `retryCount`.
    Failed,
    /// Given up: moved to the error cache.
    MovedToError,
}

/// A north tried to send the head of its cache.
pub struct NorthSendFinished<'a> {
    pub north: &'a str,
    pub result: SendResult,
    /// Values or messages in the batch; 0 for a file.
    pub elements: usize,
    pub elapsed: Duration,
    /// The error, for anything but `Sent`.
    pub error: Option<&'a str>,
    /// Whether this failure starts a streak (the first one is a warning, the rest debug).
    pub first_failure: bool,
}

impl NorthSendFinished<'_> {
    pub fn emit(self) {
        let error = self.error.unwrap_or("");
        let result = match self.result {
            SendResult::Sent => {
                tracing::debug!(
                    north = self.north,
                    elements = self.elements,
                    elapsed_ms = self.elapsed.as_millis() as u64,
                    "batch sent"
                );
                succeeded(LoopName::north_send);
                METRICS
                    .data_sent
                    .get_or_create(&connector(self.north))
                    .inc_by(self.elements.max(1) as u64);
                "sent"
            }
            SendResult::MovedToError => {
                tracing::error!(north = self.north, error, "batch moved to the error cache");
                "moved_to_error"
            }
            SendResult::Retry | SendResult::Failed => {
                if self.first_failure {
                    tracing::warn!(
                        north = self.north,
                        error,
                        "cannot send; the content stays cached and is retried"
                    );
                } else {
                    tracing::debug!(north = self.north, error, "send failed again");
                }
                if self.result == SendResult::Retry {
                    "retry"
                } else {
                    "failed"
                }
            }
        };
        METRICS
            .north_sends
            .get_or_create(&connector_outcome(self.north, result))
            .inc();
        METRICS
            .north_send_duration
            .get_or_create(&connector(self.north))
            .observe(self.elapsed.as_secs_f64());
    }
}

/// A south read one item.
pub struct SouthReadFinished<'a> {
    pub south: &'a str,
    pub item: &'a str,
    /// Files or values read and committed; the error otherwise.
    pub outcome: Result<usize, &'a str>,
    /// The same error as the previous read: logged at debug only.
    pub repeated: bool,
}

impl SouthReadFinished<'_> {
    pub fn emit(self) {
        let ok = match self.outcome {
            Ok(read) => {
                if read > 0 {
                    tracing::debug!(south = self.south, item = self.item, read, "item read");
                }
                true
            }
            Err(error) if self.repeated => {
                tracing::debug!(
                    south = self.south,
                    item = self.item,
                    error,
                    "cannot read an item"
                );
                false
            }
            Err(error) => {
                tracing::warn!(
                    south = self.south,
                    item = self.item,
                    error,
                    "cannot read an item; retrying at the next scan"
                );
                false
            }
        };
        METRICS
            .south_reads
            .get_or_create(&connector_outcome(self.south, result(ok)))
            .inc();
    }
}

/// A tick found an item still being read: the scan is skipped (backpressure).
pub struct ScanSkipped<'a> {
    pub south: &'a str,
    pub item: &'a str,
    /// Logged once an hour, as OIBus warns.
    pub warn: bool,
}

impl ScanSkipped<'_> {
    pub fn emit(self) {
        if self.warn {
            tracing::warn!(
                south = self.south,
                item = self.item,
                "a scan was skipped: the previous read of this item is still running"
            );
        }
        METRICS
            .south_scans_skipped
            .get_or_create(&connector(self.south))
            .inc();
    }
}
