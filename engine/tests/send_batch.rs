//! Goal: what `send_batch` promises when its messages do not fit the active
//! segment. A batch that succeeds becomes readable together and durable
//! together, also across a segment roll: no reader sees a part of it before
//! `send_batch` returns, and with `Durability::Always` the durable offset
//! (what consumers receive) never stops inside it. A batch that fails after
//! the roll keeps the part the roll sealed into the old segment: it is in
//! the log, readable, and survives a reopen; the rest is not stored.
//!
//! Also: a batch over several priority levels with headers and claim checks
//! gets each message its offset in its level, in input order; a bad message
//! anywhere fails the batch before anything (a blob either) is written; and
//! a batch whose iterator yields other messages when walked again (the
//! messages are walked twice: checked, then written) fails without leaving
//! a record behind.
//!
//! Method: on the simulated file system with slow syncs (a roll then takes
//! tens of milliseconds), a reader thread watches the stream while a batch
//! crosses a roll; then a batch whose roll runs out of disk space. The other
//! cases read everything back, and reopen the store.

pub mod common;

use common::sim;
use spool::io::sim::SimFs;
use spool::{Durability, Error, Message, Store, StreamConfig};
use std::cell::Cell;
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

#[test]
fn a_batch_over_levels_with_headers_and_claim_checks_gets_offsets_in_input_order() {
    let fs = SimFs::new();
    let opts = sim::options(&fs, Durability::Always);
    let config = StreamConfig::default()
        .priorities(3)
        .claim_check_threshold(2000);
    let big = vec![7u8; 5000];
    let bigger = vec![8u8; 3000];
    // (priority, payload, header value): expected offsets 0/0, 2/0, 0/1,
    // 1/0, 2/1, 0/2.
    let batch: Vec<(u8, &[u8], &str)> = vec![
        (0, b"a", ""),
        (2, b"b", "bee"),
        (0, &big, ""),
        (1, b"c", "sea"),
        (2, &bigger, "large"),
        (0, b"d", ""),
    ];
    let messages = || {
        batch.iter().map(|&(p, payload, h)| {
            let m = Message::new(payload).priority(p);
            if h.is_empty() {
                m
            } else {
                m.header("h", h)
            }
        })
    };
    {
        let store = Store::open("/b", opts.clone()).unwrap();
        let s = store.create_stream("s", config.clone()).unwrap();
        assert_eq!(s.send_batch(messages()).unwrap(), [0, 0, 1, 0, 1, 2]);
        assert_eq!(s.send_batch(messages()).unwrap(), [3, 2, 4, 1, 3, 5]);
    }
    let store = Store::open("/b", opts).unwrap();
    let s = store.stream("s").unwrap();
    let ends: Vec<u64> = s.stats().buckets.iter().map(|b| b.end_offset).collect();
    assert_eq!(ends, [6, 2, 4]);
    for round in 0..2u64 {
        let mut next = [round * 3, round, round * 2];
        for &(p, payload, h) in &batch {
            let offset = next[p as usize];
            next[p as usize] += 1;
            let r = s.read_priority(p, offset).unwrap().unwrap();
            assert_eq!(r.payload(), payload, "priority {p} offset {offset}");
            let header = (!h.is_empty()).then_some(h.as_bytes());
            assert_eq!(r.header("h"), header);
            assert_eq!(r.claim_check().is_some(), payload.len() > 2000);
        }
    }
}

#[test]
fn a_bad_message_anywhere_fails_the_batch_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), spool::Options::default()).unwrap();
    let s = store
        .create_stream(
            "s",
            StreamConfig::default()
                .priorities(2)
                .claim_check_threshold(2000),
        )
        .unwrap();
    let big = vec![1u8; 5000];
    let bad_header = [
        Message::new(&big),
        Message::new(b"x").priority(1),
        Message::new(b"y").header("", "empty key"),
    ];
    assert!(matches!(
        s.send_batch(bad_header),
        Err(Error::InvalidHeaders { .. })
    ));
    let bad_priority = [Message::new(&big), Message::new(b"x").priority(2)];
    assert!(matches!(
        s.send_batch(bad_priority),
        Err(Error::InvalidPriority { .. })
    ));
    for b in s.stats().buckets {
        assert_eq!(b.end_offset, 0, "nothing of the batches was written");
    }
    let blobs = walk(&dir.path().join("blobs"));
    assert!(
        blobs
            .iter()
            .all(|p| p.contains("/tmp") || p.contains("/pending")),
        "no blob was stored: {blobs:?}"
    );
    assert_eq!(s.send_batch([&b"after"[..], &big]).unwrap(), [0, 1]);
}

/// Every file under `dir` (none if it does not exist).
fn walk(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.display().to_string());
        }
    }
    files
}

#[test]
fn a_batch_whose_iterator_changes_when_walked_again_fails_and_leaves_no_record() {
    let fs = SimFs::new();
    let opts = sim::options(&fs, Durability::Always);
    let payload = [5u8; 100];
    {
        let store = Store::open("/b", opts.clone()).unwrap();
        let s = store
            .create_stream("s", StreamConfig::default().priorities(2))
            .unwrap();
        s.send(b"first").unwrap();
        // Each closure counts the messages it made: the first walk sees
        // `n` messages of level 0, the second something else.
        let made = Cell::new(0u32);
        let n = 4;
        let second_walk = |made: &Cell<u32>| {
            made.set(made.get() + 1);
            made.get() > n
        };
        let other_level = (0..n).map(|_| {
            let p = u8::from(second_walk(&made));
            Message::new(&payload).priority(p)
        });
        assert!(matches!(
            s.send_batch(other_level),
            Err(Error::InvalidArgument(_))
        ));
        made.set(0);
        let more = (0..n).flat_map(|_| {
            let k = if second_walk(&made) { 2 } else { 1 };
            std::iter::repeat_n(&payload[..], k)
        });
        assert!(matches!(s.send_batch(more), Err(Error::InvalidArgument(_))));
        made.set(0);
        let headers = (0..n).map(|_| {
            let m = Message::new(&payload);
            if second_walk(&made) {
                m.header("", "empty key")
            } else {
                m
            }
        });
        assert!(matches!(
            s.send_batch(headers),
            Err(Error::InvalidHeaders { .. })
        ));
        let ends: Vec<u64> = s.stats().buckets.iter().map(|b| b.end_offset).collect();
        assert_eq!(ends, [1, 0], "no record of the failed batches");
        assert_eq!(s.send_batch([&b"after"[..]]).unwrap(), [1]);
    }
    let store = Store::open("/b", opts).unwrap();
    assert!(store.recovery_report().is_clean());
    let s = store.stream("s").unwrap();
    assert_eq!(s.stats().buckets[0].end_offset, 2);
    assert_eq!(s.read(1).unwrap().unwrap().payload(), b"after");
    assert!(s.read(2).unwrap().is_none());
}
