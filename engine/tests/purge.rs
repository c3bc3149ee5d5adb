//! Goal: a purge removes every message a stream holds, at every level, and
//! frees their files (segments and blobs only they referred to); consumers
//! then see none of them and count what they had not acknowledged as
//! skipped, the same after a reopen; sends after it are delivered as
//! usual. Crash-safe: a power cut or an I/O error at any operation of a
//! purge leaves a store that opens with each level either whole or purged,
//! the counts agreeing with it.
//!
//! Method: stores on the simulated file system with 64 KiB segments;
//! `SimFs::crash_at` / `fail_at` at every operation of one `purge` call.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, FaultKind, SimFs};
use spool::{Error, Message, Store, StreamConfig};
use std::time::Duration;

const ROOT: &str = "/d";
const N: u64 = 300;
/// Offsets of level 0 and level 1 after `build`.
const ENDS: [u64; 2] = [N / 2 + 1, N / 2];
/// What consumer `a` acknowledged of level 0 (`0..=ACKED`).
const ACKED: u64 = 50;

/// Stream `s` of two levels: `N` messages over several segments, and a
/// claim check in level 0; consumer `a` acknowledged level 0 up to
/// `ACKED`, consumer `b` nothing.
fn build(fs: &SimFs) -> Store {
    let store = Store::open(ROOT, sim::consumer_options(fs)).unwrap();
    let config = StreamConfig::default()
        .priorities(2)
        .claim_check_threshold(4096);
    let s = store.create_stream("s", config).unwrap();
    let a = s.consumer("a").unwrap();
    s.consumer("b").unwrap();
    for i in 0..N {
        s.send_message(Message::new(&[i as u8; 500]).priority((i % 2) as u8))
            .unwrap();
    }
    s.send(&[7u8; 8192]).unwrap();
    a.ack_up_to(0, ACKED).unwrap();
    store
}

fn count(fs: &SimFs, part: &str) -> usize {
    fs.files()
        .iter()
        .filter(|p| p.to_string_lossy().contains(part))
        .count()
}

fn segments(fs: &SimFs, level: u8) -> usize {
    fs.files()
        .iter()
        .filter(|p| {
            let p = p.to_string_lossy();
            p.contains(&format!("/streams/s/p{level}/")) && p.ends_with(".seg")
        })
        .count()
}

/// Every message `c` has to deliver now, per level (acknowledged).
fn drain(c: &spool::Consumer) -> [u64; 2] {
    let mut got = [0; 2];
    loop {
        let batch = c.receive_batch(64, Duration::ZERO).unwrap();
        if batch.is_empty() {
            return got;
        }
        for d in &batch {
            got[d.priority() as usize] += 1;
        }
        c.ack_batch(batch).unwrap();
    }
}

#[test]
fn a_purge_removes_everything_and_counts_it_as_skipped() {
    let fs = SimFs::new();
    let store = build(&fs);
    let s = store.open_stream("s").unwrap();
    let (a, b) = (s.open_consumer("a").unwrap(), s.open_consumer("b").unwrap());
    let held = b.try_receive().unwrap().expect("a message");
    assert!(segments(&fs, 0) > 1 && segments(&fs, 1) > 1);
    assert_eq!(count(&fs, "/blobs/") - count(&fs, "/blobs/pending/"), 1);

    assert_eq!(s.purge().unwrap(), ENDS[0] + ENDS[1]);
    assert_eq!(segments(&fs, 0), 1, "only the new active segment");
    assert_eq!(segments(&fs, 1), 1);
    assert_eq!(count(&fs, "/blobs/") - count(&fs, "/blobs/pending/"), 0);
    assert_eq!(count(&fs, "/blobs/pending/"), 0, "the mark is settled");
    for (p, bucket) in s.stats().buckets.iter().enumerate() {
        assert_eq!((bucket.first_offset, bucket.end_offset), (ENDS[p], ENDS[p]));
    }
    let a_skipped = ENDS[0] - (ACKED + 1) + ENDS[1];
    assert_eq!(a.stats().skipped, a_skipped);
    assert_eq!(b.stats().skipped, ENDS[0] + ENDS[1]);
    assert_eq!(a.stats().pending(), 0);
    assert!(a.try_receive().unwrap().is_none());
    assert!(b.try_receive().unwrap().is_none());
    // A delivery from before acknowledges nothing (its message is gone).
    held.ack().unwrap();
    assert_eq!(b.stats().skipped, ENDS[0] + ENDS[1]);
    // Nothing left: a second purge removes nothing.
    assert_eq!(s.purge().unwrap(), 0);
    // New sends are delivered, at the offsets that follow.
    let o = s.send_message(Message::new(b"after").priority(1)).unwrap();
    assert_eq!(o, ENDS[1]);
    let d = b.try_receive().unwrap().expect("sent after the purge");
    assert_eq!((d.payload(), d.priority()), (&b"after"[..], 1));
    d.ack().unwrap();
    drop((a, b, s));
    store.close().unwrap();

    // The counts survive a reopen (derived from the log's first offsets).
    let store = Store::open(ROOT, sim::consumer_options(&fs)).unwrap();
    let s = store.open_stream("s").unwrap();
    assert_eq!(s.open_consumer("a").unwrap().stats().skipped, a_skipped);
    assert_eq!(
        s.open_consumer("b").unwrap().stats().skipped,
        ENDS[0] + ENDS[1]
    );
    assert_eq!(drain(&s.open_consumer("a").unwrap()), [0, 1]);
    assert_eq!(drain(&s.open_consumer("b").unwrap()), [0, 0]);
}

