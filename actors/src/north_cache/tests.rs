use serde_json::{json, Value};

use super::*;
use crate::content::TimeValue;

fn north(store: &Store, settings: CachingSettings) -> NorthCache {
    NorthCache::open(store, CacheOwner::North("n1".into()), settings).unwrap()
}

/// A cache of `max_elements` per batch in a temporary store.
fn open_cache(max_elements: u64) -> (tempfile::TempDir, NorthCache) {
    let (dir, store) = crate::store::temp();
    (dir, north(&store, settings(max_elements)))
}

fn settings(max_elements: u64) -> CachingSettings {
    let mut s = CachingSettings::default();
    s.throttling.max_number_of_elements = max_elements;
    s
}

/// `n` time values numbered from `from`.
fn values(from: usize, n: usize) -> Content {
    Content::Values {
        kind: ContentType::TimeValues,
        values: (from..from + n)
            .map(|i| TimeValue {
                point_id: format!("p{i}"),
                timestamp: "2026-01-01T00:00:00.000Z".into(),
                data: json!({ "value": i }),
            })
            .collect(),
    }
}

fn file(name: &str, bytes: &[u8]) -> Content {
    Content::File {
        filename: name.into(),
        bytes: Bytes::copy_from_slice(bytes),
    }
}

/// The point ids in a batch body, which must be a JSON array.
fn point_ids(batch: &SendBatch) -> Vec<String> {
    let parsed: Vec<TimeValue> = serde_json::from_slice(&batch.body).unwrap();
    parsed.into_iter().map(|v| v.point_id).collect()
}

fn names(result: &Value, area: &str) -> Vec<String> {
    result[area]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["filename"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn next_batch_merges_queued_arrays_up_to_max_elements_without_splitting_an_entry() {
    let (_d, cache) = open_cache(10);
    for (from, n) in [(0, 4), (4, 4), (8, 4), (12, 3)] {
        cache.append(&values(from, n), "south s1").unwrap();
    }
    let batch = cache.next_batch().unwrap().unwrap();
    assert_eq!(
        batch.entries(),
        2,
        "4 + 4 fits, a third entry would make 12"
    );
    assert_eq!(batch.elements, 8);
    assert_eq!(batch.content_type, ContentType::TimeValues);
    assert_eq!(
        point_ids(&batch),
        (0..8).map(|i| format!("p{i}")).collect::<Vec<_>>()
    );
    assert!(batch.filename.ends_with(".json"));
    cache.sent(&batch).unwrap();
    let batch = cache.next_batch().unwrap().unwrap();
    assert_eq!(batch.elements, 7);
    cache.sent(&batch).unwrap();
    assert!(cache.next_batch().unwrap().is_none());
}

#[test]
fn an_array_longer_than_max_elements_is_cached_as_several_entries() {
    let (_d, cache) = open_cache(10);
    let staged = cache.append(&values(0, 25), "south s1").unwrap();
    assert_eq!((staged.entries, staged.elements), (3, 25));
    assert_eq!(cache.stats().cache_entries, 3);
    assert_eq!(cache.next_batch().unwrap().unwrap().elements, 10);
}

#[test]
fn a_batch_takes_at_least_one_entry_and_stops_at_a_change_of_type() {
    let (_d, cache) = open_cache(10);
    cache.append(&values(0, 3), "s").unwrap();
    cache.append(&file("a.csv", b"x,y\n1,2\n"), "s").unwrap();
    cache.append(&file("b.csv", b"z\n"), "s").unwrap();
    cache.append(&values(3, 3), "s").unwrap();
    let first = cache.next_batch().unwrap().unwrap();
    assert_eq!(
        (first.content_type, first.elements),
        (ContentType::TimeValues, 3)
    );
    cache.sent(&first).unwrap();
    let second = cache.next_batch().unwrap().unwrap();
    assert_eq!(second.content_type, ContentType::Any);
    assert_eq!(second.entries(), 1, "files go one per batch");
    assert_eq!(second.filename, "a.csv");
    assert_eq!(&second.body[..], b"x,y\n1,2\n");
    assert_eq!(cache.stats().cache_files, 2);
}

#[test]
fn the_queue_and_its_counters_survive_a_reopen_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = Store::open(&path).unwrap();
        let cache = north(&store, settings(100));
        for i in 0..5 {
            cache.append(&values(i * 2, 2), "s").unwrap();
        }
        let batch = cache.next_batch().unwrap().unwrap();
        assert_eq!(batch.entries(), 5);
        // Not acknowledged: the batch must come back after a restart.
    }
    let store = Store::open(&path).unwrap();
    let cache = north(&store, settings(100));
    let stats = cache.stats();
    assert_eq!((stats.cache_entries, stats.cache_elements), (5, 10));
    let batch = cache.next_batch().unwrap().unwrap();
    assert_eq!(
        point_ids(&batch),
        (0..10).map(|i| format!("p{i}")).collect::<Vec<_>>()
    );
    cache.sent(&batch).unwrap();
    // New entries after the reopen follow the old ones and get new names.
    cache.append(&values(10, 1), "s").unwrap();
    let batch = cache.next_batch().unwrap().unwrap();
    assert_eq!(point_ids(&batch), vec!["p10"]);
}

