use super::*;
use crate::backoff::FIRST_RETRY;

const SEC: Duration = Duration::from_secs(1);

fn state(now: Instant) -> FlushState {
    FlushState {
        active: true,
        queued: 10,
        in_flight: false,
        window_start: now,
        retry_at: None,
    }
}

#[test]
fn nothing_is_posted_while_inactive_empty_or_busy() {
    let now = Instant::now();
    let later = now + 120 * SEC;
    for st in [
        FlushState {
            active: false,
            ..state(now)
        },
        FlushState {
            queued: 0,
            ..state(now)
        },
        FlushState {
            in_flight: true,
            ..state(now)
        },
    ] {
        assert_eq!(next(&st, 500, 10 * SEC, later), Next::Idle, "{st:?}");
    }
}

#[test]
fn a_partial_batch_waits_for_the_end_of_the_interval() {
    let now = Instant::now();
    let st = state(now);
    assert_eq!(
        next(&st, 500, 10 * SEC, now),
        Next::WaitUntil(now + 10 * SEC)
    );
    assert_eq!(next(&st, 500, 10 * SEC, now + 10 * SEC), Next::Post);
}

#[test]
fn a_full_batch_is_posted_at_once() {
    let now = Instant::now();
    let st = FlushState {
        queued: 500,
        ..state(now)
    };
    assert_eq!(next(&st, 500, 10 * SEC, now), Next::Post);
}

#[test]
fn after_a_failure_even_a_full_batch_waits_for_the_backoff() {
    let now = Instant::now();
    let st = FlushState {
        queued: 5_000,
        retry_at: Some(now + 2 * SEC),
        ..state(now)
    };
    assert_eq!(
        next(&st, 500, 10 * SEC, now),
        Next::WaitUntil(now + 2 * SEC)
    );
    assert_eq!(next(&st, 500, 10 * SEC, now + 2 * SEC), Next::Post);
}

#[test]
fn the_remote_oia_interval_replaces_the_yaml_one_once_set() {
    let yaml = 200 * Duration::from_millis(1);
    // Before OIAnalytics sets the logger: the YAML key.
    assert_eq!(cadence(None, yaml, SEC), yaml);
    // Then min(interval, 60 s), 60 s for 0 (OIBus oianalytics-transport.ts).
    assert_eq!(cadence(Some(30), yaml, SEC), 30 * SEC);
    assert_eq!(cadence(Some(600), yaml, SEC), 60 * SEC);
    assert_eq!(cadence(Some(0), yaml, SEC), 60 * SEC);
    assert_eq!(cadence(Some(u64::MAX), yaml, SEC), 60 * SEC);
    // The test hook shortens a remote second.
    assert_eq!(cadence(Some(10), yaml, Duration::from_millis(100)), SEC);
}

#[test]
fn the_interval_is_capped_at_sixty_seconds_and_zero_means_sixty() {
    assert_eq!(effective_interval(10 * SEC), 10 * SEC);
    assert_eq!(effective_interval(600 * SEC), 60 * SEC);
    assert_eq!(effective_interval(Duration::ZERO), 60 * SEC);
    let now = Instant::now();
    assert_eq!(
        next(&state(now), 500, 3_600 * SEC, now),
        Next::WaitUntil(now + 60 * SEC)
    );
}

#[test]
fn only_200_201_and_204_count_as_delivered() {
    for status in [200, 201, 204] {
        assert!(is_delivered(status), "{status}");
    }
    for status in [202, 203, 206, 301, 400, 401, 404, 500, 503] {
        assert!(!is_delivered(status), "{status}");
    }
}

#[test]
fn failures_are_logged_while_the_backoff_grows_then_one_in_ten() {
    let mut b = Backoff::new(FIRST_RETRY, MAX_INTERVAL);
    let logged: Vec<u32> = (1..=40)
        .filter(|_| {
            b.on_failure();
            should_log_failure(&b)
        })
        .collect();
    // Steps 1, 2, 4, 8, 16, 32 s grow; the 7th failure reaches 60 s and is the last one logged
    // before the one-in-ten rhythm.
    assert_eq!(logged, [1, 2, 3, 4, 5, 6, 7, 10, 20, 30, 40]);
}

#[test]
fn the_filter_takes_our_events_at_the_level_and_foreign_ones_from_warn() {
    use tracing::Level;
    let info = level_code(LogLevel::Info);
    assert!(accepts(info, &Level::INFO, "oibus_actors::x"));
    assert!(accepts(info, &Level::ERROR, "oibus_actors::x"));
    assert!(!accepts(info, &Level::DEBUG, "oibus_actors::x"));
    assert!(!accepts(info, &Level::INFO, "awc::client"));
    assert!(accepts(info, &Level::WARN, "awc::client"));
    assert!(
        !accepts(0, &Level::ERROR, "oibus_actors::x"),
        "silent takes nothing"
    );
}

