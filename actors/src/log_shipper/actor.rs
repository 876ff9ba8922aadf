//! The LogShipper actor: drains the layer's channel into the durable `logs` queue and posts
//! batches to OIAnalytics (E8) while REGISTERED and the OIA level is not `silent`.
//!
//! Messages: the intake stream (records from the layer), [`RegistrationChanged`], a
//! configuration change (from the config watch), an engine settings change (from
//! [`crate::entities::LiveEngineSettings`]: `logger.oia.interval`), [`SetOiaLevel`],
//! [`GetLogShipperStats`] and [`Stop`] (drain the channel, one final post bounded by
//! [`FINAL_FLUSH_TIMEOUT`], stop).
//!
//! One post at a time, so batches reach OIAnalytics in queue order. The rounds are driven by
//! [`super::next`]: a timer the actor sets for itself, re-armed whenever records arrive, a post
//! ends, or the registration or configuration changes.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use tracing::Instrument;

use super::{
    build_body, cadence, invalid_items, is_delivered, next, should_log_failure, DropSummary,
    FlushState, LogIntake, LogShipperStats, Next, OiaLevelHandle, StatsHandle, DROP_SUMMARY_EVERY,
    FINAL_FLUSH_TIMEOUT, INTAKE_CHUNK, POST_SPAN, QUEUE_NAME,
};
use crate::backoff::{Backoff, FIRST_RETRY};
use crate::client::{routes, Auth, OiaClient};
use crate::config::{Config, LogLevel};
use crate::context::{forward_changes, AgentContext, ConfigReloaded};
use crate::entities::EntityStore;
use crate::events::LogBatchPosted;
use crate::registration::{self, RegistrationChanged};
use crate::store::{Cf, Durability, Queue};
use crate::supervision::{ChildGuard, ChildSpec, Stop};

/// The statistics of the shipper (also readable without the actor through [`StatsHandle`]).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "LogShipperStats")]
pub struct GetLogShipperStats;

/// Change the OIA level at once (e.g. `update-engine-logger`). Same as
/// [`OiaLevelHandle::set`], for callers that only hold the peers directory.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct SetOiaLevel(pub LogLevel);

/// The engine settings were republished (e.g. `update-engine-logger`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct EngineSettingsChanged;

/// How a post ended.
enum PostResult {
    /// OIAnalytics answered with this status (2xx; see [`is_delivered`]).
    Status(u16),
    /// Every item of the batch was left out: nothing to send, but the items must go.
    NothingToSend,
    /// OIAnalytics found the body malformed (400); `invalid` are the items to leave out.
    Rejected {
        error: String,
        invalid: Vec<u64>,
    },
    Failed(String),
}

pub struct LogShipper {
    ctx: AgentContext,
    intake: LogIntake,
    level: OiaLevelHandle,
    stats: StatsHandle,
    queue: Option<Queue>,
    registration: RegistrationChanged,
    client: Option<Rc<OiaClient>>,
    /// The configuration the actor last applied.
    config: Arc<Config>,
    /// `logger.oia.interval` (seconds) once OIAnalytics has set the logger; until then the
    /// YAML interval applies (see [`cadence`]).
    remote_interval: Option<u64>,
    /// One second of `remote_interval` (shorter only under a test hook).
    second: Duration,
    window_start: Instant,
    retry_at: Option<Instant>,
    /// Waits between failed posts, capped at the interval in force.
    backoff: Backoff,
    in_flight: bool,
    timer: Option<(Instant, SpawnHandle)>,
    /// Set by [`Stop`]: the final flush is under way.
    stopping: bool,
    drops: DropSummary,
    /// Queued items OIAnalytics cannot take (found after a 400), left out of bodies until acked.
    invalid: BTreeSet<u64>,
    last_store_error_log: Option<Instant>,
    _guard: ChildGuard,
}

impl LogShipper {
    pub fn new(
        ctx: AgentContext,
        intake: LogIntake,
        level: OiaLevelHandle,
        guard: ChildGuard,
    ) -> Self {
        let config = ctx.config();
        let stats = intake.stats();
        let registration = ctx.registration.borrow().clone();
        LogShipper {
            registration,
            ctx,
            intake,
            level,
            drops: DropSummary::from(&stats.snapshot()),
            stats,
            queue: None,
            client: None,
            config,
            remote_interval: None,
            second: crate::test_hooks::log_second(),
            window_start: Instant::now(),
            retry_at: None,
            backoff: Backoff::new(FIRST_RETRY, super::MAX_INTERVAL),
            in_flight: false,
            timer: None,
            stopping: false,
            invalid: BTreeSet::new(),
            last_store_error_log: None,
            _guard: guard,
        }
    }

