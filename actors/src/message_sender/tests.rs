use super::*;
use crate::messages::ConfigKind::{FullConfig, HistoryQueries};

const T0: &str = "2026-11-23T19:10:00.000Z";
const T1: &str = "2026-11-23T19:10:01.000Z";

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

/// An outbox in a fresh store, `requests` made at `T0`.
fn outbox(requests: &[ConfigKind]) -> (tempfile::TempDir, Outbox) {
    let (dir, store) = store();
    let mut outbox = Outbox::open(store).unwrap();
    for kind in requests {
        outbox.request(*kind, T0).unwrap();
    }
    (dir, outbox)
}

fn kinds(outbox: &Outbox) -> Vec<ConfigKind> {
    outbox.pending().map(|r| r.kind).collect()
}

fn status(status: u16, body: &str) -> Result<u16, ClientError> {
    Err(ClientError::Status {
        status,
        body: body.to_owned(),
    })
}

#[test]
fn a_second_request_of_a_kind_is_coalesced_into_the_pending_one() {
    let (_dir, mut outbox) = outbox(&[]);
    assert_eq!(
        outbox.request(FullConfig, T0).unwrap(),
        Request::Queued { seq: 0 }
    );
    assert_eq!(
        outbox.request(HistoryQueries, T0).unwrap(),
        Request::Queued { seq: 1 }
    );
    for _ in 0..10 {
        assert_eq!(outbox.request(FullConfig, T1).unwrap(), Request::Coalesced);
    }
    assert_eq!(kinds(&outbox), [FullConfig, HistoryQueries]);
}

#[test]
fn pending_messages_survive_a_restart_in_fifo_order() {
    let (_dir, store) = store();
    let mut outbox = Outbox::open(store.clone()).unwrap();
    outbox.request(HistoryQueries, T0).unwrap();
    outbox.request(FullConfig, T0).unwrap();
    let in_flight = outbox.begin().unwrap();
    assert_eq!(in_flight.kind, HistoryQueries);
    drop(outbox); // a crash mid-send: the message is still PENDING

    let mut reopened = Outbox::open(store).unwrap();
    assert_eq!(kinds(&reopened), [HistoryQueries, FullConfig]);
    assert!(reopened
        .pending()
        .all(|r| r.status == MessageStatus::Pending && r.created_at == T0));
    assert_eq!(
        reopened.request(FullConfig, T1).unwrap(),
        Request::Coalesced,
        "the boot request joins the message left pending"
    );
    assert_eq!(reopened.begin().unwrap().seq, in_flight.seq);
}

#[test]
fn one_message_is_in_flight_at_a_time() {
    let (_dir, mut outbox) = outbox(&[]);
    assert!(outbox.begin().is_none(), "nothing pending");
    outbox.request(FullConfig, T0).unwrap();
    outbox.request(HistoryQueries, T0).unwrap();
    assert_eq!(outbox.begin().unwrap().kind, FullConfig);
    assert!(outbox.begin().is_none(), "the head is in flight");
    outbox.finish(&Outcome::Delivered, T1).unwrap();
    assert_eq!(outbox.begin().unwrap().kind, HistoryQueries);
}

#[test]
fn a_delivered_message_is_completed_and_removed() {
    let (_dir, store) = store();
    let mut outbox = Outbox::open(store.clone()).unwrap();
    outbox.request(FullConfig, T0).unwrap();
    outbox.begin().unwrap();
    let ended = outbox.finish(&Outcome::Delivered, T1).unwrap().unwrap();
    assert_eq!(ended.status, MessageStatus::Completed);
    assert_eq!(ended.updated_at, T1);
    assert_eq!(outbox.pending().count(), 0);
    assert_eq!(outbox.last(FullConfig).unwrap(), Some(ended));

    let mut reopened = Outbox::open(store).unwrap();
    assert_eq!(reopened.pending().count(), 0, "nothing is sent twice");
    assert_eq!(
        reopened.request(FullConfig, T1).unwrap(),
        Request::Queued { seq: 1 },
        "sequence numbers are not reused"
    );
}

