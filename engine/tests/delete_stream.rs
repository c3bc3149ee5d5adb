//! Goal: deleting a stream removes it whole (messages, consumers, blobs
//! only it referred to), makes its handles fail with `StreamNotFound`,
//! frees its name for a new, empty stream, and is crash-safe: a power cut
//! or an I/O error at any operation of the deletion leaves a store that
//! opens with the stream either whole (as before) or gone without a trace
//! (no temporary directory, no blob of it), and the other stream intact.
//!
//! Method: stores on the simulated file system with 64 KiB segments;
//! `SimFs::crash_at` / `fail_at` at every operation of one
//! `delete_stream` call.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, FaultKind, SimFs};
use spool::{Error, Message, Store, StreamConfig};
use std::time::Duration;

const ROOT: &str = "/d";
const N: u64 = 300;

/// A claim check's payload: above the threshold of the streams below.
fn big(tag: u8) -> Vec<u8> {
    vec![tag; 8 * 1024]
}

fn config() -> StreamConfig {
    StreamConfig::default()
        .priorities(2)
        .claim_check_threshold(4096)
}

/// Stream `s` (two levels, `N` messages over several segments, a claim
/// check only it holds and one it shares with `keep`), consumer `c` of it
/// that acknowledged a third; stream `keep` with one message and the
/// shared claim check, and consumer `k` that acknowledged nothing.
fn build(fs: &SimFs) -> Store {
    let store = Store::open(ROOT, sim::consumer_options(fs)).unwrap();
    let s = store.create_stream("s", config()).unwrap();
    let c = s.consumer("c").unwrap();
    for i in 0..N {
        s.send_message(Message::new(&[i as u8; 500]).priority((i % 2) as u8))
            .unwrap();
    }
    s.send(&big(1)).unwrap();
    s.send(&big(2)).unwrap();
    c.ack_up_to(0, N / 3).unwrap();
    let keep = store.create_stream("keep", config()).unwrap();
    keep.send(b"kept").unwrap();
    keep.send(&big(2)).unwrap();
    keep.consumer("k").unwrap();
    store
}

fn blob_files(fs: &SimFs) -> usize {
    fs.files()
        .iter()
        .filter(|p| {
            let p = p.to_string_lossy();
            p.contains("/blobs/") && !p.contains("/blobs/tmp/") && !p.contains("/blobs/pending/")
        })
        .count()
}

fn files_of(fs: &SimFs, part: &str) -> usize {
    fs.files()
        .iter()
        .filter(|p| p.to_string_lossy().contains(part))
        .count()
}

#[test]
fn a_deleted_stream_is_gone_and_its_name_is_free() {
    let fs = SimFs::new();
    let store = build(&fs);
    let s = store.open_stream("s").unwrap();
    let c = s.open_consumer("c").unwrap();
    let leased = c.try_receive().unwrap().expect("a message");
    let waiter = {
        let c = store
            .open_stream("keep")
            .unwrap()
            .open_consumer("k")
            .unwrap();
        drop(c);
        let blocked = s.consumer("blocked").unwrap();
        std::thread::spawn(move || {
            // Nothing to take (it starts past the end), so it waits until
            // the deletion wakes it.
            blocked.seek(spool::StartAt::Latest).unwrap();
            blocked.receive(Duration::from_secs(3600))
        })
    };
    assert_eq!(blob_files(&fs), 2);
    // Let the receiver block (not needed for the outcome: it checks the
    // stream whenever it wakes, and the deletion wakes it).
    std::thread::sleep(Duration::from_millis(20));
    store.delete_stream("s").unwrap();
    assert!(matches!(
        waiter.join().unwrap(),
        Err(Error::StreamNotFound { name }) if name == "s"
    ));
    assert_eq!(store.streams(), ["keep"]);
    assert_eq!(files_of(&fs, "/streams/s/"), 0, "its files are gone");
    assert_eq!(files_of(&fs, "/streams/.tmp-"), 0);
    assert_eq!(blob_files(&fs), 1, "the blob only it referred to is gone");
    let gone = |r: Result<(), Error>, what: &str| {
        assert!(
            matches!(&r, Err(Error::StreamNotFound { name }) if name == "s"),
            "{what}: {r:?}"
        );
    };
    gone(s.send(b"x").map(|_| ()), "send");
    gone(s.read(0).map(|_| ()), "read");
    gone(s.iter_from(0).next().unwrap().map(|_| ()), "iter");
    gone(s.consumer("new").map(|_| ()), "consumer");
    gone(s.consumer("c").map(|_| ()), "consumer of an old name");
    gone(s.redrive("r", 10).map(|_| ()), "redrive");
    gone(s.open_consumer("c").map(|_| ()), "open_consumer");
    gone(c.try_receive().map(|_| ()), "receive");
    gone(c.ack_up_to(0, 1), "ack_up_to");
    gone(c.seek(spool::StartAt::Earliest), "seek");
    gone(leased.ack(), "ack");
    gone(s.purge().map(|_| ()), "purge");
    gone(s.apply_retention().map(|_| ()), "retention");
    gone(store.delete_stream("s"), "a second deletion");
    assert!(matches!(
        store.open_stream("s"),
        Err(Error::StreamNotFound { .. })
    ));
    // The name is free: a new stream, empty, from offset 0, without the
    // old consumers.
    let again = store.create_stream("s", StreamConfig::default()).unwrap();
    assert_eq!(again.stats().messages(), 0);
    assert!(again.consumers().is_empty());
    assert_eq!(again.send(b"new").unwrap(), 0);
    // The other stream is untouched, its shared blob readable.
    let keep = store.open_stream("keep").unwrap();
    assert_eq!(keep.read(1).unwrap().unwrap().payload(), &big(2)[..]);
    drop((s, c, again, keep));
    store.close().unwrap();
    let store = Store::open(ROOT, sim::consumer_options(&fs)).unwrap();
    assert_eq!(store.streams(), ["keep", "s"]);
    assert_eq!(store.open_stream("s").unwrap().stats().messages(), 1);
}

