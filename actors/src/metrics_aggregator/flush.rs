//! Folding drained counts into window documents (spec §6, done as one batch).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use chrono::{DateTime, Utc};

use super::sample::SampleHasher;
use super::{DocKey, Document, MetricsError, MinuteCount, Sample, WindowType};

/// A document's identity: its sample, window type and window start (ms), hashed with the
/// sample's precomputed hash instead of the bytes of its key.
type Identity = (Sample, WindowType, i64);

type IdentityMap<V> = HashMap<Identity, V, BuildHasherDefault<SampleHasher>>;

/// Folds `counts` into the HOURS, DAYS and MONTHS documents of their samples and returns every
/// document to write, in no particular order: the existing document plus the counts, or a
/// zero-filled one plus the counts when there is none (upsert by identity).
///
/// An existing document is taken from `cache` or, on a miss, from `stored`, called at most
/// once per document: it should return the stored document of that key, decoded with
/// [`Document::decode_stored`]. Its error aborts the flush; the caller then
/// [`restore`](super::MetricsHandle::restore)s the counts. A stored document whose identity is
/// not the key's is refused with [`MetricsError::KeyMismatch`].
pub fn flush<E: From<MetricsError>>(
    counts: &[MinuteCount],
    cache: &mut DocCache,
    mut stored: impl FnMut(&DocKey) -> Result<Option<Document>, E>,
) -> Result<Vec<(DocKey, Document)>, E> {
    let mut docs: IdentityMap<(DocKey, Document)> =
        HashMap::with_capacity_and_hasher(counts.len() * WindowType::ALL.len(), Default::default());
    for MinuteCount { sample, minute, n } in counts {
        let t = minute.start();
        for window in WindowType::ALL {
            let start = window.start(t);
            let identity = (sample.clone(), window, start.timestamp_millis());
            let (_, doc) = match docs.entry(identity) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let found = match cache.docs.remove(entry.key()) {
                        Some(cached) => cached,
                        None => {
                            let key = DocKey::new(sample, window, start);
                            let doc = match stored(&key)? {
                                Some(doc)
                                    if doc.sample() == sample
                                        && doc.window() == window
                                        && doc.start() == start =>
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
                                None => Document::zeroed(sample.clone(), window, start),
                            };
                            (key, doc)
                        }
                    };
                    entry.insert(found)
                }
            };
            // `t` lies in the window starting at `start`, so its slot is one of the keys.
            let index = doc
                .index(window.slot(t))
                .expect("a time's slot belongs to its window");
            doc.add_at_index(index, *n);
        }
    }
    Ok(docs.into_values().collect())
}

/// The documents of windows still open, kept between flushes so that updating them needs no
/// store read, no decoding and no new key. Only documents the store holds belong here:
/// [`flush`] takes what it updates, and the caller [`keep`]s what was written once the batch is
/// durable. A failed write just loses the taken entries, and the next flush reads the store
/// again.
///
/// [`keep`]: DocCache::keep
#[derive(Debug, Default)]
pub struct DocCache {
    docs: IdentityMap<(DocKey, Document)>,
}

impl DocCache {
    pub fn new() -> DocCache {
        DocCache::default()
    }

    /// Caches the documents just written whose window is still open at `now`, and drops every
    /// cached document whose window has closed.
    pub fn keep(&mut self, written: Vec<(DocKey, Document)>, now: DateTime<Utc>) {
        let open = |key: &DocKey| key.window().start(now) <= key.start();
        self.docs.retain(|_, (key, _)| open(key));
        self.docs.extend(
            written
                .into_iter()
                .filter(|(key, _)| open(key))
                .map(|(key, doc)| {
                    let identity = (
                        doc.sample().clone(),
                        doc.window(),
                        doc.start().timestamp_millis(),
                    );
                    (identity, (key, doc))
                }),
        );
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
    use super::super::{Family, ManualClock, MetricsHandle, Outcome, Source};
    use super::*;

    /// An in-memory stand-in for the `metrics` column family, holding the stored form.
    #[derive(Default)]
    struct Store(BTreeMap<Vec<u8>, Vec<u8>>);

    impl Store {
        fn flush(&mut self, counts: &[MinuteCount]) -> Vec<(DocKey, Document)> {
            let docs = flush(counts, &mut DocCache::new(), |key| {
                self.0
                    .get(key.as_bytes())
                    .map(|json| Document::decode_stored(key.as_bytes(), json).map(|(_, d)| d))
                    .transpose()
            })
            .unwrap();
            for (key, doc) in &docs {
                self.0.insert(key.as_bytes().to_vec(), doc.to_stored());
            }
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
        let result = flush(&counts, &mut DocCache::new(), |_| {
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
            flush(&handle.drain(), &mut DocCache::new(), |_| Err(err.clone())),
            Err(err)
        );
    }

    #[test]
    fn the_cache_serves_open_windows_and_forgets_closed_ones() {
        let clock = Arc::new(ManualClock::new(utc("2024-05-10T23:59:30Z")));
        let handle = MetricsHandle::with_clock(clock.clone());
        let sample = spec_sample();
        let mut cache = DocCache::new();
        let lookups = std::cell::Cell::new(0);
        let flush_now = |cache: &mut DocCache, now| {
            let docs = flush(&handle.drain(), cache, |_| {
                lookups.set(lookups.get() + 1);
                Ok::<_, MetricsError>(None)
            })
            .unwrap();
            cache.keep(docs.clone(), now);
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
            let mut store = Store::default();
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
                        store.flush(&handle.drain());
                    }
                }
            }
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