#[test]
fn a_rejected_message_is_errored_and_dropped_with_the_answer() {
    let (_dir, mut outbox) = outbox(&[HistoryQueries, FullConfig]);
    outbox.begin().unwrap();
    let outcome = outcome_of(&status(400, "{\"error\":\"Bad Request\"}"));
    let ended = outbox.finish(&outcome, T1).unwrap().unwrap();
    assert_eq!(ended.status, MessageStatus::Errored);
    assert_eq!(
        ended.error.as_deref(),
        Some("400 - {\"error\":\"Bad Request\"}")
    );
    assert_eq!(kinds(&outbox), [FullConfig], "the next message moves up");
}

#[test]
fn a_failed_message_stays_at_the_head_and_counts_its_attempts() {
    let (_dir, mut outbox) = outbox(&[FullConfig, HistoryQueries]);
    for attempt in 1..=3 {
        assert_eq!(outbox.begin().unwrap().kind, FullConfig);
        let still = outbox
            .finish(&outcome_of(&status(503, "unavailable")), T1)
            .unwrap()
            .unwrap();
        assert_eq!(still.status, MessageStatus::Pending);
        assert_eq!(still.attempts, attempt);
        assert_eq!(still.error.as_deref(), Some("503 - unavailable"));
    }
    assert_eq!(kinds(&outbox), [FullConfig, HistoryQueries]);
}

#[test]
fn a_change_during_a_send_queues_a_new_message_after_it() {
    let (_dir, mut outbox) = outbox(&[FullConfig, HistoryQueries]);
    outbox.begin().unwrap();
    assert_eq!(
        outbox.request(FullConfig, T1).unwrap(),
        Request::AfterInFlight
    );
    assert_eq!(
        outbox.request(FullConfig, T1).unwrap(),
        Request::AfterInFlight
    );
    outbox.finish(&Outcome::Delivered, T1).unwrap();
    assert_eq!(
        kinds(&outbox),
        [HistoryQueries, FullConfig],
        "one follow-up, queued behind the others"
    );
}

#[test]
fn a_change_during_a_failed_send_rides_on_the_retry() {
    let (_dir, mut outbox) = outbox(&[FullConfig]);
    outbox.begin().unwrap();
    outbox.request(FullConfig, T1).unwrap();
    outbox
        .finish(&Outcome::Failed("network".into()), T1)
        .unwrap();
    outbox.begin().unwrap();
    outbox.finish(&Outcome::Delivered, T1).unwrap();
    assert_eq!(
        outbox.pending().count(),
        0,
        "the retried body was built after the change: no follow-up needed"
    );
}

#[test]
fn finishing_without_a_send_records_nothing() {
    let (_dir, mut outbox) = outbox(&[FullConfig]);
    assert_eq!(outbox.finish(&Outcome::Delivered, T1).unwrap(), None);
    assert_eq!(kinds(&outbox), [FullConfig]);
}

#[test]
fn only_bad_request_in_the_body_drops_a_message() {
    assert_eq!(outcome_of(&Ok(204)), Outcome::Delivered);
    assert!(matches!(
        outcome_of(&status(400, "Bad Request: engine.name is missing")),
        Outcome::Rejected(_)
    ));
    assert!(matches!(
        outcome_of(&status(422, "payload: Bad Request")),
        Outcome::Rejected(_)
    ));
    for (code, body) in [
        (400, ""),
        (401, "Unauthorized"),
        (503, "Service Unavailable"),
    ] {
        assert!(
            matches!(outcome_of(&status(code, body)), Outcome::Failed(_)),
            "{code} {body}"
        );
    }
    let network = Err(ClientError::Connect {
        url: "http://oia/api".into(),
        reason: "Bad Request".into(),
    });
    assert!(
        matches!(outcome_of(&network), Outcome::Failed(_)),
        "only an answer's body counts, not a local error text"
    );
}

#[test]
fn kinds_have_their_wire_names_and_routes() {
    assert_eq!(kind_name(FullConfig), "full-config");
    assert_eq!(kind_name(HistoryQueries), "history-queries");
    assert_eq!(route(FullConfig), "/api/oianalytics/oibus/configuration");
    assert_eq!(
        route(HistoryQueries),
        "/api/oianalytics/oibus/configuration/history-query"
    );
}
