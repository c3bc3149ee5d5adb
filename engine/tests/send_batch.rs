//! Goal: what `send_batch` promises when its messages do not fit the active
//! segment. A batch that succeeds becomes readable together and durable
//! together, also across a segment roll: no reader sees a part of it before
//! `send_batch` returns, and with `Durability::Always` the durable offset
//! (what consumers receive) never stops inside it. A batch that fails after
//! the roll keeps the part the roll sealed into the old segment: it is in
//! the log, readable, and survives a reopen; the rest is not stored.
//!
//! Method: on the simulated file system with slow syncs (a roll then takes
//! tens of milliseconds), a reader thread watches the stream while a batch
//! crosses a roll; then a batch whose roll runs out of disk space.

pub mod common;

use common::sim;
use spool::io::sim::SimFs;
use spool::{Durability, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Records of 1000-byte payloads a 64 KiB segment holds: (64 KiB - 1 KiB)
/// / 1032 bytes each.
const PER_SEGMENT: u64 = 62;

#[test]
fn a_batch_across_a_roll_becomes_visible_and_durable_together() {
    let fs = SimFs::new();
    let store = Store::open("/b", sim::options(&fs, Durability::Always)).unwrap();
    let s = store.stream("s").unwrap();
    let payload = [3u8; 1000];
    for _ in 0..40 {
        s.send(&payload).unwrap();
    }
    let (start, end) = (40u64, 80u64);
    fs.set_sync_delay(Duration::from_millis(10));
    let done = AtomicBool::new(false);
    let seen = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(Ordering::Acquire) {
                let b = s.stats().buckets[0].clone();
                seen.push((b.end_offset, b.durable_offset));
                // The first of the batch readable means the last is too.
                if s.read(start).unwrap().is_some() {
                    assert!(s.read(end - 1).unwrap().is_some(), "batch seen in part");
                }
            }
            seen
        });
        let offsets = s.send_batch(vec![&payload[..]; 40]).unwrap();
        assert_eq!(offsets, (start..end).collect::<Vec<_>>());
        done.store(true, Ordering::Release);
        watcher.join().unwrap()
    });
    assert!(PER_SEGMENT > start && PER_SEGMENT < end, "the batch rolls");
    assert_eq!(s.stats().buckets[0].segments, 2);
    assert!(seen.len() > 1, "the watcher looked during the batch");
    for (e, d) in seen {
        assert!(e <= start || e >= end, "end offset {e} inside the batch");
        assert!(
            d <= start || d >= end,
            "durable offset {d} inside the batch"
        );
        assert!(d <= e, "durable {d} past the end {e}");
    }
}

#[test]
fn a_batch_that_fails_after_a_roll_keeps_the_sealed_part() {
    let fs = SimFs::new();
    let opts = sim::options(&fs, Durability::Always);
    {
        let store = Store::open("/b", opts.clone()).unwrap();
        let s = store.stream("s").unwrap();
        let payload = [3u8; 1000];
        for _ in 0..40 {
            s.send(&payload).unwrap();
        }
        // The old segment's space is reserved: the batch fills it, then
        // sealing it (its index) finds the disk full.
        fs.set_capacity(0);
        assert!(s.send_batch(vec![&payload[..]; 40]).is_err());
        assert!(!store.is_poisoned());
        let b = s.stats().buckets[0].clone();
        assert_eq!(b.end_offset, PER_SEGMENT, "the sealed part is in the log");
        assert!(s.read(PER_SEGMENT - 1).unwrap().is_some());
        assert!(s.read(PER_SEGMENT).unwrap().is_none());
        fs.set_capacity(u64::MAX);
        assert_eq!(s.send(b"after").unwrap(), PER_SEGMENT);
    }
    let store = Store::open("/b", opts).unwrap();
    let s = store.stream("s").unwrap();
    assert_eq!(s.stats().buckets[0].end_offset, PER_SEGMENT + 1);
    assert_eq!(s.read(PER_SEGMENT).unwrap().unwrap().payload(), b"after");
}
