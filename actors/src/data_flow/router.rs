//! The fan-out (data-plane §3 "Writing"): what a south read goes to every running north whose
//! routing accepts it, transformed per north, and is committed to all their caches in one
//! synced batch before the south may acknowledge its read (delete a file, move a cursor).
//! One fsync per read, however many norths.

use std::sync::{Arc, RwLock};

use actix::Recipient;

use super::transform::{apply, Origin, Routing};
use crate::content::{Content, ContentType};
use crate::events::{ContentCached, ContentDropped, DropReason};
use crate::north_cache::{CacheError, NorthCache, Staged};
use crate::north_connector::CacheGrew;
use crate::store::{Durability, Store};

/// A running north, as the fan-out sees it.
pub struct NorthRoute {
    pub north_id: String,
    pub name: String,
    pub cache: NorthCache,
    /// The content types it caches without a transformer (`supportedTypes()` in OIBus).
    pub accepts: &'static [ContentType],
    pub routing: Routing,
    /// Told after a commit that its cache grew.
    pub wake: Recipient<CacheGrew>,
}

/// What one dispatch did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Dispatched {
    /// Elements (values, messages) or files committed, summed over the norths.
    pub cached: usize,
    /// Parts dropped because a north's cache reached its `maxSize`.
    pub dropped_full: usize,
    /// Parts whose transformer cannot run here, with why (each also logged).
    pub untransformed: Vec<String>,
}

/// The running norths, swapped whole by the DataFlow when one starts or stops. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    store: Store,
    norths: Arc<RwLock<Arc<Vec<Arc<NorthRoute>>>>>,
}

impl Router {
    pub fn new(store: Store) -> Router {
        Router {
            store,
            norths: Arc::default(),
        }
    }

    pub fn set(&self, norths: Vec<Arc<NorthRoute>>) {
        // The lock guards a pointer swap; a panic cannot leave it half-written.
        *self.norths.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(norths);
    }

    fn snapshot(&self) -> Arc<Vec<Arc<NorthRoute>>> {
        self.norths
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The running north `id`.
    pub fn north(&self, id: &str) -> Option<Arc<NorthRoute>> {
        self.snapshot().iter().find(|n| n.north_id == id).cloned()
    }

    /// Cache `content` in every running north that takes it, in one synced batch, then wake
    /// them. `Err` means the batch was not written: nothing was cached and the caller must
    /// keep its content to read again.
    pub fn dispatch(
        &self,
        origin: Origin<'_>,
        content: &Content,
    ) -> Result<Dispatched, CacheError> {
        let norths = self.snapshot();
        self.commit(norths.iter().map(Arc::as_ref), origin, content)
    }

    /// Cache `content` in one north only (a setpoint command).
    pub fn dispatch_to(
        &self,
        north: &NorthRoute,
        origin: Origin<'_>,
        content: &Content,
    ) -> Result<Dispatched, CacheError> {
        self.commit(std::iter::once(north), origin, content)
    }

    fn commit<'a>(
        &self,
        norths: impl Iterator<Item = &'a NorthRoute>,
        origin: Origin<'_>,
        content: &Content,
    ) -> Result<Dispatched, CacheError> {
        let source = match origin {
            Origin::South { south_id, .. } => south_id,
            Origin::Setpoint => "oianalytics-setpoints",
        };
        let mut batch = self.store.batch();
        let mut staged: Vec<(&NorthRoute, Staged)> = Vec::new();
        let mut done = Dispatched::default();
        for north in norths {
            for (transform, part) in north.routing.partition(origin, content.clone()) {
                match apply(transform, part, north.accepts) {
                    Ok(Some(part)) => {
                        let s = north.cache.stage(&mut batch, &part, source)?;
                        staged.push((north, s));
                    }
                    Ok(None) => {}
                    Err(why) => {
                        ContentDropped {
                            north: &north.name,
                            source,
                            reason: DropReason::Transformer,
                            detail: &why,
                        }
                        .emit();
                        done.untransformed.push(why);
                    }
                }
            }
        }
        if batch.is_empty() {
            done.dropped_full = staged.iter().filter(|(_, s)| s.dropped).count();
            return Ok(done);
        }
        self.store
            .write(batch, Durability::Sync)
            .map_err(CacheError::from)?;
        let mut woken: Vec<&str> = Vec::new();
        for (north, s) in &staged {
            north.cache.committed(s);
            if s.dropped {
                done.dropped_full += 1;
                ContentDropped {
                    north: &north.name,
                    source,
                    reason: DropReason::CacheFull,
                    detail: "",
                }
                .emit();
                continue;
            }
            done.cached += s.elements.max(1);
            ContentCached {
                north: &north.name,
                count: s.elements.max(1),
            }
            .emit();
            if !woken.contains(&north.north_id.as_str()) {
                woken.push(&north.north_id);
                north.wake.do_send(CacheGrew);
            }
        }
        Ok(done)
    }
}
