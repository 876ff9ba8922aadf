//! Folding drained counts into window documents (spec §6, done as one batch).
//!
//! The documents of open windows stay in a [`DocCache`] between flushes, and a flush adds its
//! counts to them in place: one hash lookup per count and window, no store read, no decoding
//! and no new allocation in the steady state.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use chrono::{DateTime, Utc};

use super::sample::SampleHasher;
use super::window::Minute;
use super::{DocKey, Document, MetricsError, MinuteCount, Sample, WindowType};

/// A document's identity: its sample, window type and window start (ms), hashed with the
/// sample's precomputed hash instead of the bytes of its key.
type Identity = (Sample, WindowType, i64);

type IdentityMap<V> = HashMap<Identity, V, BuildHasherDefault<SampleHasher>>;

/// The documents a flush folds counts into, kept between flushes while their window is open so
/// that updating them needs no store read, no decoding and no new key.
///
/// A flush is [`fold`](DocCache::fold), then a write of [`changed`](DocCache::changed), then
/// [`written`](DocCache::written) once the batch is durable. A failed fold empties the cache
/// itself; after a failed write the caller [`forget`](DocCache::forget)s it. Either way the
/// cache may hold counts the store does not, and the next flush reads the store again.
#[derive(Debug, Default)]
pub struct DocCache {
    index: IdentityMap<usize>,
    docs: Vec<Cached>,
    /// Indices into `docs` of what the last fold changed, ascending.
    changed: Vec<usize>,
    /// Whether `docs` is in key order.
    sorted: bool,
}

#[derive(Debug)]
struct Cached {
    key: DocKey,
    doc: Document,
    changed: bool,
}

/// Where a minute's counts land in each window type: the window start and the slot's index.
#[derive(Clone, Copy)]
struct Placement {
    start: DateTime<Utc>,
    start_ms: i64,
    index: usize,
}

fn placements(minute: Minute) -> [Placement; 3] {
    let t = minute.start();
    WindowType::ALL.map(|window| {
        let start = window.start(t);
        Placement {
            start,
            start_ms: start.timestamp_millis(),
            index: window.slot_index(t),
        }
    })
}

impl DocCache {
    pub fn new() -> DocCache {
        DocCache::default()
    }

    /// Adds `counts` to the HOURS, DAYS and MONTHS documents of their samples. A document not
    /// cached is taken from `stored` (called at most once per document, it should return the
    /// stored document of that key, decoded with [`Document::decode_stored`]) or, when there is
    /// none, created zero-filled (upsert by identity). Returns how many documents changed.
    ///
    /// An error from `stored` aborts the fold and empties the cache, since part of the counts
    /// may already be in it; the caller then [`restore`](super::MetricsHandle::restore)s the
    /// counts. A stored document whose identity is not the key's is refused with
    /// [`MetricsError::KeyMismatch`].
    pub fn fold<E: From<MetricsError>>(
        &mut self,
        counts: &[MinuteCount],
        mut stored: impl FnMut(&DocKey) -> Result<Option<Document>, E>,
    ) -> Result<usize, E> {
        // Counts come per sample and minute, over a handful of minutes: place each minute once.
        let mut placed: Vec<(Minute, [Placement; 3])> = Vec::new();
        for MinuteCount { sample, minute, n } in counts {
            let places = match placed.iter().find(|(m, _)| m == minute) {
                Some((_, places)) => *places,
                None => {
                    placed.push((*minute, placements(*minute)));
                    placed[placed.len() - 1].1
                }
            };
            for (window, place) in WindowType::ALL.into_iter().zip(places) {
                let at = match self.position(sample, window, place, &mut stored) {
                    Ok(at) => at,
                    Err(e) => {
                        self.forget();
                        return Err(e);
                    }
                };
                let cached = &mut self.docs[at];
                cached.doc.add_at_index(place.index, *n);
                cached.changed = true;
            }
        }
        if !self.sorted {
            self.reindex();
        }
        self.changed.clear();
        self.changed
            .extend((self.docs.iter().enumerate()).filter_map(|(at, c)| c.changed.then_some(at)));
        Ok(self.changed.len())
    }

