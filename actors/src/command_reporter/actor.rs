//! The actix shell of the CommandReporter: the flush, its retry timer and the E5 calls.

use std::time::Duration;

use actix::prelude::*;
use serde_json::value::RawValue;

use super::{more_may_wait, Answer, REPORT_BATCH};
use crate::backoff::{Backoff, FIRST_RETRY};
use crate::client::{routes, Auth, ClientError, OiaClient};
use crate::commands::journal::{latest_per_command, ReportGroup};
use crate::commands::{off_thread, Journal};
use crate::context::AgentContext;
use crate::entities::EntityStore;
use crate::events::{StatusReportRefused, StatusReportsPut};
use crate::oia::CachedClient;
use crate::registration::{self, RegistrationChanged};
use crate::secret::Secret;
use crate::single_flight::SingleFlight;
use crate::store::StoreError;
use crate::supervision::{ChildGuard, Stop};

/// Reports are waiting: flush them now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ReportsPending;

/// The retry timer fired (internal).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
struct RetryReports;

#[derive(Debug, thiserror::Error)]
enum FlushError {
    #[error("{0}")]
    Worker(String),
    #[error("no OIAnalytics client: {0}")]
    Client(String),
    #[error("status report (E5) failed: {0}")]
    Put(ClientError),
    #[error("cannot read or acknowledge reports: {0}")]
    Store(#[from] StoreError),
}

pub struct CommandReporter {
    ctx: AgentContext,
    journal: Journal,
    entities: EntityStore,
    client: CachedClient,
    /// The access token while REGISTERED.
    token: Option<Secret<String>>,
    /// One flush at a time; one more as soon as it ends if reports arrived meanwhile.
    flushes: SingleFlight,
    retry: Option<SpawnHandle>,
    /// Waits between failed flushes, capped at `command_retry`.
    backoff: Backoff,
    _guard: ChildGuard,
}

impl CommandReporter {
    pub fn new(ctx: AgentContext, entities: EntityStore, guard: ChildGuard) -> Self {
        CommandReporter {
            journal: ctx.journal.clone(),
            ctx,
            entities,
            client: CachedClient::default(),
            token: None,
            flushes: SingleFlight::default(),
            retry: None,
            // Capped at each failure by the effective `command_retry`.
            backoff: Backoff::new(FIRST_RETRY, Duration::MAX),
            _guard: guard,
        }
    }

    fn on_registration(&mut self, change: &RegistrationChanged, ctx: &mut Context<Self>) {
        if change.is_registered() {
            self.token = Some(change.token.clone().unwrap_or_default());
            self.flush(ctx);
        } else {
            self.token = None;
            if let Some(handle) = self.retry.take() {
                ctx.cancel_future(handle);
            }
        }
    }

    /// Send the waiting reports, in batches, until none is left or a call fails.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(token) = self.token.clone() else {
            return;
        };
        if !self.flushes.try_start() {
            return;
        }
        if let Some(handle) = self.retry.take() {
            ctx.cancel_future(handle);
        }
        let client = self.client.get(self.ctx.config());
        let journal = self.journal.clone();
        let fut = async move {
            let client = client.map_err(FlushError::Client)?;
            flush_reports(&client, &token, &journal).await
        };
        ctx.spawn(fut.into_actor(self).map(|outcome, act, ctx| {
            let again = act.flushes.finish();
            match outcome {
                Ok(0) => act.backoff.reset(),
                Ok(sent) => {
                    act.backoff.reset();
                    tracing::debug!(sent, "status reports acknowledged");
                }
                Err(e) => {
                    let delay = act.schedule_retry(ctx);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "status reports not acknowledged; retrying");
                    return;
                }
            }
            if again {
                act.flush(ctx);
            }
        }));
    }

    /// After a failed flush: try again with backoff, never later than `command_retry`.
    fn schedule_retry(&mut self, ctx: &mut Context<Self>) -> Duration {
        let cap = self
            .entities
            .effective_registration_settings(&self.ctx.config().oianalytics)
            .command_retry;
        self.backoff.set_limits(FIRST_RETRY, cap);
        let delay = self.backoff.on_failure();
        self.retry = Some(ctx.notify_later(RetryReports, delay));
        delay
    }
}