#[test]
fn a_purge_on_a_store_that_never_had_blobs_or_messages() {
    let fs = SimFs::new();
    let store = Store::open(ROOT, sim::consumer_options(&fs)).unwrap();
    let s = store.stream("empty").unwrap();
    assert_eq!(s.purge().unwrap(), 0);
    assert_eq!(count(&fs, "/blobs"), 0, "no blob directory is made");
    s.send(b"one").unwrap();
    assert_eq!(s.purge().unwrap(), 1);
    assert_eq!(s.stats().messages(), 0);
    assert_eq!(s.send(b"two").unwrap(), 1);
}

/// What a store that went through (part of) a purge must look like when it
/// opens: each level whole or purged, the consumers' counts and deliveries
/// agreeing with it; sends work.
fn check_after(fs: &SimFs, what: &str) -> [bool; 2] {
    let store = Store::open(ROOT, sim::consumer_options(fs))
        .unwrap_or_else(|e| panic!("{what}: the open failed: {e}"));
    let s = store.open_stream("s").unwrap();
    let stats = s.stats();
    let mut purged = [false; 2];
    for (p, bucket) in stats.buckets.iter().enumerate() {
        assert_eq!(bucket.end_offset, ENDS[p], "{what}: p{p}");
        assert!(
            bucket.first_offset == 0 || bucket.first_offset == ENDS[p],
            "{what}: p{p} first {}",
            bucket.first_offset
        );
        purged[p] = bucket.first_offset == ENDS[p];
    }
    let blob_left = count(fs, "/blobs/") - count(fs, "/blobs/pending/") > 0;
    assert_eq!(blob_left, !purged[0], "{what}: the blob");
    let (a, b) = (s.open_consumer("a").unwrap(), s.open_consumer("b").unwrap());
    let whole = |p: usize| if purged[p] { 0 } else { ENDS[p] };
    let skipped_b = (0..2).map(|p| ENDS[p] - whole(p)).sum::<u64>();
    assert_eq!(b.stats().skipped, skipped_b, "{what}: b skipped");
    let skipped_a =
        if purged[0] { ENDS[0] - ACKED - 1 } else { 0 } + if purged[1] { ENDS[1] } else { 0 };
    assert_eq!(a.stats().skipped, skipped_a, "{what}: a skipped");
    assert_eq!(drain(&b), [whole(0), whole(1)], "{what}: b");
    let a0 = if purged[0] { 0 } else { ENDS[0] - ACKED - 1 };
    assert_eq!(drain(&a), [a0, whole(1)], "{what}: a");
    s.send(b"after").unwrap();
    assert_eq!(drain(&b), [1, 0], "{what}: a send after the purge");
    purged
}

#[test]
fn a_power_cut_at_every_operation_of_a_purge() {
    let probe = SimFs::new();
    let store = build(&probe);
    let before = probe.stats().ops;
    store.open_stream("s").unwrap().purge().unwrap();
    let ops = probe.stats().ops - before;
    drop(store);
    assert!(ops > 10, "a purge takes many operations: {ops}");
    let mut seen = std::collections::BTreeSet::new();
    for at in 1..=ops + 1 {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(at)] {
            let fs = SimFs::new();
            let store = build(&fs);
            fs.crash_at(fs.stats().ops + at, mode);
            let _ = store.open_stream("s").unwrap().purge();
            let image = fs
                .crashed_image()
                .map(|img| SimFs::from_image(&img))
                .unwrap_or_else(|| fs.power_cut(mode));
            drop(store);
            seen.insert(check_after(
                &image,
                &format!("cut at op {at} of {ops}, {mode:?}"),
            ));
        }
    }
    // Whole, one level purged, both purged.
    assert!(seen.len() >= 3, "{seen:?}");
}

#[test]
fn an_io_error_at_every_operation_of_a_purge() {
    let probe = SimFs::new();
    let store = build(&probe);
    let before = probe.stats().ops;
    store.open_stream("s").unwrap().purge().unwrap();
    let ops = probe.stats().ops - before;
    drop(store);
    for at in 1..=ops {
        let fs = SimFs::new();
        let store = build(&fs);
        fs.fail_at(fs.stats().ops + at, FaultKind::Eio, false);
        let s = store.open_stream("s").unwrap();
        let r = s.purge();
        let what = format!("EIO at op {at} of {ops}: {r:?}");
        if r.is_err() && !store.is_poisoned() {
            // Tried again, it finishes.
            assert!(s.purge().is_ok() || store.is_poisoned(), "{what}");
        }
        if let Ok(n) = r {
            assert_eq!(n, ENDS[0] + ENDS[1], "{what}");
        }
        assert!(!matches!(r, Err(Error::StreamNotFound { .. })), "{what}");
        drop(s);
        drop(store);
        check_after(&fs.power_cut(CutMode::DropUnsynced), &what);
    }
}