    /// Sorts the documents by key and indexes them again, after a fold added some: RocksDB
    /// inserts a batch whose keys ascend several times faster (its memtable reuses the previous
    /// insert's search path), and the documents stay in that order until the next addition.
    fn reindex(&mut self) {
        self.docs
            .sort_unstable_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        self.sorted = true;
        self.index.clear();
        for (at, cached) in self.docs.iter().enumerate() {
            let doc = &cached.doc;
            let identity = (
                doc.sample().clone(),
                doc.window(),
                doc.start().timestamp_millis(),
            );
            self.index.insert(identity, at);
        }
    }

    /// The position in `docs` of the document of `sample` in the `window` at `place`, read from
    /// `stored` or created when it is not cached yet.
    fn position<E: From<MetricsError>>(
        &mut self,
        sample: &Sample,
        window: WindowType,
        place: Placement,
        stored: &mut impl FnMut(&DocKey) -> Result<Option<Document>, E>,
    ) -> Result<usize, E> {
        let identity = (sample.clone(), window, place.start_ms);
        if let Some(&at) = self.index.get(&identity) {
            return Ok(at);
        }
        let key = DocKey::new(sample, window, place.start);
        let doc = match stored(&key)? {
            Some(doc)
                if doc.sample() == sample
                    && doc.window() == window
                    && doc.start() == place.start =>
            {
                doc
            }
            Some(doc) => {
                return Err(MetricsError::KeyMismatch {
                    key: key.to_string(),
                    found: doc.key().to_string(),
                }
                .into())
            }
            None => Document::zeroed(sample.clone(), window, place.start),
        };
        let at = self.docs.len();
        self.sorted = false;
        self.docs.push(Cached {
            key,
            doc,
            changed: false,
        });
        self.index.insert(identity, at);
        Ok(at)
    }

