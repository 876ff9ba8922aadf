use super::*;

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Rec {
    n: u32,
}

#[test]
fn typed_records_round_trip_and_scan_by_prefix() {
    let (_d, store) = temp();
    store
        .put(Cf::Entities, b"scan/a", &Rec { n: 1 }, Durability::Sync)
        .unwrap();
    store
        .put(Cf::Entities, b"scan/b", &Rec { n: 2 }, Durability::Buffered)
        .unwrap();
    store
        .put(
            Cf::Entities,
            b"south/a",
            &Rec { n: 3 },
            Durability::Buffered,
        )
        .unwrap();
    assert_eq!(
        store.get::<Rec>(Cf::Entities, b"scan/b").unwrap(),
        Some(Rec { n: 2 })
    );
    let scanned = store.scan::<Rec>(Cf::Entities, b"scan/").unwrap();
    assert_eq!(scanned.len(), 2);
    assert_eq!(scanned[0].1, Rec { n: 1 });
    assert_eq!(
        store.last_key(Cf::Entities, b"scan/").unwrap(),
        Some(b"scan/b".to_vec())
    );
    store
        .delete(Cf::Entities, b"scan/a", Durability::Sync)
        .unwrap();
    assert_eq!(store.get::<Rec>(Cf::Entities, b"scan/a").unwrap(), None);
}

#[test]
fn corrupt_record_is_quarantined_and_counted_not_a_panic() {
    let (dir, store) = temp();
    let mut batch = store.batch();
    batch.put_raw(Cf::Commands, b"c1", b"{not json");
    store.write(batch, Durability::Sync).unwrap();
    assert_eq!(store.get::<Rec>(Cf::Commands, b"c1").unwrap(), None);
    assert_eq!(store.quarantined(), 1);
    assert_eq!(store.get_raw(Cf::Commands, b"c1").unwrap(), None);
    assert_eq!(
        store.get_raw(Cf::Quarantine, b"commands/c1").unwrap(),
        Some(b"{not json".to_vec())
    );
    drop(store);
    let store = Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(store.quarantined(), 1, "the count survives a reopen");
}

#[test]
fn counters_are_atomic_and_persistent() {
    let (dir, store) = temp();
    assert_eq!(store.counter("x").unwrap(), 0);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = store.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    s.incr("x", 1, Durability::Buffered).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.counter("x").unwrap(), 400);
    drop(store);
    assert_eq!(
        Store::open(&dir.path().join("store"))
            .unwrap()
            .counter("x")
            .unwrap(),
        400
    );
}

#[test]
fn queue_survives_reopen_in_order() {
    let (dir, store) = temp();
    let q = Queue::open(&store, Cf::Logs, "logs", 1 << 20).unwrap();
    q.push_batch([b"a".as_slice(), b"bb", b"ccc"], Durability::Buffered)
        .unwrap();
    q.push(b"dddd", Durability::Sync).unwrap();
    let stats = q.stats();
    assert_eq!((stats.len, stats.bytes), (4, 10));
    drop((q, store));

    let store = Store::open(&dir.path().join("store")).unwrap();
    let q = Queue::open(&store, Cf::Logs, "logs", 1 << 20).unwrap();
    assert_eq!(q.stats(), stats);
    let items: Vec<Vec<u8>> = q.peek(10).unwrap().into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        items,
        [
            b"a".to_vec(),
            b"bb".to_vec(),
            b"ccc".to_vec(),
            b"dddd".to_vec()
        ]
    );
}

#[test]
fn queue_ack_removes_the_delivered_prefix_only() {
    let (_d, store) = temp();
    let q = Queue::open(&store, Cf::Logs, "logs", 1 << 20).unwrap();
    for i in 0..10u8 {
        q.push(&[i; 3], Durability::Buffered).unwrap();
    }
    let batch = q.peek(4).unwrap();
    assert_eq!(q.ack_through(batch.last().unwrap().0).unwrap(), 4);
    let stats = q.stats();
    assert_eq!((stats.len, stats.bytes), (6, 18));
    assert_eq!(q.peek(1).unwrap()[0].1, vec![4u8; 3]);
    assert_eq!(q.ack_through(2).unwrap(), 0, "acking an old seq is a no-op");
}

#[test]
fn queue_cap_drops_the_oldest_and_counts_exactly() {
    let (dir, store) = temp();
    let q = Queue::open(&store, Cf::Logs, "logs", 100).unwrap();
    let mut dropped = 0;
    for i in 0..25u8 {
        dropped += q.push(&[i; 10], Durability::Buffered).unwrap().dropped;
    }
    assert_eq!(dropped, 15);
    let stats = q.stats();
    assert_eq!((stats.len, stats.bytes, stats.dropped), (10, 100, 15));
    assert_eq!(
        q.peek(1).unwrap()[0].1,
        vec![15u8; 10],
        "the oldest survivors are 15..25"
    );

    // A single push larger than the cap keeps only its newest items that fit.
    let big: Vec<Vec<u8>> = (0..15u8).map(|i| vec![100 + i; 10]).collect();
    let out = q.push_batch(&big, Durability::Buffered).unwrap();
    assert_eq!(out.dropped, 15);
    let items = q.peek(100).unwrap();
    assert_eq!(items.len(), 10);
    assert_eq!(items[0].1, vec![105u8; 10]);
    drop((q, store));
    let store = Store::open(&dir.path().join("store")).unwrap();
    let q = Queue::open(&store, Cf::Logs, "logs", 100).unwrap();
    assert_eq!(q.stats().dropped, 30, "drops are persisted");
}

#[test]
fn lowering_the_cap_drops_at_once() {
    let (_d, store) = temp();
    let q = Queue::open(&store, Cf::Logs, "logs", 1000).unwrap();
    for i in 0..10u8 {
        q.push(&[i; 10], Durability::Buffered).unwrap();
    }
    assert_eq!(q.set_cap(50).unwrap(), 5);
    assert_eq!(q.stats().len, 5);
}

#[test]
fn checkpoint_is_an_openable_copy() {
    let (dir, store) = temp();
    store
        .put(Cf::State, b"k", &Rec { n: 7 }, Durability::Sync)
        .unwrap();
    let cp = dir.path().join("cp");
    store.checkpoint(&cp).unwrap();
    store
        .put(Cf::State, b"k", &Rec { n: 8 }, Durability::Sync)
        .unwrap();
    drop(store);
    let copy = Store::open(&cp).unwrap();
    assert_eq!(
        copy.get::<Rec>(Cf::State, b"k").unwrap(),
        Some(Rec { n: 7 })
    );
}

#[test]
fn a_second_open_of_the_same_store_fails_clearly() {
    let (dir, _store) = temp();
    let err = Store::open(&dir.path().join("store")).unwrap_err();
    assert!(
        err.to_string().contains("another oibus-agent engine"),
        "{err}"
    );
}

#[test]
fn a_fresh_store_does_not_preallocate_tens_of_megabytes() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put(Cf::State, b"k", &1u8, Durability::Sync).unwrap();
    let allocated: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum();
    assert!(
        allocated < 16 << 20,
        "{} MiB allocated on disk",
        allocated >> 20
    );
}
