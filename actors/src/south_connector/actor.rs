//! The south actor: reads its items at each tick of their scan mode, one read per item at a
//! time, on a blocking thread (file reads and the synced cache commit must not stall the
//! engine's thread).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use serde::Serialize;

use super::{items_of, SouthDriver};
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

    fn read(&mut self, item_id: String, ctx: &mut Context<Self>) {
        let (south, items, driver, router) = (
            self.south.clone(),
            self.items.clone(),
            self.driver.clone(),
            self.router.clone(),
        );
        let id = item_id.clone();
        let fut = actix_rt::task::spawn_blocking(move || {
            let item = south.items.iter().find(|i| i.id == id);
            match item {
                Some(item) => driver.read_blocking(&south.id, item, &items, &router),
                None => Ok(Default::default()),
            }
        });
        ctx.spawn(fut.into_actor(self).map(move |joined, act, _| {
            act.reading.remove(&item_id);
            let outcome = joined.unwrap_or_else(|e| Err(format!("the read panicked: {e}")));
            SouthReadFinished {
                south: &act.status.name,
                item: &item_id,
                outcome: outcome.as_ref().map(|s| s.read).map_err(String::as_str),
                repeated: outcome.as_ref().err() == act.status.last_error.as_ref(),
            }
            .emit();
            match outcome {
                Ok(summary) => {
                    act.status.reads += 1;
                    act.status.read_elements += summary.read as u64;
                    act.status.cached += summary.cached as u64;
                    act.status.state = "running";
                    act.status.last_error = None;
                    if summary.read > 0 {
                        act.status.last_read = Some(crate::protocol::iso_now());
                    }
                }
                Err(error) => {
                    act.status.errors += 1;
                    act.status.state = "error";
                    act.status.last_error = Some(error);
                }
            }
        }));
    }
}

impl Actor for SouthConnectorActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        tracing::info!(south = %self.status.name, r#type = %self.status.south_type, "south connector started");
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
        for item_id in due {
            if !self.reading.insert(item_id.clone()) {
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
                    item: &item_id,
                    warn,
                }
                .emit();
                continue;
            }
            self.read(item_id, ctx);
        }
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