    /// The documents changed since they were last [`written`](DocCache::written), in key order.
    pub fn changed(&self) -> impl Iterator<Item = (&DocKey, &Document)> + '_ {
        self.changed.iter().map(|&at| {
            let cached = &self.docs[at];
            (&cached.key, &cached.doc)
        })
    }

    /// The changed documents are durable: keeps those whose window is still open at `now`,
    /// drops every document whose window has closed.
    pub fn written(&mut self, now: DateTime<Utc>) {
        for at in self.changed.drain(..) {
            self.docs[at].changed = false;
        }
        let open_from = WindowType::ALL.map(|window| window.start(now));
        // `WindowType::ALL` is in declaration order.
        let open = |key: &DocKey| open_from[key.window() as usize] <= key.start();
        if self.docs.iter().all(|cached| open(&cached.key)) {
            return;
        }
        self.docs.retain(|cached| open(&cached.key));
        self.reindex();
    }

    /// Drops everything: after a failed fold or write the cache may hold counts the store does not.
    pub fn forget(&mut self) {
        *self = DocCache::default();
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    use chrono::TimeDelta;
    use proptest::prelude::*;

    use super::super::window::utc;
    use super::super::{Clock, Family, ManualClock, MetricsHandle, Outcome, Source};
    use super::*;

    /// An in-memory stand-in for the `metrics` column family, holding the stored form, and the
    /// cache a metrics aggregator would keep in front of it.
    #[derive(Default)]
    struct Store(BTreeMap<Vec<u8>, Vec<u8>>, DocCache);

    /// One fold into `cache`, returning copies of the documents it changed.
    fn fold<E: From<MetricsError>>(
        counts: &[MinuteCount],
        cache: &mut DocCache,
        stored: impl FnMut(&DocKey) -> Result<Option<Document>, E>,
    ) -> Result<Vec<(DocKey, Document)>, E> {
        cache.fold(counts, stored)?;
        Ok(cache
            .changed()
            .map(|(key, doc)| (key.clone(), doc.clone()))
            .collect())
    }

    impl Store {
        /// A flush with an empty cache: every document is read from the store.
        fn flush(&mut self, counts: &[MinuteCount]) -> Vec<(DocKey, Document)> {
            self.1.forget();
            self.flush_cached(counts, None)
        }

        /// A flush through the kept cache, told at `now` that its documents were written.
        fn flush_cached(
            &mut self,
            counts: &[MinuteCount],
            now: Option<DateTime<Utc>>,
        ) -> Vec<(DocKey, Document)> {
            let Store(stored, cache) = self;
            let docs = fold(counts, cache, |key| {
                stored
                    .get(key.as_bytes())
                    .map(|json| Document::decode_stored(key.as_bytes(), json).map(|(_, d)| d))
                    .transpose()
            })
            .unwrap();
            for (key, doc) in &docs {
                stored.insert(key.as_bytes().to_vec(), doc.to_stored());
            }
            cache.written(now.unwrap_or_default());
            docs
        }

        fn docs(&self) -> Vec<Document> {
            self.0
                .iter()
                .map(|(k, v)| Document::decode_stored(k, v).unwrap().1)
                .collect()
        }
    }

    // The three documents of spec §4's example, every slot written out.
    const HOURS_DOC: &str = concat!(
        r#"{"TimeSerie":{"values":{"v":{"#,
        r#""0":0,"1":0,"2":0,"3":0,"4":0,"5":0,"6":0,"7":0,"8":0,"9":0,"10":0,"11":0,"#,
        r#""12":0,"13":0,"14":0,"15":0,"16":0,"17":0,"18":0,"19":0,"20":0,"21":0,"22":3,"23":0,"#,
        r#""24":0,"25":0,"26":0,"27":0,"28":0,"29":0,"30":0,"31":0,"32":0,"33":0,"34":0,"35":0,"#,
        r#""36":0,"37":0,"38":0,"39":0,"40":0,"41":0,"42":0,"43":0,"44":0,"45":0,"46":0,"47":0,"#,
        r#""48":0,"49":0,"50":0,"51":0,"52":0,"53":0,"54":0,"55":0,"56":0,"57":0,"58":0,"59":0"#,
        r#"}},"result":"OK","user":"edge01","operationType":"INSERT","source":"IOTBROKER","#,
        r#""timestamp":{"$date":"2024-05-10T14:00:00.000Z"},"propertyName":"value","#,
        r#""windowType":"HOURS","windowFrecuency":1,"windowFrecuencyUnit":"MINUTES"}}"#,
    );

    const DAYS_DOC: &str = concat!(
        r#"{"TimeSerie":{"values":{"v":{"#,
        r#""0":0,"1":0,"2":0,"3":0,"4":0,"5":0,"6":0,"7":0,"8":0,"9":0,"10":0,"11":0,"#,
        r#""12":0,"13":0,"14":3,"15":0,"16":0,"17":0,"18":0,"19":0,"20":0,"21":0,"22":0,"23":0"#,
        r#"}},"result":"OK","user":"edge01","operationType":"INSERT","source":"IOTBROKER","#,
        r#""timestamp":{"$date":"2024-05-10T00:00:00.000Z"},"propertyName":"value","#,
        r#""windowType":"DAYS","windowFrecuency":1,"windowFrecuencyUnit":"HOURS"}}"#,
    );

    const MONTHS_DOC: &str = concat!(
        r#"{"TimeSerie":{"values":{"v":{"#,
        r#""1":0,"2":0,"3":0,"4":0,"5":0,"6":0,"7":0,"8":0,"9":0,"10":3,"11":0,"12":0,"#,
        r#""13":0,"14":0,"15":0,"16":0,"17":0,"18":0,"19":0,"20":0,"21":0,"22":0,"23":0,"24":0,"#,
        r#""25":0,"26":0,"27":0,"28":0,"29":0,"30":0,"31":0"#,
        r#"}},"result":"OK","user":"edge01","operationType":"INSERT","source":"IOTBROKER","#,
        r#""timestamp":{"$date":"2024-05-01T00:00:00.000Z"},"propertyName":"value","#,
        r#""windowType":"MONTHS","windowFrecuency":1,"windowFrecuencyUnit":"DAYS"}}"#,
    );

    fn spec_sample() -> Sample {
        Sample::from_tags(
            Family::Operation,
            [
                ("result", "OK"),
                ("user", "edge01"),
                ("operationType", "INSERT"),
                ("source", "IOTBROKER"),
            ],
        )
        .unwrap()
    }

    #[test]
    fn three_inserts_at_14_22_give_the_three_documents_of_the_spec() {
        let clock = Arc::new(ManualClock::new(utc("2024-05-10T14:22:05Z")));
        let handle = MetricsHandle::with_clock(clock.clone());
        let sample = spec_sample();
        for _ in 0..3 {
            handle.count(&sample);
            clock.advance(TimeDelta::seconds(15));
        }
        let mut docs = Store::default().flush(&handle.drain());
        docs.sort_by_key(|(key, _)| key.window());
        let json: Vec<String> = docs
            .iter()
            .map(|(_, d)| String::from_utf8(d.to_json()).unwrap())
            .collect();
        assert_eq!(json, [HOURS_DOC, DAYS_DOC, MONTHS_DOC]);
    }

    #[test]
    fn two_flushes_into_the_same_windows_add_up() {
        let clock = Arc::new(ManualClock::new(utc("2024-05-10T14:22:00Z")));
        let handle = MetricsHandle::with_clock(clock.clone());
        let sample = Sample::operation(Source::MessageSender, "SEND", Outcome::Ok, "edge01");
        let mut store = Store::default();
        handle.count_n(&sample, 2);
        store.flush(&handle.drain());
        handle.count_n(&sample, 5);
        clock.advance(TimeDelta::minutes(1));
        handle.count(&sample);
        let second = store.flush(&handle.drain());
        assert_eq!(second.len(), 3, "one document per window, updated in place");
        let docs = store.docs();
        assert_eq!(docs.len(), 3);
        let hours = docs
            .iter()
            .find(|d| d.window() == WindowType::Hours)
            .unwrap();
        assert_eq!(
            (hours.get(22), hours.get(23), hours.total()),
            (Some(7), Some(1), 8)
        );
        let days = docs
            .iter()
            .find(|d| d.window() == WindowType::Days)
            .unwrap();
        assert_eq!((days.get(14), days.total()), (Some(8), 8));
        let months = docs
            .iter()
            .find(|d| d.window() == WindowType::Months)
            .unwrap();
        assert_eq!((months.get(10), months.total()), (Some(8), 8));
    }

    #[test]
    fn counts_across_an_hour_boundary_open_a_second_hour_document() {
        let clock = Arc::new(ManualClock::new(utc("2024-02-29T23:59:59.999Z")));
        let handle = MetricsHandle::with_clock(clock.clone());
        let sample = Sample::control_panel("LOGIN", Outcome::Ok, "ops");
        handle.count(&sample);
        clock.advance(TimeDelta::milliseconds(1));
        handle.count(&sample);
        let docs = Store::default().flush(&handle.drain());
        // Crossing midnight of 29 Feb also crosses day and month.
        assert_eq!(docs.len(), 6);
        let starts: Vec<_> = docs.iter().map(|(k, _)| (k.window(), k.start())).collect();
        assert!(starts.contains(&(WindowType::Hours, utc("2024-02-29T23:00:00Z"))));
        assert!(starts.contains(&(WindowType::Months, utc("2024-03-01T00:00:00Z"))));
        let feb = docs
            .iter()
            .find(|(k, _)| k.start() == utc("2024-02-01T00:00:00Z"))
            .unwrap();
        assert_eq!((feb.1.get(29), feb.1.slots().count()), (Some(1), 29));
    }

    #[test]
    fn a_lookup_returning_another_document_is_refused() {
        let clock = Arc::new(ManualClock::new(utc("2024-05-10T14:22:00Z")));
        let handle = MetricsHandle::with_clock(clock);
        let sample = spec_sample();
        handle.count(&sample);
        let counts = handle.drain();
        let wrong = Document::zeroed(sample, WindowType::Hours, utc("2024-05-10T09:00:00Z"));
        let result = fold(&counts, &mut DocCache::new(), |_| {
            Ok::<_, MetricsError>(Some(wrong.clone()))
        });
        assert!(matches!(result, Err(MetricsError::KeyMismatch { .. })));
    }

    #[test]
    fn a_failing_lookup_aborts_the_flush() {
        let handle =
            MetricsHandle::with_clock(Arc::new(ManualClock::new(utc("2024-05-10T14:22:00Z"))));
        handle.count(&spec_sample());
        let err = MetricsError::UnknownFamily("io".into());
        assert_eq!(
            fold(&handle.drain(), &mut DocCache::new(), |_| Err(err.clone())),
            Err(err)
        );
    }

    #[test]
    fn a_failed_lookup_empties_the_cache_so_restored_counts_are_not_added_twice() {
        let now = utc("2024-05-10T14:22:00Z");
        let handle = MetricsHandle::with_clock(Arc::new(ManualClock::new(now)));
        let (cached, uncached) = (
            spec_sample(),
            Sample::control_panel("LOGIN", Outcome::Ok, "ops"),
        );
        let mut cache = DocCache::new();
        handle.count(&cached);
        fold(&handle.drain(), &mut cache, |_| Ok::<_, MetricsError>(None)).unwrap();
        cache.written(now);
        assert_eq!(cache.len(), 3);
        handle.count(&cached);
        handle.count(&uncached);
        let err = MetricsError::UnknownFamily("io".into());
        assert_eq!(
            fold(&handle.drain(), &mut cache, |_| Err(err.clone())),
            Err(err)
        );
        assert!(cache.is_empty(), "the next flush reads the store again");
    }

    #[test]
    fn the_cache_serves_open_windows_and_forgets_closed_ones() {
        let clock = Arc::new(ManualClock::new(utc("2024-05-10T23:59:30Z")));
        let handle = MetricsHandle::with_clock(clock.clone());
        let sample = spec_sample();
        let mut cache = DocCache::new();
        let lookups = std::cell::Cell::new(0);
        let flush_now = |cache: &mut DocCache, now| {
            let docs = fold(&handle.drain(), cache, |_| {
                lookups.set(lookups.get() + 1);
                Ok::<_, MetricsError>(None)
            })
            .unwrap();
            cache.written(now);
            docs
        };
        handle.count_n(&sample, 2);
        flush_now(&mut cache, utc("2024-05-10T23:59:40Z"));
        assert_eq!((cache.len(), lookups.get()), (3, 3));
        handle.count(&sample);
        let docs = flush_now(&mut cache, utc("2024-05-11T00:00:05Z"));
        assert_eq!(
            lookups.get(),
            3,
            "the second flush found all three in the cache"
        );
        assert_eq!(
            docs.iter().map(|(_, d)| d.total()).collect::<Vec<_>>(),
            [3, 3, 3]
        );
        // Hour and day closed at midnight; May is still open.
        assert_eq!(cache.len(), 1);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Count { sample: usize, at_ms: i64, n: u64 },
        Flush,
    }

    fn op() -> impl Strategy<Value = Op> {
        // 2024-01-30 .. 2024-03-02: month ends, the leap day, many hour and day boundaries.
        let span = 32 * 24 * 3_600_000i64;
        prop_oneof![
            4 => (0..3usize, 0..span, 1..4u64).prop_map(|(sample, at_ms, n)| Op::Count { sample, at_ms, n }),
            1 => Just(Op::Flush),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_counts_flushed_at_any_moments_equal_a_naive_model(ops in prop::collection::vec(op(), 0..40)) {
            let base = utc("2024-01-30T00:00:00Z");
            let samples = [
                spec_sample(),
                Sample::api("/api/oianalytics/oibus/status", "PUT", "200", "edge01"),
                Sample::ontology(super::super::Entity::ScanMode, super::super::Change::Delete, Outcome::Ko, "oia", Source::CommandExecutor),
            ];
            let clock = Arc::new(ManualClock::new(base));
            let handle = MetricsHandle::with_clock(clock.clone());
            let (mut store, mut cached) = (Store::default(), Store::default());
            let mut model: HashMap<DocKey, BTreeMap<u32, u64>> = HashMap::new();
            for op in ops.into_iter().chain([Op::Flush]) {
                match op {
                    Op::Count { sample, at_ms, n } => {
                        let t = base + TimeDelta::milliseconds(at_ms);
                        clock.set(t);
                        handle.count_n(&samples[sample], n);
                        for window in WindowType::ALL {
                            let key = DocKey::new(&samples[sample], window, t);
                            *model.entry(key).or_default().entry(window.slot(t)).or_default() += n;
                        }
                    }
                    Op::Flush => {
                        let counts = handle.drain();
                        store.flush(&counts);
                        cached.flush_cached(&counts, Some(clock.now()));
                    }
                }
            }
            prop_assert_eq!(cached.docs(), store.docs(), "the cache changes nothing");
            let docs = store.docs();
            prop_assert_eq!(docs.len(), model.len());
            for doc in docs {
                let expected = model.get(&doc.key()).expect("every stored document is in the model");
                prop_assert_eq!(doc.slots().count(), doc.window().slot_count(doc.start()));
                for (slot, value) in doc.slots() {
                    prop_assert_eq!(value, expected.get(&slot).copied().unwrap_or(0), "{:?} slot {}", doc.key(), slot);
                }
            }
        }
    }
}