#[test]
fn sent_removes_entries_or_archives_them_when_the_archive_is_enabled() {
    let (_d, store) = crate::store::temp();
    let cache = north(&store, settings(100));
    cache.append(&values(0, 2), "s").unwrap();
    let batch = cache.next_batch().unwrap().unwrap();
    cache.sent(&batch).unwrap();
    let stats = cache.stats();
    assert_eq!(
        (
            stats.cache_entries,
            stats.cache_bytes,
            stats.archive_entries
        ),
        (0, 0, 0)
    );
    assert!(
        store.scan_raw(Cf::NorthCache, b"", 10).unwrap().is_empty(),
        "nothing left behind"
    );

    let mut archiving = settings(100);
    archiving.archive.enabled = true;
    cache.set_settings(archiving);
    let staged = cache.append(&values(2, 2), "s").unwrap();
    let batch = cache.next_batch().unwrap().unwrap();
    cache.sent(&batch).unwrap();
    let stats = cache.stats();
    assert_eq!((stats.cache_entries, stats.archive_entries), (0, 1));
    assert_eq!(stats.archive_bytes, staged.bytes);
    let found = cache.search(&SearchQuery::default()).unwrap();
    assert_eq!(names(&found, "archive").len(), 1);
    assert!(cache.next_batch().unwrap().is_none());
}

#[test]
fn failed_moves_the_batch_to_the_error_area_with_the_error_text() {
    let (_d, cache) = open_cache(100);
    cache.append(&values(0, 2), "south s1").unwrap();
    cache.append(&values(2, 2), "south s1").unwrap();
    let batch = cache.next_batch().unwrap().unwrap();
    cache.failed(&batch, "Error 400: bad request").unwrap();
    let stats = cache.stats();
    assert_eq!((stats.cache_entries, stats.error_entries), (0, 2));
    assert!(cache.next_batch().unwrap().is_none());
    let found = cache.search(&SearchQuery::default()).unwrap();
    let errors = found["error"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["metadata"]["error"], "Error 400: bad request");
    assert_eq!(errors[0]["metadata"]["source"], "south s1");
    assert_eq!(errors[0]["metadata"]["numberOfElement"], 2);
    assert_eq!(errors[0]["metadata"]["contentType"], "time-values");
}

#[test]
fn content_arriving_when_the_cache_is_full_is_dropped_and_counted() {
    let (_d, store) = crate::store::temp();
    let mut s = settings(100_000);
    s.throttling.max_size = 1;
    let cache = north(&store, s);
    // Over 1 MB in one go: accepted, since the cache was not full yet.
    let first = cache.append(&values(0, 20_000), "s").unwrap();
    assert!(!first.dropped && first.bytes > 1 << 20);
    let dropped = cache.append(&values(0, 5), "s").unwrap();
    assert!(dropped.dropped);
    assert_eq!(dropped.entries, 0);
    cache.append(&values(0, 5), "s").unwrap();
    let stats = cache.stats();
    assert_eq!(
        (stats.dropped, stats.dropped_elements, stats.cache_entries),
        (2, 10, 1)
    );
    // Sent and not archived: room again.
    let batch = cache.next_batch().unwrap().unwrap();
    cache.sent(&batch).unwrap();
    assert!(!cache.append(&values(0, 5), "s").unwrap().dropped);
}

