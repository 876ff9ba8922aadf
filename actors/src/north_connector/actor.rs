//! The north actor: runs its send loop on its cache, woken by the fan-out (`CacheGrew`), its
//! scan mode (`Tick`) and its own retry timers.

use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use super::{after_delivery, retry_interval, threshold_reached, AfterDelivery, NorthDriver};
use crate::backoff::Backoff;
use crate::events::{NorthSendFinished, SendResult};
use crate::north_cache::{CachingSettings, NorthCache, SendBatch};
use crate::single_flight::SingleFlight;
use crate::supervision::Stop;

const CLEANUP_EVERY: Duration = Duration::from_secs(3600);

/// The fan-out committed content to this north's cache.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct CacheGrew;

/// The north's scan mode fired: send whatever is cached.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Tick;

#[derive(Debug, Message)]
#[rtype(result = "NorthStatus")]
pub struct GetNorthStatus;

/// What `oibus-agent status` and `/status` show of a north.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NorthStatus {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub north_type: String,
    /// `running`, `retrying` or `sending`.
    pub state: &'static str,
    pub sent_batches: u64,
    pub sent_elements: u64,
    pub sent_files: u64,
    pub moved_to_error: u64,
    pub last_error: Option<String>,
    pub last_success: Option<String>,
    pub cache_entries: u64,
    pub cache_elements: u64,
    pub cache_bytes: u64,
    pub error_entries: u64,
    pub archive_entries: u64,
    pub dropped: u64,
}

pub struct NorthConnectorActor {
    status: NorthStatus,
    cache: NorthCache,
    settings: CachingSettings,
    driver: Rc<NorthDriver>,
    flight: SingleFlight,
    /// Forced retries (503, network): jittered, capped at the retry interval.
    backoff: Backoff,
    /// Counted failures of the batch at the head.
    failures: u64,
    retry_timer: Option<SpawnHandle>,
}

impl NorthConnectorActor {
    pub fn new(
        status: NorthStatus,
        cache: NorthCache,
        settings: CachingSettings,
        driver: NorthDriver,
    ) -> Self {
        let cap = retry_interval(&settings);
        NorthConnectorActor {
            status,
            cache,
            backoff: Backoff::new(Duration::from_millis(100), cap),
            settings,
            driver: Rc::new(driver),
            flight: SingleFlight::default(),
            failures: 0,
            retry_timer: None,
        }
    }