/// Report everything waiting, one PUT per batch; only the keys OIA acknowledged are removed.
/// A PUT lists each command once, at its latest status (as OIBus, whose ack queue is keyed by
/// id): after a failed PUT, a command's RETRIEVED and final reports are both waiting, and a
/// server that upserts by id may refuse an array naming it twice. Returns how many reports were
/// acknowledged.
async fn flush_reports(
    client: &OiaClient,
    token: &Secret<String>,
    journal: &Journal,
) -> Result<usize, FlushError> {
    let mut acked = 0;
    loop {
        let reports = journal.pending_reports(REPORT_BATCH)?;
        if reports.is_empty() {
            return Ok(acked);
        }
        // Everything about to be reported must be on disk first (one fsync, off the actors'
        // thread).
        let syncer = journal.clone();
        off_thread(move || syncer.sync())
            .await
            .map_err(FlushError::Worker)??;
        let groups = latest_per_command(&reports);
        match put_reports(client, token, &groups).await {
            Answer::Acknowledged | Answer::Unknown(_) => journal.ack_reports(&reports)?,
            Answer::Refused(e) => {
                tracing::warn!(error = %e, count = groups.len(), "status report batch refused; sending records one by one");
                send_one_by_one(client, token, journal, &groups).await?;
            }
            Answer::Failed(e) => return Err(FlushError::Put(e)),
        }
        acked += reports.len();
        if !more_may_wait(reports.len()) {
            return Ok(acked);
        }
    }
}

/// One record OIA refuses makes it refuse the whole batch: send them one by one so the others
/// get through and only that record is set aside (it would be refused forever).
async fn send_one_by_one(
    client: &OiaClient,
    token: &Secret<String>,
    journal: &Journal,
    groups: &[ReportGroup<'_>],
) -> Result<(), FlushError> {
    for group in groups {
        match put_reports(client, token, std::slice::from_ref(group)).await {
            Answer::Acknowledged | Answer::Unknown(_) => {}
            Answer::Refused(e) => StatusReportRefused {
                error: &e,
                record: &group.latest.record,
            }
            .emit(),
            Answer::Failed(e) => return Err(FlushError::Put(e)),
        }
        journal.ack_reports(group.reports())?;
    }
    Ok(())
}

/// One E5 PUT, counted; a `404 - ` answer is logged here.
async fn put_reports(
    client: &OiaClient,
    token: &Secret<String>,
    groups: &[ReportGroup<'_>],
) -> Answer {
    let body: Vec<&RawValue> = groups.iter().map(|g| &*g.latest.record).collect();
    let outcome = client
        .put_json(routes::COMMANDS_STATUS, &body, Auth::Bearer(token))
        .await;
    StatusReportsPut {
        ok: outcome.is_ok(),
    }
    .emit();
    let answer = Answer::of(outcome.map(drop));
    if let Answer::Unknown(e) = &answer {
        tracing::warn!(error = %e, count = groups.len(), "status reports answered 404; counted as acknowledged");
    }
    answer
}

impl Actor for CommandReporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        registration::subscribe::<Self>(ctx, self.ctx.registration.clone());
        let current = self.ctx.registration.borrow().clone();
        self.on_registration(&current, ctx);
    }
}

impl Handler<RegistrationChanged> for CommandReporter {
    type Result = ();

    fn handle(&mut self, msg: RegistrationChanged, ctx: &mut Context<Self>) {
        self.on_registration(&msg, ctx);
    }
}

impl Handler<ReportsPending> for CommandReporter {
    type Result = ();

    fn handle(&mut self, _: ReportsPending, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

impl Handler<RetryReports> for CommandReporter {
    type Result = ();

    fn handle(&mut self, _: RetryReports, ctx: &mut Context<Self>) {
        self.retry = None;
        self.flush(ctx);
    }
}

impl Handler<Stop> for CommandReporter {
    type Result = ();

    /// Reports are durable as they are written; nothing to flush.
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