#[test]
fn cleanup_removes_error_and_archive_entries_past_their_retention() {
    let (_d, store) = crate::store::temp();
    let mut s = settings(1);
    s.archive.enabled = true;
    s.archive.retention_duration = 72;
    s.error.retention_duration = 0;
    let cache = north(&store, s.clone());
    for i in 0..3 {
        cache.append(&values(i, 1), "s").unwrap();
    }
    let b = cache.next_batch().unwrap().unwrap();
    cache.sent(&b).unwrap();
    let b = cache.next_batch().unwrap().unwrap();
    cache.failed(&b, "nope").unwrap();
    let now = Utc::now();
    assert_eq!(cache.cleanup(now).unwrap(), 0, "nothing is 72 hours old");
    let later = now + chrono::Duration::hours(73);
    assert_eq!(
        cache.cleanup(later).unwrap(),
        1,
        "the archived entry; errors are kept forever"
    );
    let stats = cache.stats();
    assert_eq!(
        (
            stats.archive_entries,
            stats.error_entries,
            stats.cache_entries
        ),
        (0, 1, 1)
    );
    s.error.retention_duration = 1;
    cache.set_settings(s);
    assert_eq!(cache.cleanup(later).unwrap(), 1);
    assert_eq!(cache.stats().error_entries, 0);
}

#[test]
fn search_filters_by_name_case_insensitively_by_creation_date_and_count() {
    let (_d, cache) = open_cache(100);
    cache.append(&file("Report-A.csv", b"a"), "s").unwrap();
    cache.append(&file("other.xml", b"b"), "s").unwrap();
    cache.append(&values(0, 1), "s").unwrap();
    let all = cache.search(&SearchQuery::default()).unwrap();
    let all_names = names(&all, "cache");
    assert_eq!(all_names.len(), 3);
    assert_eq!(all["cache"][0]["metadata"]["contentFile"], "Report-A.csv");
    assert_eq!(
        all["metrics"]["currentCacheSize"],
        cache.stats().cache_bytes
    );
    assert!(all["metrics"]["lastConnection"].is_null());
    assert!(all["searchDate"].is_string());

    let by_file: SearchQuery =
        serde_json::from_value(json!({"nameContains": "report", "maxNumberOfFilesReturned": 10}))
            .unwrap();
    assert_eq!(
        names(&cache.search(&by_file).unwrap(), "cache"),
        vec![all_names[0].clone()]
    );
    let by_name = SearchQuery {
        name_contains: Some(all_names[2].to_lowercase()),
        ..SearchQuery::default()
    };
    assert_eq!(
        names(&cache.search(&by_name).unwrap(), "cache"),
        vec![all_names[2].clone()]
    );

    let first_two = SearchQuery {
        max_number_of_files_returned: 2,
        ..SearchQuery::default()
    };
    assert_eq!(
        names(&cache.search(&first_two).unwrap(), "cache"),
        all_names[..2]
    );

    let created = all["cache"][0]["metadata"]["createdAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let future = SearchQuery {
        start: Some("2999-01-01T00:00:00.000Z".into()),
        ..SearchQuery::default()
    };
    assert!(names(&cache.search(&future).unwrap(), "cache").is_empty());
    let window = SearchQuery {
        start: Some("2020-01-01T00:00:00Z".into()),
        end: Some(created.clone()),
        ..SearchQuery::default()
    };
    assert!(names(&cache.search(&window).unwrap(), "cache").contains(&all_names[0]));
    let past = SearchQuery {
        end: Some("2020-01-01T00:00:00Z".into()),
        ..SearchQuery::default()
    };
    assert!(names(&cache.search(&past).unwrap(), "cache").is_empty());
}