    /// Send the head of the cache unless a batch is in flight or a retry is pending.
    fn run(&mut self, ctx: &mut Context<Self>) {
        if self.retry_timer.is_some() || !self.flight.try_start() {
            return;
        }
        // The supervision test: the first north to send in this process dies here.
        static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if crate::test_hooks::failpoint_armed("north:panic-once")
            && !PANICKED.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("failpoint north:panic-once");
        }
        let batch = match self.cache.next_batch() {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                self.flight.finish();
                return;
            }
            Err(e) => {
                tracing::error!(north = %self.status.name, error = %e, "cannot read the north cache; retrying");
                self.flight.finish();
                self.retry_after(retry_interval(&self.settings), ctx);
                return;
            }
        };
        self.status.state = "sending";
        let driver = self.driver.clone();
        let started = Instant::now();
        let fut = async move {
            let delivery = driver
                .send(batch.content_type, &batch.filename, batch.body.clone())
                .await;
            (batch, delivery)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(batch, delivery), act, ctx| {
                    let decision = after_delivery(delivery, act.failures, &act.settings);
                    act.on_delivery(batch, decision, started.elapsed(), ctx);
                }),
        );
    }

    fn on_delivery(
        &mut self,
        batch: SendBatch,
        decision: AfterDelivery,
        elapsed: Duration,
        ctx: &mut Context<Self>,
    ) {
        self.flight.finish();
        let first_failure = self.status.state != "retrying";
        let name = self.status.name.clone();
        let event = |result, error: Option<&str>| {
            NorthSendFinished {
                north: &name,
                result,
                elements: batch.elements,
                elapsed,
                error,
                first_failure,
            }
            .emit()
        };
        match decision {
            AfterDelivery::Sent => {
                event(SendResult::Sent, None);
                if let Err(e) = self.cache.sent(&batch) {
                    // Sent but still cached: it will be sent again (at-least-once).
                    tracing::error!(north = %self.status.name, error = %e, "cannot remove a sent batch from the cache");
                    self.retry_after(retry_interval(&self.settings), ctx);
                    return;
                }
                self.status.sent_batches += 1;
                self.status.sent_elements += batch.elements as u64;
                if batch.elements == 0 {
                    self.status.sent_files += 1;
                }
                self.status.last_success = Some(crate::protocol::iso_now());
                self.status.state = "running";
                self.failures = 0;
                self.backoff.reset();
                self.run_if_due(ctx);
            }
            AfterDelivery::RetryForced(error) => {
                event(SendResult::Retry, Some(&error));
                let delay = self.backoff.on_failure();
                self.failed_attempt(error, delay, ctx);
            }
            AfterDelivery::RetryCounted { error, failures } => {
                event(SendResult::Failed, Some(&error));
                self.failures = failures;
                self.failed_attempt(error, retry_interval(&self.settings), ctx);
            }
            AfterDelivery::GiveUp(error) => {
                event(SendResult::MovedToError, Some(&error));
                self.failures = 0;
                match self.cache.failed(&batch, &error) {
                    Ok(()) => {
                        self.status.moved_to_error += 1;
                        self.status.last_error = Some(error);
                        self.run_if_due(ctx);
                    }
                    Err(e) => {
                        tracing::error!(north = %self.status.name, error = %e, "cannot move a batch to the error cache");
                        self.status.last_error = Some(error);
                        self.retry_after(retry_interval(&self.settings), ctx);
                    }
                }
            }
        }
    }

    fn failed_attempt(&mut self, error: String, delay: Duration, ctx: &mut Context<Self>) {
        self.status.state = "retrying";
        self.status.last_error = Some(error);
        self.retry_after(delay, ctx);
    }

    fn retry_after(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        if let Some(timer) = self.retry_timer.take() {
            ctx.cancel_future(timer);
        }
        self.retry_timer = Some(ctx.run_later(delay, |act, ctx| {
            act.retry_timer = None;
            act.run(ctx);
        }));
    }

    fn cleanup(&self) {
        match self.cache.cleanup(chrono::Utc::now()) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(north = %self.status.name, removed, "error and archive entries past their retention removed")
            }
            Err(e) => {
                tracing::warn!(north = %self.status.name, error = %e, "cannot apply the cache retention; trying again in an hour")
            }
        }
    }

    /// After a send, go on while the cache is past a threshold (OIBus runs again at once when
    /// the queue is not empty); otherwise wait for the next trigger.
    fn run_if_due(&mut self, ctx: &mut Context<Self>) {
        if threshold_reached(&self.cache.stats(), &self.settings) {
            self.run(ctx);
        }
    }
}

impl Actor for NorthConnectorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(north = %self.status.name, r#type = %self.status.north_type, "north connector started");
        self.status.state = "running";
        // OIBus's cleanup service runs hourly: the error and archive retentions.
        ctx.run_interval(CLEANUP_EVERY, |act, _| act.cleanup());
        // Whatever a previous run left cached goes out now rather than at the next scan.
        if self.cache.stats().cache_entries > 0 {
            self.run(ctx);
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::info!(north = %self.status.name, "north connector stopped");
    }
}

impl Handler<CacheGrew> for NorthConnectorActor {
    type Result = ();
    fn handle(&mut self, _: CacheGrew, ctx: &mut Context<Self>) {
        self.run_if_due(ctx);
    }
}

impl Handler<Tick> for NorthConnectorActor {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        self.run(ctx);
    }
}

impl Handler<GetNorthStatus> for NorthConnectorActor {
    type Result = MessageResult<GetNorthStatus>;
    fn handle(&mut self, _: GetNorthStatus, _: &mut Context<Self>) -> Self::Result {
        let stats = self.cache.stats();
        let mut status = self.status.clone();
        status.cache_entries = stats.cache_entries;
        status.cache_elements = stats.cache_elements;
        status.cache_bytes = stats.cache_bytes;
        status.error_entries = stats.error_entries;
        status.archive_entries = stats.archive_entries;
        status.dropped = stats.dropped;
        MessageResult(status)
    }
}

impl Handler<Stop> for NorthConnectorActor {
    type Result = ();
    /// The cache is durable as it is written; a batch in flight is sent again by the next run.
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