    /// The supervised child: started again with the same intake and level after a failure.
    pub fn child_spec(ctx: AgentContext, intake: LogIntake, level: OiaLevelHandle) -> ChildSpec {
        let policy = ctx.config().actors.restart_policy("log_shipper");
        ChildSpec::new("log_shipper", policy, move |guard| {
            let addr = LogShipper::new(ctx.clone(), intake.clone(), level.clone(), guard).start();
            ctx.peers.set(addr.clone());
            addr.recipient()
        })
    }

    fn active(&self) -> bool {
        self.registration.is_registered() && !self.level.is_silent() && self.client.is_some()
    }

    fn queued(&self) -> u64 {
        self.queue.as_ref().map_or(0, |q| q.stats().len)
    }

    /// Build the client from the current configuration; no host means nothing to post to.
    fn rebuild_client(&mut self) {
        self.client = match crate::oia::client_factory(&self.config) {
            Ok(factory) => factory.map(|f| Rc::new(f.client())),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "cannot build the OIAnalytics client for logs; records stay queued until the configuration is fixed"
                );
                None
            }
        };
    }

    /// Move records from the channel into the durable queue, in one write.
    fn store_records(&mut self, records: Vec<Vec<u8>>) {
        let Some(queue) = &self.queue else { return };
        if records.is_empty() {
            return;
        }
        let count = records.len();
        match queue.push_batch(&records, Durability::Buffered) {
            Ok(_) => self.stats.set_queue(&queue.stats()),
            Err(e) => {
                // Counted as dropped. The log is rate-limited: it would itself come back here and
                // fail again.
                self.stats.record_store_drops(count as u64);
                let now = Instant::now();
                if self
                    .last_store_error_log
                    .is_none_or(|t| now.duration_since(t) >= DROP_SUMMARY_EVERY)
                {
                    self.last_store_error_log = Some(now);
                    tracing::error!(error = %e, records = count, "cannot queue log records; they are dropped and counted");
                }
            }
        }
    }

    /// Decide what to do next and arm the timer or post.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.stats.set_shipping(self.active());
        let state = FlushState {
            active: self.active(),
            queued: self.queued(),
            in_flight: self.in_flight,
            window_start: self.window_start,
            retry_at: self.retry_at,
        };
        let cfg = &self.config.actors.log_shipper;
        match next(&state, cfg.batch_max, self.interval(), Instant::now()) {
            Next::Post => {
                self.cancel_timer(ctx);
                self.post(ctx);
            }
            Next::WaitUntil(at) => {
                if self.timer.as_ref().is_some_and(|(t, _)| *t == at) {
                    return;
                }
                self.cancel_timer(ctx);
                let delay = at.saturating_duration_since(Instant::now());
                let handle = ctx.run_later(delay, |act, ctx| {
                    act.timer = None;
                    act.schedule(ctx);
                });
                self.timer = Some((at, handle));
            }
            Next::Idle => self.cancel_timer(ctx),
        }
    }

    /// The interval between posts now.
    fn interval(&self) -> Duration {
        cadence(
            self.remote_interval,
            self.config.actors.log_shipper.interval,
            self.second,
        )
    }

    /// Read whether OIAnalytics has set `logger.oia.interval` (the stored record says so; the
    /// published settings do not tell a remote value from the default). Returns whether the
    /// interval in force changed. A store error keeps the interval in force.
    fn refresh_remote_interval(&mut self) -> bool {
        let remote = match EntityStore::new(self.ctx.store.clone()).engine_settings() {
            Ok(record) => record
                .filter(|r| r.remote.logger)
                .map(|r| r.settings.logger.oia.interval),
            Err(e) => {
                tracing::error!(error = %e, "cannot read logger.oia.interval from the engine settings; the log interval in force is kept");
                return false;
            }
        };
        if remote == self.remote_interval {
            return false;
        }
        let before = self.interval();
        self.remote_interval = remote;
        let after = self.interval();
        if after != before {
            tracing::info!(
                interval_ms = after.as_millis() as u64,
                logger_oia_interval_s = remote,
                "log shipping interval changed (logger.oia.interval from OIAnalytics, at most 60 s)"
            );
        }
        after != before
    }

    fn cancel_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some((_, handle)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
    }

    /// Post the oldest batch. Never posts an empty one.
    fn post(&mut self, ctx: &mut Context<Self>) {
        let (Some(queue), Some(client), Some(token)) =
            (&self.queue, &self.client, &self.registration.token)
        else {
            return;
        };
        let items = match queue.peek(self.config.actors.log_shipper.batch_max.max(1)) {
            Ok(items) if !items.is_empty() => items,
            Ok(_) => return,
            Err(e) => {
                self.on_failure(format!("cannot read the log queue: {e}"), ctx);
                return;
            }
        };
        self.in_flight = true;
        self.window_start = Instant::now();
        let client = Rc::clone(client);
        let token = token.clone();
        let body = build_body(&items, &self.invalid);
        let (records, skipped, last_seq) = (body.records, body.skipped, body.last_seq);
        let fut = async move {
            if records == 0 {
                return PostResult::NothingToSend;
            }
            let json = Bytes::from(body.json);
            match client
                .post_json_bytes(routes::LOGS, json, Auth::Bearer(&token))
                .await
            {
                Ok(status) => PostResult::Status(status),
                Err(e) if e.status() == Some(400) => PostResult::Rejected {
                    error: e.to_string(),
                    invalid: invalid_items(&items),
                },
                Err(e) => PostResult::Failed(e.to_string()),
            }
        };
        let fut = fut.instrument(tracing::info_span!(POST_SPAN));
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.in_flight = false;
            act.on_posted(result, last_seq, records, skipped, ctx);
        }));
    }

    /// A finished post of the batch up to `last_seq`: `records` sent, `skipped` left out.
    fn on_posted(
        &mut self,
        result: PostResult,
        last_seq: u64,
        records: u64,
        skipped: u64,
        ctx: &mut Context<Self>,
    ) {
        match result {
            PostResult::Status(status) if is_delivered(status) => {
                self.on_delivered(last_seq, records, skipped)
            }
            PostResult::NothingToSend => self.on_delivered(last_seq, 0, skipped),
            PostResult::Status(status) => self.on_failure(
                format!("OIAnalytics answered {status} to a log batch; only 200, 201 or 204 count as delivered"),
                ctx,
            ),
            PostResult::Rejected { error, invalid } if !invalid.is_empty() => {
                // Leave the culprits out and try again at once; they go with the batch.
                tracing::warn!(
                    error,
                    records = invalid.len(),
                    "OIAnalytics rejected a log batch; records that are not valid E8 records are left out"
                );
                LogBatchPosted { delivered: false }.emit();
                self.stats.record_failure(error);
                self.invalid.extend(invalid);
                self.retry_at = Some(Instant::now());
            }
            PostResult::Rejected { error, .. } | PostResult::Failed(error) => {
                self.on_failure(error, ctx)
            }
        }
        if self.stopping {
            self.final_flush(ctx);
        } else {
            self.schedule(ctx);
        }
    }

    fn on_delivered(&mut self, last_seq: u64, records: u64, skipped: u64) {
        if records > 0 {
            LogBatchPosted { delivered: true }.emit();
        }
        if skipped > 0 {
            tracing::warn!(
                records = skipped,
                "invalid log records removed from the queue (counted as dropped)"
            );
        }
        self.backoff.reset();
        self.retry_at = None;
        self.invalid.retain(|seq| *seq > last_seq);
        self.stats.record_post(records, skipped);
        if let Some(queue) = &self.queue {
            match queue.ack_through(last_seq) {
                Ok(_) => self.stats.set_queue(&queue.stats()),
                // Delivered but still queued: sent again later (at least once, never lost).
                Err(e) => {
                    tracing::error!(error = %e, "cannot remove delivered log records from the queue; they will be sent again")
                }
            }
        }
    }

    fn on_failure(&mut self, error: String, ctx: &mut Context<Self>) {
        LogBatchPosted { delivered: false }.emit();
        self.backoff.set_limits(FIRST_RETRY, self.interval());
        let delay = self.backoff.on_failure();
        self.retry_at = Some(Instant::now() + delay);
        self.stats.record_failure(error.clone());
        if should_log_failure(&self.backoff) {
            tracing::warn!(
                error,
                attempt = self.backoff.failures(),
                retry_in_ms = delay.as_millis() as u64,
                queued = self.queued(),
                "log batch not delivered to OIAnalytics; kept in the queue and retried"
            );
        }
        if self.stopping {
            // One final attempt only: the records stay queued for the next start.
            ctx.stop();
        }
    }

    /// During a graceful stop: post while it works, records remain and time is left; then stop.
    fn final_flush(&mut self, ctx: &mut Context<Self>) {
        let more = self.active() && self.queued() > 0 && self.retry_at.is_none();
        if more && !self.in_flight {
            self.post(ctx);
            if self.in_flight {
                return;
            }
        }
        if !self.in_flight {
            ctx.stop();
        }
    }

    fn apply_config(&mut self, config: Arc<Config>, ctx: &mut Context<Self>) {
        let old = std::mem::replace(&mut self.config, config);
        self.level.apply_configured(self.config.engine.log.oia);
        if old.oianalytics != self.config.oianalytics {
            self.rebuild_client();
            self.backoff.reset();
            self.retry_at = None;
        }
        let cap = self.config.actors.log_shipper.queue_max_bytes.0;
        if old.actors.log_shipper.queue_max_bytes.0 != cap {
            if let Some(queue) = &self.queue {
                if let Err(e) = queue.set_cap(cap) {
                    tracing::error!(error = %e, "cannot apply actors.log_shipper.queue_max_bytes");
                }
                self.stats.set_queue(&queue.stats());
            }
        }
        self.schedule(ctx);
    }

    fn summarise_drops(&mut self) {
        if let Some(new) = self.drops.take(&self.stats.snapshot()) {
            tracing::warn!(
                dropped_channel_full = new.channel_full,
                dropped_queue_cap = new.queue_cap,
                dropped_store_error = new.store_error,
                "log records were dropped before reaching OIAnalytics (see /status for totals)"
            );
        }
    }
}