#[test]
fn file_content_is_cut_at_500_kib_and_typed_by_extension() {
    let (_d, cache) = open_cache(100);
    let big = vec![b'a'; 600 * 1024];
    cache.append(&file("big.xml", &big), "s").unwrap();
    cache.append(&values(0, 1), "s").unwrap();
    let found = cache.search(&SearchQuery::default()).unwrap();
    let listed = names(&found, "cache");

    let shown = cache.file_content(Area::Cache, &listed[0]).unwrap();
    assert_eq!(shown["content"].as_str().unwrap().len(), 500 * 1024);
    assert_eq!(shown["truncated"], true);
    assert_eq!(shown["totalSize"], 600 * 1024);
    assert_eq!(shown["contentType"], "xml");
    assert_eq!(shown["contentFilename"], "big.xml");

    let json_entry = cache.file_content(Area::Cache, &listed[1]).unwrap();
    assert_eq!(json_entry["truncated"], false);
    assert_eq!(json_entry["contentType"], "json");
    assert!(json_entry["content"]
        .as_str()
        .unwrap()
        .starts_with("[{\"pointId\":\"p0\""));

    let missing = cache.file_content(Area::Error, &listed[0]).unwrap_err();
    assert!(matches!(
        missing,
        CacheError::NotFound {
            area: Area::Error,
            ..
        }
    ));
    assert!(missing.to_string().contains("error area"), "{missing}");
    assert!(cache.file_content(Area::Cache, "nonsense").is_err());
}

#[test]
fn update_removes_first_then_moves() {
    let (_d, cache) = open_cache(1);
    for i in 0..4 {
        cache.append(&values(i, 1), "s").unwrap();
    }
    let listed = names(&cache.search(&SearchQuery::default()).unwrap(), "cache");
    let batch = cache.next_batch().unwrap().unwrap();
    cache.failed(&batch, "boom").unwrap();
    cache
        .update(&json!({
            "cache": {
                "remove": [listed[1]],
                // Removed above: the move finds nothing and is skipped.
                "move": [{"filename": listed[1], "to": "archive"}, {"filename": listed[2], "to": "error"}]
            },
            "error": { "move": [{"filename": listed[0], "to": "cache"}] },
            "archive": { "remove": ["unknown00000"] }
        }))
        .unwrap();
    let after = cache.search(&SearchQuery::default()).unwrap();
    assert_eq!(
        names(&after, "cache"),
        vec![listed[0].clone(), listed[3].clone()]
    );
    assert_eq!(names(&after, "error"), vec![listed[2].clone()]);
    assert!(names(&after, "archive").is_empty());
    assert!(
        after["cache"][0]["metadata"].get("error").is_none(),
        "back in the queue, no error"
    );
    let stats = cache.stats();
    assert_eq!(
        (
            stats.cache_entries,
            stats.error_entries,
            stats.archive_entries
        ),
        (2, 1, 0)
    );
    // The entry moved back is at the head again.
    let head = cache.next_batch().unwrap().unwrap();
    assert_eq!(point_ids(&head), vec!["p0"]);

    let bad = cache
        .update(&json!({"cache": {"move": [{"filename": "x", "to": "elsewhere"}]}}))
        .unwrap_err();
    assert!(bad.to_string().contains("cache.move[0].to"), "{bad}");
}

#[test]
fn destroy_removes_every_entry_of_its_owner_only() {
    let (_d, store) = crate::store::temp();
    let a = north(&store, settings(100));
    let b = NorthCache::open(&store, CacheOwner::North("n10".into()), settings(100)).unwrap();
    let h = NorthCache::open(&store, CacheOwner::History("n1".into()), settings(100)).unwrap();
    for cache in [&a, &b, &h] {
        cache.append(&values(0, 2), "s").unwrap();
    }
    let batch = a.next_batch().unwrap().unwrap();
    a.failed(&batch, "x").unwrap();
    a.append(&values(2, 2), "s").unwrap();
    let old = a.search(&SearchQuery::default()).unwrap();
    let old_names = [names(&old, "cache"), names(&old, "error")].concat();
    NorthCache::destroy(&store, a.owner()).unwrap();
    let reopened = north(&store, settings(100));
    assert_eq!(reopened.stats(), CacheStats::default());
    assert!(reopened.next_batch().unwrap().is_none());
    reopened.append(&values(0, 1), "s").unwrap();
    let fresh = names(&reopened.search(&SearchQuery::default()).unwrap(), "cache");
    assert!(
        !old_names.contains(&fresh[0]),
        "an emptied cache does not reuse names"
    );
    assert_eq!(b.next_batch().unwrap().unwrap().elements, 2);
    assert_eq!(h.next_batch().unwrap().unwrap().elements, 2);
}

