//! The south actor: reads its items at each tick of their scan mode, one read per item at a
//! time, on a blocking thread (file reads and the synced cache commit must not stall the
//! engine's thread).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use serde::Serialize;

use super::driver::{commit, ReadSummary};
use super::{items_of, SouthDriver};
use crate::content::Content;
use crate::data_flow::router::Router;
use crate::data_flow::transform::ItemIndex;
use crate::entities::SouthConnector;
use crate::events::{ScanSkipped, SouthReadFinished};
use crate::supervision::Stop;

/// A scan mode fired for this south.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ScanTick {
    pub scan_mode_id: String,
}

#[derive(Debug, Message)]
#[rtype(result = "SouthStatus")]
pub struct GetSouthStatus;

#[derive(Debug, Clone, Default, Serialize)]
pub struct SouthStatus {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub south_type: String,
    pub state: &'static str,
    pub reads: u64,
    pub read_elements: u64,
    pub cached: u64,
    /// Ticks that found their item still being read (backpressure).
    pub skipped: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub last_read: Option<String>,
}

pub struct SouthConnectorActor {
    status: SouthStatus,
    south: Arc<SouthConnector>,
    items: Arc<ItemIndex>,
    driver: SouthDriver,
    router: Router,
    /// Items being read now.
    reading: HashSet<String>,
    last_skip_warning: Option<Instant>,
}

impl SouthConnectorActor {
    pub fn new(south: SouthConnector, driver: SouthDriver, router: Router) -> Self {
        let items = ItemIndex::new(
            south
                .items
                .iter()
                .map(|i| (i.name.as_str(), i.id.as_str(), i.group_id.as_deref())),
        );
        SouthConnectorActor {
            status: SouthStatus {
                id: south.id.clone(),
                name: south.name.clone(),
                south_type: south.connector_type.clone(),
                state: "running",
                ..SouthStatus::default()
            },
            south: Arc::new(south),
            items: Arc::new(items),
            driver,
            router,
            reading: HashSet::new(),
            last_skip_warning: None,
        }
    }

    /// Read `unit` (one item, or every due item of a scan mode for drivers that batch).
    fn read(&mut self, unit: String, item_ids: Vec<String>, ctx: &mut Context<Self>) {
        let fut = self.driver.clone().read(
            self.south.clone(),
            item_ids,
            self.items.clone(),
            self.router.clone(),
        );
        ctx.spawn(fut.into_actor(self).map(move |outcome, act, _| {
            act.reading.remove(&unit);
            act.finished(&unit, outcome);
        }));
    }

    fn finished(&mut self, unit: &str, outcome: Result<ReadSummary, String>) {
        SouthReadFinished {
            south: &self.status.name,
            item: unit,
            outcome: outcome.as_ref().map(|s| s.read).map_err(String::as_str),
            repeated: outcome.as_ref().err() == self.status.last_error.as_ref(),
        }
        .emit();
        match outcome {
            Ok(summary) => {
                let previous = self.status.last_error.take();
                self.status.reads += 1;
                self.status.read_elements += summary.read as u64;
                self.status.cached += summary.cached as u64;
                self.status.state = "running";
                self.status.last_error = None;
                if summary.read > 0 {
                    self.status.last_read = Some(crate::protocol::iso_now());
                }
                // Some items failed while the others were read: counted and shown all the same.
                if !summary.errors.is_empty() {
                    let error = summary.errors.join("; ");
                    if previous.as_ref() != Some(&error) {
                        tracing::warn!(south = %self.status.name, item = %unit, error = %error, "south read: some items failed");
                    }
                    self.status.errors += summary.errors.len() as u64;
                    self.status.state = "error";
                    self.status.last_error = Some(error);
                }
            }
            Err(error) => {
                self.status.errors += 1;
                self.status.state = "error";
                self.status.last_error = Some(error);
            }
        }
    }
}

impl Actor for SouthConnectorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(south = %self.status.name, r#type = %self.status.south_type, "south connector started");
        // Subscription drivers push what they receive as `Received`.
        self.driver.subscribe(
            &self.south,
            ctx.address().recipient(),
            ctx.address().recipient(),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::info!(south = %self.status.name, "south connector stopped");
    }
}

impl Handler<ScanTick> for SouthConnectorActor {
    type Result = ();
    fn handle(&mut self, tick: ScanTick, ctx: &mut Context<Self>) {
        let due: Vec<String> = items_of(&self.south, &tick.scan_mode_id)
            .map(|i| i.id.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        // A work unit is an item, or every due item of the scan mode for drivers that batch.
        let units: Vec<(String, Vec<String>)> = if self.driver.reads_per_item() {
            due.into_iter().map(|id| (id.clone(), vec![id])).collect()
        } else {
            vec![(format!("scan mode {}", tick.scan_mode_id), due)]
        };
        for (unit, item_ids) in units {
            if !self.reading.insert(unit.clone()) {
                self.status.skipped += 1;
                // Once an hour, as OIBus warns.
                let warn = self
                    .last_skip_warning
                    .is_none_or(|at| at.elapsed().as_secs() >= 3600);
                if warn {
                    self.last_skip_warning = Some(Instant::now());
                }
                ScanSkipped {
                    south: &self.status.name,
                    item: &unit,
                    warn,
                }
                .emit();
                continue;
            }
            self.read(unit, item_ids, ctx);
        }
    }
}

/// What a subscription received: committed to the caches, then acknowledged with `ack` (an
/// MQTT PUBACK, for example), so nothing is acknowledged that a crash could lose.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Received {
    pub content: Content,
    /// Told once the content is committed; never called if the commit fails.
    pub ack: Option<Box<dyn FnOnce() + Send>>,
}

impl Handler<Received> for SouthConnectorActor {
    type Result = ();
    fn handle(&mut self, received: Received, ctx: &mut Context<Self>) {
        let fut = commit(
            self.router.clone(),
            self.south.id.clone(),
            self.items.clone(),
            received.content,
        );
        let ack = received.ack;
        ctx.spawn(fut.into_actor(self).map(move |outcome, act, _| {
            if outcome.is_ok() {
                if let Some(ack) = ack {
                    ack();
                }
            }
            act.finished("subscription", outcome);
        }));
    }
}

/// A subscription driver could not receive (connection lost, a message for no item): counted
/// and shown in the status, as a failed read is.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SubscriptionFailed {
    pub error: String,
}

impl Handler<SubscriptionFailed> for SouthConnectorActor {
    type Result = ();
    fn handle(&mut self, failed: SubscriptionFailed, _: &mut Context<Self>) {
        self.finished("subscription", Err(failed.error));
    }
}

impl Handler<GetSouthStatus> for SouthConnectorActor {
    type Result = MessageResult<GetSouthStatus>;
    fn handle(&mut self, _: GetSouthStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status.clone())
    }
}

impl Handler<Stop> for SouthConnectorActor {
    type Result = ();
    /// A read in flight finishes on its thread: what it committed stays committed, and a file
    /// it had not yet acknowledged is read again after the restart.
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
