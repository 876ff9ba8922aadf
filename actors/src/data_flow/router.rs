//! The fan-out (data-plane §3 "Writing"): what a south read goes to every running north whose
//! routing accepts it, transformed per north, and is committed to all their caches in one
//! synced batch before the south may acknowledge its read (delete a file, move a cursor).
//! One fsync per read, however many norths.

use std::sync::{Arc, RwLock};

use actix::Recipient;

use super::transform::{apply, Origin, Routing, Transform};
use crate::content::{Content, ContentType};
use crate::events::{ContentCached, ContentDropped, DropReason};
use crate::north_cache::{CacheError, NorthCache, Staged};
use crate::north_connector::CacheGrew;
use crate::store::{Batch, Durability, Store};

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
        self.dispatch_with(origin, content, |_| Ok(()))
    }

    /// [`Router::dispatch`], with `extra` writes of the south's own (a history cursor) in the
    /// same synced batch: the cursor moves if and only if what it covers is cached.
    pub fn dispatch_with(
        &self,
        origin: Origin<'_>,
        content: &Content,
        extra: impl FnOnce(&mut Batch) -> crate::store::Result<()>,
    ) -> Result<Dispatched, CacheError> {
        let norths = self.snapshot();
        self.commit(norths.iter().map(Arc::as_ref), origin, content, extra)
    }

    /// Cache `content` in one north only (a setpoint command).
    pub fn dispatch_to(
        &self,
        north: &NorthRoute,
        origin: Origin<'_>,
        content: &Content,
    ) -> Result<Dispatched, CacheError> {
        self.commit(std::iter::once(north), origin, content, |_| Ok(()))
    }

    fn commit<'a>(
        &self,
        norths: impl Iterator<Item = &'a NorthRoute>,
        origin: Origin<'_>,
        content: &Content,
        extra: impl FnOnce(&mut Batch) -> crate::store::Result<()>,
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
                let (parts, failures) = apply_each(transform, part, north.accepts);
                for part in parts {
                    let s = north.cache.stage(&mut batch, &part, source)?;
                    staged.push((north, s));
                }
                for why in failures {
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
        extra(&mut batch).map_err(CacheError::from)?;
        if !batch.is_empty() {
            self.store
                .write(batch, Durability::Sync)
                .map_err(CacheError::from)?;
        }
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

/// `apply`, and when it fails on several elements (messages of an MQTT south, say), again on
/// each alone: one malformed message costs itself, not the messages received with it. What to
/// cache, and why each element that could not be transformed was dropped.
pub fn apply_each(
    transform: Option<&Transform>,
    part: Content,
    accepts: &[ContentType],
) -> (Vec<Content>, Vec<String>) {
    // Only a transformer that reads each element can fail on one of them (the others fail on
    // the content type or their options, for every element alike: one error, not one each);
    // the copy is kept for it alone.
    let can_fail = matches!(transform, Some(Transform::JsonToOianalytics(_)));
    let retry = match &part {
        Content::Elements { kind, elements } if can_fail && elements.len() > 1 => {
            Some((*kind, elements.clone()))
        }
        _ => None,
    };
    match (apply(transform, part, accepts), retry) {
        (Ok(done), _) => (done.into_iter().collect(), Vec::new()),
        (Err(why), None) => (Vec::new(), vec![why]),
        (Err(_), Some((kind, elements))) => {
            let mut parts = Vec::new();
            let mut failures = Vec::new();
            for element in elements {
                let one = Content::Elements {
                    kind,
                    elements: vec![element],
                };
                match apply(transform, one, accepts) {
                    Ok(done) => parts.extend(done),
                    Err(why) => failures.push(why),
                }
            }
            (parts, failures)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use actix::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::content::TimeValue;
    use crate::data_flow::transform::ItemIndex;
    use crate::entities::transformers::{Transformer, TransformerDefinition};
    use crate::entities::Audit;
    use crate::north_cache::{CacheOwner, CachingSettings};

    static WOKEN: AtomicUsize = AtomicUsize::new(0);

    struct Counter;
    impl Actor for Counter {
        type Context = Context<Self>;
    }
    impl Handler<CacheGrew> for Counter {
        type Result = ();
        fn handle(&mut self, _: CacheGrew, _: &mut Context<Self>) {
            WOKEN.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn north(
        store: &Store,
        id: &str,
        caching: serde_json::Value,
        entries: &[serde_json::Value],
    ) -> Arc<NorthRoute> {
        let settings = CachingSettings::from_value(&caching).unwrap();
        let ignore = Transformer {
            id: "ign".into(),
            input_type: "any".into(),
            output_type: "any".into(),
            definition: TransformerDefinition::Standard {
                function_name: "ignore".into(),
            },
            audit: Audit::new("", ""),
        };
        Arc::new(NorthRoute {
            north_id: id.into(),
            name: id.into(),
            cache: NorthCache::open(store, CacheOwner::North(id.into()), settings).unwrap(),
            accepts: &[ContentType::TimeValues],
            routing: Routing::new(entries, &[ignore]).unwrap(),
            wake: Counter.start().recipient(),
        })
    }

    fn values(n: usize) -> Content {
        Content::Values {
            kind: ContentType::TimeValues,
            values: (0..n)
                .map(|i| TimeValue {
                    point_id: format!("p{i}"),
                    timestamp: "2026-01-01T00:00:00.000Z".into(),
                    data: json!({"value": i}),
                })
                .collect(),
        }
    }

    #[actix_rt::test]
    async fn a_read_reaches_every_north_that_takes_it_in_one_commit_and_wakes_them() {
        let (_dir, store) = crate::store::temp();
        let ignored = [
            json!({"transformerId": "ign", "source": {"type": "south", "southId": "s", "items": []}}),
        ];
        let (a, b, muted) = (
            north(&store, "a", json!({}), &[]),
            north(&store, "b", json!({}), &[]),
            north(&store, "muted", json!({}), &ignored),
        );
        let router = Router::new(store.clone());
        router.set(vec![a.clone(), b.clone(), muted.clone()]);
        let items = ItemIndex::default();
        let origin = Origin::South {
            south_id: "s",
            items: &items,
        };
        let done = router.dispatch(origin, &values(3)).unwrap();
        assert_eq!(done.cached, 6);
        assert_eq!(a.cache.stats().cache_elements, 3);
        assert_eq!(b.cache.stats().cache_elements, 3);
        assert_eq!(muted.cache.stats().cache_entries, 0);
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            WOKEN.load(Ordering::SeqCst),
            2,
            "the ignoring north is not woken"
        );
        // Committed: a reopened cache sees the same content.
        drop(router);
        let reopened = NorthCache::open(
            &store,
            CacheOwner::North("a".into()),
            CachingSettings::from_value(&json!({})).unwrap(),
        )
        .unwrap();
        assert_eq!(reopened.stats().cache_elements, 3);
    }

    #[test]
    fn a_malformed_message_costs_itself_and_a_misconfigured_transformer_one_error() {
        use crate::data_flow::transform::JsonToOianalytics;
        let options = json!({"rowIteratorPath": "$[*]", "pointId": "$[*].message.p",
                             "value": "$[*].message.v", "timestamp": "$[*].timestamp"});
        let t = JsonToOianalytics::new(options.as_object().unwrap()).unwrap();
        let transform = Transform::JsonToOianalytics(Box::new(t));
        let message = |m: &str| {
            json!({"message": m, "timestamp": "2026-12-07T00:00:00.000Z",
                   "item": {"id": "i", "name": "temp", "topic": "a/+"}})
        };
        let messages = || Content::Elements {
            kind: ContentType::AnyContent,
            elements: vec![
                message(r#"{"p": "x", "v": 1}"#),
                message("{oops"),
                message(r#"{"p": "y", "v": 2}"#),
            ],
        };
        let (parts, failures) = apply_each(Some(&transform), messages(), &[]);
        assert_eq!(parts.iter().map(Content::elements).sum::<usize>(), 2);
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].contains("'temp'") && failures[0].contains("a/+"),
            "{failures:?}"
        );
        let broken = Transform::Misconfigured {
            error: "bad options".into(),
        };
        let (parts, failures) = apply_each(Some(&broken), messages(), &[]);
        assert!(parts.is_empty());
        assert_eq!(failures, ["bad options"]);
    }

    #[actix_rt::test]
    async fn a_full_cache_drops_and_counts_without_failing_the_read() {
        let (_dir, store) = crate::store::temp();
        // maxSize is in MB.
        let small = north(&store, "small", json!({"throttling": {"maxSize": 1}}), &[]);
        let router = Router::new(store.clone());
        router.set(vec![small.clone()]);
        let items = ItemIndex::default();
        let origin = || Origin::South {
            south_id: "s",
            items: &items,
        };
        // About 1.3 MB of values: accepted, and the cache is then past 1 MB.
        let first = router.dispatch(origin(), &values(20_000)).unwrap();
        assert_eq!((first.cached, first.dropped_full), (20_000, 0));
        let done = router.dispatch(origin(), &values(10)).unwrap();
        assert_eq!((done.cached, done.dropped_full), (0, 1));
        assert_eq!(small.cache.stats().dropped, 1);
    }
}
