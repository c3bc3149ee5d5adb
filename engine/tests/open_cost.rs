//! Goal: opening a store does not read sealed segments, so its cost does not
//! grow with the size of the store.
//!
//! Method: the same stream is opened once holding 3 segments and once holding
//! 40, on the simulated file system, which counts files opened, bytes read and
//! bytes mapped. Both opens must cost exactly the same. (A timer would prove
//! nothing on a shared machine; counted I/O is exact.)

pub mod common;

use common::sim::{self, SEGMENT_BYTES as SEGMENT};
use spool::io::sim::{SimFs, SimStats};
use spool::{Durability, Options, Store};

fn options(fs: &SimFs) -> Options {
    sim::options(fs, Durability::Never)
}

/// Fills stream "s" until it has `segments` segments and the active one holds
/// exactly `tail` messages; returns the cost of reopening.
fn open_cost(segments: usize, tail: usize) -> SimStats {
    open_cost_with(segments, tail, false)
}

/// [`open_cost`], with a claim check in the first segment if `blob`.
fn open_cost_with(segments: usize, tail: usize, blob: bool) -> SimStats {
    let fs = SimFs::new();
    {
        let store = Store::open("/db", options(&fs)).unwrap();
        let s = store.stream("s").unwrap();
        if blob {
            s.send_reader(&[5u8; 3000][..], spool::Message::new(b""))
                .unwrap();
        }
        let msg = [7u8; 1000];
        while s.stats().buckets[0].segments < segments {
            s.send(&msg).unwrap();
        }
        for _ in 0..tail {
            s.send(&msg).unwrap();
        }
        store.close().unwrap();
    }
    // Reopen once so both stores start from a clean, recovered state.
    drop(Store::open("/db", options(&fs)).unwrap());
    let before = fs.stats();
    let store = Store::open("/db", options(&fs)).unwrap();
    assert!(store.recovery_report().is_clean());
    let after = fs.stats();
    let s = store.stream("s").unwrap();
    assert_eq!(s.stats().buckets[0].segments, segments);
    SimStats {
        ops: after.ops - before.ops,
        opens: after.opens - before.opens,
        bytes_read: after.bytes_read - before.bytes_read,
        bytes_mapped: after.bytes_mapped - before.bytes_mapped,
        syncs: after.syncs - before.syncs,
    }
}

#[test]
fn open_cost_is_independent_of_store_size() {
    let small = open_cost(3, 5);
    let big = open_cost(40, 5);
    assert_eq!(small.ops, big.ops, "{small:?} vs {big:?}");
    assert_eq!(small.opens, big.opens, "{small:?} vs {big:?}");
    assert_eq!(small.bytes_read, big.bytes_read, "{small:?} vs {big:?}");
    assert_eq!(small.bytes_mapped, big.bytes_mapped, "{small:?} vs {big:?}");
    assert_eq!(small.syncs, big.syncs, "{small:?} vs {big:?}");
    // Only the active segment is mapped.
    assert_eq!(big.bytes_mapped, SEGMENT);
}

/// Regression: with any claim-check blob in the store, every open read the
/// index of every sealed segment (to look for orphan blobs). Only a crash or
/// a failed send between storing a blob and appending its message can leave
/// an orphan, and such a send leaves a pending mark: without one, open reads
/// no references.
#[test]
fn open_cost_with_a_blob_is_independent_of_store_size() {
    let small = open_cost_with(3, 5, true);
    let big = open_cost_with(40, 5, true);
    assert_eq!(small.opens, big.opens, "{small:?} vs {big:?}");
    assert_eq!(small.bytes_mapped, big.bytes_mapped, "{small:?} vs {big:?}");
    assert_eq!(small.ops, big.ops, "{small:?} vs {big:?}");
}

#[test]
fn reading_old_messages_loads_only_their_segment() {
    let fs = SimFs::new();
    let store = Store::open("/db", options(&fs)).unwrap();
    let s = store.stream("s").unwrap();
    let mut n = 0u64;
    while s.stats().buckets[0].segments < 10 {
        s.send(format!("m{n}").as_bytes()).unwrap();
        n += 1;
    }
    store.close().unwrap();
    drop(s);
    let store = Store::open("/db", options(&fs)).unwrap();
    let s = store.stream("s").unwrap();
    let before = fs.stats();
    assert_eq!(s.read(1).unwrap().unwrap().payload(), b"m1");
    let after = fs.stats();
    // The first segment and its index: two opens, two maps.
    assert_eq!(after.opens - before.opens, 2);
    assert!(after.bytes_mapped - before.bytes_mapped <= SEGMENT + SEGMENT / 4);
}

/// A clean open writes and syncs nothing: the new epoch of each bucket is
/// made durable by its first append instead (before a record of that epoch
/// is written), and a consumer starts its next journal generation at its
/// first journaled change, not at open. Power cut right after that first append's records are
/// written but before any sync: the next open must recover to the
/// acknowledged messages and the new records must not be taken for damage.
#[test]
fn a_clean_open_syncs_nothing_and_the_first_append_raises_the_epoch() {
    let fs = SimFs::new();
    {
        let store = Store::open("/db", options(&fs)).unwrap();
        for name in ["a", "b", "c"] {
            let s = store.stream(name).unwrap();
            for i in 0..20u32 {
                s.send(format!("{name}{i}").as_bytes()).unwrap();
            }
            let c = s.consumer("c").unwrap();
            for _ in 0..5 {
                c.try_receive().unwrap().unwrap().ack().unwrap();
            }
            let _in_flight = c.try_receive().unwrap().unwrap();
        }
        store.close().unwrap();
    }
    let before = fs.stats();
    let store = Store::open("/db", options(&fs)).unwrap();
    let after = fs.stats();
    assert!(store.recovery_report().is_clean());
    assert_eq!(after.syncs - before.syncs, 0, "a clean open synced");
    for name in ["a", "b", "c"] {
        let before = fs.stats();
        let c = store.stream(name).unwrap().consumer("c").unwrap();
        assert_eq!(
            fs.stats().syncs - before.syncs,
            0,
            "a consumer's open synced"
        );
        // Acknowledged before the reopen: not delivered again.
        let d = c.try_receive().unwrap().unwrap();
        assert_eq!(d.offset(), 5, "stream {name}");
    }
    let s = store.stream("a").unwrap();
    s.send(b"after the clean open").unwrap();
    // Cut with random unsynced pages kept (some torn): the epoch raised by
    // the first append is on disk whatever the cut keeps of its records.
    let cut = fs.power_cut(spool::io::sim::CutMode::RandomPages(7));
    drop(s);
    drop(store);
    let store = Store::open("/db", options(&cut)).unwrap();
    let s = store.stream("a").unwrap();
    for i in 0..20u32 {
        assert_eq!(
            s.read(i as u64).unwrap().unwrap().payload(),
            format!("a{i}").as_bytes()
        );
    }
    let next = s.send(b"next").unwrap();
    assert!(next >= 20);
}