impl Actor for LogShipper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The latest configuration and registration; later changes arrive as messages.
        let mut config = self.ctx.config.clone();
        self.config = config.borrow_and_update().clone();
        self.registration = self.ctx.registration.borrow().clone();
        let cap = self.config.actors.log_shipper.queue_max_bytes.0;
        match Queue::open(&self.ctx.store, Cf::Logs, QUEUE_NAME, cap) {
            Ok(queue) => {
                self.stats.set_queue(&queue.stats());
                self.queue = Some(queue);
            }
            Err(e) => {
                // The supervisor restarts us with backoff; records wait in the channel meanwhile.
                tracing::error!(error = %e, "cannot open the log queue; the log shipper stops");
                ctx.stop();
                return;
            }
        }
        self.drops = DropSummary::from(&self.stats.snapshot());
        // A reload while this actor was down (restarting) still applies.
        self.level.apply_configured(self.config.engine.log.oia);
        self.rebuild_client();
        self.refresh_remote_interval();
        registration::subscribe::<Self>(ctx, self.ctx.registration.clone());
        let settings = self.ctx.engine_settings.subscribe();
        forward_changes(ctx, settings, |_| EngineSettingsChanged);
        forward_changes(ctx, config, ConfigReloaded);
        ctx.add_stream(self.intake.chunks(INTAKE_CHUNK));
        ctx.run_interval(DROP_SUMMARY_EVERY, |act, _| act.summarise_drops());
        self.schedule(ctx);
    }
}