#[test]
fn a_corrupt_record_is_quarantined_rather_than_failing_the_queue() {
    let (_d, store) = crate::store::temp();
    let cache = north(&store, settings(100));
    for i in 0..3 {
        cache.append(&values(i, 1), "s").unwrap();
    }
    let prefix = keys::owner_prefix(cache.owner());
    let seqs: Vec<u64> = names(&cache.search(&SearchQuery::default()).unwrap(), "cache")
        .iter()
        .map(|name| keys::seq_of_name(name).unwrap())
        .collect();
    // Metadata of the first entry and content of the second are damaged.
    let mut damage = store.batch();
    damage.put_raw(
        Cf::NorthCache,
        &keys::meta_key(&prefix, Area::Cache, seqs[0]),
        b"{not json",
    );
    damage.put_raw(
        Cf::NorthCache,
        &keys::content_key(&prefix, seqs[1]),
        b"garbage",
    );
    store.write(damage, Durability::Sync).unwrap();
    let before = store.quarantined();
    let reopened = north(&store, settings(100));
    assert_eq!(
        reopened.stats().cache_entries,
        2,
        "the bad metadata is not counted"
    );
    let batch = reopened.next_batch().unwrap().unwrap();
    assert_eq!(point_ids(&batch), vec!["p2"]);
    assert_eq!(reopened.stats().cache_entries, 1);
    assert_eq!(
        store.quarantined(),
        before + 4,
        "both parts of both entries"
    );
}

#[test]
fn settings_default_to_the_oibus_ui_values() {
    let defaults = CachingSettings::from_value(&json!({})).unwrap();
    assert_eq!(defaults, CachingSettings::default());
    assert_eq!(CachingSettings::from_value(&Value::Null).unwrap(), defaults);
    assert_eq!(defaults.trigger.scan_mode_id, None);
    assert_eq!(
        (
            defaults.trigger.number_of_elements,
            defaults.trigger.number_of_files
        ),
        (1000, 1)
    );
    let t = &defaults.throttling;
    assert_eq!(
        (t.run_min_delay, t.max_size, t.max_number_of_elements),
        (200, 0, 10_000)
    );
    let e = &defaults.error;
    assert_eq!(
        (e.retry_interval, e.retry_count, e.retention_duration),
        (5000, 3, 0)
    );
    assert_eq!(
        (
            defaults.archive.enabled,
            defaults.archive.retention_duration
        ),
        (false, 72)
    );

    let stored = CachingSettings::from_value(&json!({
        "trigger": {"scanModeId": "sm1", "numberOfElements": 5, "numberOfFiles": null},
        "throttling": {"maxSize": 10},
        "archive": {"enabled": true}
    }))
    .unwrap();
    assert_eq!(stored.trigger.scan_mode_id.as_deref(), Some("sm1"));
    assert_eq!(stored.trigger.number_of_files, 1);
    assert_eq!(stored.max_size_bytes(), Some(10 << 20));
    assert!(stored.archive.enabled);
    assert_eq!(stored.throttling.max_number_of_elements, 10_000);
}

#[test]
fn a_bad_settings_field_is_named_in_the_error() {
    let err = CachingSettings::from_value(&json!({"throttling": {"maxSize": "big"}})).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("throttling.maxSize"), "{text}");
    assert!(text.contains("caching"), "{text}");
}

#[test]
fn byte_wise_merge_joins_arrays_and_skips_empty_ones() {
    let parts = vec![b"[1,2]".to_vec(), b" [ ] ".to_vec(), b"[ 3 ]\n".to_vec()];
    assert_eq!(&merge_arrays(&parts)[..], b"[1,2,3]");
    assert_eq!(array_inner(b"{}"), None);
}

#[test]
fn a_store_created_before_the_north_cache_existed_opens_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        rocksdb::DB::open_cf(&opts, &path, ["commands", "state"]).unwrap();
    }
    let store = Store::open(&path).unwrap();
    let cache = north(&store, settings(100));
    cache.append(&values(0, 1), "s").unwrap();
    assert_eq!(cache.next_batch().unwrap().unwrap().elements, 1);
}