/// What a store that went through (part of) the deletion must look like
/// when it opens.
fn check_after(fs: &SimFs, what: &str) {
    let store = Store::open(ROOT, sim::consumer_options(fs))
        .unwrap_or_else(|e| panic!("{what}: the open failed: {e}"));
    assert_eq!(
        files_of(fs, "/streams/.tmp-"),
        0,
        "{what}: a temporary directory is left"
    );
    let names = store.streams();
    let keep = store.open_stream("keep").unwrap();
    assert_eq!(keep.read(1).unwrap().unwrap().payload(), &big(2)[..]);
    let k = keep.open_consumer("k").unwrap();
    assert_eq!(k.try_receive().unwrap().unwrap().payload(), b"kept");
    if names == ["keep", "s"] {
        // Whole: every message, the consumer where it was, both blobs.
        let s = store.open_stream("s").unwrap();
        assert_eq!(s.stats().messages(), N + 2, "{what}");
        assert_eq!(s.consumers(), ["c"], "{what}");
        let c = s.open_consumer("c").unwrap();
        assert_eq!(c.stats().buckets[0].ack_floor, N / 3 + 1, "{what}");
        assert_eq!(s.read(N / 2 + 1).unwrap().unwrap().payload(), &big(2)[..]);
        assert_eq!(blob_files(fs), 2, "{what}");
    } else {
        assert_eq!(names, ["keep"], "{what}");
        assert_eq!(files_of(fs, "/streams/s/"), 0, "{what}: half a stream");
        assert_eq!(blob_files(fs), 1, "{what}: its blob is left");
        // The name is free.
        assert_eq!(store.stream("s").unwrap().stats().messages(), 0);
    }
}

#[test]
fn a_power_cut_at_every_operation_of_a_deletion() {
    let probe = SimFs::new();
    let store = build(&probe);
    let before = probe.stats().ops;
    store.delete_stream("s").unwrap();
    let ops = probe.stats().ops - before;
    drop(store);
    assert!(ops > 10, "a deletion takes many operations: {ops}");
    let mut gone = 0;
    for at in 1..=ops + 1 {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(at)] {
            let fs = SimFs::new();
            let store = build(&fs);
            fs.crash_at(fs.stats().ops + at, mode);
            let _ = store.delete_stream("s");
            let image = fs
                .crashed_image()
                .map(|img| SimFs::from_image(&img))
                .unwrap_or_else(|| fs.power_cut(mode));
            drop(store);
            gone += usize::from(image.files().iter().all(|p| {
                let p = p.to_string_lossy();
                !p.contains("/streams/s/")
            }));
            check_after(&image, &format!("cut at op {at} of {ops}, {mode:?}"));
        }
    }
    assert!(gone > 0, "some cuts come after the durable step");
}

#[test]
fn an_io_error_at_every_operation_of_a_deletion() {
    let probe = SimFs::new();
    let store = build(&probe);
    let before = probe.stats().ops;
    store.delete_stream("s").unwrap();
    let ops = probe.stats().ops - before;
    drop(store);
    for at in 1..=ops {
        let fs = SimFs::new();
        let store = build(&fs);
        fs.fail_at(fs.stats().ops + at, FaultKind::Eio, false);
        let r = store.delete_stream("s");
        let what = format!("EIO at op {at} of {ops}: {r:?}");
        match &r {
            // Gone from the registry, in memory, whatever the disk says.
            Ok(()) => assert_eq!(store.streams(), ["keep"], "{what}"),
            Err(Error::Poisoned) => {}
            Err(_) => {
                // Failed: either nothing changed (it still works), or the
                // store is poisoned.
                if store.sync().is_ok() {
                    assert_eq!(store.streams(), ["keep", "s"], "{what}");
                    let s = store.open_stream("s").unwrap();
                    s.send(b"after a failed deletion").unwrap();
                    s.open_consumer("c").unwrap().try_receive().unwrap();
                }
            }
        }
        drop(store);
        let image = fs.power_cut(CutMode::DropUnsynced);
        // A message sent after a failed deletion may be there: accept N + 3.
        let store = Store::open(ROOT, sim::consumer_options(&image))
            .unwrap_or_else(|e| panic!("{what}: the open failed: {e}"));
        let extra = store
            .open_stream("s")
            .map(|s| s.stats().messages() == N + 3)
            .unwrap_or(false);
        drop(store);
        if !extra {
            check_after(&image, &what);
        }
    }
}