impl StreamHandler<Vec<Vec<u8>>> for LogShipper {
    fn handle(&mut self, records: Vec<Vec<u8>>, ctx: &mut Context<Self>) {
        self.store_records(records);
        let full = self.queued() >= self.config.actors.log_shipper.batch_max as u64;
        if (!self.in_flight && self.timer.is_none()) || full {
            self.schedule(ctx);
        }
    }

    /// The layer is gone (only at process exit or in tests): keep shipping what is queued.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<RegistrationChanged> for LogShipper {
    type Result = ();

    fn handle(&mut self, msg: RegistrationChanged, ctx: &mut Context<Self>) {
        if msg.token != self.registration.token {
            // A new token may be what the failing posts needed: try at once.
            self.backoff.reset();
            self.retry_at = None;
        }
        self.registration = msg;
        self.schedule(ctx);
    }
}

impl Handler<ConfigReloaded> for LogShipper {
    type Result = ();

    fn handle(&mut self, msg: ConfigReloaded, ctx: &mut Context<Self>) {
        self.apply_config(msg.0, ctx);
    }
}

impl Handler<EngineSettingsChanged> for LogShipper {
    type Result = ();

    /// Applied at once: a shorter interval whose end is already past posts now.
    fn handle(&mut self, _: EngineSettingsChanged, ctx: &mut Context<Self>) {
        if self.refresh_remote_interval() {
            self.schedule(ctx);
        }
    }
}

impl Handler<SetOiaLevel> for LogShipper {
    type Result = ();

    fn handle(&mut self, msg: SetOiaLevel, ctx: &mut Context<Self>) {
        self.level.set(msg.0);
        self.schedule(ctx);
    }
}

impl Handler<GetLogShipperStats> for LogShipper {
    type Result = MessageResult<GetLogShipperStats>;

    fn handle(&mut self, _: GetLogShipperStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.snapshot())
    }
}

impl Handler<Stop> for LogShipper {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.cancel_timer(ctx);
        // One final attempt even during a backoff.
        self.retry_at = None;
        // What the layer handed over so far goes to the durable queue before anything else
        // (without a queue, it stays in the channel for the next start).
        if self.queue.is_some() {
            let pending = self.intake.try_take(usize::MAX);
            self.store_records(pending);
        }
        // Bounded: whatever is not posted by then stays queued for the next start.
        ctx.run_later(FINAL_FLUSH_TIMEOUT, |_, ctx| ctx.stop());
        self.final_flush(ctx);
    }
}