#[test]
fn a_reload_changes_the_level_only_when_the_configured_level_changes() {
    let h = OiaLevelHandle::new(LogLevel::Info);
    h.set(LogLevel::Debug); // e.g. update-engine-logger
    assert!(
        !h.apply_configured(LogLevel::Info),
        "same YAML level: the remote one stays"
    );
    assert_eq!(h.get(), LogLevel::Debug);
    assert!(h.apply_configured(LogLevel::Warn));
    assert_eq!(h.get(), LogLevel::Warn);
}

#[test]
fn the_level_handle_round_trips_every_level() {
    let h = OiaLevelHandle::new(LogLevel::Silent);
    assert!(h.is_silent());
    for level in LogLevel::ALL {
        h.set(level);
        assert_eq!(h.get(), level);
    }
    assert!(!h.is_silent());
}

fn record_bytes(message: &str) -> Vec<u8> {
    serde_json::to_vec(&LogRecord {
        timestamp: "2026-11-23T19:10:44.382Z".into(),
        level: "INFO".into(),
        scope_type: ScopeType::Internal,
        scope_id: None,
        scope_name: None,
        item_id: None,
        item_name: None,
        group_id: None,
        group_name: None,
        message: message.into(),
    })
    .expect("a record serialises")
}

#[test]
fn a_body_is_the_queued_records_joined_without_reencoding() {
    let items = vec![
        (7, record_bytes("first")),
        (8, record_bytes("with \"quotes\"")),
    ];
    let body = build_body(&items, &BTreeSet::new());
    assert_eq!((body.records, body.skipped, body.last_seq), (2, 0, 8));
    let mut expected = b"[".to_vec();
    expected.extend_from_slice(&items[0].1);
    expected.push(b',');
    expected.extend_from_slice(&items[1].1);
    expected.push(b']');
    assert_eq!(body.json, expected);
    let parsed: Vec<LogRecord<'_>> = serde_json::from_slice(&body.json).expect("a JSON array");
    assert_eq!(parsed[1].message, "with \"quotes\"");
}

#[test]
fn items_found_invalid_after_a_rejection_are_left_out_but_acked_with_the_batch() {
    let mut unknown_level = record_bytes("bad level");
    let at = unknown_level
        .windows(6)
        .position(|w| w == b"\"INFO\"")
        .expect("the level is in the record");
    unknown_level.splice(at..at + 6, b"\"NOTICE\"".iter().copied());
    let items = vec![
        (7, record_bytes("first")),
        (8, b"{\"timestamp\": trunc".to_vec()),
        (9, unknown_level),
        (10, record_bytes("last")),
    ];
    let body = build_body(&items, &BTreeSet::new());
    assert_eq!(
        (body.records, body.skipped),
        (3, 1),
        "not an object: left out at once"
    );
    let invalid: BTreeSet<u64> = invalid_items(&items).into_iter().collect();
    assert_eq!(invalid, BTreeSet::from([8, 9]));
    let body = build_body(&items, &invalid);
    assert_eq!((body.records, body.skipped, body.last_seq), (2, 2, 10));
    let parsed: Vec<LogRecord<'_>> = serde_json::from_slice(&body.json).expect("a JSON array");
    let messages: Vec<_> = parsed.iter().map(|r| r.message.as_ref()).collect();
    assert_eq!(messages, ["first", "last"]);
    assert!(invalid_items(&[(1, record_bytes("fine"))]).is_empty());
}

#[test]
fn drops_are_summarised_once_with_the_new_ones_only() {
    let mut stats = LogShipperStats {
        dropped_channel: 2,
        dropped_cap: 10,
        ..Default::default()
    };
    let mut summary = DropSummary::from(&stats);
    assert_eq!(summary.take(&stats), None, "old drops are not news");
    stats.dropped_channel = 5;
    stats.dropped_cap = 11;
    assert_eq!(
        summary.take(&stats),
        Some(NewDrops {
            channel_full: 3,
            queue_cap: 1,
            store_error: 0
        })
    );
    assert_eq!(summary.take(&stats), None);
}

#[test]
fn stats_are_exposed_as_prometheus_counters_and_gauges() {
    let stats = LogShipperStats {
        accepted: 9,
        dropped_channel: 1,
        dropped_cap: 2,
        skipped_corrupt: 3,
        dropped_store: 4,
        queue_len: 4,
        delivered: 5,
        ..Default::default()
    };
    assert_eq!(stats.dropped(), 10);
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(stats));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    for line in [
        "# TYPE oibus_agent_log_records_dropped counter",
        "oibus_agent_log_records_dropped_total{reason=\"channel_full\"} 1",
        "oibus_agent_log_records_dropped_total{reason=\"queue_cap\"} 2",
        "oibus_agent_log_records_delivered_total 5",
        "oibus_agent_log_queue_records 4",
        "oibus_agent_log_records_accepted_total 9",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
}
